//! `io_uring/io_uring_complete`, tracepoint mode only: io_uring's IORING_OP_OPENAT/OPENAT2
//! never pass the openat syscall tracepoints, so the fallback file sensor would be blind to
//! files created through io_uring. On completion of an open request the new file is installed
//! in the process's fd table (io-wq workers share it), so it is examined like a syscall's.
//! The request's open flags are not at hand here: creations (FMODE_CREATED) are reported,
//! O_TRUNC overwrites through io_uring are not. Needs the request pointer in the tracepoint
//! (5.16+); the VFS hook covers io_uring fully on every kernel where it attaches.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use core::ffi::c_void;

use super::file::{self, Opened};
use crate::{co_re, maps};

const AT_FDCWD: i32 = -100;

#[tracepoint]
pub fn io_uring_complete(ctx: TracePointContext) -> u32 {
    // SAFETY: ctx is an io_uring_complete record; pointers are read through probe reads.
    unsafe {
        let fd = co_re::aurora_uring_open_fd(ctx.as_ptr());
        if fd < 0 || maps::is_agent((bpf_get_current_pid_tgid() >> 32) as u32) {
            return 0;
        }
        let task = bpf_get_current_task() as *const c_void;
        let file = co_re::aurora_task_fd_file(task, fd);
        let action = co_re::aurora_file_action(file, 0);
        if action == 0 {
            return 0;
        }
        file::emit(&Opened {
            file,
            dfd: AT_FDCWD,
            open_flags: 0,
            mode: 0,
            fd,
            action,
            fallback_path: 0,
            fallback_is_user: false,
        });
    }
    0
}
