//! Sigma conformance of the detection engine, table-driven from
//! `tests/fixtures/sigma_conformance.yml` (the specification's modifiers, value types,
//! wildcards, conditions and keywords). Each case's rule is checked three ways that must
//! agree with the table: rsigma alone on every rule (`RuleSet::evaluate_all`), the prefiltered
//! path the agent runs (`RuleSet::evaluate`), and `aurora replay` end to end. A case marked
//! `invalid` must be reported invalid by `aurora rules check` with its reason, never loaded as
//! a rule that cannot fire. No network, no root.
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use aurora_agent::detect::{DetectConfig, Detector};
use aurora_agent::sources::replay::parse::parse_line;
use aurora_agent::stats::DetectStats;
use common::*;
use serde_json::{json, Value};

struct Case {
    name: String,
    id: String,
    rule: String,
    event_id: u64,
    /// (ProcessId, event JSON line, must match)
    events: Vec<(i64, String, bool)>,
    invalid: Option<String>,
}

/// (logsource YAML, EventID) of a case's `logsource` key.
fn logsource(name: &str) -> (&'static str, u64) {
    match name {
        "process_creation" => ("{ product: linux, category: process_creation }", 1),
        "network_connection" => ("{ product: linux, category: network_connection }", 3),
        "auditd" => ("{ product: linux, service: auditd }", 100),
        "syslog" => ("{ product: linux, service: syslog }", 101),
        other => panic!("unknown logsource {other} in the conformance table"),
    }
}

fn cases() -> Vec<Case> {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/sigma_conformance.yml")).unwrap();
    let table: Value = yaml_serde::from_str(&text).expect("the conformance table is YAML");
    let mut pid = 1000;
    let mut out = Vec::new();
    for (i, c) in table["cases"].as_array().unwrap().iter().enumerate() {
        let name = c["name"].as_str().unwrap().to_owned();
        let (ls, event_id) = logsource(c["logsource"].as_str().unwrap_or("process_creation"));
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let detection = serde_json::to_string(&c["detection"]).unwrap();
        let rule = format!(
            "title: {name}\nid: {id}\nstatus: test\nlevel: high\nlogsource: {ls}\ndetection: {detection}\n"
        );
        let mut events = Vec::new();
        for (key, want) in [("match", true), ("nomatch", false)] {
            for e in c[key].as_array().into_iter().flatten() {
                pid += 1;
                let mut e = e.clone();
                e["EventID"] = json!(event_id);
                // The keyword cases test the whole line: they give their own ProcessId.
                let own = e.get("ProcessId").and_then(Value::as_i64);
                if own.is_none() {
                    e["ProcessId"] = json!(pid);
                }
                e["AuroraCase"] = json!(pid);
                events.push((pid, e.to_string(), want));
            }
        }
        out.push(Case {
            name,
            id,
            rule,
            event_id,
            events,
            invalid: c["invalid"].as_str().map(str::to_owned),
        });
    }
    assert!(out.len() >= 40, "the table has its cases");
    out
}

fn write_rules(dir: &Path, cases: &[&Case]) {
    for (i, c) in cases.iter().enumerate() {
        std::fs::write(dir.join(format!("case_{i:03}.yml")), &c.rule).unwrap();
    }
}

/// rsigma alone and the prefiltered path agree with the table, case by case.
#[test]
fn every_case_matches_as_the_specification_says_with_and_without_the_prefilter() {
    let mut failures = Vec::new();
    for case in cases().iter().filter(|c| c.invalid.is_none()) {
        let dir = tempfile::tempdir().unwrap();
        write_rules(dir.path(), &[case]);
        let cfg = DetectConfig {
            rule_dirs: vec![dir.path().to_path_buf()],
            logsource_map: Some(repo().join("rules/logsources.yml")),
            ..Default::default()
        };
        let mut d = Detector::load(&cfg, Arc::new(DetectStats::default()))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(d.rule_count(), 1, "{}: the rule is active", case.name);
        let mut fast = Vec::new();
        for (_, line, want) in &case.events {
            let ev = parse_line(line).unwrap().unwrap();
            assert_eq!(ev.kind.event_id() as u64, case.event_id);
            let (mut engine, mut prefiltered) = (false, false);
            for set in d.rule_sets(ev.kind) {
                let reference = set.evaluate_all(&ev);
                set.evaluate(&ev, &mut fast);
                assert_eq!(
                    fast, reference,
                    "{}: the prefilter changed the result for {line}",
                    case.name
                );
                engine |= !reference.is_empty();
                prefiltered |= !fast.is_empty();
            }
            if engine != *want || prefiltered != *want {
                failures.push(format!(
                    "{}: {line}: wanted {}, engine {engine}, prefiltered {prefiltered}",
                    case.name,
                    if *want { "match" } else { "no match" }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same table end to end: every rule in one directory, every event in one replay.
#[test]
fn replay_alerts_exactly_on_the_matching_events() {
    let all = cases();
    let valid: Vec<&Case> = all.iter().filter(|c| c.invalid.is_none()).collect();
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), &valid);
    std::fs::copy(
        repo().join("rules/logsources.yml"),
        dir.path().join("logsources.yml"),
    )
    .unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = String::new();
    let mut want = BTreeSet::new();
    for c in &valid {
        for (pid, line, m) in &c.events {
            text += line;
            text.push('\n');
            if *m {
                want.insert((c.id.clone(), *pid));
            }
        }
    }
    std::fs::write(&input, text).unwrap();
    let stdout = run_ok(
        Command::new(aurora())
            // Each case's auditd events are given: none are to be made from its others.
            .args(["replay", "--json", "--throttle-rate", "0"])
            .args(["--audit-from-sensors", "off", "--rules"])
            .arg(dir.path())
            .arg(&input),
    );
    // Each case judges its own rule on its own events only.
    let case_of = |pid: i64| valid.iter().find(|c| c.events.iter().any(|e| e.0 == pid));
    let fired: BTreeSet<(String, i64)> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|a| {
            let pid = a["event"]["AuroraCase"].as_i64().unwrap();
            (a["rule"]["id"].as_str().unwrap().to_owned(), pid)
        })
        .filter(|(id, pid)| case_of(*pid).is_some_and(|c| &c.id == id))
        .collect();
    let name = |id: &str| valid.iter().find(|c| c.id == id).unwrap().name.clone();
    let missing: Vec<String> = want
        .difference(&fired)
        .map(|(id, pid)| format!("{} (event {pid})", name(id)))
        .collect();
    let extra: Vec<String> = fired
        .difference(&want)
        .map(|(id, pid)| format!("{} (event {pid})", name(id)))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing alerts: {missing:?}\nunexpected alerts: {extra:?}"
    );
}

/// What the engine does not support is reported, with the reason: never a dead rule.
#[test]
fn unsupported_or_malformed_detections_are_invalid_with_the_reason() {
    let all = cases();
    let invalid: Vec<&Case> = all.iter().filter(|c| c.invalid.is_some()).collect();
    assert!(!invalid.is_empty());
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), &invalid);
    let out = Command::new(aurora())
        .args(["rules", "check", "--json"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, c) in invalid.iter().enumerate() {
        // By file: a rule that does not parse has no id in the report.
        let file = format!("case_{i:03}.yml");
        let r = report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(&file)))
            .unwrap_or_else(|| panic!("{}: not in the report: {report}", c.name));
        assert_eq!(r["status"], "invalid", "{}: {r}", c.name);
        let reason = r.to_string().to_lowercase();
        let want = c.invalid.as_deref().unwrap().to_lowercase();
        assert!(
            reason.contains(&want),
            "{}: reason lacks {want:?}: {r}",
            c.name
        );
    }
}
