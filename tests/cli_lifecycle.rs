//! Operator experience without root: flag and config validation (each message asserted),
//! config precedence, SIGHUP reload (good and broken rule sets) and logfile reopen, the systemd
//! unit checks, and install.sh into a staging root.
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn replay_err(args: &[&str]) -> String {
    let out = Command::new(aurora())
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "expected failure for {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn invalid_flags_fail_fast_with_actionable_messages() {
    let rules = repo().join("rules");
    let r = rules.to_str().unwrap();
    let fx = repo().join("tests/fixtures/attack_base64.jsonl");
    let f = fx.to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().to_str().unwrap();
    let file = repo().join("README.md");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--rules", "/nonexistent-aurora", f],
            "rules directory /nonexistent-aurora: does not exist",
        ),
        (
            vec!["--rules", file.to_str().unwrap(), f],
            "is not a directory",
        ),
        (
            vec!["--rules", e, f],
            "contains no *.yml or *.yaml rule files",
        ),
        (vec![f], "no rules: give --rules DIR"),
        (
            vec!["--rules", r, "--throttle-rate", "-1", f],
            "--throttle-rate -1: must be a number ≥ 0",
        ),
        (
            vec!["--rules", r, "--throttle-burst", "0", f],
            "--throttle-burst 0: must be at least 1",
        ),
        (
            vec!["--rules", r, "--min-level", "severe", f],
            "--min-level severe: expected informational, low, medium, high or critical",
        ),
        (
            vec!["--rules", r, "--logfile", "/nonexistent-aurora/a.log", f],
            "parent directory does not exist",
        ),
        (
            vec![
                "--rules",
                r,
                "--logfile",
                "/tmp/a.log",
                "--logfile-format",
                "xml",
                f,
            ],
            "--logfile-format xml: expected json or syslog",
        ),
        (
            vec!["--rules", r, "--tcp-target", "collector", f],
            "'collector' is not host:port",
        ),
        (
            vec!["--rules", r, "--udp-target", "10.0.0.1:99999", f],
            "port '99999' is not a number in 1-65535",
        ),
        (
            vec!["--rules", r, "--tcp-tls", f],
            "--tcp-tls/--tls-ca given without --tcp-target",
        ),
        (
            vec![
                "--rules",
                r,
                "--tcp-target",
                "127.0.0.1:6514",
                "--tcp-tls",
                f,
            ],
            "--tcp-tls needs --tls-ca FILE",
        ),
        (
            vec!["--rules", r, "--no-stdout", f],
            "no output: --no-stdout without --logfile",
        ),
        (
            vec!["--rules", r, "--syslog-rfc", "1234", f],
            "--syslog-rfc 1234: expected 5424 or 3164",
        ),
        (
            vec!["--rules", r, "--syslog-facility", "local9", f],
            "--syslog-facility local9",
        ),
        (
            vec!["--rules", r, "/nonexistent-aurora.jsonl"],
            "replay input /nonexistent-aurora.jsonl: no such file",
        ),
    ];
    for (args, want) in cases {
        let err = replay_err(&args);
        assert!(err.contains(want), "{args:?}: wanted '{want}' in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn live_agent_validates_before_touching_the_kernel() {
    let out = Command::new(aurora())
        .args(["--rules", "/nonexistent-aurora", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("rules directory /nonexistent-aurora: does not exist"));
    let out = Command::new(aurora())
        .args(["--rules", "rules", "--ringbuf-size", "3000"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("below one page"));
}

#[test]
fn version_names_the_commit_and_help_shows_defaults_and_examples() {
    let v = Command::new(aurora()).arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.starts_with("aurora 0.") && v.contains('('), "{v}");
    let h = Command::new(aurora()).arg("--help").output().unwrap();
    let h = String::from_utf8_lossy(&h.stdout);
    for want in [
        "--throttle-rate",
        "[default: 1.0]",
        "--ringbuf-size",
        "Example:",
        "replay",
        "record",
        "rules",
    ] {
        assert!(h.contains(want), "--help lacks {want}");
    }
}

#[test]
fn config_file_keys_apply_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aurora.yml");
    // The base64 decode rule is `low`: a config min-level of high hides it, the flag brings it back.
    std::fs::write(
        &cfg,
        format!(
            "rules:\n  - {}\nmin-level: high\njson: true\n",
            sigmahq().display()
        ),
    )
    .unwrap();
    let fx = repo().join("tests/fixtures/attack_base64.jsonl");
    let run = |extra: &[&str]| {
        run_ok(
            Command::new(aurora())
                .args(["replay", "-c"])
                .arg(&cfg)
                .args(extra)
                .arg(&fx),
        )
    };
    let quiet = run(&[]);
    assert!(
        !quiet.contains("e2072cab"),
        "config min-level applied: {quiet}"
    );
    assert!(
        quiet.lines().all(|l| l.starts_with('{')),
        "config json: true applied"
    );
    let loud = run(&["--min-level", "low"]);
    assert!(
        loud.contains("e2072cab-8c9a-459b-b63c-40ae79e27031"),
        "flag overrides config"
    );

    std::fs::write(&cfg, "json: true\nthrotle-rate: 2\n").unwrap();
    let err = replay_err(&["-c", cfg.to_str().unwrap(), fx.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}:", cfg.display()))
            && err.contains("throtle-rate")
            && err.contains("line 2"),
        "{err}"
    );
}

fn rule(title: &str, needle: &str) -> String {
    format!(
        "title: {title}\nid: 11111111-2222-3333-4444-{:012x}\nstatus: test\nlogsource:\n  category: process_creation\n  product: linux\n\
         detection:\n  selection:\n    CommandLine|contains: '{needle}'\n  condition: selection\nlevel: high\n",
        needle.len()
    )
}

fn event(cmd: &str) -> String {
    format!(r#"{{"EventID":1,"Image":"/usr/bin/true","CommandLine":"{cmd}","ProcessId":7}}"#)
}

/// A replay reading stdin with the project's rules plus `SENTINEL_RULE`: each `send` is
/// followed by a sentinel event, and its alert marks the end of what that send raised (one
/// pipeline keeps their order), so no test waits a fixed time for "nothing more".
struct Stdin {
    child: KillOnDrop,
    stdin: std::process::ChildStdin,
    out: std::sync::mpsc::Receiver<String>,
    metrics: Option<PathBuf>,
}

const SENTINEL: &str = "aurora-test-sentinel";

impl Stdin {
    /// `rules` gets the sentinel rule too; `stdout` says whether alerts go to stdout (the
    /// sentinel then marks each send's end).
    fn start(rules: &Path, args: &[&str], metrics: Option<&Path>) -> Stdin {
        std::fs::write(rules.join("zz-sentinel.yml"), rule("Sentinel", SENTINEL)).unwrap();
        let mut cmd = Command::new(aurora());
        cmd.args(["replay", "--json", "--throttle-rate", "0", "--rules"])
            .arg(rules)
            .args(args);
        if let Some(m) = metrics {
            cmd.arg("--metrics-file").arg(m);
        }
        let mut child = cmd
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, out) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(l);
            }
        });
        Stdin {
            child: KillOnDrop(child),
            stdin,
            out,
            metrics: metrics.map(Path::to_path_buf),
        }
    }

    /// The alerts `line` raised (up to its sentinel's).
    fn send(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}\n{}", event(SENTINEL)).unwrap();
        self.stdin.flush().unwrap();
        let mut got = Vec::new();
        loop {
            let l = self
                .out
                .recv_timeout(Duration::from_secs(10))
                .expect("the sentinel's alert within 10 s");
            if l.contains("\"Sentinel\"") {
                return got;
            }
            got.push(l);
        }
    }

    /// SIGHUP, then wait until the reload was tried (the metrics file is rewritten after each,
    /// counting reloads by result).
    fn hup(&self) {
        let m = self.metrics.as_ref().expect("hup needs --metrics-file");
        let tried = || {
            family_sum(
                &std::fs::read_to_string(m).unwrap_or_default(),
                "aurora_rules_reloads_total",
            )
        };
        let before = tried();
        nix_kill(self.child.0.id(), 1);
        common::daemons::poll_until("the reload to be tried", 10, || {
            (tried() > before).then_some(())
        });
    }

    fn finish(mut self) -> String {
        drop(self.stdin);
        let status = self.child.0.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.0.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success() || !err.is_empty(), "{status}");
        err
    }
}

#[test]
fn sighup_swaps_rules_atomically_and_keeps_the_old_set_when_the_new_one_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("a.yml"), rule("Rule A", "hup-one")).unwrap();
    let prom = dir.path().join("replay.prom");
    let mut r = Stdin::start(&rules, &[], Some(&prom));
    assert_eq!(r.send(&event("x hup-one")).len(), 1, "rule A active");

    std::fs::write(rules.join("a.yml"), rule("Rule B", "hup-two-b")).unwrap();
    r.hup();
    assert_eq!(
        r.send(&event("x hup-one")).len(),
        0,
        "rule A gone after reload"
    );
    let b = r.send(&event("x hup-two-b"));
    assert!(
        b.len() == 1 && b[0].contains("Rule B"),
        "rule B active: {b:?}"
    );

    std::fs::write(rules.join("broken.yml"), "title: [unclosed\n").unwrap();
    r.hup();
    let still = r.send(&event("x hup-two-b"));
    assert_eq!(still.len(), 1, "broken set refused; rule B still active");
    let err = r.finish();
    let m = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(
        sample(&m, "aurora_rules_last_reload_success"),
        0,
        "the last reload was refused: {m}"
    );
    assert!(
        err.contains("broken.yml"),
        "the operator is told which file broke the reload: {err}"
    );
}

#[test]
fn sighup_reopens_the_logfile_after_logrotate_renamed_it() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("a.yml"), rule("Rule A", "rotate-me")).unwrap();
    let log = dir.path().join("alerts.log");
    let prom = dir.path().join("replay.prom");
    let mut r = Stdin::start(&rules, &["--logfile", log.to_str().unwrap()], Some(&prom));
    r.send(&event("first rotate-me"));
    std::fs::rename(&log, dir.path().join("alerts.log.1")).unwrap();
    r.hup();
    r.send(&event("second rotate-me"));
    r.finish();
    let old = std::fs::read_to_string(dir.path().join("alerts.log.1")).unwrap();
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(old.contains("first rotate-me") && !old.contains("second"));
    assert!(new.contains("second rotate-me") && !new.contains("first"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Control between batches: under a stream that keeps the pipeline busy (the writer and the
/// parser outrun detection with the SigmaHQ rules), a reloaded rule set takes effect within
/// 1 s of being loaded (the metric's reload time), and the whole SIGHUP → first alert of the
/// new rule stays bounded. (The unit test in `pipeline` proves the cadence deterministically.)
#[test]
fn sighup_reload_applies_within_a_second_while_events_keep_coming() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("a.yml"), rule("Rule A", "not-in-the-storm")).unwrap();
    let prom = dir.path().join("replay.prom");
    let mut child = KillOnDrop(
        Command::new(aurora())
            .args(["replay", "--json", "--throttle-rate", "0", "--rules"])
            .arg(&rules)
            .arg("--rules")
            .arg(sigmahq())
            .arg("--metrics-file")
            .arg(&prom)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        std::thread::spawn(move || {
            let chunk: String = (0..1000)
                .map(|i| event(&format!("storm sustained-b {i}")) + "\n")
                .collect();
            while !stop.load(Ordering::Relaxed) {
                if stdin.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
                written.fetch_add(1000, Ordering::Relaxed);
            }
        })
    };
    let stdout = child.0.stdout.take().unwrap();
    let (tx, first_b) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut sent = false;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if !sent && l.contains("Rule B") {
                let _ = tx.send((Instant::now(), std::time::SystemTime::now()));
                sent = true;
            }
        }
    });
    // Let the storm fill every buffer between the writer and detection.
    std::thread::sleep(Duration::from_millis(1500));
    let before = written.load(Ordering::Relaxed);
    std::fs::write(rules.join("a.yml"), rule("Rule B", "sustained-b")).unwrap();
    let hup_at = Instant::now();
    nix_kill(child.0.id(), 1);
    let got = first_b.recv_timeout(Duration::from_secs(10));
    let after = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let status = child.0.wait().unwrap();
    let (seen_at, seen_wall) = got.expect("rule B never alerted after SIGHUP");
    assert!(status.success());
    assert!(
        after > before,
        "the stream kept coming while the reload was pending ({before} → {after} events written)"
    );
    let m = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(
        sample(&m, "aurora_rules_last_reload_success"),
        1,
        "the reload is reported as successful: {m}"
    );
    let loaded_at: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("aurora_rules_last_reload_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("reload time in the metrics");
    let seen = seen_wall
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let applied_after_load = seen - loaded_at;
    assert!(
        applied_after_load <= 1.0,
        "new rules active {applied_after_load:.3} s after they loaded, under a sustained stream"
    );
    let total = seen_at.duration_since(hup_at);
    assert!(
        total <= Duration::from_secs(10),
        "SIGHUP → first alert of the new rule took {total:?}"
    );
}

fn unit_with_binary(dir: &Path) -> std::path::PathBuf {
    unit_with(dir, "")
}

/// The unit with this binary, and `drop_in`'s lines after it (as systemd merges a drop-in).
fn unit_with(dir: &Path, drop_in: &str) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(repo().join("deploy/aurora.service")).unwrap() + drop_in;
    let p = dir.join("aurora.service");
    std::fs::write(
        &p,
        unit.replace("/usr/local/bin/aurora", aurora().to_str().unwrap()),
    )
    .unwrap();
    p
}

#[test]
fn systemd_unit_verifies_and_scores_at_most_4_5() {
    let dir = tempfile::tempdir().unwrap();
    verify_and_score(&unit_with_binary(dir.path()));
}

#[test]
fn systemd_unit_with_the_response_drop_in_verifies_and_scores_at_most_4_5() {
    let dir = tempfile::tempdir().unwrap();
    let drop_in = std::fs::read_to_string(repo().join("deploy/aurora-response.conf")).unwrap();
    let unit = unit_with(dir.path(), &drop_in);
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("CAP_KILL CAP_NET_ADMIN") && text.contains("AF_NETLINK"));
    verify_and_score(&unit);
}

/// `systemd-analyze verify` passes and `security --offline` scores it at most 4.5.
fn verify_and_score(unit: &Path) {
    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze");
    assert!(
        v.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    let s = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&s.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for aurora.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in: {text}"));
    assert!(score <= 4.5, "exposure {score} > 4.5");
}

#[test]
fn install_sh_into_a_staging_root_is_idempotent_and_uninstalls() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    let install = |extra: &[&str]| {
        run_ok(
            Command::new("sh")
                .arg(repo().join("deploy/install.sh"))
                .args(["--binary", aurora().to_str().unwrap()])
                .args(extra)
                .env("DESTDIR", d),
        )
    };
    install(&[]);
    for f in [
        "usr/local/bin/aurora",
        "etc/systemd/system/aurora.service",
        "etc/default/aurora",
        "etc/aurora/rules/logsources.yml",
    ] {
        assert!(d.join(f).exists(), "{f} installed");
    }
    assert!(
        std::fs::read_to_string(d.join("etc/systemd/system/aurora.service"))
            .unwrap()
            .contains("ExecStart=/usr/local/bin/aurora")
    );
    std::fs::write(
        d.join("etc/default/aurora"),
        "AURORA_OPTS=\"--rules /custom\"\n",
    )
    .unwrap();
    let again = install(&[]);
    assert!(again.contains("keeping existing /etc/default/aurora"));
    assert!(
        std::fs::read_to_string(d.join("etc/default/aurora"))
            .unwrap()
            .contains("/custom"),
        "operator edits kept"
    );
    install(&["--uninstall"]);
    assert!(
        !d.join("usr/local/bin/aurora").exists()
            && !d.join("etc/systemd/system/aurora.service").exists()
    );
    assert!(
        d.join("etc/default/aurora").exists(),
        "config kept on uninstall"
    );
}
