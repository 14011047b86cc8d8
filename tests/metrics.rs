//! `--metrics-listen` (root, live): `/readyz` answers 503 until the sensors are attached and the
//! rules loaded, then 200; counters move as events flow (an exec raises the process_creation
//! counter, a throttled rule its throttled counter); promtool accepts the exposition.
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TMP_EXEC_RULE: &str = "8947d22a-1334-5de2-8402-a1839df5a4aa";

#[test]
#[ignore = "root and BPF (the live sensors) and promtool: run by `cargo xtask test`"]
fn readiness_counters_and_promtool() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // The scale corpus makes the rule load take long enough to see /readyz say 503.
    let agent = Command::new(aurora())
        .arg("--rules")
        .arg(repo().join("rules"))
        .arg("--rules")
        .arg(sigmahq_scale())
        .args([
            "--no-stdout",
            "--throttle-rate",
            "0.001",
            "--throttle-burst",
            "1",
        ])
        .arg("--logfile")
        .arg(dir.path().join("alerts.log"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut agent = KillOnDrop(agent);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen_503 = false;
    loop {
        match http_get(port, "/readyz").0 {
            200 => break,
            503 => {
                seen_503 = true;
                assert_eq!(
                    http_get(port, "/healthz").0,
                    200,
                    "healthz answers while not ready"
                );
            }
            _ => {}
        }
        assert!(
            agent.0.try_wait().unwrap().is_none(),
            "agent exited before ready"
        );
        assert!(Instant::now() < deadline, "not ready within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen_503,
        "/readyz said 503 while the sensors and rules were loading"
    );

    let before = http_get(port, "/metrics").1;
    let exe = dir.path().join("aurora-metrics-true");
    std::fs::copy("/bin/true", &exe).unwrap();
    // /tmp-style execution: the project rule matches each time; rate 0.001/s, burst 1 → the
    // first alerts, the other four are throttled.
    let exe = std::fs::canonicalize(&exe).unwrap();
    let in_tmp =
        std::path::Path::new("/tmp").join(format!("aurora-metrics-{}", std::process::id()));
    std::fs::copy(&exe, &in_tmp).unwrap();
    for _ in 0..5 {
        assert!(Command::new(&in_tmp).status().unwrap().success());
    }
    let execs = r#"aurora_events_processed_total{kind="process_creation"}"#;
    let throttled = format!(
        r#"aurora_rule_throttled_total{{rule_id="{TMP_EXEC_RULE}",rule_title="Program Executed From a World-Writable Directory"}}"#
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let text = http_get(port, "/metrics").1;
        if sample(&text, execs) >= sample(&before, execs) + 5 && sample(&text, &throttled) >= 4 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "counters did not move:\nbefore:\n{before}\nnow:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_file(&in_tmp);
    assert!(after.contains("aurora_build_info{"), "{after}");
    assert!(after.contains(r#"aurora_rules{state="active"}"#), "{after}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(after.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    nix_kill(agent.0.id(), 15);
    assert!(agent.0.wait().unwrap().success());
}
