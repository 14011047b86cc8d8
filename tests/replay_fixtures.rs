//! Replay (no root, no kernel): recorded fixtures must raise exactly their golden alerts, the
//! benign baseline nothing above `low` (each exception recorded with its reason), every project
//! rule must fire on some attack fixture and stay silent on the baseline, and bad input must be
//! reported line by line while the rest is processed.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

fn replay(files: &[&Path], extra: &[&str]) -> Output {
    Command::new(aurora())
        .args(["replay", "--json", "--rules"])
        .arg(repo().join("rules"))
        .arg("--rules")
        .arg(sigmahq())
        .args(extra)
        .args(files)
        .output()
        .unwrap()
}

fn alert_counts(out: &Output) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let a: Value = serde_json::from_str(l).expect("--json alerts are JSON lines");
        *m.entry(a["rule"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    m
}

fn golden(name: &str) -> Value {
    let p = fixtures().join(format!("{name}.golden.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn expected(g: &Value) -> BTreeMap<String, u64> {
    g["expected"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn fixture_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".golden.json")
                .map(str::to_owned)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_fixture_raises_exactly_its_golden_alerts() {
    let names = fixture_names();
    assert!(names.len() >= 8, "fixtures present: {names:?}");
    for name in names {
        let out = replay(&[&fixtures().join(format!("{name}.jsonl"))], &[]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            alert_counts(&out),
            expected(&golden(&name)),
            "{name}: alerts differ from golden"
        );
    }
}

#[test]
fn benign_baseline_raises_nothing_above_low_without_a_recorded_reason() {
    let out = replay(&[&fixtures().join("benign.jsonl")], &[]);
    let g = golden("benign");
    let exceptions = g["exceptions"].as_object().unwrap();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let a: Value = serde_json::from_str(l).unwrap();
        let level = a["rule"]["level"].as_str().unwrap();
        let id = a["rule"]["id"].as_str().unwrap();
        if !matches!(level, "informational" | "low") {
            assert!(
                exceptions
                    .get(id)
                    .and_then(Value::as_str)
                    .is_some_and(|r| !r.is_empty()),
                "benign baseline raised {level} alert {id} ({}) with no recorded reason",
                a["rule"]["title"]
            );
        }
    }
}

#[test]
fn every_project_rule_fires_on_an_attack_fixture_and_not_on_the_baseline() {
    let mut fired = BTreeMap::new();
    for name in fixture_names().iter().filter(|n| n.starts_with("attack_")) {
        fired.extend(expected(&golden(name)));
    }
    let benign = expected(&golden("benign"));
    let dir = repo().join("rules/linux");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .expect("rule id")
            .trim()
            .to_owned();
        assert!(
            fired.contains_key(&id),
            "{}: no positive fixture",
            path.display()
        );
        assert!(
            !benign.contains_key(&id),
            "{}: fires on the benign baseline",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 15, "project rules: {count}");
}

#[test]
fn corrupt_line_in_the_middle_is_reported_and_the_rest_processed() {
    let src = std::fs::read_to_string(fixtures().join("attack_base64.jsonl")).unwrap();
    let mut lines: Vec<&str> = src.lines().collect();
    let mid = lines.len() / 2;
    lines.insert(mid, "{\"EventID\": 1, \"Image\": broken");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("corrupt.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let out = replay(&[&p], &[]);
    assert!(
        !out.status.success(),
        "a rejected line makes the exit status non-zero"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:{}: not JSON", p.display(), mid + 1)),
        "{err}"
    );
    assert!(err.contains("1 rejected lines"), "{err}");
    assert_eq!(
        alert_counts(&out),
        expected(&golden("attack_base64")),
        "the other lines still alert"
    );
}

#[test]
fn go_aurora_linux_format_line_replays() {
    let line = r#"{"_provider":"LinuxEBPF","_eventID":"1","_source":"LinuxEBPF","_timestamp":"2025-06-01T10:00:00Z","Image":"/usr/bin/base64","CommandLine":"base64 -d","ProcessId":"4242","ParentProcessId":"1","User":"root"}"#;
    let mut child = Command::new(aurora())
        .args(["replay", "--json", "--rules"])
        .arg(sigmahq())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = alert_counts(&out);
    assert_eq!(
        alerts.get("e2072cab-8c9a-459b-b63c-40ae79e27031"),
        Some(&1),
        "{alerts:?}"
    );
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        first["event"]["ProcessId"], 4242,
        "numeric strings normalised"
    );
}

#[test]
fn hostile_input_is_rejected_per_line_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hostile.jsonl");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"[1,2,3]\n\"just a string\"\n{\"EventID\":99}\n{\"Image\":\"x\"}\n");
    bytes.extend_from_slice(b"{\"EventID\":1,\"Image\":\"\xff\xfe\"}\n");
    bytes.extend_from_slice(b"{\"EventID\":3,\"DestinationPort\":\"http\"}\n");
    bytes.extend_from_slice(
        b"{\"EventID\":1,\"Image\":\"/bin/ok\",\"CommandLine\":\"x\\u0000\\u001b[31m\\n\"}\n\n",
    );
    std::fs::write(&p, &bytes).unwrap();
    let out = replay(&[&p], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for (line, reason) in [
        (1, "not a JSON object"),
        (2, "not a JSON object"),
        (3, "unknown EventID 99"),
        (4, "missing EventID"),
        (5, "invalid UTF-8"),
        (6, "field DestinationPort: expected a number"),
    ] {
        assert!(
            err.contains(&format!("{}:{line}: {reason}", p.display())),
            "line {line}: {err}"
        );
    }
    assert!(err.contains("8 lines read, 1 events"), "{err}");
}

/// Every active SigmaHQ rule has a positive event written from its detection that fires it and
/// a near-miss (one character of each needle changed) that does not
/// (`tests/fixtures/sigmahq_synthetic.jsonl`, made by `gen_sigmahq.py`).
#[test]
fn every_active_sigmahq_rule_fires_on_its_positive_and_not_on_its_near_miss() {
    use std::collections::BTreeSet;
    let check = Command::new(aurora())
        .args(["rules", "check", "--json"])
        .arg(sigmahq())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    let active: BTreeSet<String> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "active")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(active.len(), 167);
    let fixture = fixtures().join("sigmahq_synthetic.jsonl");
    let stdout = run_ok(
        Command::new(aurora())
            .args(["replay", "--json", "--throttle-rate", "0", "--rules"])
            .arg(sigmahq())
            .arg(&fixture),
    );
    let fired: BTreeSet<(String, i64)> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|a| {
            (
                a["rule"]["id"].as_str().unwrap().to_owned(),
                a["event"]["ProcessId"].as_i64().unwrap(),
            )
        })
        .collect();
    let (mut positive, mut negative) = (BTreeSet::new(), BTreeSet::new());
    for line in std::fs::read_to_string(&fixture).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let (what, id) = e["AuroraExpect"].as_str().unwrap().split_once(' ').unwrap();
        let pid = e["ProcessId"].as_i64().unwrap();
        let hit = fired.contains(&(id.to_owned(), pid));
        match what {
            "match" => {
                assert!(hit, "positive for {id} (pid {pid}) did not fire");
                positive.insert(id.to_owned());
            }
            "nomatch" => {
                assert!(!hit, "near-miss for {id} (pid {pid}) fired");
                negative.insert(id.to_owned());
            }
            other => panic!("bad AuroraExpect {other}"),
        }
    }
    assert_eq!(positive, active, "a positive for every active rule");
    assert_eq!(negative, active, "a near-miss for every active rule");
}
