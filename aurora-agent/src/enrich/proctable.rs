//! The process table: who each process is, keyed by (pid, start ticks) so a reused PID never
//! inherits a dead process's identity. Filled on exec and by the startup /proc scan; entries of
//! exited processes stay for a grace period so late events (and children) still resolve; LRU-
//! bounded by `--correlation-cache`.
//!
//! A process can exec again (bash runs its last command with exec): each key keeps the last few
//! identities with the boot time of the exec that made them, and lookups ask "who was this
//! process at time T". The rings are drained independently, so a connect recorded before an
//! exec may be processed after it; it must still get the image it had.
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use smallvec::{smallvec, SmallVec};

use super::cgroup::CgroupInfo;
use crate::stats::EnrichStats;

pub type ProcKey = (u32, u64);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub start_ticks: u64,
    pub ppid: u32,
    pub parent_start_ticks: u64,
    pub image: Arc<str>,
    pub cmdline: Arc<str>,
    pub cwd: Option<Arc<str>>,
    pub user: Arc<str>,
    pub uid: u32,
    pub loginuid: u32,
    pub cgroup: Option<CgroupInfo>,
    /// Boot-time ns of the exec that gave the process this identity (0: seeded or inferred).
    pub since_ns: u64,
}

/// Identities kept per process (re-exec chains longer than this resolve to the oldest kept).
const HISTORY: usize = 4;

impl ProcInfo {
    pub fn key(&self) -> ProcKey {
        (self.pid, self.start_ticks)
    }
}

pub struct ProcessTable {
    /// Identities per process, oldest first.
    /// (Inline for the one identity most processes have: no allocation per process.)
    lru: LruCache<ProcKey, SmallVec<[Arc<ProcInfo>; 1]>>,
    exited: VecDeque<(Instant, ProcKey)>,
    grace: Duration,
    stats: Arc<EnrichStats>,
}

impl ProcessTable {
    pub fn new(capacity: usize, grace: Duration, stats: Arc<EnrichStats>) -> Self {
        ProcessTable {
            lru: super::growing_lru(capacity),
            exited: VecDeque::new(),
            grace,
            stats,
        }
    }

    pub fn insert(&mut self, info: ProcInfo) -> Arc<ProcInfo> {
        let key = info.key();
        let info = Arc::new(info);
        if let Some(history) = self.lru.get_mut(&key) {
            // Re-exec: keep the older identities for events stamped before this exec.
            let at = history.partition_point(|h| h.since_ns <= info.since_ns);
            history.insert(at, info.clone());
            if history.len() > HISTORY {
                history.remove(0);
            }
            return info;
        }
        if let Some((old_key, _)) = self.lru.push(key, smallvec![info.clone()]) {
            if old_key != key {
                self.stats.proc_evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats
            .proc_entries
            .store(self.lru.len() as u64, Ordering::Relaxed);
        info
    }

    /// The latest identity of a process (counts hits and misses).
    pub fn get(&mut self, key: ProcKey) -> Option<Arc<ProcInfo>> {
        self.get_at(key, u64::MAX)
    }

    /// Who the process was at boot-time `ts_ns`: the newest identity not younger than the
    /// event (or the oldest kept, for events older than every exec we know of).
    pub fn get_at(&mut self, key: ProcKey, ts_ns: u64) -> Option<Arc<ProcInfo>> {
        let hit = self.lru.get(&key).and_then(|h| {
            let n = h.partition_point(|i| i.since_ns <= ts_ns);
            h.get(n.saturating_sub(1)).cloned()
        });
        let counter = if hit.is_some() {
            &self.stats.proc_hits
        } else {
            &self.stats.proc_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    pub fn contains(&self, key: ProcKey) -> bool {
        self.lru.contains(&key)
    }

    /// The process exited: forget it after the grace period.
    pub fn mark_exited(&mut self, key: ProcKey, now: Instant) {
        self.exited.push_back((now + self.grace, key));
    }

    /// Remove entries whose grace period has passed.
    pub fn sweep(&mut self, now: Instant) {
        while let Some(&(deadline, key)) = self.exited.front() {
            if deadline > now {
                break;
            }
            self.exited.pop_front();
            self.lru.pop(&key);
        }
        self.stats
            .proc_entries
            .store(self.lru.len() as u64, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, start: u64, image: &str) -> ProcInfo {
        ProcInfo {
            pid,
            start_ticks: start,
            ppid: 1,
            parent_start_ticks: 0,
            image: image.into(),
            cmdline: image.into(),
            cwd: None,
            user: "root".into(),
            uid: 0,
            loginuid: u32::MAX,
            cgroup: None,
            since_ns: 0,
        }
    }

    #[test]
    fn re_exec_keeps_the_identity_an_event_had_at_its_time() {
        let mut t = ProcessTable::new(16, Duration::from_secs(5), Arc::default());
        t.insert(ProcInfo {
            since_ns: 100,
            ..info(5, 1, "/usr/bin/bash")
        });
        t.insert(ProcInfo {
            since_ns: 200,
            ..info(5, 1, "/usr/bin/sleep")
        });
        assert_eq!(
            &*t.get_at((5, 1), 150).unwrap().image,
            "/usr/bin/bash",
            "connect before the exec"
        );
        assert_eq!(&*t.get_at((5, 1), 250).unwrap().image, "/usr/bin/sleep");
        assert_eq!(&*t.get((5, 1)).unwrap().image, "/usr/bin/sleep", "latest");
        assert_eq!(
            &*t.get_at((5, 1), 50).unwrap().image,
            "/usr/bin/bash",
            "older than all: oldest"
        );
        assert_eq!(t.len(), 1, "one process, two identities");
    }

    #[test]
    fn reused_pid_is_a_different_process() {
        let stats = Arc::new(EnrichStats::default());
        let mut t = ProcessTable::new(16, Duration::from_secs(5), stats.clone());
        t.insert(info(100, 10, "/usr/bin/old"));
        assert!(
            t.get((100, 11)).is_none(),
            "same pid, other start time: no identity"
        );
        assert_eq!(&*t.get((100, 10)).unwrap().image, "/usr/bin/old");
        assert_eq!(stats.proc_hits.load(Ordering::Relaxed), 1);
        assert_eq!(stats.proc_misses.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn exited_entries_live_through_the_grace_period() {
        let mut t = ProcessTable::new(16, Duration::from_secs(5), Arc::default());
        let now = Instant::now();
        t.insert(info(7, 1, "/bin/sh"));
        t.mark_exited((7, 1), now);
        t.sweep(now + Duration::from_secs(4));
        assert!(t.contains((7, 1)));
        t.sweep(now + Duration::from_secs(6));
        assert!(!t.contains((7, 1)));
    }

    #[test]
    fn bounded_with_lru_eviction_counted() {
        let stats = Arc::new(EnrichStats::default());
        let mut t = ProcessTable::new(3, Duration::from_secs(5), stats.clone());
        for pid in 0..10 {
            t.insert(info(pid, 1, "/bin/true"));
        }
        assert_eq!(t.len(), 3);
        assert_eq!(stats.proc_evictions.load(Ordering::Relaxed), 7);
        // Re-exec of the same process replaces, it does not evict.
        t.insert(info(9, 1, "/bin/false"));
        assert_eq!(stats.proc_evictions.load(Ordering::Relaxed), 7);
        assert_eq!(&*t.get((9, 1)).unwrap().image, "/bin/false");
    }
}
