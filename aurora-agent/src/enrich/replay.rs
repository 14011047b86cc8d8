//! Parent correlation for replayed events: a process event without parent fields gets them from
//! the process its ParentProcessGuid (or ParentProcessId) names, if the replay saw it earlier —
//! the same answer the live process table gives.
use std::sync::Arc;

use schnellru::{ByLength, LruMap};

use crate::event::names as f;
use crate::event::{Event, EventKind};

/// The parent fields a child takes, in the order [`PARENT_FIELDS`] names them.
const OWN_FIELDS: [&str; 3] = [f::IMAGE, f::COMMAND_LINE, f::USER];
const PARENT_FIELDS: [&str; 3] = [f::PARENT_IMAGE, f::PARENT_COMMAND_LINE, f::PARENT_USER];

/// What a child needs of a process seen earlier: its three fields in one allocation, shared by
/// both indexes (one allocation per replayed process instead of five).
#[derive(Clone)]
struct Seen {
    text: Arc<str>,
    /// End of each field in `text`; `None` when the process event lacked it.
    ends: [Option<u32>; 3],
}

impl Seen {
    fn of(ev: &Event) -> Seen {
        let parts = OWN_FIELDS.map(|n| ev.get_str(n));
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let ends = parts.map(|p| {
            p.map(|p| {
                text.push_str(p);
                text.len() as u32
            })
        });
        Seen {
            text: text.into(),
            ends,
        }
    }

    fn field(&self, i: usize) -> Option<&str> {
        let end = self.ends[i]? as usize;
        let start = self.ends[..i].iter().rev().flatten().next().copied();
        self.text.get(start.unwrap_or(0) as usize..end)
    }
}

/// A ProcessGuid as a key: Sysmon's `{8-4-4-4-12}` hex form as its 128 bits (no allocation,
/// no string compare); anything else as its text.
#[derive(Hash, PartialEq, Eq)]
enum GuidKey {
    Bits(u128),
    Text(Box<str>),
}

impl GuidKey {
    fn of(guid: &str) -> GuidKey {
        match Self::bits(guid.as_bytes()) {
            Some(b) => GuidKey::Bits(b),
            None => GuidKey::Text(guid.into()),
        }
    }

    /// The 128 bits of `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`: fixed digit positions, one
    /// table lookup per digit (this runs for every replayed process).
    fn bits(g: &[u8]) -> Option<u128> {
        const DIGITS: [usize; 32] = {
            let mut at = [0usize; 32];
            let (mut i, mut n) = (1usize, 0usize);
            while n < 32 {
                if !matches!(i, 9 | 14 | 19 | 24) {
                    at[n] = i;
                    n += 1;
                }
                i += 1;
            }
            at
        };
        const HEX: [u8; 256] = {
            let mut t = [0xffu8; 256];
            let mut c = 0usize;
            while c < 256 {
                t[c] = match c as u8 {
                    b @ b'0'..=b'9' => b - b'0',
                    b @ b'a'..=b'f' => b - b'a' + 10,
                    b @ b'A'..=b'F' => b - b'A' + 10,
                    _ => 0xff,
                };
                c += 1;
            }
            t
        };
        let shape = g.len() == 38
            && g[0] == b'{'
            && g[37] == b'}'
            && [9, 14, 19, 24].iter().all(|&i| g[i] == b'-');
        if !shape {
            return None;
        }
        // Two u64 halves: a u128 shift per digit costs twice the instructions.
        let (mut halves, mut bad) = ([0u64; 2], 0u8);
        for (half, digits) in halves.iter_mut().zip(DIGITS.chunks_exact(16)) {
            for &at in digits {
                let d = HEX[usize::from(g[at])];
                bad |= d;
                *half = *half << 4 | u64::from(d);
            }
        }
        (bad & 0xf0 == 0).then_some(u128::from(halves[0]) << 64 | u128::from(halves[1]))
    }
}

pub struct ReplayCorrelator {
    by_guid: LruMap<GuidKey, Seen, ByLength>,
    by_pid: LruMap<i64, Seen, ByLength>,
}

impl ReplayCorrelator {
    pub fn new(capacity: usize) -> Self {
        let cap = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        ReplayCorrelator {
            by_guid: LruMap::new(ByLength::new(cap)),
            by_pid: LruMap::new(ByLength::new(cap)),
        }
    }

    pub fn complete(&mut self, ev: &mut Event) {
        if ev.kind != EventKind::ProcessCreation {
            return;
        }
        // Recorded live events carry their parent fields: no lookup for them.
        if !PARENT_FIELDS.iter().all(|n| ev.has(n)) {
            self.fill_parent(ev);
        }
        let seen = Seen::of(ev);
        if let Some(g) = ev.get_str(f::PROCESS_GUID) {
            self.by_guid.insert(GuidKey::of(g), seen.clone());
        }
        if let Some(pid) = ev.get_int(f::PROCESS_ID) {
            self.by_pid.insert(pid, seen);
        }
    }

    fn fill_parent(&mut self, ev: &mut Event) {
        let parent = ev
            .get_str(f::PARENT_PROCESS_GUID)
            .and_then(|g| self.by_guid.get(&GuidKey::of(g)).cloned())
            .or_else(|| {
                ev.get_int(f::PARENT_PROCESS_ID)
                    .and_then(|p| self.by_pid.get(&p).cloned())
            });
        let Some(p) = parent else { return };
        for (i, name) in PARENT_FIELDS.into_iter().enumerate() {
            if let (false, Some(v)) = (ev.has(name), p.field(i)) {
                ev.push_str(name, v);
            }
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
    fn guid_keys_exact_for_sysmon_form_text_otherwise() {
        let a = GuidKey::of("{8f0c1a2b-0000-0000-1234-00000000abcd}");
        assert!(matches!(
            a,
            GuidKey::Bits(0x8f0c1a2b_0000_0000_1234_00000000abcd)
        ));
        assert!(matches!(GuidKey::of("{8f0c1a2b-0000}"), GuidKey::Text(_)));
        assert!(matches!(
            GuidKey::of("{zz0c1a2b-0000-0000-1234-00000000abcd}"),
            GuidKey::Text(_)
        ));
        let mut c = ReplayCorrelator::new(8);
        let mut p = proc(1, "not-a-guid", "/bin/sh", 0);
        p.push_str(f::USER, "root");
        c.complete(&mut p);
        let mut child = proc(2, "{c}", "/bin/ls", 99);
        child.push_str(f::PARENT_PROCESS_GUID, "not-a-guid");
        c.complete(&mut child);
        assert_eq!(child.get_str(f::PARENT_IMAGE), Some("/bin/sh"));
        assert_eq!(child.get_str(f::PARENT_USER), Some("root"));
    }

    #[test]
    fn unknown_parent_left_alone() {
        let mut c = ReplayCorrelator::new(4);
        let mut e = proc(5, "{x}", "/bin/ls", 999);
        c.complete(&mut e);
        assert!(!e.has(f::PARENT_IMAGE));
    }
}
