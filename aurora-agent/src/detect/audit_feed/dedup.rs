//! One evaluation per record when auditd's log and the sensors both saw a syscall. Records
//! are matched by process and content, not by time: the pid, the record type, the syscall
//! and what the record is about (an EXECVE's argv, a SYSCALL's `exe`, an open's file name;
//! an exec's PATH records by the exec alone, as auditd's also name the loader). The first to
//! arrive (nearly always the sensors': auditd's records wait for their event to close) is
//! evaluated; a record from the other origin with the same key whose time (`UtcTime`, so a
//! replay decides as the live run did) is within `WINDOW` is a duplicate, counted and not
//! evaluated.
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::event::audit::{self, Syscall};
use crate::event::Event;

/// Nanoseconds between two records of one syscall at most (both clocks are the kernel's;
/// the margin covers a pid reused only long after).
pub const WINDOW_NS: i64 = 5_000_000_000;
/// Records remembered at most (oldest forgotten first).
const CAPACITY: usize = 8192;

pub struct Dedup {
    seen: LruCache<u64, (bool, i64)>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            seen: LruCache::new(NonZeroUsize::new(CAPACITY).expect("non-zero")),
            hasher: Default::default(),
        }
    }
}

fn field<'e>(ev: &'e Event, name: &str) -> &'e str {
    ev.get_str(name).unwrap_or_default()
}

impl Dedup {
    /// The match key of an auditd-kind record, None for records never made from the sensors.
    fn key(&self, ev: &Event) -> Option<u64> {
        let rtype = field(ev, "type");
        // The number, not auditd's interpreted `SYSCALL`: a log in raw format has no names.
        let exec = field(ev, "syscall") == Syscall::Execve.number();
        let mut h = self.hasher.build_hasher();
        field(ev, "pid").hash(&mut h);
        rtype.hash(&mut h);
        exec.hash(&mut h);
        match (rtype, exec) {
            ("EXECVE", _) => {
                // Static names, no format! per argument: this runs for every record.
                let args = (0..).map_while(audit::arg_name);
                for a in args.map_while(|name| ev.get_str(name)) {
                    a.hash(&mut h);
                }
            }
            ("SYSCALL", true) => field(ev, "exe").hash(&mut h),
            ("PATH", true) => {}
            ("PATH", false) => field(ev, "name").hash(&mut h),
            _ => return None,
        }
        Some(h.finish())
    }

    /// Whether `ev` (from the sensors when `sensors`, at `time_ns`) repeats a record of the
    /// other origin within `WINDOW_NS`; otherwise it is remembered.
    pub fn duplicate(&mut self, ev: &Event, sensors: bool, time_ns: i64) -> bool {
        let Some(key) = self.key(ev) else {
            return false;
        };
        if let Some(&(origin, at)) = self.seen.peek(&key) {
            if origin != sensors && (time_ns - at).abs() < WINDOW_NS {
                return true;
            }
        }
        self.seen.put(key, (sensors, time_ns));
        false
    }
}
