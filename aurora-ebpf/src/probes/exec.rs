//! `sched/sched_process_exec`: identity, parent, filename and argv of every exec.
//!
//! argv, the executable's path and the working directory are read here, in the kernel, so a
//! process that exits (or execs again) before user space could read /proc keeps them, and user
//! space needs no /proc read per exec.
use aurora_common::{
    exec_record_len, ARGV_LEN, EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE, EXEC_FILENAME_LEN,
    EXEC_FILENAME_TRUNCATED, RING_EXEC,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_task,
        generated::{bpf_get_current_cgroup_id, bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use aya_log_ebpf::debug;
use core::ffi::c_void;

use crate::{co_re, maps};

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    // SAFETY: called in the exec'ing task; all pointers come from the kernel.
    unsafe { handle(&ctx) };
    0
}

#[inline(always)]
unsafe fn handle(ctx: &TracePointContext) {
    let task = bpf_get_current_task() as *const c_void;
    let tgid = unsafe { co_re::aurora_task_tgid(task) };
    if maps::is_agent(tgid) {
        return;
    }
    let Some(rec) = maps::EXEC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    unsafe {
        maps::fill_header(&raw mut (*rec).header, task);
        (*rec).loginuid = co_re::aurora_task_loginuid(task);
        (*rec).sessionid = co_re::aurora_task_sessionid(task);
        (*rec).cgroup_id = bpf_get_current_cgroup_id();
        let mut flags = 0u32;

        // The filename lives in the tracepoint record at the offset its __data_loc gives.
        let off = co_re::aurora_exec_filename_offset(ctx.as_ptr()) as usize;
        let n = bpf_probe_read_kernel_str(
            (&raw mut (*rec).filename).cast(),
            EXEC_FILENAME_LEN as u32,
            ctx.as_ptr().cast::<u8>().add(off).cast(),
        );
        (*rec).filename_len = if n > 0 { (n - 1) as u32 } else { 0 };
        if n as usize == EXEC_FILENAME_LEN {
            flags |= EXEC_FILENAME_TRUNCATED;
        }

        let mut start = 0u64;
        let mut end = 0u64;
        (*rec).args_len = 0;
        if co_re::aurora_task_argv_bounds(task, &mut start, &mut end) == 0 && end > start {
            let mut len = end - start;
            if len > (ARGV_LEN - 1) as u64 {
                len = (ARGV_LEN - 1) as u64;
                flags |= EXEC_ARGV_TRUNCATED;
            }
            // Redundant mask: gives the verifier a bound it can see.
            let len = len & (ARGV_LEN as u64 - 1);
            let r = bpf_probe_read_user(
                (&raw mut (*rec).args).cast(),
                len as u32,
                start as *const c_void,
            );
            if r == 0 {
                (*rec).args_len = len as u32;
            } else {
                flags |= EXEC_ARGV_UNREADABLE;
            }
        }
        (*rec).flags = flags;

        (*rec).exe_len = 0;
        (*rec).cwd_len = 0;
        if let Some(scratch) = maps::PATH_SCRATCH.get_ptr_mut(0) {
            let n = co_re::aurora_task_exe_path(task, scratch.cast(), (&raw mut (*rec).exe).cast());
            if n > 0 {
                (*rec).exe_len = n as u32;
            }
            let n = co_re::aurora_task_cwd_path(task, scratch.cast(), (&raw mut (*rec).cwd).cast());
            if n > 0 {
                (*rec).cwd_len = n as u32;
            }
        }
    }
    // Only the used bytes go into the ring: the head, the fixed path arrays, then argv as long
    // as it is (the mask repeats the bound for the verifier).
    let args_len = unsafe { (*rec).args_len } as usize & (ARGV_LEN - 1);
    // SAFETY: `rec` points to a whole ExecRecord and exec_record_len(n) <= its size.
    let used = unsafe { core::slice::from_raw_parts(rec.cast::<u8>(), exec_record_len(args_len)) };
    let flags = maps::wakeup_flags(&maps::EXEC_RING);
    if maps::EXEC_RING.output::<[u8]>(used, flags).is_err() {
        maps::count_lost(RING_EXEC);
        debug!(ctx, "exec ring full");
    }
}
