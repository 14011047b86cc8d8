//! System logs as a source: syslog files (RFC 5424 / 3164 lines, followed by
//! `super::follow`) and the journal (`journal`, through `journalctl -o json --follow`).
pub mod journal;
pub mod parse;

use std::path::Path;

use super::follow::LineParser;
use crate::event::Event;

/// Files read when journald is not running and no `--system-log` is given (Debian's and
/// RHEL's rsyslog defaults), if they exist.
pub const DEFAULT_FILES: &[&str] = &[
    "/var/log/auth.log",
    "/var/log/syslog",
    "/var/log/secure",
    "/var/log/messages",
];

/// The facility of lines without `<PRI>`: files that hold only auth/authpriv messages.
pub fn default_facility(path: &Path) -> Option<&'static str> {
    match path.file_name()?.to_str()? {
        "auth.log" | "secure" => Some("auth"),
        _ => None,
    }
}

/// Syslog-file lines → events.
pub struct SyslogParser {
    pub default_facility: Option<&'static str>,
}

impl LineParser for SyslogParser {
    fn line(&mut self, line: &str, out: &mut Vec<Event>) -> Result<(), String> {
        if !line.trim().is_empty() {
            out.push(parse::parse_line(line, self.default_facility));
        }
        Ok(())
    }
}

/// `journalctl -o json` lines → events.
pub struct JournalParser;

impl LineParser for JournalParser {
    fn line(&mut self, line: &str, out: &mut Vec<Event>) -> Result<(), String> {
        if let Some(ev) = parse::parse_journal_json(line)? {
            out.push(ev);
        }
        Ok(())
    }
}
