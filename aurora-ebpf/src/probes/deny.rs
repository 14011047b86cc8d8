//! The exec deny check, run by the exec tracepoint (`exec.rs`) once the exec record is out:
//! the new executable's (dev, inode) against `DENY_EXEC`. In enforce mode the process gets
//! `SIGKILL` from here, in its own context, so it dies on the way back to user space before
//! its first instruction; in audit mode it runs. Either way a `BlockRecord` follows the exec
//! record on the same ring.
use aurora_common::{
    BlockRecord, FileKey, RecordKind, BLOCK_ACTION_KILLED, BLOCK_ACTION_WOULD_BLOCK,
    BLOCK_TARGET_EXEC, DENY_ENFORCE, RING_EXEC,
};
use aya_ebpf::helpers::generated::bpf_send_signal;
use core::ffi::c_void;

use crate::{co_re, maps};

const SIGKILL: u32 = 9;

/// # Safety
/// `task` is the current task, just past exec.
#[inline(always)]
pub unsafe fn check_exec(task: *const c_void, cgroup_id: u64) {
    let mut key = FileKey { dev: 0, ino: 0 };
    // SAFETY: the helper reads the task's mm through probe reads.
    if unsafe { co_re::aurora_task_exe_key(task, &mut key.dev, &mut key.ino) } != 0 {
        return;
    }
    // SAFETY: the value is copied out at once.
    let Some(deny) = (unsafe { maps::DENY_EXEC.get(&key) }).copied() else {
        return;
    };
    // SAFETY: as above.
    if unsafe { maps::EXEMPT_CGROUPS.get(&cgroup_id) }.is_some() {
        return;
    }
    let action = if deny.flags & DENY_ENFORCE != 0 {
        // SAFETY: signals the current process; no pointers.
        unsafe { bpf_send_signal(SIGKILL) };
        BLOCK_ACTION_KILLED
    } else {
        BLOCK_ACTION_WOULD_BLOCK
    };
    let Some(mut slot) = maps::EXEC_RING.reserve::<BlockRecord>(0) else {
        maps::count_lost(RING_EXEC);
        return;
    };
    let rec = slot.as_mut_ptr();
    // SAFETY: `rec` is a whole reservation; every field is written before submit.
    unsafe {
        maps::fill_header(&raw mut (*rec).header, task, RecordKind::Block);
        (*rec).file = key;
        (*rec).cgroup_id = cgroup_id;
        (*rec).entry = deny.entry;
        (*rec).action = action;
        (*rec).target = BLOCK_TARGET_EXEC;
        (*rec)._pad = 0;
    }
    // A decision is rare and someone may be waiting on it: wake the agent now.
    slot.submit(maps::BPF_RB_FORCE_WAKEUP);
}
