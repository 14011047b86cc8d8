//! Reads of /proc/PID for enrichment. Each is one or two syscalls on the hot path; every read
//! may fail because the process is already gone, and callers fall back to kernel data.
use std::path::PathBuf;

use crate::event::text::{bytes_to_string, join_argv};

pub fn exe(pid: u32) -> Option<String> {
    let p = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    Some(bytes_to_string(p.as_os_str().as_encoded_bytes()))
}

pub fn cwd(pid: u32) -> Option<String> {
    let p = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    Some(bytes_to_string(p.as_os_str().as_encoded_bytes()))
}

pub fn cwd_path(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// Target of an open directory fd (for openat with a dirfd).
pub fn fd_path(pid: u32, fd: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// The full command line (NUL → space). Empty for kernel threads and zombies: `None` then.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(join_argv(&raw))
}

/// What the startup scan and cache misses learn about a live process.
#[derive(Clone, Debug)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub ppid: u32,
    pub start_ticks: u64,
    pub uid: u32,
    pub loginuid: u32,
    pub comm: String,
    pub image: Option<String>,
    pub cmdline: Option<String>,
    pub cwd: Option<String>,
}

/// Snapshot of a live process (stat, status, exe, cmdline, cwd, loginuid).
pub fn snapshot(pid: u32) -> Option<ProcSnapshot> {
    let proc = procfs::process::Process::new(pid as i32).ok()?;
    let stat = proc.stat().ok()?;
    let uid = proc.uid().unwrap_or(u32::MAX);
    let loginuid = std::fs::read_to_string(format!("/proc/{pid}/loginuid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX);
    Some(ProcSnapshot {
        pid,
        ppid: stat.ppid.max(0) as u32,
        start_ticks: stat.starttime,
        uid,
        loginuid,
        comm: stat.comm,
        image: exe(pid),
        cmdline: cmdline(pid),
        cwd: cwd(pid),
    })
}

/// Start time (ticks) of a live pid, to check that a pid still names the process we expect.
pub fn start_ticks(pid: u32) -> Option<u64> {
    procfs::process::Process::new(pid as i32)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.starttime)
}

/// Every process id in /proc.
pub fn all_pids() -> Vec<u32> {
    match procfs::process::all_processes() {
        Ok(it) => it.filter_map(Result::ok).map(|p| p.pid as u32).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_of_self() {
        let me = std::process::id();
        let s = snapshot(me).expect("own /proc entry");
        assert_eq!(s.pid, me);
        assert_eq!(s.ppid, std::os::unix::process::parent_id());
        assert_eq!(
            s.image.as_deref(),
            std::env::current_exe()
                .ok()
                .as_deref()
                .and_then(|p| p.to_str())
        );
        assert!(s.cmdline.is_some());
        assert_eq!(start_ticks(me), Some(s.start_ticks));
    }

    #[test]
    fn missing_process_is_none() {
        assert!(snapshot(u32::MAX - 1).is_none());
        assert!(exe(u32::MAX - 1).is_none());
        assert!(cmdline(u32::MAX - 1).is_none());
    }
}
