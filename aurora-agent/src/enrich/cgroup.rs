//! CgroupPath and ContainerId from /proc/PID/cgroup, cached by the kernel's cgroup id so a
//! process that already exited still gets its container.
use std::sync::Arc;

use lru::LruCache;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupInfo {
    pub path: Arc<str>,
    pub container_id: Option<Arc<str>>,
}

/// The cgroup v2 path (`0::/…`), or the first v1 path, from /proc/PID/cgroup contents.
pub fn parse_proc_cgroup(contents: &str) -> Option<&str> {
    let mut first = None;
    for line in contents.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, _ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        if id == "0" {
            return Some(path);
        }
        first.get_or_insert(path);
    }
    first
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Container id from a cgroup path: docker (`docker-<id>.scope`, `/docker/<id>`), containerd
/// (`cri-containerd-<id>.scope`, `…:cri-containerd:<id>`), cri-o (`crio-<id>.scope`), podman (`libpod-<id>.scope`),
/// kubepods (`/kubepods/…/<id>`). Returns the 64-hex id.
pub fn container_id(path: &str) -> Option<&str> {
    for seg in path.rsplit(['/', ':']) {
        let seg = seg.strip_suffix(".scope").unwrap_or(seg);
        let id = [
            "docker-",
            "cri-containerd-",
            "crio-",
            "libpod-",
            "containerd-",
        ]
        .iter()
        .find_map(|p| seg.strip_prefix(p))
        .unwrap_or(seg);
        if is_hex_id(id) {
            return Some(id);
        }
    }
    None
}

pub struct CgroupCache {
    by_id: LruCache<u64, CgroupInfo>,
}

impl CgroupCache {
    pub fn new(capacity: usize) -> Self {
        CgroupCache {
            by_id: super::growing_lru(capacity),
        }
    }

    /// The cgroup of `pid` (kernel cgroup id `cgroup_id`); reads /proc only for unseen ids.
    pub fn lookup(&mut self, pid: u32, cgroup_id: u64) -> Option<CgroupInfo> {
        if let Some(i) = self.by_id.get(&cgroup_id) {
            return Some(i.clone());
        }
        let contents = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = parse_proc_cgroup(&contents)?;
        let info = CgroupInfo {
            path: path.into(),
            container_id: container_id(path).map(Into::into),
        };
        self.by_id.put(cgroup_id, info.clone());
        Some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    #[test]
    fn container_patterns() {
        for p in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
            format!("/system.slice/containerd.service/kubepods-besteffort-pod1.slice:cri-containerd:{ID}"),
            format!("/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-burstable.slice/crio-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/kubepods/besteffort/pod0c6d/{ID}"),
        ] {
            assert_eq!(container_id(&p), Some(ID), "{p}");
        }
        assert_eq!(
            container_id("/user.slice/user-0.slice/session-3.scope"),
            None
        );
        assert_eq!(container_id("/"), None);
    }

    #[test]
    fn proc_cgroup_prefers_v2() {
        assert_eq!(
            parse_proc_cgroup("0::/system.slice/ssh.service\n"),
            Some("/system.slice/ssh.service")
        );
        assert_eq!(
            parse_proc_cgroup("12:pids:/docker/abc\n1:name=systemd:/x\n"),
            Some("/docker/abc")
        );
        assert_eq!(parse_proc_cgroup(""), None);
    }
}
