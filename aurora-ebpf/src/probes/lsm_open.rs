//! `lsm/file_open`: refuses opening a denied file (or a file under a denied directory) with
//! -EPERM. Attached where BPF LSM is active; elsewhere the open hooks kill the opener instead
//! (`deny::open_fallback`).
use aya_ebpf::{macros::lsm, programs::LsmContext};
use core::ffi::c_void;

use super::deny;

#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    // int file_open(struct file *file), then the previous hook's verdict.
    // SAFETY: argument 1 is the previous verdict; argument 0 the hook's file.
    unsafe {
        let prev: i32 = ctx.arg(1);
        if prev != 0 {
            return prev;
        }
        deny::open_lsm(ctx.arg::<*const c_void>(0))
    }
}
