//! `sched/sched_process_exec`: identity, parent, filename and argv of every exec.
//!
//! argv, the executable's path and the working directory are read here, in the kernel, so a
//! process that exits (or execs again) before user space could read /proc keeps them, and user
//! space needs no /proc read per exec.
use aurora_common::{
    ExecRecord, RecordKind, ARGV_LEN, EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE, EXEC_FILENAME_LEN,
    EXEC_FILENAME_TRUNCATED, EXEC_TAIL_LEN, PATH_LEN, RING_EXEC,
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
use core::{ffi::c_void, ptr::read_volatile};

use super::deny;
use crate::{co_re, maps};

/// Where the packed parts start in an ExecRecord.
const TAIL_AT: usize = core::mem::offset_of!(ExecRecord, tail);

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
        maps::fill_header(&raw mut (*rec).head.header, task, RecordKind::Exec);
        (*rec).head.loginuid = co_re::aurora_task_loginuid(task);
        (*rec).head.sessionid = co_re::aurora_task_sessionid(task);
        (*rec).head.cgroup_id = bpf_get_current_cgroup_id();
    }
    // Only the used bytes go into the ring: the head, then the packed parts (what the agent's
    // `exec_record_len` computes from the lengths).
    // SAFETY: `rec` points to a whole ExecRecord; pack_tail's count is masked below
    // EXEC_TAIL_LEN, so the slice ends inside it.
    let used = unsafe {
        let tail_used = pack_tail(ctx, task, rec) & (EXEC_TAIL_LEN - 1);
        core::slice::from_raw_parts(rec.cast::<u8>(), TAIL_AT + tail_used)
    };
    let flags = maps::wakeup_flags(&maps::EXEC_RING);
    if maps::EXEC_RING.output::<[u8]>(used, flags).is_err() {
        maps::count_lost(RING_EXEC);
        debug!(ctx, "exec ring full");
    }
    // SAFETY: the current task, just past exec.
    unsafe { deny::exec_tracepoint(task) };
}

/// Writes filename, exe, cwd and argv back to back into `rec.tail`, sets their lengths and the
/// flags, and returns the bytes of the tail in use. Each part starts at the previous end
/// masked to a power of two (a no-op on the real value, which is always smaller; see
/// `EXEC_TAIL_LEN`), so every write is in bounds for the verifier on every kernel without it
/// having to follow the sums.
#[inline(always)]
unsafe fn pack_tail(ctx: &TracePointContext, task: *const c_void, rec: *mut ExecRecord) -> usize {
    let mut flags = 0u32;
    unsafe {
        let tail = (&raw mut (*rec).tail).cast::<u8>();
        // The filename lives in the tracepoint record at the offset its __data_loc gives.
        let off = co_re::aurora_exec_filename_offset(ctx.as_ptr()) as usize;
        let n = bpf_probe_read_kernel_str(
            tail.cast(),
            EXEC_FILENAME_LEN as u32,
            ctx.as_ptr().cast::<u8>().add(off).cast(),
        );
        let filename_len = if n > 0 { (n - 1) as usize } else { 0 };
        if n as usize == EXEC_FILENAME_LEN {
            flags |= EXEC_FILENAME_TRUNCATED;
        }
        (*rec).head.filename_len = filename_len as u32;

        let exe_at = filename_len & (EXEC_FILENAME_LEN - 1);
        (*rec).head.exe_len = 0;
        (*rec).head.cwd_len = 0;
        let scratch = maps::PATH_SCRATCH.get_ptr_mut(0);
        if let Some(scratch) = scratch {
            let n = co_re::aurora_task_exe_path(task, scratch.cast(), tail.add(exe_at));
            if n > 0 {
                (*rec).head.exe_len = n as u32;
            }
        }
        // Lengths are read back from the record (map memory, which the verifier does not
        // track): each walk's return paths then reach the next part as one state, not one
        // per path (5x the verified instructions otherwise).
        let exe_len = read_volatile(&raw const (*rec).head.exe_len) as usize;
        let cwd_at = (exe_at + exe_len) & (2 * PATH_LEN - 1);
        if let Some(scratch) = scratch {
            let n = co_re::aurora_task_cwd_path(task, scratch.cast(), tail.add(cwd_at));
            if n > 0 {
                (*rec).head.cwd_len = n as u32;
            }
        }
        let cwd_len = read_volatile(&raw const (*rec).head.cwd_len) as usize;

        let args_at = (cwd_at + cwd_len) & (ARGV_LEN - 1);
        let mut start = 0u64;
        let mut end = 0u64;
        let mut args_len = 0usize;
        if co_re::aurora_task_argv_bounds(task, &mut start, &mut end) == 0 && end > start {
            let mut len = end - start;
            if len > (ARGV_LEN - 1) as u64 {
                len = (ARGV_LEN - 1) as u64;
                flags |= EXEC_ARGV_TRUNCATED;
            }
            // Redundant mask: gives the verifier a bound it can see.
            let len = len & (ARGV_LEN as u64 - 1);
            let r =
                bpf_probe_read_user(tail.add(args_at).cast(), len as u32, start as *const c_void);
            if r == 0 {
                args_len = len as usize;
            } else {
                flags |= EXEC_ARGV_UNREADABLE;
            }
        }
        (*rec).head.args_len = args_len as u32;
        (*rec).head.flags = flags;
        args_at + args_len
    }
}
