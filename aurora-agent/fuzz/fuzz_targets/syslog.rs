//! Syslog lines (RFC 5424/3164, file formats) and journal JSON: never a panic.
#![no_main]
use aurora_agent::sources::syslog::parse::{parse_journal_json, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let _ = parse_line(line, Some("auth"));
        let _ = parse_journal_json(line);
    }
});
