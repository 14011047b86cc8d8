//! audit.log lines: the parser and the event assembler take anything without panicking.
#![no_main]
use aurora_agent::sources::auditd::AuditParser;
use aurora_agent::sources::follow::LineParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut p = AuditParser::replay();
    let mut out = Vec::new();
    for line in text.split('\n') {
        let _ = p.line(line, &mut out);
    }
    p.finish(&mut out);
});
