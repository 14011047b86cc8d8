//! The auditd source against a real auditd (root): a private auditd instance writes its log in
//! a temp dir (`auditd -c DIR`), with keyed rules loaded by auditctl; the agent follows that
//! log and alerts with SigmaHQ's auditd rules; a restart resumes at the saved position (no
//! record lost while it was down, none repeated). Cleans up: rules deleted, auditd stopped,
//! auditing disabled.
mod common;

use std::ffi::OsString;
use std::process::Command;

use common::auditd::{Auditd, KEY};
use common::*;
use serde_json::Value;

const PERMISSIONS_CHANGE: &str = "74c01ace-0152-4094-8ae2-6fd776dd43e5";
const HIDDEN_PATH: &str = "9e1bef8d-0fff-46f6-8465-9aa54e128c1e";
/// SigmaHQ's `'|all': [grep, password]` EXECVE rule: the keywords in a0 and a2.
const CRED_IN_FILES: &str = "df3fcaea-2715-4214-99c5-0056ea59eb35";

fn run(cmd: &str, args: &[&str]) {
    assert!(Command::new(cmd).args(args).status().unwrap().success());
}

fn ours<'a>(alerts: &'a [Value], rule: &str, needle: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["rule"]["id"] == rule && a["event"].to_string().contains(needle))
        .collect()
}

#[test]
#[ignore = "root and a private auditd: run by `cargo xtask test`"]
fn auditd_records_alert_live_and_a_restart_neither_loses_nor_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let auditd = Auditd::start(dir.path(), &work, KEY);
    let m = marker("audit");
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir(&agent_dir).unwrap();
    let args: Vec<OsString> = vec![
        "--rules".into(),
        sigmahq().into(),
        "--audit-log".into(),
        dir.path().join("audit.log").into(),
        "--system-log".into(),
        "off".into(),
        // The auditd source is what is tested here, not the records made from the sensors.
        "--audit-from-sensors".into(),
        "off".into(),
        "--state-dir".into(),
        agent_dir.join("state").into(),
    ];
    let agent = Agent::start(&agent_dir, &args);
    assert_eq!(
        agent.ready["log_sources"][0]["source"], "auditd",
        "{}",
        agent.ready
    );

    let first = work.join(format!("{m}-first"));
    std::fs::write(&first, "x").unwrap();
    run("chmod", &["640", first.to_str().unwrap()]);
    let hidden = work.join(format!(".{m}-hidden"));
    run("touch", &[hidden.to_str().unwrap()]);
    // The temp dir is itself hidden (`/tmp/.tmpXXXX`): the hidden-path rule also fires on the
    // first file, so wait for both alerts this test is about, not for any two.
    let a = agent.wait_until(10, |all| {
        !ours(all, PERMISSIONS_CHANGE, &format!("{m}-first")).is_empty()
            && !ours(all, HIDDEN_PATH, &format!(".{m}-hidden")).is_empty()
    });
    let chmod = ours(&a, PERMISSIONS_CHANGE, &format!("{m}-first"));
    assert_eq!(chmod.len(), 1, "one alert for the chmod: {a:?}");
    let e = &chmod[0]["event"];
    assert_eq!(e["EventID"], 100);
    assert_eq!(e["type"], "EXECVE");
    assert_eq!(e["a0"], "chmod");
    assert_eq!(e["a2"], first.to_str().unwrap());
    assert_eq!(e["key"], KEY, "the SYSCALL record's key is merged in");
    assert_eq!(e["SYSCALL"], "execve");
    assert!(e["exe"].as_str().unwrap().ends_with("/chmod"));
    let hid = ours(&a, HIDDEN_PATH, &format!(".{m}-hidden"));
    assert!(!hid.is_empty(), "a PATH record of the hidden file: {a:?}");
    assert_eq!(hid[0]["event"]["type"], "PATH");
    // grep's argv spread over a0..a3: every keyword of the `'|all'` list found in the record.
    let _ = Command::new("grep")
        .args(["-r", "password", work.to_str().unwrap()])
        .output()
        .unwrap();
    let cred = agent.wait_for(10, 1, |a| {
        a["rule"]["id"] == CRED_IN_FILES && a["event"]["a3"] == work.to_str().unwrap()
    });
    assert_eq!(cred.len(), 1, "{cred:?}");
    assert_eq!(cred[0]["event"]["a0"], "grep");
    assert_eq!(cred[0]["event"]["a2"], "password");
    agent.stop();

    // While the agent is down auditd keeps writing.
    let second = work.join(format!("{m}-second"));
    std::fs::write(&second, "x").unwrap();
    run("chmod", &["600", second.to_str().unwrap()]);
    let log = dir.path().join("audit.log");
    // auditd has written it (the file is the typed answer, not a delay).
    common::daemons::poll_until("auditd to log the chmod", 10, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!("{m}-second"))
            .then_some(())
    });
    let agent = Agent::start(&agent_dir, &args);
    let again = agent.wait_for(10, 1, |a| {
        a["rule"]["id"] == PERMISSIONS_CHANGE
            && a["event"].to_string().contains(&format!("{m}-second"))
    });
    assert_eq!(
        again.len(),
        1,
        "the chmod made while the agent was down alerts once"
    );
    // A later chmod's alert marks the end of everything before it in the log (read in order).
    let third = work.join(format!("{m}-third"));
    std::fs::write(&third, "x").unwrap();
    run("chmod", &["600", third.to_str().unwrap()]);
    let all = agent.wait_until(10, |all| {
        !ours(all, PERMISSIONS_CHANGE, &format!("{m}-third")).is_empty()
    });
    assert_eq!(
        ours(&all, PERMISSIONS_CHANGE, &format!("{m}-first")).len(),
        1,
        "nothing before the saved position is read again"
    );
    assert_eq!(
        ours(&all, PERMISSIONS_CHANGE, &format!("{m}-second")).len(),
        1,
        "nor the chmod made while the agent was down"
    );
    let metrics = agent.metrics();
    let series = format!(
        "aurora_log_events_total{{source=\"auditd\",path=\"{}\"}}",
        dir.path().join("audit.log").display()
    );
    assert!(sample(&metrics, &series) > 0, "{series}: {metrics}");
    agent.stop();
    drop(auditd);
}
