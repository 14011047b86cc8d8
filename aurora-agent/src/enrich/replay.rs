//! Parent correlation for replayed events: a process event without parent fields gets them from
//! the process its ParentProcessGuid (or ParentProcessId) names, if the replay saw it earlier —
//! the same answer the live process table gives.
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use crate::event::names as f;
use crate::event::{Event, EventKind};

#[derive(Clone)]
struct Seen {
    image: Option<Arc<str>>,
    cmdline: Option<Arc<str>>,
    user: Option<Arc<str>>,
}

pub struct ReplayCorrelator {
    by_guid: LruCache<String, Seen>,
    by_pid: LruCache<i64, Seen>,
}

impl ReplayCorrelator {
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        ReplayCorrelator {
            by_guid: LruCache::new(cap),
            by_pid: LruCache::new(cap),
        }
    }

    pub fn complete(&mut self, ev: &mut Event) {
        if ev.kind != EventKind::ProcessCreation {
            return;
        }
        let parent = ev
            .get_str(f::PARENT_PROCESS_GUID)
            .and_then(|g| self.by_guid.get(g).cloned())
            .or_else(|| {
                ev.get_int(f::PARENT_PROCESS_ID)
                    .and_then(|p| self.by_pid.get(&p).cloned())
            });
        if let Some(p) = parent {
            for (name, val) in [
                (f::PARENT_IMAGE, &p.image),
                (f::PARENT_COMMAND_LINE, &p.cmdline),
                (f::PARENT_USER, &p.user),
            ] {
                if let (false, Some(v)) = (ev.has(name), val) {
                    ev.push_str(name, &**v);
                }
            }
        }
        let seen = Seen {
            image: ev.get_str(f::IMAGE).map(Into::into),
            cmdline: ev.get_str(f::COMMAND_LINE).map(Into::into),
            user: ev.get_str(f::USER).map(Into::into),
        };
        if let Some(g) = ev.get_str(f::PROCESS_GUID) {
            self.by_guid.put(g.to_owned(), seen.clone());
        }
        if let Some(pid) = ev.get_int(f::PROCESS_ID) {
            self.by_pid.put(pid, seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i64, guid: &str, image: &str, ppid: i64) -> Event {
        let mut e = Event::new(EventKind::ProcessCreation);
        e.push_str(f::PROCESS_GUID, guid);
        e.push_int(f::PROCESS_ID, pid);
        e.push_str(f::IMAGE, image);
        e.push_str(f::COMMAND_LINE, image);
        e.push_int(f::PARENT_PROCESS_ID, ppid);
        e
    }

    #[test]
    fn fills_parent_from_earlier_event_and_keeps_given_fields() {
        let mut c = ReplayCorrelator::new(64);
        let mut parent = proc(10, "{p}", "/bin/bash", 1);
        c.complete(&mut parent);
        let mut child = proc(11, "{c}", "/usr/bin/curl", 10);
        c.complete(&mut child);
        assert_eq!(child.get_str(f::PARENT_IMAGE), Some("/bin/bash"));
        assert_eq!(child.get_str(f::PARENT_COMMAND_LINE), Some("/bin/bash"));
        let mut other = proc(12, "{o}", "/bin/ls", 10);
        other.push_str(f::PARENT_IMAGE, "/bin/zsh");
        c.complete(&mut other);
        assert_eq!(
            other.get_str(f::PARENT_IMAGE),
            Some("/bin/zsh"),
            "given fields win"
        );
    }

    #[test]
    fn unknown_parent_left_alone() {
        let mut c = ReplayCorrelator::new(4);
        let mut e = proc(5, "{x}", "/bin/ls", 999);
        c.complete(&mut e);
        assert!(!e.has(f::PARENT_IMAGE));
    }
}
