//! The policy checks every enforcing hook shares: the deny maps, the exemptions, and the
//! block record that reports a decision on the exec ring. Called from the BPF LSM programs
//! (`lsm_exec.rs`, `lsm_open.rs`: the operation fails with -EPERM) and, where BPF LSM does not
//! enforce, from the exec tracepoint and the open hooks (`SIGKILL` to the current process,
//! which dies on its way back to user space: before the new image's first instruction, before
//! open returns its descriptor).
use aurora_common::{
    BlockRecord, DenyEntry, FileKey, FileStamp, RecordKind, BLOCK_ACTION_BLOCKED,
    BLOCK_ACTION_HELD, BLOCK_ACTION_KILLED, BLOCK_ACTION_WATCHED, BLOCK_ACTION_WOULD_BLOCK,
    BLOCK_TARGET_EXEC, BLOCK_TARGET_OPEN, DENY_DIR_DEPTH, DENY_ENFORCE, DENY_WATCH_ANY,
    DENY_WATCH_WRITE, ENFORCE_LSM_EXEC, ENFORCE_LSM_OPEN, ENFORCE_POLICY_EXEMPT_IMAGES,
    ENFORCE_POLICY_HASH, ENFORCE_POLICY_OPEN, ENFORCE_POLICY_OPEN_DIRS, ENFORCE_SLOT_LSM,
    ENFORCE_SLOT_POLICY, NO_ENTRY, PATH_LEN, RING_EXEC,
};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_task,
    generated::{bpf_get_current_cgroup_id, bpf_send_signal},
};
use core::ffi::c_void;

use crate::{co_re, maps};

const SIGKILL: u32 = 9;
const SIGSTOP: u32 = 19;
const SIGCONT: u32 = 18;
/// What an LSM hook returns to refuse.
pub const EPERM: i32 = 1;

#[inline(always)]
fn flags(slot: u32) -> u32 {
    maps::ENFORCE.get(slot).copied().unwrap_or(0)
}

/// The current process is the agent, in an exempt cgroup, or runs an exempt image (`image`
/// names the executable to check: the caller's own or, after exec, its parent's).
#[inline(always)]
unsafe fn exempt(image: Option<FileKey>) -> bool {
    if maps::is_agent((bpf_get_current_pid_tgid() >> 32) as u32) {
        return true;
    }
    // SAFETY: no pointers.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: presence checks only.
    if unsafe { maps::EXEMPT_CGROUPS.get(&cgroup) }.is_some() {
        return true;
    }
    match image {
        Some(k) if flags(ENFORCE_SLOT_POLICY) & ENFORCE_POLICY_EXEMPT_IMAGES != 0 => {
            // SAFETY: as above.
            unsafe { maps::EXEMPT_IMAGES.get(&k) }.is_some()
        }
        _ => false,
    }
}

#[inline(always)]
unsafe fn file_key(file: *const c_void) -> Option<FileKey> {
    let mut k = FileKey { dev: 0, ino: 0 };
    // SAFETY: the helper reads through probe reads and fails on null.
    (unsafe { co_re::aurora_file_key(file, &mut k.dev, &mut k.ino) } == 0).then_some(k)
}

/// The current task's executable (before exec: the image calling it).
#[inline(always)]
unsafe fn own_image(task: *const c_void) -> Option<FileKey> {
    // SAFETY: the current task, read through probe reads.
    unsafe { file_key(co_re::aurora_task_exe_file(task)) }
}

/// The parent's executable: after fork + exec, the image that called exec.
#[inline(always)]
unsafe fn parent_image(task: *const c_void) -> Option<FileKey> {
    let mut k = FileKey { dev: 0, ino: 0 };
    // SAFETY: the current task, read through probe reads.
    (unsafe { co_re::aurora_task_parent_exe_key(task, &mut k.dev, &mut k.ino) } == 0).then_some(k)
}

/// The deny entry for opening `file`: the file itself, else the nearest denied directory
/// above it (DENY_DIR_DEPTH levels).
#[inline(always)]
unsafe fn open_entry(file: *const c_void) -> Option<(FileKey, DenyEntry)> {
    // SAFETY: `file` is the hook's own struct file.
    let key = unsafe { file_key(file) }?;
    // SAFETY: copied out at once.
    if let Some(d) = unsafe { maps::DENY_OPEN.get(&key) } {
        return Some((key, *d));
    }
    if flags(ENFORCE_SLOT_POLICY) & ENFORCE_POLICY_OPEN_DIRS == 0 {
        return None;
    }
    // SAFETY: dentries read through probe reads; the loop is bounded.
    unsafe {
        let mut d = co_re::aurora_file_dentry(file);
        for _ in 0..DENY_DIR_DEPTH {
            let parent = co_re::aurora_dentry_parent(d);
            if parent.is_null() || parent == d {
                break;
            }
            d = parent;
            let mut k = FileKey { dev: 0, ino: 0 };
            if co_re::aurora_dentry_key(d, &mut k.dev, &mut k.ino) != 0 {
                break;
            }
            if let Some(e) = maps::DENY_OPEN_DIRS.get(&k) {
                return Some((key, *e));
            }
        }
    }
    None
}

/// Report a decision: the current task, the file (its path walked here) and the entry.
/// Returns whether the record is in the ring.
#[inline(always)]
unsafe fn emit(
    file: *const c_void,
    key: FileKey,
    deny: DenyEntry,
    action: u32,
    target: u32,
) -> bool {
    let Some(rec) = maps::BLOCK_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's scratch record; the task pointer is only read through probe reads.
    unsafe {
        let task = bpf_get_current_task() as *const c_void;
        maps::fill_header(&raw mut (*rec).header, task, RecordKind::Block);
        (*rec).file = key;
        (*rec).cgroup_id = bpf_get_current_cgroup_id();
        (*rec).entry = deny.entry;
        (*rec).action = action;
        (*rec).target = target;
        (*rec).path_len = 0;
        if let Some(scratch) = maps::PATH_SCRATCH.get_ptr_mut(0) {
            let n = co_re::aurora_file_path(file, scratch.cast(), (&raw mut (*rec).path).cast());
            if n > 0 && (n as usize) < PATH_LEN {
                (*rec).path_len = n as u32;
            }
        }
        // A decision is rare and someone may be waiting on it: wake the agent now. A watched
        // open is only telemetry, possibly frequent: it waits for the batch like an exec.
        let flags = if action == BLOCK_ACTION_WATCHED {
            maps::wakeup_flags(&maps::EXEC_RING)
        } else {
            maps::BPF_RB_FORCE_WAKEUP
        };
        if maps::EXEC_RING.output::<BlockRecord>(&*rec, flags).is_err() {
            maps::count_lost(RING_EXEC);
            return false;
        }
    }
    true
}

/// Enforce mode: refuse (LSM) or kill (fallback); audit mode: report only; a watch: report
/// the open if it is one the watch wants.
#[inline(always)]
unsafe fn act(file: *const c_void, key: FileKey, deny: DenyEntry, target: u32, lsm: bool) -> i32 {
    if deny.flags & (DENY_WATCH_ANY | DENY_WATCH_WRITE) != 0 {
        // SAFETY: `file` is the hook's file, read through probe reads.
        if deny.flags & DENY_WATCH_ANY != 0 || unsafe { co_re::aurora_file_writable(file) } != 0 {
            unsafe { emit(file, key, deny, BLOCK_ACTION_WATCHED, target) };
        }
        return 0;
    }
    let (action, ret) = match (deny.flags & DENY_ENFORCE != 0, lsm) {
        (false, _) => (BLOCK_ACTION_WOULD_BLOCK, 0),
        (true, true) => (BLOCK_ACTION_BLOCKED, -EPERM),
        (true, false) => {
            // SAFETY: signals the current process; no pointers.
            unsafe { bpf_send_signal(SIGKILL) };
            (BLOCK_ACTION_KILLED, 0)
        }
    };
    // SAFETY: `file` is the hook's file.
    unsafe { emit(file, key, deny, action, target) };
    ret
}

/// `bprm_check_security`: the file about to be executed.
///
/// # Safety
/// `bprm` is the hook's `struct linux_binprm`.
#[inline(always)]
pub unsafe fn exec_lsm(bprm: *const c_void) -> i32 {
    // SAFETY: read through probe reads.
    let file = unsafe { co_re::aurora_bprm_file(bprm) };
    let Some(key) = (unsafe { file_key(file) }) else {
        return 0;
    };
    // SAFETY: copied out at once.
    let Some(deny) = (unsafe { maps::DENY_EXEC.get(&key) }).copied() else {
        return 0;
    };
    // SAFETY: before exec the current task still runs the calling image.
    let task = unsafe { bpf_get_current_task() } as *const c_void;
    if unsafe { exempt(own_image(task)) } {
        return 0;
    }
    unsafe { act(file, key, deny, BLOCK_TARGET_EXEC, true) }
}

/// The exec tracepoint's checks on the new image: the deny map where BPF LSM does not
/// enforce exec, then (when the policy has sha256 entries) the hash cache: an executable not
/// in it is stopped here, before its first instruction, until user space has hashed it.
///
/// # Safety
/// `task` is the current task, just past exec.
#[inline(always)]
pub unsafe fn exec_tracepoint(task: *const c_void) {
    let policy = flags(ENFORCE_SLOT_POLICY);
    let lsm_exec = flags(ENFORCE_SLOT_LSM) & ENFORCE_LSM_EXEC != 0;
    if lsm_exec && policy & ENFORCE_POLICY_HASH == 0 {
        return;
    }
    // SAFETY: the current task, read through probe reads.
    let file = unsafe { co_re::aurora_task_exe_file(task) };
    let Some(key) = (unsafe { file_key(file) }) else {
        return;
    };
    if !lsm_exec {
        // SAFETY: copied out at once.
        if let Some(deny) = (unsafe { maps::DENY_EXEC.get(&key) }).copied() {
            if !unsafe { exempt(parent_image(task)) } {
                unsafe { act(file, key, deny, BLOCK_TARGET_EXEC, false) };
            }
            return;
        }
    }
    if policy & ENFORCE_POLICY_HASH != 0 {
        unsafe { hold_unknown(task, file, key) };
    }
}

/// Stop the process unless its executable is in the hash cache with the same stamp.
#[inline(always)]
unsafe fn hold_unknown(task: *const c_void, file: *const c_void, key: FileKey) {
    let mut stamp = FileStamp {
        ctime_ns: 0,
        size: 0,
    };
    // SAFETY: the exe file, read through probe reads.
    if unsafe { co_re::aurora_file_stamp(file, &mut stamp.ctime_ns, &mut stamp.size) } != 0 {
        return;
    }
    // SAFETY: copied out at once.
    if unsafe { maps::KNOWN_EXEC.get(&key) }.copied() == Some(stamp) {
        return;
    }
    if unsafe { exempt(parent_image(task)) } {
        return;
    }
    let hold = DenyEntry {
        entry: NO_ENTRY,
        flags: 0,
    };
    // SIGSTOP is queued before the hold is reported: the agent's SIGCONT can then only come
    // after it, and cancels it even while it is still pending. (The other order lost a
    // race: a task preempted between the report and its SIGSTOP was resumed first, then
    // stopped for good.) A hold the agent will never hear of is taken back at once.
    // SAFETY: signals the current process; no pointers.
    unsafe { bpf_send_signal(SIGSTOP) };
    if !unsafe { emit(file, key, hold, BLOCK_ACTION_HELD, BLOCK_TARGET_EXEC) } {
        // SAFETY: as above; SIGCONT discards the pending SIGSTOP.
        unsafe { bpf_send_signal(SIGCONT) };
    }
}

/// `file_open`: the file being opened.
///
/// # Safety
/// `file` is the hook's `struct file`.
#[inline(always)]
pub unsafe fn open_lsm(file: *const c_void) -> i32 {
    if flags(ENFORCE_SLOT_POLICY) & ENFORCE_POLICY_OPEN == 0 {
        return 0;
    }
    let Some((key, deny)) = (unsafe { open_entry(file) }) else {
        return 0;
    };
    let task = unsafe { bpf_get_current_task() } as *const c_void;
    if unsafe { exempt(own_image(task)) } {
        return 0;
    }
    unsafe { act(file, key, deny, BLOCK_TARGET_OPEN, true) }
}

/// Whether the policy has open denies (the open hooks' first, cheap test).
#[inline(always)]
pub fn open_policy_active() -> bool {
    flags(ENFORCE_SLOT_POLICY) & ENFORCE_POLICY_OPEN != 0
}

/// The open hooks' check (VFS fexit or syscall exit), where BPF LSM does not enforce opens:
/// a file just opened.
///
/// # Safety
/// `file` is a live struct file (or null).
#[inline(always)]
pub unsafe fn open_fallback(file: *const c_void) {
    if flags(ENFORCE_SLOT_POLICY) & ENFORCE_POLICY_OPEN == 0
        || flags(ENFORCE_SLOT_LSM) & ENFORCE_LSM_OPEN != 0
    {
        return;
    }
    let Some((key, deny)) = (unsafe { open_entry(file) }) else {
        return;
    };
    let task = unsafe { bpf_get_current_task() } as *const c_void;
    if unsafe { exempt(own_image(task)) } {
        return;
    }
    unsafe { act(file, key, deny, BLOCK_TARGET_OPEN, false) };
}
