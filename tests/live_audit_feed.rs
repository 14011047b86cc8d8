//! SigmaHQ's auditd rules fed by the eBPF sensors (root): with no auditd, the programs of the
//! techniques those rules are written for each raise their rule, from the EXECVE, SYSCALL and
//! PATH records the agent makes from its exec sensor and its kernel watch of the files PATH
//! rules name; with a private auditd logging the same execs and opens, each raises it exactly
//! once; and a recording of the run replays to the same alerts.
mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use common::auditd::{auditctl, Auditd, KEY};
use common::*;
use serde_json::Value;

const HIDDEN_FILES: &str = "d08722cd-3d09-449a-80b4-83ea2d9d4616";
const BINARY_PADDING: &str = "c52a914f-3d8b-4b2a-bb75-b3991e75f8ba";
const TIMESTOMP: &str = "b3cec4e7-6901-4b0d-a02d-8ab2d8eb818b";
const COMPRESSED: &str = "a3b5e3e9-1b49-4119-8b8e-0344a01f21ee";
const CRED_IN_FILES: &str = "df3fcaea-2715-4214-99c5-0056ea59eb35";
const PASSWORD_POLICY: &str = "ca94a6db-8106-4737-9ed2-3e3bb826af0a";
const SPLIT: &str = "2dad0cba-c62a-4a4f-949f-5f6ecd619769";
const USER_DISCOVERY: &str = "9a0d8ca0-2385-4020-b6c6-cb6153ca56f3";

/// The PAM file of the password policy (Debian's name for it).
const PAM_PASSWORD: &str = "/etc/pam.d/common-password";

/// One technique's program: its rule and the pid that ran it.
struct Ran {
    rule: &'static str,
    what: String,
    pid: u32,
}

fn run(rule: &'static str, cmd: &str, args: &[&str], cwd: &Path) -> Ran {
    let mut child = Command::new(cmd)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (`cargo xtask setup --test-deps` installs it)"));
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{cmd} {args:?} failed");
    Ran {
        rule,
        what: format!("{cmd} {}", args.join(" ")),
        pid,
    }
}

/// Every program, run in `work`.
fn techniques(work: &Path) -> Vec<Ran> {
    std::fs::create_dir_all(work.join("docs")).unwrap();
    std::fs::write(work.join("docs/notes"), "the password is hunter2\n").unwrap();
    vec![
        run(HIDDEN_FILES, "mkdir", &[".stash"], work),
        run(HIDDEN_FILES, "ls", &["-la", ".stash"], work),
        run(
            BINARY_PADDING,
            "dd",
            &["if=/dev/zero", "bs=1", "count=64", "status=none"],
            work,
        ),
        run(
            TIMESTOMP,
            "touch",
            &["-t", "202001010000", "docs/notes"],
            work,
        ),
        run(COMPRESSED, "tar", &["-cf", "docs.tar", "docs"], work),
        run(COMPRESSED, "zip", &["-qr", "docs.zip", "docs"], work),
        run(CRED_IN_FILES, "grep", &["-ri", "password", "docs"], work),
        run(PASSWORD_POLICY, "cat", &[PAM_PASSWORD], work),
        run(SPLIT, "split", &["-b", "8", "docs/notes", "part-"], work),
        run(USER_DISCOVERY, "w", &[], work),
        run(USER_DISCOVERY, "who", &[], work),
    ]
}

fn raised<'a>(alerts: &'a [Value], r: &Ran) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| {
            a["rule"]["id"] == r.rule
                && a["event"]["pid"].as_str().and_then(|p| p.parse().ok()) == Some(r.pid)
        })
        .collect()
}

/// The `ls -la .stash` of the list is not what the hidden-files rule is about (mkdir, touch,
/// vi…): it is run so the directory is listed, not expected to alert.
fn expected(r: &Ran) -> bool {
    !r.what.starts_with("ls ")
}

fn agent_args(dir: &Path, audit_log: Option<&Path>) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--rules".into(),
        sigmahq().into(),
        "--system-log".into(),
        "off".into(),
        "--state-dir".into(),
        dir.join("state").into(),
        "--audit-log".into(),
    ];
    a.push(audit_log.map_or_else(|| "off".into(), |p| p.into()));
    a
}

fn wait_all(agent: &Agent, ran: &[Ran]) -> Vec<Value> {
    agent.wait_until(20, |all| {
        ran.iter()
            .filter(|r| expected(r))
            .all(|r| !raised(all, r).is_empty())
    })
}

fn assert_each_once(alerts: &[Value], ran: &[Ran]) {
    for r in ran.iter().filter(|r| expected(r)) {
        let got = raised(alerts, r);
        assert_eq!(got.len(), 1, "`{}` raises {} once: {got:?}", r.what, r.rule);
    }
}

#[test]
#[ignore = "root and the eBPF sensors: run by `cargo xtask test`"]
fn auditd_rules_alert_without_auditd_and_a_recording_replays_to_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let agent = Agent::start(dir.path(), &agent_args(dir.path(), None));
    let ran = techniques(&work);
    let alerts = wait_all(&agent, &ran);
    assert_each_once(&alerts, &ran);
    let pam = raised(&alerts, &ran[7]);
    assert_eq!(
        (
            &pam[0]["event"]["type"],
            &pam[0]["event"]["name"],
            &pam[0]["event"]["AuditSource"]
        ),
        (
            &Value::from("PATH"),
            &Value::from(PAM_PASSWORD),
            &Value::from("ebpf")
        ),
        "the open of the PAM file as a PATH record"
    );
    let split = &raised(&alerts, &ran[8])[0]["event"];
    assert_eq!(
        (&split["type"], &split["comm"]),
        (&"SYSCALL".into(), &"split".into())
    );
    let metrics = agent.metrics();
    assert!(
        family_sum(&metrics, "aurora_audit_records_made_total") > 0,
        "{metrics}"
    );
    agent.stop();

    // The same programs recorded, then replayed: the same rules for the same processes.
    let rec = dir.path().join("rec.jsonl");
    let mut recorder = Guarded::new(
        Command::new(aurora())
            .args(["record", "--system-log", "off", "--audit-log", "off", "-o"])
            .arg(&rec)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::daemons::poll_until("the recorder to write", 10, || {
        std::fs::metadata(&rec)
            .ok()
            .filter(|m| m.len() > 0)
            .map(|_| ())
    });
    let replay_work = dir.path().join("replay-work");
    std::fs::create_dir(&replay_work).unwrap();
    let recorded = techniques(&replay_work);
    common::daemons::poll_until("the recording to hold the last program", 10, || {
        let last = recorded.last().unwrap().pid.to_string();
        std::fs::read_to_string(&rec)
            .unwrap_or_default()
            .contains(&format!("\"ProcessId\":{last},"))
            .then_some(())
    });
    nix_kill(recorder.child().id(), 15);
    let _ = recorder.wait_with_output();
    let out = run_ok(
        Command::new(aurora())
            .args(["replay", "--json", "--throttle-rate", "0", "--rules"])
            .arg(sigmahq())
            .arg(&rec),
    );
    let replayed: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for r in recorded.iter().filter(|r| expected(r)) {
        // The PAM file's open is a kernel watch of a live agent with the rules loaded; the
        // recorder loads none, so its PATH record is not in the recording.
        if r.rule == PASSWORD_POLICY {
            continue;
        }
        assert_eq!(raised(&replayed, r).len(), 1, "replayed `{}`", r.what);
    }
}

#[test]
#[ignore = "root, the eBPF sensors and a private auditd: run by `cargo xtask test`"]
fn with_auditd_logging_the_same_execs_each_rule_raises_once() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let auditd = Auditd::start(dir.path(), &work, KEY);
    auditctl(&["-w", PAM_PASSWORD, "-p", "r", "-k", KEY]);
    let log = dir.path().join("audit.log");
    let agent = Agent::start(dir.path(), &agent_args(dir.path(), Some(&log)));
    let ran = techniques(&work);
    let _ = wait_all(&agent, &ran);
    // auditd's copies of the last program's records are in and were recognised: everything
    // before them in its log was, too.
    let last = ran.last().unwrap().pid.to_string();
    common::daemons::poll_until("auditd's records to be matched", 20, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.contains(&format!(" pid={last} "))
            && family_sum(&agent.metrics(), "aurora_audit_duplicates_total") >= ran.len() as u64)
            .then_some(())
    });
    // One more exec, logged by both, after the rest: once its alert is in, every alert the
    // programs above could cause is.
    let marker_run = run(USER_DISCOVERY, "who", &[], &work);
    let alerts = agent.wait_until(20, |all| !raised(all, &marker_run).is_empty());
    assert_each_once(&alerts, &ran);
    assert_eq!(raised(&alerts, &marker_run).len(), 1);
    agent.stop();
    drop(auditd);
}
