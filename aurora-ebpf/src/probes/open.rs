//! File creation, fallback mode: `syscalls/sys_{enter,exit}_{openat,openat2,creat,open}`, for
//! kernels where the VFS hook (`file.rs`) cannot attach. Blind to io_uring, and attaching any
//! syscall tracepoint puts every syscall of every task on the tracing slow path.
//!
//! sys_enter saves the arguments of opens that carry O_CREAT or O_TRUNC (keyed by pid_tgid);
//! sys_exit takes the struct file at the returned fd and emits through `file::emit` with the
//! same semantics as the VFS hook (created or overwritten; path walked in the kernel).
use aurora_common::{PendingOpen, RING_FILE};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, generated::bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use core::ffi::c_void;

use super::deny;
use super::file::{self, Opened, O_CREAT, O_TRUNC};
use crate::{co_re, maps};

const O_WRONLY: u32 = 0o1;
const AT_FDCWD: i32 = -100;

#[inline(always)]
fn save(dfd: i32, filename_ptr: u64, open_flags: u32, mode: u32) {
    if open_flags & (O_CREAT | O_TRUNC) == 0 {
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
    if maps::PENDING_OPENS.insert(&pid_tgid, &pending, 0).is_err() {
        // Table full: this open will not be reported; say so.
        maps::count_lost(RING_FILE);
    }
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

/// Open denies where neither BPF LSM nor the VFS hook checks opens: every successful open.
#[inline(always)]
unsafe fn deny_check(ctx: &TracePointContext) {
    if !deny::open_policy_active() {
        return;
    }
    // SAFETY: as in on_exit.
    unsafe {
        let ret = co_re::aurora_sys_exit_ret(ctx.as_ptr());
        if ret < 0 {
            return;
        }
        let task = bpf_get_current_task() as *const c_void;
        deny::open_fallback(co_re::aurora_task_fd_file(task, ret as i32));
    }
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
    // SAFETY: ctx is a sys_exit tracepoint record; the file is the one the call just
    // installed at the returned fd, read through probe reads.
    unsafe { deny_check(ctx) };
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
    // SAFETY: the current task, read through probe reads; the file is the one the call just
    // installed at `ret`.
    unsafe {
        let task = bpf_get_current_task() as *const c_void;
        let file = co_re::aurora_task_fd_file(task, ret as i32);
        let action = co_re::aurora_file_action(file, pending.open_flags);
        if action == 0 {
            return;
        }
        file::emit(&Opened {
            file,
            dfd: pending.dfd,
            open_flags: pending.open_flags,
            mode: pending.mode,
            fd: ret as i32,
            action,
            fallback_path: pending.filename_ptr,
            fallback_is_user: true,
        });
    }
}
