//! File creation at the VFS: fexit on `do_filp_open`, which every open of a path passes —
//! open, openat, openat2, creat, io_uring's IORING_OP_OPENAT/OPENAT2 (also when io-wq worker
//! threads run them: those are threads of the submitting process), and kernel-internal opens.
//! Unlike syscall tracepoints, a trampoline on one function costs nothing to other syscalls.
//!
//! Reported (Sysmon FileCreate): a new file (FMODE_CREATED) and an overwrite (O_TRUNC of an
//! existing regular file); a plain open of an existing file with O_CREAT is not. The path is
//! walked from the opened file in the kernel (absolute: cwd, `..`, symlinks and mounts already
//! applied), so it is right even when the process exits at once. `open.rs` holds the syscall
//! tracepoint fallback, which emits through [`emit`] with the same semantics.
use aurora_common::{
    file_record_len, RecordKind, FILE_PATH_RESOLVED, FILE_PATH_TRUNCATED, PATH_LEN, PREFIX_LEN,
    RING_FILE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user_str},
    },
    macros::fexit,
    maps::lpm_trie::Key,
    programs::FExitContext,
};
use core::ffi::c_void;

use crate::{co_re, maps};

pub const O_CREAT: u32 = 0o100;
pub const O_TRUNC: u32 = 0o1000;
/// The largest error pointer (`IS_ERR_VALUE`: the top 4095 addresses are -errno).
const MAX_ERRNO: u64 = 4095;

#[fexit(function = "do_filp_open")]
pub fn do_filp_open_exit(ctx: FExitContext) -> u32 {
    // do_filp_open(int dfd, struct filename *pathname, const struct open_flags *op) -> file*
    let file: u64 = ctx.arg(3);
    if file == 0 || file >= u64::MAX - MAX_ERRNO {
        return 0;
    }
    if maps::is_agent((bpf_get_current_pid_tgid() >> 32) as u32) {
        return 0;
    }
    let op: *const c_void = ctx.arg(2);
    // SAFETY: op and file are the traced function's own arguments/result, read through
    // probe reads in the CO-RE helpers.
    unsafe {
        super::deny::open_fallback(file as *const c_void);
        let open_flags = co_re::aurora_open_flags(op);
        // Only these flags can create or truncate: every other open leaves at once.
        if open_flags & (O_CREAT | O_TRUNC) == 0 {
            return 0;
        }
        let file = file as *const c_void;
        let action = co_re::aurora_file_action(file, open_flags);
        if action == 0 {
            return 0;
        }
        let pathname: *const c_void = ctx.arg(1);
        emit(&Opened {
            file,
            dfd: ctx.arg::<i64>(0) as i32,
            open_flags,
            mode: co_re::aurora_open_mode(op),
            fd: -1,
            action,
            fallback_path: co_re::aurora_filename_name(pathname) as u64,
            fallback_is_user: false,
        });
    }
    0
}

/// One successful open that created or overwrote a file.
pub struct Opened {
    pub file: *const c_void,
    pub dfd: i32,
    pub open_flags: u32,
    pub mode: u32,
    pub fd: i32,
    pub action: u32,
    /// The caller's path string, copied when the kernel-side walk fails (deeper than we walk).
    pub fallback_path: u64,
    pub fallback_is_user: bool,
}

/// Write a FileRecord for `o` to the file ring (subject to the watched-prefix filter).
///
/// # Safety
/// `o.file` is a live struct file (or null); `fallback_path` points to a NUL-terminated path
/// in user (fallback_is_user) or kernel memory.
#[inline(always)]
pub unsafe fn emit(o: &Opened) {
    let Some(rec) = maps::FILE_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: returns the current task pointer, only dereferenced through probe reads.
    let task = unsafe { bpf_get_current_task() } as *const c_void;
    // SAFETY: rec is this CPU's scratch record; the path scratch buffer is this CPU's slot.
    unsafe {
        let resolved = match maps::PATH_SCRATCH.get_ptr_mut(0) {
            Some(scratch) => {
                co_re::aurora_file_path(o.file, scratch.cast(), (&raw mut (*rec).path).cast())
            }
            None => -1,
        };
        let (n, flags) = if resolved > 0 {
            (resolved as i64 + 1, FILE_PATH_RESOLVED)
        } else {
            let dst = (&raw mut (*rec).path).cast();
            let src = o.fallback_path as *const c_void;
            let n = if o.fallback_is_user {
                bpf_probe_read_user_str(dst, PATH_LEN as u32, src)
            } else {
                bpf_probe_read_kernel_str(dst, PATH_LEN as u32, src)
            };
            let truncated = if n as usize == PATH_LEN {
                FILE_PATH_TRUNCATED
            } else {
                0
            };
            (n, truncated)
        };
        if n <= 0 {
            return;
        }
        if maps::FILTER_PREFIXES.load() != 0 && (*rec).path[0] == b'/' && !watched(&(*rec).path) {
            return;
        }
        maps::fill_header(&raw mut (*rec).head.header, task, RecordKind::File);
        (*rec).head.path_len = (n - 1) as u32;
        (*rec).head.flags = flags;
        (*rec).head.dfd = o.dfd;
        (*rec).head.open_flags = o.open_flags;
        (*rec).head.mode = o.mode;
        (*rec).head.fd = o.fd;
        (*rec).head.action = o.action;
        (*rec).head._pad = 0;
    }
    // Only the used path goes into the ring (the mask repeats the bound for the verifier).
    let path_len = unsafe { (*rec).head.path_len } as usize & (PATH_LEN - 1);
    // SAFETY: `rec` points to a whole FileRecord and file_record_len(n) <= its size.
    let used = unsafe { core::slice::from_raw_parts(rec.cast::<u8>(), file_record_len(path_len)) };
    if maps::FILE_RING
        .output::<[u8]>(used, maps::wakeup_flags(&maps::FILE_RING))
        .is_err()
    {
        maps::count_lost(RING_FILE);
    }
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
