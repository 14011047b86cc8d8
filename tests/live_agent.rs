//! The live agent end to end (root): real sensors → SigmaHQ rules → logfile, and a SIGTERM
//! that loses no alert already matched.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn base64_decode_alerts_and_sigterm_drains_every_matched_alert() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("alerts.log");
    let m = marker("b64");
    let ready = dir.path().join("ready.json");
    let mut agent = KillOnDrop(
        Command::new(aurora())
            .arg("--rules")
            .arg(sigmahq())
            .arg("--rules")
            .arg(repo().join("rules"))
            .args(["--no-stdout", "--throttle-rate", "0", "--logfile"])
            .arg(&log)
            .arg("--ready-file")
            .arg(&ready)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stderr_lines(&mut agent.0);
    let state = wait_ready(&mut agent.0, &ready, &rx);
    assert!(
        state["rules_active"].as_u64().unwrap() > 100,
        "the agent is ready only with its rules loaded: {state}"
    );
    let policies = thread_policies(agent.0.id());
    assert!(
        policies.len() >= 2 && policies.iter().all(|(_, p)| *p == SCHED_BATCH),
        "every agent thread runs SCHED_BATCH by default: {policies:?}"
    );
    let payload = dir.path().join(&m);
    std::fs::write(&payload, "aGk=\n").unwrap();
    for _ in 0..20 {
        let st = Command::new("base64")
            .arg("-d")
            .arg(&payload)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    // Stop at once: alerts already matched (or still in the rings) must still be written.
    let stop = Instant::now();
    nix_kill(agent.0.id(), 15);
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "exit 0 on SIGTERM");
    assert!(
        stop.elapsed() < Duration::from_secs(2),
        "stopped within 2 s: {:?}",
        stop.elapsed()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let hits: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a["rule"]["id"] == "e2072cab-8c9a-459b-b63c-40ae79e27031")
        .filter(|a| {
            a["event"]["CommandLine"]
                .as_str()
                .is_some_and(|c| c.contains(&m))
        })
        .collect();
    assert_eq!(
        hits.len(),
        20,
        "every base64 -d alerted, none lost at shutdown"
    );
    let e = &hits[0]["event"];
    assert_eq!(
        e["Image"],
        std::fs::canonicalize("/usr/bin/base64")
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(e["ParentProcessId"], std::process::id() as i64);
}

const SCHED_NORMAL: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// (thread name, scheduling policy) of every thread of `pid`: field 41 of /proc/PID/task/TID/stat.
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("stat")).ok())
        .map(|stat| {
            let (head, rest) = stat.rsplit_once(')').unwrap();
            let name = head.split_once('(').unwrap().1.to_owned();
            // Fields after the name start at field 3 (state).
            let policy = rest
                .split_whitespace()
                .nth(41 - 3)
                .unwrap()
                .parse()
                .unwrap();
            (name, policy)
        })
        .collect()
}

/// `aurora record` runs the same sensors beside the same workloads: its threads are scheduled
/// like the agent's, SCHED_BATCH unless `--cpu-policy normal`; a bad policy is refused by name.
#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn record_follows_the_cpu_policy() {
    for (flag, want) in [(None, SCHED_BATCH), (Some("normal"), SCHED_NORMAL)] {
        let mut cmd = Command::new(aurora());
        cmd.args(["record", "--duration", "30", "--output", "/dev/null"]);
        cmd.args(flag.map(|f| ["--cpu-policy", f]).iter().flatten());
        let mut rec = KillOnDrop(cmd.stderr(Stdio::null()).spawn().unwrap());
        let pid = rec.0.id();
        // The policy is set before the runtime starts; give the recorder time to get there.
        let deadline = Instant::now() + Duration::from_secs(2);
        let policies = loop {
            assert!(rec.0.try_wait().unwrap().is_none(), "record exited early");
            let p = thread_policies(pid);
            if Instant::now() > deadline || p.iter().any(|(_, p)| *p != SCHED_NORMAL) {
                break p;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            policies.iter().all(|(_, p)| *p == want),
            "record {flag:?}: {policies:?}"
        );
    }
    let out = Command::new(aurora())
        .args(["record", "--cpu-policy", "fifo", "--duration", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("batch, normal"),
        "{err}"
    );
}

/// The sensors load in a short-lived child (`aurora load-sensors`, so the agent never holds the
/// kernel's parsed BTF); the agent then holds every attached program itself, and the child is
/// gone.
#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn sensors_load_in_a_child_and_the_agent_holds_the_programs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, state) = start_agent(dir.path(), &["--cpu-policy", "normal"]);
    let pid = agent.0.id();
    let policies = thread_policies(pid);
    assert!(
        policies.iter().all(|(_, p)| *p == SCHED_NORMAL),
        "--cpu-policy normal keeps SCHED_OTHER: {policies:?}"
    );
    let attached = state["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["attached"] == true)
        .count();
    assert!(attached >= 5, "core programs attached: {state}");
    assert_eq!(state["loader"]["mode"], "child", "{state}");
    let prog_fds = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter(|info| info.contains("prog_type:"))
        .count();
    assert!(
        prog_fds >= attached,
        "the agent holds a descriptor per attached program ({prog_fds} of {attached})"
    );
    let loaders: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" load-sensors"))
        .collect();
    assert!(loaders.is_empty(), "the loader child exited: {loaders:?}");
    // (Events through the handed-over rings: every other live test.)
    nix_kill(pid, 15);
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "exit 0 on SIGTERM");
}

/// `-v` turns on kernel-side logging, whose reader needs the loaded object: the agent then
/// loads the programs itself, and says so in the ready file (and the log).
#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn verbose_loads_in_process_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, state) = start_agent(dir.path(), &["-v"]);
    assert_eq!(state["loader"]["mode"], "in-process", "{state}");
    assert!(
        state["loader"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("-v")),
        "{state}"
    );
    nix_kill(agent.0.id(), 15);
    assert!(agent.0.wait().unwrap().success(), "exit 0 on SIGTERM");
}

/// The agent with the project's rules, alerts to a logfile in `dir` and `extra` flags, once
/// ready: the process (killed when dropped) and its ready file.
fn start_agent(dir: &std::path::Path, extra: &[&str]) -> (KillOnDrop, serde_json::Value) {
    let ready = dir.join("ready.json");
    let mut agent = KillOnDrop(
        Command::new(aurora())
            .arg("--rules")
            .arg(repo().join("rules"))
            .args(["--no-stdout", "--logfile"])
            .arg(dir.join("alerts.log"))
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stderr_lines(&mut agent.0);
    let state = wait_ready(&mut agent.0, &ready, &rx);
    (agent, state)
}
