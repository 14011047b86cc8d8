//! What users pick instead, in the same invocation: the exec loop under auditd with an
//! `execve` audit rule (a private auditd: its log in a temp dir, `auditd -c DIR`), next to
//! the loop under Aurora, each against a baseline round run just before it (alternating, the
//! median of per-round ratios). Cleans up: rules deleted, auditd stopped, auditing disabled.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::exec::exec_loop;
use super::{median, tempdir, Agent, BenchArgs};
use crate::step;

struct Auditd(Child);

impl Auditd {
    fn start(dir: &Path) -> Result<Auditd> {
        if Command::new("pgrep")
            .args(["-x", "auditd"])
            .status()?
            .success()
        {
            bail!("an auditd already runs here: the comparison starts its own");
        }
        let conf = dir.join("auditd.conf");
        std::fs::write(
            &conf,
            format!(
                "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_group = root\n\
                 log_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 512\n\
                 num_logs = 2\nmax_log_file_action = ROTATE\nspace_left = 2\n\
                 space_left_action = SYSLOG\nadmin_space_left = 1\n\
                 admin_space_left_action = SYSLOG\ndisk_full_action = SUSPEND\n\
                 disk_error_action = SUSPEND\n",
                dir.join("audit.log").display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640))?;
        let child = Command::new("auditd")
            .arg("-c")
            .arg(dir)
            .arg("-n")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("auditd (apt package auditd)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("audit.log").exists() {
            if Instant::now() > deadline {
                bail!("auditd wrote no log in 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        auditctl(&["-D"])?;
        auditctl(&[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "execve",
            "-k",
            "aurora-bench",
        ])?;
        Ok(Auditd(child))
    }
}

fn auditctl(args: &[&str]) -> Result<()> {
    let st = Command::new("auditctl")
        .args(args)
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("auditctl {args:?} failed");
    }
    Ok(())
}

impl Drop for Auditd {
    fn drop(&mut self) {
        let _ = auditctl(&["-D"]);
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
        let _ = auditctl(&["-e", "0"]);
    }
}

fn pct(r: f64) -> f64 {
    ((r - 1.0) * 1000.0).round() / 10.0
}

pub fn part_auditd(a: &BenchArgs, sigmahq: &Path) -> Result<Value> {
    let dir = tempdir()?;
    for r in 0..a.rounds {
        for k in 0..10 {
            std::fs::write(dir.join(format!("trigger-r{r}-{k}")), "aGk=\n")?;
        }
    }
    let (mut auditd_ratios, mut aurora_ratios) = (vec![], vec![]);
    for r in 0..a.rounds {
        step(&format!(
            "auditd: round {}/{}: baseline, auditd execve rule",
            r + 1,
            a.rounds
        ));
        let base = exec_loop(a.execs, &dir, r)?.as_secs_f64();
        let adir = dir.join(format!("auditd-{r}"));
        std::fs::create_dir_all(&adir)?;
        let auditd = Auditd::start(&adir)?;
        let with = exec_loop(a.execs, &dir, r)?.as_secs_f64();
        drop(auditd);
        auditd_ratios.push(with / base);
        step(&format!(
            "auditd: round {}/{}: baseline, Aurora",
            r + 1,
            a.rounds
        ));
        let base = exec_loop(a.execs, &dir, r)?.as_secs_f64();
        let agent = Agent::start(&[
            "--rules".into(),
            sigmahq.display().to_string(),
            "--no-stdout".into(),
            "--logfile".into(),
            dir.join(format!("alerts-{r}.log")).display().to_string(),
            "--stats-interval".into(),
            "0".into(),
        ])?;
        let with = exec_loop(a.execs, &dir, r)?.as_secs_f64();
        agent.stop()?;
        aurora_ratios.push(with / base);
    }
    Ok(json!({
        "execs_per_loop": a.execs,
        "rounds": a.rounds,
        "auditd_execve_slowdown_pct": pct(median(auditd_ratios.clone())),
        "auditd_execve_slowdown_pct_per_round": auditd_ratios.iter().map(|r| pct(*r)).collect::<Vec<_>>(),
        "aurora_slowdown_pct": pct(median(aurora_ratios.clone())),
        "aurora_slowdown_pct_per_round": aurora_ratios.iter().map(|r| pct(*r)).collect::<Vec<_>>(),
    }))
}
