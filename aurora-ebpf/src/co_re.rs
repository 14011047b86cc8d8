//! Declarations of the CO-RE helpers in `co_re/helpers.c` (linked as bitcode by bpf-linker).
//! Every kernel-struct read goes through these so one object relocates on other kernels.
use core::ffi::c_void;

pub use aurora_common::SockState;

unsafe extern "C" {
    pub fn aurora_task_tgid(task: *const c_void) -> u32;
    pub fn aurora_task_process_start(task: *const c_void) -> u64;
    pub fn aurora_task_ppid(task: *const c_void) -> u32;
    pub fn aurora_task_parent_process_start(task: *const c_void) -> u64;
    pub fn aurora_task_loginuid(task: *const c_void) -> u32;
    pub fn aurora_task_sessionid(task: *const c_void) -> u32;
    pub fn aurora_task_exit_code(task: *const c_void) -> u32;
    pub fn aurora_task_group_dead(task: *const c_void) -> u32;
    pub fn aurora_task_argv_bounds(task: *const c_void, start: *mut u64, end: *mut u64) -> i32;
    pub fn aurora_task_fd_file(task: *const c_void, fd: i32) -> *const c_void;
    pub fn aurora_file_path(file: *const c_void, scratch: *mut u8, out: *mut u8) -> i32;
    pub fn aurora_file_action(file: *const c_void, open_flags: u32) -> u32;
    pub fn aurora_open_flags(op: *const c_void) -> u32;
    pub fn aurora_file_writable(file: *const c_void) -> u32;
    pub fn aurora_open_mode(op: *const c_void) -> u32;
    pub fn aurora_filename_name(name: *const c_void) -> *const u8;
    pub fn aurora_uring_open_fd(ctx: *const c_void) -> i32;
    pub fn aurora_consume_skb_addr(ctx: *const c_void, softirq: *mut u32) -> *const c_void;
    pub fn aurora_net_dev_skb_addr(ctx: *const c_void) -> *const c_void;
    pub fn aurora_skb_dns(skb: *const c_void, at_data: u32, len: *mut u32) -> *const u8;
    pub fn aurora_copy_dns(udp: *const u8, len: u32, out: *mut u8) -> i32;
    pub fn aurora_task_exe_path(task: *const c_void, scratch: *mut u8, out: *mut u8) -> i32;
    pub fn aurora_task_cwd_path(task: *const c_void, scratch: *mut u8, out: *mut u8) -> i32;
    pub fn aurora_file_key(file: *const c_void, dev: *mut u64, ino: *mut u64) -> i32;
    pub fn aurora_task_parent_exe_key(task: *const c_void, dev: *mut u64, ino: *mut u64) -> i32;
    pub fn aurora_task_exe_file(task: *const c_void) -> *const c_void;
    pub fn aurora_file_stamp(file: *const c_void, ctime_ns: *mut u64, size: *mut u64) -> i32;
    pub fn aurora_bprm_file(bprm: *const c_void) -> *const c_void;
    pub fn aurora_file_dentry(file: *const c_void) -> *const c_void;
    pub fn aurora_dentry_parent(d: *const c_void) -> *const c_void;
    pub fn aurora_dentry_key(d: *const c_void, dev: *mut u64, ino: *mut u64) -> i32;
    pub fn aurora_exec_filename_offset(ctx: *const c_void) -> u32;
    pub fn aurora_sys_enter_arg(ctx: *const c_void, n: u32) -> u64;
    pub fn aurora_sys_exit_ret(ctx: *const c_void) -> i64;
    pub fn aurora_sock_state_read(ctx: *const c_void, out: *mut SockState) -> i32;
}
