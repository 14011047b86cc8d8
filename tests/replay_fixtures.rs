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

fn replay_cmd(files: &[&Path], extra: &[&str]) -> Command {
    let mut c = Command::new(aurora());
    c.args(["replay", "--json", "--rules"])
        .arg(repo().join("rules"))
        .arg("--rules")
        .arg(sigmahq())
        .args(extra)
        .args(files);
    c
}

fn replay(files: &[&Path], extra: &[&str]) -> Output {
    replay_cmd(files, extra).output().unwrap()
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
    let (out, metrics) = with_metrics(&mut replay_cmd(&[&p], &[]));
    assert!(
        !out.status.success(),
        "a rejected line makes the exit status non-zero"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:{}: not JSON", p.display(), mid + 1)),
        "{err}"
    );
    assert_eq!(
        family_sum(&metrics, "aurora_log_rejected_lines_total"),
        1,
        "{metrics}"
    );
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
    let (out, metrics) = with_metrics(&mut replay_cmd(&[&p], &[]));
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
    assert_eq!(
        family_sum(&metrics, "aurora_log_lines_total"),
        8,
        "{metrics}"
    );
    assert_eq!(
        family_sum(&metrics, "aurora_log_events_total"),
        1,
        "{metrics}"
    );
    assert_eq!(
        family_sum(&metrics, "aurora_log_rejected_lines_total"),
        6,
        "{metrics}"
    );
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
    assert_eq!(active.len(), 248, "every SigmaHQ Linux rule has a sensor");
    let fixture = fixtures().join("sigmahq_synthetic.jsonl");
    let stdout = run_ok(
        Command::new(aurora())
            // The fixture's auditd records are the rules' own; records made from its
            // process events would fire auditd rules on events written for other rules.
            .args(["replay", "--json", "--throttle-rate", "0"])
            .args(["--audit-from-sensors", "off", "--rules"])
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

/// Alerts of a replay as sorted (rule id, count) pairs.
fn per_rule(stdout: &str) -> Vec<(String, usize)> {
    let mut m = std::collections::BTreeMap::<String, usize>::new();
    for l in stdout.lines() {
        let a: Value = serde_json::from_str(l).unwrap();
        *m.entry(a["rule"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    m.into_iter().collect()
}

/// Real auditd output (ENRICHED, captured by `record_auditd.sh` from a private auditd while
/// `procedures/auditd_procedures.sh` ran) through `replay --format auditd`: the SigmaHQ
/// auditd rules the procedures should trigger, each as often as the procedure ran it.
#[test]
fn replay_of_a_real_audit_log_alerts_like_the_live_source() {
    let log = fixtures().join("auditd_capture.log");
    let (out, metrics) = with_metrics(
        Command::new(aurora())
            .args([
                "replay",
                "--format",
                "auditd",
                "--json",
                "--throttle-rate",
                "0",
                "--rules",
            ])
            .arg(sigmahq())
            .arg(&log),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        family_sum(&metrics, "aurora_log_lines_total"),
        228,
        "{metrics}"
    );
    assert_eq!(
        family_sum(&metrics, "aurora_log_events_total"),
        226,
        "{metrics}"
    );
    assert_eq!(
        family_sum(&metrics, "aurora_log_rejected_lines_total"),
        0,
        "{metrics}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want: Vec<(String, usize)> = [
        ("1f358e2e-cb63-43c3-b575-dfb072a6814f", 1), // /proc/version read (PATH)
        ("37222991-11e9-4b6d-8bdf-60fbe48f753e", 1), // dd if=/dev/zero
        ("74c01ace-0152-4094-8ae2-6fd776dd43e5", 2), // chmod, chown
        ("9a0d8ca0-2385-4020-b6c6-cb6153ca56f3", 4), // id, whoami, w, ...
        ("9e1bef8d-0fff-46f6-8465-9aa54e128c1e", 3), // PATH names with /.
        ("a3b5e3e9-1b49-4119-8b8e-0344a01f21ee", 1), // tar -czf
        ("b3cec4e7-6901-4b0d-a02d-8ab2d8eb818b", 1), // touch -t
        ("d08722cd-3d09-449a-80b4-83ea2d9d4616", 2), // touch/mkdir of dot files
        ("f34047d9-20d3-4e8b-8672-0a35cc50dc71", 1), // uname -a
    ]
    .into_iter()
    .map(|(id, n)| (id.to_owned(), n))
    .collect();
    assert_eq!(per_rule(&stdout), want);
    // The 9,000-byte argument auditd split into a1[0], a1[1], ... is one a1 again: a rule
    // matching the whole of it fires.
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("long_arg.yml"),
        "title: Long argument joined\nid: 0f6b7a4e-8f0e-4d7e-9b1e-3d1f2a9c5b10\nstatus: test\n\
         logsource: {product: linux, service: auditd}\ndetection:\n  sel:\n    type: EXECVE\n\
         \x20   a0: /bin/true\n    a1|re: '^x{9000}$'\n  condition: sel\nlevel: low\n",
    )
    .unwrap();
    let joined = run_ok(
        Command::new(aurora())
            .args([
                "replay",
                "--format",
                "auditd",
                "--json",
                "--throttle-rate",
                "0",
            ])
            .arg("--rules")
            .arg(rules.path())
            .arg(&log),
    );
    assert_eq!(joined.lines().count(), 1, "{joined}");
}

/// Syslog lines in the formats files hold (rsyslog's RFC 3339 file format, RFC 3164 with and
/// without PRI, RFC 5424) and a journal export: routed by program and facility; lines that
/// fit no format are messages of their own (keyword rules still see them), JSON that is not a
/// journal entry is rejected with FILE:LINE.
#[test]
fn replay_of_syslog_files_and_journal_exports() {
    let out = Command::new(aurora())
        .args([
            "replay",
            "--format",
            "syslog",
            "--json",
            "--throttle-rate",
            "0",
            "--rules",
        ])
        .arg(sigmahq())
        .arg(fixtures().join("syslog_capture.log"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let want: Vec<(String, usize)> = [
        ("0506a799-698b-43b4-85a1-ac4c84c720e9", 1), // pkexec, facility authpriv (not user)
        ("7fcc54cb-f27d-4684-84b7-436af096f858", 1), // sudo USER=#-1
        ("af202fd3-7bff-4212-a25a-fb34606cfcbe", 1), // CRON REPLACE
        ("e76b413a-83d0-4b94-8e4c-85db4a5b8bdc", 1), // sshd only, not notsshd
        ("f64b6e9a-5d9d-48a5-8289-e1dd2b3876e1", 1), // promiscuous mode
    ]
    .into_iter()
    .map(|(id, n)| (id.to_owned(), n))
    .collect();
    assert_eq!(
        per_rule(&String::from_utf8_lossy(&out.stdout)),
        want,
        "{err}"
    );

    let journal = fixtures().join("journal_export.jsonl");
    let out = Command::new(aurora())
        .args([
            "replay",
            "--format",
            "journal",
            "--json",
            "--throttle-rate",
            "0",
            "--rules",
        ])
        .arg(sigmahq())
        .arg(&journal)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "rejected lines make the exit status non-zero"
    );
    assert!(
        err.contains(&format!("{}:4: no MESSAGE field", journal.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:5: not JSON", journal.display())),
        "{err}"
    );
    let want: Vec<(String, usize)> = [
        ("377f33a1-4b36-4ee1-acee-1dbe4b43cfbe", 1), // vsftpd, MESSAGE as bytes, _COMM
        ("7fcc54cb-f27d-4684-84b7-436af096f858", 1),
        ("e76b413a-83d0-4b94-8e4c-85db4a5b8bdc", 1),
    ]
    .into_iter()
    .map(|(id, n)| (id.to_owned(), n))
    .collect();
    assert_eq!(
        per_rule(&String::from_utf8_lossy(&out.stdout)),
        want,
        "{err}"
    );
}

/// Any readable file replays: a FIFO a writer feeds (as process substitution gives one) and a
/// character device (`/dev/null`: nothing to read, not an error).
#[test]
fn a_fifo_and_a_character_device_replay() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("events.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let line = std::fs::read_to_string(fixtures().join("attack_base64.jsonl")).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, line).unwrap())
    };
    let out = replay(&[&fifo], &[]);
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        alert_counts(&out),
        expected(&golden("attack_base64")),
        "the FIFO's events alert as the file's do"
    );
    let out = replay(&[Path::new("/dev/null")], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(alert_counts(&out).is_empty());
}
