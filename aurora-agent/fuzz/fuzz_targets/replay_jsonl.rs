//! JSONL replay lines (ours and the Go peer's format): parse never panics; what parses
//! serializes back to a line that parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok(Some(ev)) = aurora_agent::sources::replay::parse::parse_line(line) {
            let again = serde_json::to_string(&ev).expect("events serialize");
            aurora_agent::sources::replay::parse::parse_line(&again)
                .expect("a written event parses");
        }
    }
});
