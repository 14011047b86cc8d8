//! auditd's log as a source: parse (`parse`), reassemble records into events (`assemble`),
//! follow the file (`super::follow`). auditd stays the owner of the audit netlink socket;
//! Aurora only reads what it writes.
pub mod assemble;
pub mod parse;
pub mod syscalls;

use std::time::Instant;

use super::follow::LineParser;
use crate::event::Event;
use assemble::Assembler;

/// Where auditd writes by default (`log_file` in auditd.conf).
pub const DEFAULT_LOG: &str = "/var/log/audit/audit.log";

/// audit.log lines → events.
#[derive(Default)]
pub struct AuditParser {
    assembler: Assembler,
    /// Replay closes events by count only (deterministic); live also by time.
    live: bool,
}

impl AuditParser {
    pub fn live() -> Self {
        AuditParser {
            assembler: Assembler::default(),
            live: true,
        }
    }

    pub fn replay() -> Self {
        AuditParser::default()
    }
}

impl LineParser for AuditParser {
    fn line(&mut self, line: &str, out: &mut Vec<Event>) -> Result<(), String> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let rec = parse::parse_line(line).map_err(|e| e.to_string())?;
        let now = self.live.then(Instant::now);
        self.assembler.push(rec, now, out);
        Ok(())
    }

    fn idle(&mut self, now: Instant, out: &mut Vec<Event>) {
        self.assembler.close_idle(now, out);
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.assembler.finish(out);
    }

    fn settled(&self) -> bool {
        self.assembler.open_events() == 0
    }
}
