//! SigmaHQ's auditd rules fed by the eBPF sensors: from each exec the EXECVE, SYSCALL and
//! PATH records auditd would write for it (`event::audit` gives them auditd's shape), from
//! each file creation its PATH record (nametype CREATE); the opens of files PATH rules name
//! come from the kernel's watch (`enrich/block.rs`). Only the shapes some active rule can
//! match are made (`analyze`). When auditd's own log is followed too, a record both made
//! is evaluated once (`dedup`). Compared with auditd's own records in
//! tests/audit_feed_parity.rs.
pub mod analyze;
mod dedup;

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::event::audit::{self, AuditProcess, Syscall, AUDIT_SOURCE};
use crate::event::{names as f, Event, EventKind};
use analyze::shape;
pub use analyze::{Access, Feed, Watch};
pub use dedup::Dedup;

/// User names resolved to uids at most (the rest are looked up again).
const UIDS: usize = 256;

pub struct AuditFeed {
    /// `analyze::shape` bits of the records some active rule can match.
    shapes: u8,
    uids: LruCache<String, Option<u32>>,
    /// Present when auditd's log may carry the same records.
    pub dedup: Option<Dedup>,
}

impl AuditFeed {
    /// The feed for rules whose feeds are `feeds`; None when no rule can be fed.
    pub fn new<'a>(feeds: impl Iterator<Item = &'a Feed>, auditd_too: bool) -> Option<Self> {
        let shapes = feeds.fold(0, |acc, f| acc | f.shapes);
        (shapes != 0).then(|| AuditFeed {
            shapes,
            uids: LruCache::new(NonZeroUsize::new(UIDS).expect("non-zero")),
            dedup: auditd_too.then(Dedup::default),
        })
    }

    fn uid(&mut self, user: &str) -> Option<u32> {
        if let Some(u) = self.uids.get(user) {
            return *u;
        }
        let uid = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
            .or_else(|| user.parse().ok());
        self.uids.put(user.to_owned(), uid);
        uid
    }

    /// The records made from `ev` (an exec or a file creation), appended to `out`.
    pub fn make(&mut self, ev: &Event, out: &mut Vec<Event>) {
        match ev.kind {
            EventKind::ProcessCreation if self.shapes & EXEC_SHAPES != 0 => self.exec(ev, out),
            EventKind::FileEvent
                if self.shapes & shape::PATH_CREATE != 0
                    && ev.get_str(f::FILE_ACTION) == Some("created") =>
            {
                self.created(ev, out)
            }
            _ => {}
        }
    }

    fn process<'e>(&mut self, ev: &'e Event, user: Option<&'e str>) -> AuditProcess<'e> {
        let uid = user.and_then(|u| self.uid(u).map(|id| (id, u)));
        AuditProcess {
            pid: ev.get_int(f::PROCESS_ID).unwrap_or(0),
            ppid: ev.get_int(f::PARENT_PROCESS_ID).unwrap_or(0),
            auid: ev.get_int(f::LOGON_ID).unwrap_or(i64::from(u32::MAX)),
            uid,
            exe: ev.get_str(f::IMAGE).unwrap_or_default(),
            time: ev.get_str(f::UTC_TIME),
        }
    }

    fn exec(&mut self, ev: &Event, out: &mut Vec<Event>) {
        let p = self.process(ev, ev.get_str(f::USER));
        if self.shapes & shape::EXECVE != 0 {
            // The command line is argv joined by spaces: split back at them (an argument
            // that itself holds a space comes back as two).
            let cmdline = ev.get_str(f::COMMAND_LINE).unwrap_or_default();
            out.push(audit::execve(&p, cmdline.split(' ')));
        }
        if self.shapes & shape::SYSCALL_EXEC != 0 {
            out.push(audit::syscall(&p, Syscall::Execve));
        }
        if self.shapes & shape::PATH_EXEC != 0 {
            out.push(audit::path(&p, Syscall::Execve, p.exe, "NORMAL"));
        }
    }

    fn created(&mut self, ev: &Event, out: &mut Vec<Event>) {
        let Some(name) = ev.get_str(f::TARGET_FILENAME) else {
            return;
        };
        let p = self.process(ev, ev.get_str(f::USER));
        out.push(audit::path(&p, Syscall::Openat, name, "CREATE"));
    }
}

const EXEC_SHAPES: u8 = shape::EXECVE | shape::SYSCALL_EXEC | shape::PATH_EXEC;

/// Whether an auditd-kind event was made from the sensors (else it is auditd's).
pub fn from_sensors(ev: &Event) -> bool {
    ev.get_str(AUDIT_SOURCE) == Some(audit::FROM_SENSORS)
}
