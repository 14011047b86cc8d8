//! `lsm/bprm_check_security`: refuses the exec of a denied file with -EPERM (the caller's
//! execve fails; nothing of the file runs). Attached where BPF LSM is active; elsewhere the
//! exec tracepoint kills instead (`deny::exec_fallback`).
use aya_ebpf::{macros::lsm, programs::LsmContext};
use core::ffi::c_void;

use super::deny;

#[lsm(hook = "bprm_check_security")]
pub fn lsm_bprm_check(ctx: LsmContext) -> i32 {
    // int bprm_check_security(struct linux_binprm *bprm), then the previous hook's verdict.
    // SAFETY: argument 1 is the previous verdict; argument 0 the hook's binprm.
    unsafe {
        let prev: i32 = ctx.arg(1);
        if prev != 0 {
            return prev;
        }
        deny::exec_lsm(ctx.arg::<*const c_void>(0))
    }
}
