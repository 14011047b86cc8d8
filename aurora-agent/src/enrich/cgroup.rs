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

pub fn is_hex_id(s: &str) -> bool {
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

/// Path and container of /proc/PID/cgroup contents. The container id is looked for in every
/// hierarchy: on a hybrid host (v1 controllers + an empty unified tree) the v2 path is `/` and
/// only the v1 paths name the container.
pub fn info_of(contents: &str) -> Option<CgroupInfo> {
    let path = parse_proc_cgroup(contents)?;
    let id = container_id(path).or_else(|| {
        contents
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .find_map(container_id)
    });
    Some(CgroupInfo {
        path: path.into(),
        container_id: id.map(Into::into),
    })
}

pub struct CgroupCache {
    by_id: LruCache<u64, CgroupInfo>,
    /// Where the cgroup2 tree is mounted (`None`: v1 only, ids cannot be walked).
    root: Option<std::path::PathBuf>,
    /// Ids the walk did not find, and when.
    not_found: LruCache<u64, std::time::Instant>,
}

/// How long an id the walk did not find is not walked for again.
const WALK_AGAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Directories of the cgroup2 tree looked at, at most, to find one id (a node runs hundreds).
const MAX_WALK: usize = 20_000;

/// The path (as /proc/PID/cgroup shows it) of the cgroup2 directory whose inode is `id`: the
/// kernel's cgroup id is that inode.
fn path_of_id(root: &std::path::Path, id: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let found = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_type().is_dir())
        .take(MAX_WALK)
        .filter_map(Result::ok)
        .find(|e| e.metadata().is_ok_and(|m| m.ino() == id))?;
    let rel = found.path().strip_prefix(root).ok()?;
    Some(format!("/{}", rel.display()))
}

impl CgroupCache {
    pub fn new(capacity: usize) -> Self {
        CgroupCache {
            by_id: super::growing_lru(capacity),
            root: crate::policy::cgroup2_root(),
            not_found: super::growing_lru(1024),
        }
    }

    /// The cgroup of `pid` (kernel cgroup id `cgroup_id`); reads /proc only for unseen ids.
    /// A process gone before /proc was read (a container's first command often is) is found
    /// by its cgroup's id in the cgroup2 tree instead.
    pub fn lookup(&mut self, pid: u32, cgroup_id: u64) -> Option<CgroupInfo> {
        if let Some(i) = self.by_id.get(&cgroup_id) {
            return Some(i.clone());
        }
        let info = match Self::lookup_path(pid) {
            Some(info) => info,
            None => self.walk_for(cgroup_id)?,
        };
        self.by_id.put(cgroup_id, info.clone());
        Some(info)
    }

    /// The cgroup2 tree walked for `cgroup_id`, once a minute at most per id it lacks.
    fn walk_for(&mut self, cgroup_id: u64) -> Option<CgroupInfo> {
        let now = std::time::Instant::now();
        if let Some(at) = self.not_found.get(&cgroup_id) {
            if now.duration_since(*at) < WALK_AGAIN {
                return None;
            }
        }
        let found = self
            .root
            .as_deref()
            .and_then(|root| path_of_id(root, cgroup_id));
        let Some(path) = found else {
            self.not_found.put(cgroup_id, now);
            return None;
        };
        Some(CgroupInfo {
            container_id: container_id(&path).map(Into::into),
            path: path.into(),
        })
    }

    /// The cgroup of `pid` from /proc, uncached (no kernel cgroup id to key it: processes
    /// found by the /proc scan).
    pub fn lookup_path(pid: u32) -> Option<CgroupInfo> {
        let contents = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        info_of(&contents)
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
    fn container_on_hybrid_host() {
        let hybrid = format!("4:memory:/libpod_parent/libpod-{ID}\n1:name=systemd:/\n0::/\n");
        let info = info_of(&hybrid).unwrap();
        assert_eq!(&*info.path, "/");
        assert_eq!(info.container_id.as_deref(), Some(ID));
        let host = info_of("4:memory:/user.slice\n0::/\n").unwrap();
        assert_eq!(host.container_id, None);
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
