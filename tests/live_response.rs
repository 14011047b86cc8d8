//! Response on the host (root, real kernel): policy denies enforced in the kernel (exec by
//! path, through a hard link, by the sha256 of a renamed copy; audit mode; an exempt cgroup;
//! opens by path and prefix), a failed policy reload that keeps the running policy, and
//! rule-driven kills with their rails and rate limit. Every denied program is a private copy
//! with bytes of its own appended (its own inode and hash), so no other test's processes
//! match a policy here.
mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemons::poll_until;
use common::*;
use serde_json::Value;

const RESPONSE_RULE: &str = "aurora-response";

/// A copy of `/usr/bin/touch` that is its own file: trailing bytes (ignored by the ELF
/// loader) make its sha256 unique to this test.
fn private_touch(dir: &Path, name: &str) -> PathBuf {
    let mut bytes = std::fs::read("/usr/bin/touch").unwrap();
    bytes.extend_from_slice(marker(name).as_bytes());
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn sha256_of(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_owned()
}

const WOULD_BLOCK_RULE: &str = "0b6e2a52-0000-4000-8000-000000000002";

/// A rule directory with a rule nothing here matches (the agent needs one), and a Sigma rule
/// over Response events (their logsource: product linux, category response).
fn quiet_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("would-block.yml"),
        format!(
            "title: audited exec\nid: {WOULD_BLOCK_RULE}\nstatus: test\nlevel: medium\n\
             logsource: {{product: linux, category: response}}\n\
             detection: {{sel: {{Action: would_block, Operation: exec}}, condition: sel}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        rules.join("quiet.yml"),
        format!(
            "title: quiet\nid: 0b6e2a52-0000-4000-8000-000000000001\nstatus: test\nlevel: low\n\
             logsource: {{product: linux, category: process_creation}}\n\
             detection: {{sel: {{CommandLine|contains: '{}'}}, condition: sel}}\n",
            marker("never")
        ),
    )
    .unwrap();
    rules
}

fn agent_with(dir: &Path, extra: &[&str]) -> Agent {
    let rules = quiet_rules(dir);
    let mut args: Vec<std::ffi::OsString> = vec!["--rules".into(), rules.into_os_string()];
    args.extend(extra.iter().map(Into::into));
    Agent::start(dir, &args)
}

/// Response events the agent wrote (alerts under the built-in rule), with `pred`.
fn responses(agent: &Agent, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    agent
        .wait_for(10, n, |a| {
            a["rule"]["id"] == RESPONSE_RULE && pred(&a["event"])
        })
        .into_iter()
        .map(|a| a["event"].clone())
        .collect()
}

fn killed(status: std::process::ExitStatus) -> bool {
    status.signal() == Some(9)
}

/// The cgroup v2 hierarchy: the mounted one, or one mounted here for the test (hybrid hosts).
struct Cgroup2 {
    root: PathBuf,
    mounted: bool,
}

impl Cgroup2 {
    fn get() -> Cgroup2 {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        if let Some(root) = info.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mount = pre.split(' ').nth(4)?;
            post.starts_with("cgroup2 ").then(|| PathBuf::from(mount))
        }) {
            return Cgroup2 {
                root,
                mounted: false,
            };
        }
        let root = PathBuf::from("/run/aurora-test-cgroup2");
        std::fs::create_dir_all(&root).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "cgroup2", "none"])
                .arg(&root),
        );
        Cgroup2 {
            root,
            mounted: true,
        }
    }
}

impl Drop for Cgroup2 {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.root).status();
        }
    }
}

#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn exec_deny_kills_before_the_first_instruction_through_links_copies_and_not_in_exempt_cgroups() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let denied = private_touch(d, "denied-touch");
    let link = d.join("hard-link");
    std::fs::hard_link(&denied, &link).unwrap();
    let copy = d.join("renamed-copy");
    std::fs::copy(&denied, &copy).unwrap();
    let cg = Cgroup2::get();
    let exempt = format!("aurora-test-exempt-{}", std::process::id());
    let exempt_dir = cg.root.join(&exempt);
    std::fs::create_dir_all(&exempt_dir).unwrap();
    let policy = d.join("policy.yml");
    std::fs::write(
        &policy,
        format!(
            "mode: enforce\ndeny_exec:\n  - path: {}\n  - sha256: {}\nexempt:\n  cgroups: [/{exempt}]\n",
            denied.display(),
            sha256_of(&denied)
        ),
    )
    .unwrap();
    let agent = agent_with(d, &["--policy", policy.to_str().unwrap()]);
    let exec_mech = agent.ready["enforcement"][0]["mechanism"].clone();
    assert!(
        exec_mech == "tracepoint-sigkill" || exec_mech == "lsm",
        "the ready file says how exec is enforced: {}",
        agent.ready
    );

    // The program's first action would be to create its marker: it never runs.
    let mut pids = vec![];
    for (exe, name) in [(&denied, "m-path"), (&link, "m-link"), (&copy, "m-copy")] {
        let mut child = Command::new(exe).arg(d.join(name)).spawn().unwrap();
        pids.push(child.id());
        let status = child.wait().unwrap();
        if exec_mech == "lsm" {
            unreachable!("spawn fails with EPERM under BPF LSM; this host has no BPF LSM");
        }
        assert!(
            killed(status),
            "{} exited by SIGKILL: {status}",
            exe.display()
        );
        assert!(!d.join(name).exists(), "{name}: the denied program ran");
    }
    let events = responses(&agent, 3, |e| e["Operation"] == "exec");
    assert_eq!(
        events.len(),
        3,
        "one block event per denied exec: {events:?}"
    );
    let policy_line = |e: &Value| s(e, "Policy").rsplit(':').next().unwrap().to_owned();
    for (e, pid) in events.iter().zip(&pids) {
        assert_eq!(n(e, "ProcessId"), *pid as i64, "{e}");
        assert_eq!(s(e, "Action"), "killed", "{e}");
        assert_eq!(s(e, "Mode"), "enforce", "{e}");
        assert!(s(e, "Policy").starts_with(policy.to_str().unwrap()), "{e}");
    }
    // The path entry (line 3) covers the file and its hard link; the copy is another inode,
    // denied by its hash (line 4).
    assert_eq!(policy_line(&events[0]), "3");
    assert_eq!(policy_line(&events[1]), "3");
    assert_eq!(policy_line(&events[2]), "4");
    assert!(s(&events[2], "PolicyEntry").starts_with("deny_exec sha256 "));

    // In the exempt cgroup the same program runs.
    let procs = exempt_dir.join("cgroup.procs");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > '{}' && exec '{}' '{}'",
            procs.display(),
            denied.display(),
            d.join("m-exempt").display()
        ))
        .status()
        .unwrap();
    assert!(st.success(), "exempt cgroup: {st}");
    assert!(d.join("m-exempt").exists());
    agent.stop();
    let _ = std::fs::remove_dir(&exempt_dir);
}

#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn audit_mode_lets_it_run_and_says_would_block() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let denied = private_touch(d, "audited-touch");
    let policy = d.join("audit.yml");
    std::fs::write(
        &policy,
        format!("mode: audit\ndeny_exec:\n  - path: {}\n", denied.display()),
    )
    .unwrap();
    let agent = agent_with(d, &["--policy", policy.to_str().unwrap()]);
    let mut child = Command::new(&denied).arg(d.join("ran")).spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    assert!(d.join("ran").exists(), "audit mode does not stop it");
    let events = responses(&agent, 1, |e| e["ProcessId"] == pid);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(s(&events[0], "Action"), "would_block");
    assert_eq!(s(&events[0], "Mode"), "audit");
    let by_rule = agent.wait_for(10, 1, |a| a["rule"]["id"] == WOULD_BLOCK_RULE);
    assert_eq!(by_rule.len(), 1, "a Sigma rule matches the Response event");
    assert_eq!(by_rule[0]["event"]["ProcessId"], pid);
    let m = agent.metrics();
    assert_eq!(
        sample(
            &m,
            "aurora_blocks_total{action=\"would_block\",mode=\"audit\"}"
        ),
        1,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "aurora_policy_entries{list=\"deny_exec\",mode=\"audit\"}"
        ),
        1
    );
    agent.stop();
}

#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn open_deny_by_path_and_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let canary = d.join("canary");
    std::fs::write(&canary, "secret\n").unwrap();
    let secrets = d.join("secrets");
    std::fs::create_dir_all(secrets.join("deeper")).unwrap();
    std::fs::write(secrets.join("deeper/key"), "k\n").unwrap();
    std::fs::write(d.join("public"), "p\n").unwrap();
    let policy = d.join("open.yml");
    std::fs::write(
        &policy,
        format!(
            "mode: enforce\ndeny_open:\n  - path: {}\n  - prefix: {}/\n",
            canary.display(),
            secrets.display()
        ),
    )
    .unwrap();
    let agent = agent_with(d, &["--policy", policy.to_str().unwrap()]);
    let open_mech = s(&agent.ready["enforcement"][1], "mechanism").to_owned();
    assert_ne!(open_mech, "none", "{}", agent.ready);
    let cat = |p: &Path| {
        Command::new("cat")
            .arg(p)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    for p in [canary.clone(), secrets.join("deeper/key")] {
        let out = cat(&p);
        if open_mech == "lsm" {
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
        } else {
            assert!(killed(out.status), "{}: {:?}", p.display(), out.status);
        }
        assert!(out.stdout.is_empty(), "nothing of {} was read", p.display());
    }
    let out = cat(&d.join("public"));
    assert!(out.status.success(), "other files open as before");
    let events = responses(&agent, 2, |e| e["Operation"] == "open");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(s(&events[0], "TargetFilename"), canary.to_str().unwrap());
    assert!(s(&events[1], "PolicyEntry").starts_with("deny_open prefix "));
    agent.stop();
}

#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn bad_policies_name_file_and_line_and_a_failed_reload_keeps_the_running_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let denied = private_touch(d, "reload-touch");
    let cases = [
        (
            "unknown.yml",
            "mode: enforce\ndeny_exec:\n  - path: /bin/sh\nbogus: 1\n",
            ":4:",
            "bogus",
        ),
        (
            "missing.yml",
            "deny_exec:\n  - path: /nonexistent/aurora\n",
            ":2:",
            "No such file",
        ),
        (
            "hash.yml",
            "deny_exec:\n  - path: /bin/sh\n  - sha256: abc123\n",
            ":3:",
            "64 hexadecimal",
        ),
    ];
    for (name, text, line, reason) in cases {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let out = Command::new(aurora())
            .args(["policy", "check"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let msg = String::from_utf8_lossy(&out.stdout);
        assert!(
            msg.contains(&format!("{}{line}", p.display())),
            "{name}: {msg}"
        );
        assert!(msg.contains(reason), "{name}: {msg}");
        // The agent refuses to start on it, with the same message.
        let out = Command::new(aurora())
            .args(["--rules"])
            .arg(quiet_rules(d))
            .arg("--policy")
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(reason));
    }

    let policy = d.join("live.yml");
    std::fs::write(
        &policy,
        format!(
            "mode: enforce\ndeny_exec:\n  - path: {}\n",
            denied.display()
        ),
    )
    .unwrap();
    let agent = agent_with(d, &["--policy", policy.to_str().unwrap()]);
    std::fs::write(&policy, "mode: enforce\ndeny_exec:\n  - sha256: nothex\n").unwrap();
    nix_kill(agent_pid(&agent), 1);
    poll_until("the failed reload counted", 10, || {
        (sample(
            &agent.metrics(),
            "aurora_policy_reloads_total{result=\"failed\"}",
        ) == 1)
            .then_some(())
    });
    let st = Command::new(&denied).arg(d.join("m")).status().unwrap();
    assert!(killed(st), "the running policy still holds: {st}");
    agent.stop();
}

fn agent_pid(agent: &Agent) -> u32 {
    agent.ready["pid"].as_u64().unwrap() as u32
}

const RULE_SINGLE: &str = "5e2d7c34-0000-4000-8000-00000000aa01";
const RULE_STORM: &str = "5e2d7c34-0000-4000-8000-00000000aa02";

/// Two rules for processes carrying a marker in their command line: one per marker, so the
/// storm below has a rate limit of its own.
fn kill_rules(dir: &Path, single: &str, storm: &str) -> PathBuf {
    let rules = dir.join("kill-rules");
    std::fs::create_dir_all(&rules).unwrap();
    for (id, marker) in [(RULE_SINGLE, single), (RULE_STORM, storm)] {
        std::fs::write(
            rules.join(format!("{id}.yml")),
            format!(
                "title: marked sleep {id}\nid: {id}\nstatus: test\nlevel: high\n\
                 tags: [attack.t1496]\n\
                 logsource: {{product: linux, category: process_creation}}\n\
                 detection: {{sel: {{CommandLine|contains: '{marker}'}}, condition: sel}}\n"
            ),
        )
        .unwrap();
    }
    rules
}

fn response_config(dir: &Path, mode: &str, allow_image: &Path) -> PathBuf {
    let cfg = dir.join(format!("aurora-{mode}.yml"));
    std::fs::write(
        &cfg,
        format!(
            "response:\n  mode: {mode}\n  rate_limit: 5/min\n  actions:\n    \
             - {{ rule: {RULE_SINGLE}, action: kill }}\n    \
             - {{ rule: {RULE_STORM}, action: kill }}\n  \
             allow_images: [{}]\n",
            allow_image.display()
        ),
    )
    .unwrap();
    cfg
}

/// `sleep 30` with the marker as its argv[0] (sleep takes no other words).
fn sleeper(exe: &Path, marker: &str) -> Child {
    use std::os::unix::process::CommandExt as _;
    Command::new(exe)
        .arg0(format!("sleep-{marker}"))
        .arg("30")
        .spawn()
        .unwrap()
}

/// Wait up to `secs` for `child` to end; None if it still runs.
fn ended(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "root and BPF (the live sensors): run by `cargo xtask test`"]
fn rule_driven_kill_enforce_dry_run_rails_and_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = marker("kill");
    let storm_marker = marker("storm");
    let allowed = d.join("allowed-sleep");
    std::fs::copy("/usr/bin/sleep", &allowed).unwrap();
    let rules = kill_rules(d, &m, &storm_marker);

    // Dry run (the default mode): the alert says what would have happened; nothing dies.
    let dry = tempfile::tempdir().unwrap();
    let cfg = response_config(d, "dry-run", &allowed);
    let agent = Agent::start(
        dry.path(),
        &[
            "--rules".into(),
            rules.clone().into(),
            "-c".into(),
            cfg.into(),
        ],
    );
    let mut child = sleeper(Path::new("/usr/bin/sleep"), &m);
    let alerts = agent.wait_for(10, 1, |a| a["event"]["ProcessId"] == child.id());
    assert_eq!(alerts[0]["Response"], "would_kill", "{alerts:?}");
    assert!(ended(&mut child, 1).is_none(), "dry-run kills nothing");
    child.kill().unwrap();
    child.wait().unwrap();
    agent.stop();

    let cfg = response_config(d, "enforce", &allowed);
    let agent = Agent::start(
        d,
        &["--rules".into(), rules.into(), "-c".into(), cfg.into()],
    );
    let mut child = sleeper(Path::new("/usr/bin/sleep"), &m);
    let st = ended(&mut child, 10).expect("the matched process was killed");
    assert!(killed(st), "{st}");
    let alerts = agent.wait_for(10, 1, |a| a["event"]["ProcessId"] == child.id());
    assert_eq!(alerts[0]["Response"], "killed");

    // An allow-listed image is never killed, even when its rule matches.
    let mut safe = sleeper(&allowed, &m);
    let alerts = agent.wait_for(10, 1, |a| a["event"]["ProcessId"] == safe.id());
    assert_eq!(alerts[0]["Response"], "refused: allowed image");
    assert!(ended(&mut safe, 1).is_none());
    safe.kill().unwrap();
    safe.wait().unwrap();

    // 50 matches in a second with 5 per minute: 5 kills, 45 suppressed and counted, each
    // alert saying which.
    let mut storm: Vec<Child> = (0..50)
        .map(|_| sleeper(Path::new("/usr/bin/sleep"), &storm_marker))
        .collect();
    let pids: Vec<u32> = storm.iter().map(|c| c.id()).collect();
    let of_storm = |a: &Value| pids.iter().any(|p| a["event"]["ProcessId"] == *p);
    let alerts = agent.wait_until(15, |all| all.iter().filter(|a| of_storm(a)).count() >= 50);
    let said: Vec<(u32, String)> = alerts
        .iter()
        .filter(|a| of_storm(a))
        .map(|a| {
            let pid = a["event"]["ProcessId"].as_u64().unwrap() as u32;
            (pid, a["Response"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let count = |r: &str| said.iter().filter(|(_, s)| s == r).count();
    assert_eq!(
        (count("killed"), count("rate_limited")),
        (5, 45),
        "{said:?}"
    );
    for c in &mut storm {
        let was_killed = said.iter().any(|(p, r)| *p == c.id() && r == "killed");
        let st = ended(c, if was_killed { 5 } else { 0 });
        assert_eq!(st.is_some_and(killed), was_killed, "pid {}: {st:?}", c.id());
    }
    let metrics = agent.metrics();
    assert_eq!(
        sample(&metrics, "aurora_response_total{outcome=\"rate_limited\"}"),
        45
    );
    assert_eq!(
        sample(&metrics, "aurora_response_total{outcome=\"killed\"}"),
        6
    );
    for c in &mut storm {
        let _ = c.kill();
        let _ = c.wait();
    }
    agent.stop();
}
