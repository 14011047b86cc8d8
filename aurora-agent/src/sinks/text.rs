//! The readable one-line form of an alert (stdout without --json, and syslog MSG).
use std::fmt::Write as _;

use super::sanitize::neutralize;
use crate::detect::alert::Alert;
use crate::event::names as f;

/// Fields worth showing in a one-line summary, in this order, when the event has them.
const SHOWN: &[&str] = &[
    f::IMAGE,
    f::COMMAND_LINE,
    f::PARENT_IMAGE,
    f::USER,
    f::PROCESS_ID,
    f::TARGET_FILENAME,
    f::DESTINATION_IP,
    f::DESTINATION_PORT,
];

/// `Sigma match: <title> [level] rule=<id> Image="…" CommandLine="…" …` (no newline, no
/// control characters).
pub fn summary(a: &Alert) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "Sigma match: {} [{}] rule={}",
        neutralize(&a.rule.title),
        a.rule.level.as_str(),
        neutralize(a.rule.key())
    );
    for name in SHOWN {
        if let Some(v) = a.event.get(name) {
            let _ = write!(
                s,
                " {name}=\"{}\"",
                neutralize(&v.as_text()).replace('"', "\\\"")
            );
        }
    }
    s
}

/// The stdout text line: time, host, then the summary.
pub fn line(a: &Alert) -> String {
    format!(
        "{} {} {}",
        a.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        neutralize(&a.host),
        summary(a)
    )
}
