//! File creation: `syscalls/sys_{enter,exit}_{openat,openat2,creat,open}`.
//!
//! sys_enter saves the arguments of opens that carry O_CREAT (keyed by pid_tgid); sys_exit emits
//! a record only when the call succeeded. The path is then resolved in the kernel from the new
//! fd (`aurora_task_fd_path`): absolute, with `..`, symlinks and the cwd already applied, even
//! when the process exits before user space could read /proc/PID/cwd. Only if that walk fails
//! (deeper than we walk) is the caller's argument copied instead, and user space resolves it.
//! With `--watch-dir`, absolute paths outside the watched prefixes are dropped here.
use aurora_common::{
    FileRecord, PendingOpen, FILE_PATH_RESOLVED, FILE_PATH_TRUNCATED, PATH_LEN, PREFIX_LEN,
    RING_FILE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task,
        generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::tracepoint,
    maps::lpm_trie::Key,
    programs::TracePointContext,
    EbpfContext,
};
use core::ffi::c_void;

use crate::{co_re, maps};

const O_CREAT: u32 = 0o100;
const O_WRONLY: u32 = 0o1;
const O_TRUNC: u32 = 0o1000;
const AT_FDCWD: i32 = -100;

#[inline(always)]
fn save(dfd: i32, filename_ptr: u64, open_flags: u32, mode: u32) {
    if open_flags & O_CREAT == 0 {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if maps::is_agent((pid_tgid >> 32) as u32) {
        return;
    }
    let pending = PendingOpen {
        filename_ptr,
        dfd,
        open_flags,
        mode,
        _pad: 0,
    };
    let _ = maps::PENDING_OPENS.insert(&pid_tgid, &pending, 0);
}

#[inline(always)]
fn arg(ctx: &TracePointContext, n: u32) -> u64 {
    // SAFETY: ctx is a sys_enter tracepoint record.
    unsafe { co_re::aurora_sys_enter_arg(ctx.as_ptr(), n) }
}

#[tracepoint]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    save(
        arg(&ctx, 0) as i32,
        arg(&ctx, 1),
        arg(&ctx, 2) as u32,
        arg(&ctx, 3) as u32,
    );
    0
}

#[tracepoint]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    save(
        AT_FDCWD,
        arg(&ctx, 0),
        arg(&ctx, 1) as u32,
        arg(&ctx, 2) as u32,
    );
    0
}

#[tracepoint]
pub fn sys_enter_creat(ctx: TracePointContext) -> u32 {
    save(
        AT_FDCWD,
        arg(&ctx, 0),
        O_CREAT | O_WRONLY | O_TRUNC,
        arg(&ctx, 1) as u32,
    );
    0
}

/// `struct open_how { u64 flags; u64 mode; u64 resolve; }`: a uapi struct, stable layout.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
}

#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    let mut how = OpenHow { flags: 0, mode: 0 };
    // SAFETY: reads the caller's open_how; failure leaves zeros (no O_CREAT, nothing saved).
    let r = unsafe {
        bpf_probe_read_user(
            (&raw mut how).cast(),
            core::mem::size_of::<OpenHow>() as u32,
            arg(&ctx, 2) as *const c_void,
        )
    };
    if r == 0 {
        save(
            arg(&ctx, 0) as i32,
            arg(&ctx, 1),
            how.flags as u32,
            how.mode as u32,
        );
    }
    0
}

#[tracepoint]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_creat(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

#[inline(always)]
fn on_exit(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(pending) = (unsafe { maps::PENDING_OPENS.get(&pid_tgid) }).copied() else {
        return;
    };
    let _ = maps::PENDING_OPENS.remove(&pid_tgid);
    // SAFETY: ctx is a sys_exit tracepoint record.
    let ret = unsafe { co_re::aurora_sys_exit_ret(ctx.as_ptr()) };
    if ret < 0 {
        return;
    }
    let Some(mut entry) = maps::FILE_RING.reserve::<FileRecord>(0) else {
        maps::count_lost(RING_FILE);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: returns the current task pointer, only dereferenced through probe reads.
    let task = unsafe { bpf_get_current_task() } as *const c_void;
    // SAFETY: rec points into our ring reservation; filename_ptr is the caller's path; the
    // scratch buffer is this CPU's slot of PATH_SCRATCH.
    unsafe {
        let resolved = match maps::PATH_SCRATCH.get_ptr_mut(0) {
            Some(scratch) => co_re::aurora_task_fd_path(
                task,
                ret as i32,
                scratch.cast(),
                (&raw mut (*rec).path).cast(),
            ),
            None => -1,
        };
        let (n, flags) = if resolved > 0 {
            (resolved as i64 + 1, FILE_PATH_RESOLVED)
        } else {
            let n = bpf_probe_read_user_str(
                (&raw mut (*rec).path).cast(),
                PATH_LEN as u32,
                pending.filename_ptr as *const c_void,
            );
            let truncated = if n as usize == PATH_LEN {
                FILE_PATH_TRUNCATED
            } else {
                0
            };
            (n, truncated)
        };
        if n <= 0 {
            entry.discard(0);
            return;
        }
        if maps::FILTER_PREFIXES.load() != 0 && (*rec).path[0] == b'/' && !watched(&(*rec).path) {
            entry.discard(0);
            return;
        }
        maps::fill_header(&raw mut (*rec).header, task);
        (*rec).path_len = (n - 1) as u32;
        (*rec).flags = flags;
        (*rec).dfd = pending.dfd;
        (*rec).open_flags = pending.open_flags;
        (*rec).mode = pending.mode;
        (*rec).fd = ret as i32;
    }
    entry.submit(maps::wakeup_flags(&maps::FILE_RING));
}

/// Longest-prefix match of the path's first `PREFIX_LEN` bytes against `WATCHED_PREFIXES`.
#[inline(always)]
fn watched(path: &[u8; PATH_LEN]) -> bool {
    let mut data = [0u8; PREFIX_LEN];
    let mut i = 0;
    // Copy up to the NUL; bytes after it stay zero so short paths compare exactly.
    while i < PREFIX_LEN {
        let b = path[i];
        if b == 0 {
            break;
        }
        data[i] = b;
        i += 1;
    }
    let key = Key::new((PREFIX_LEN * 8) as u32, data);
    maps::WATCHED_PREFIXES.get(&key).is_some()
}
