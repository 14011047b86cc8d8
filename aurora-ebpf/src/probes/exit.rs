//! `sched/sched_process_exit`: one event per process (when its last thread exits).
use aurora_common::{ExitRecord, RecordKind, RING_EXIT};
use aya_ebpf::{helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext};
use core::ffi::c_void;

use crate::{co_re, maps};

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    // SAFETY: runs in the exiting task.
    unsafe { handle() };
    0
}

#[inline(always)]
unsafe fn handle() {
    let task = bpf_get_current_task() as *const c_void;
    unsafe {
        // Thread exits are not process exits: report only when no thread of the group is left.
        if co_re::aurora_task_group_dead(task) == 0 {
            return;
        }
        let tgid = co_re::aurora_task_tgid(task);
        if maps::is_agent(tgid) {
            return;
        }
        let Some(mut entry) = maps::EXIT_RING.reserve::<ExitRecord>(0) else {
            maps::count_lost(RING_EXIT);
            return;
        };
        let rec = entry.as_mut_ptr();
        maps::fill_header(&raw mut (*rec).header, task, RecordKind::Exit);
        // The last thread may not be the leader: report the process, not the thread.
        (*rec).header.task.pid = tgid;
        (*rec).exit_code = co_re::aurora_task_exit_code(task);
        entry.submit(maps::wakeup_flags(&maps::EXIT_RING));
    }
}
