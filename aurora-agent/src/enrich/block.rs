//! Block records → Response events (EventID 102): the process the kernel acted on (from the
//! process table: its exec record came first on the same ring), what was done and the policy
//! entry that matched, named by file and line. A watched file's open is no decision: it
//! becomes the PATH record auditd would have written for it (for the auditd rules).
use aurora_common::{
    BLOCK_ACTION_BLOCKED, BLOCK_ACTION_KILLED, BLOCK_ACTION_WATCHED, BLOCK_ACTION_WOULD_BLOCK,
    BLOCK_TARGET_OPEN,
};

use super::proctable::ProcInfo;
use super::Enricher;
use crate::event::audit::{self, AuditProcess, Syscall};
use crate::event::names as f;
use crate::event::text::bytes_to_text;
use crate::event::{Event, EventKind};
use crate::sources::BlockRaw;

/// `Action` of a kernel decision.
pub fn action_name(action: u32) -> &'static str {
    match action {
        BLOCK_ACTION_BLOCKED => "blocked",
        BLOCK_ACTION_KILLED => "killed",
        BLOCK_ACTION_WOULD_BLOCK => "would_block",
        _ => "unknown",
    }
}

impl Enricher {
    pub(super) fn block(&mut self, r: BlockRaw) -> Event {
        let info = self.process_of(&r.task);
        if r.action == BLOCK_ACTION_WATCHED {
            return self.watched_open(&r, &info);
        }
        let mut ev = self.common(EventKind::Response, r.task.ts_boot_ns, &info);
        ev.push_str(f::COMMAND_LINE, &*info.cmdline);
        ev.push_str(f::USER, &*info.user);
        let operation = if r.target == BLOCK_TARGET_OPEN {
            "open"
        } else {
            "exec"
        };
        ev.push_str(f::OPERATION, operation);
        if !r.path.is_empty() {
            ev.push_str(f::TARGET_FILENAME, bytes_to_text(&r.path));
        }
        ev.push_str(f::ACTION, action_name(r.action));
        let policy = self.policy.get();
        match policy.entries.get(r.entry as usize) {
            Some(e) => {
                ev.push_str(f::MODE, e.mode.as_str());
                ev.push_str(f::POLICY, e.source.as_str());
                ev.push_str(f::POLICY_ENTRY, format!("{} {}", e.list, e.what));
            }
            // Reloaded between the decision and now: the entry's index names nothing.
            None => {
                let mode = if r.action == BLOCK_ACTION_WOULD_BLOCK {
                    "audit"
                } else {
                    "enforce"
                };
                ev.push_str(f::MODE, mode);
            }
        }
        self.container_fields(&mut ev, info.cgroup.as_ref());
        ev
    }

    /// The PATH record of an open of a watched file.
    fn watched_open(&mut self, r: &BlockRaw, info: &ProcInfo) -> Event {
        let time = self.utc_time(r.task.ts_boot_ns);
        let name = if r.path.is_empty() {
            // The kernel's walk failed: the watch entry names the file.
            let policy = self.policy.get();
            policy
                .entries
                .get(r.entry as usize)
                .and_then(|e| e.what.strip_prefix("path "))
                .unwrap_or_default()
                .to_owned()
        } else {
            bytes_to_text(&r.path).into_owned()
        };
        let p = AuditProcess {
            pid: i64::from(info.pid),
            ppid: i64::from(info.ppid),
            auid: i64::from(info.loginuid),
            uid: Some((r.task.uid, &info.user)),
            exe: &info.image,
            time: Some(&time),
        };
        audit::path(&p, Syscall::Openat, &name, "NORMAL")
    }
}
