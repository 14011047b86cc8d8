//! The response part: the exec loop under an agent with a 10,000-entry deny policy against an
//! agent without one (and no agent), in rotating rounds; and rule-driven kill latency: a
//! process matching a kill rule is exec'd, and the time from its exec returning to its death
//! by the agent's SIGKILL is taken (the event is made in the kernel at exec; the signal is
//! sent just before the death is seen).
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::exec::{exec_loop, workload};
use super::{median, rotated, tempdir, Agent, BenchArgs};
use crate::{root, step};

/// Entries of the large deny policy: inode entries (no files needed, the same kernel lookups
/// as paths) and one sha256 entry, so the hash cache is on as in a real deployment (each
/// program of the loop is held and hashed once, then found in the cache).
const POLICY_ENTRIES: usize = 10_000;

fn write_policy(dir: &Path) -> Result<std::path::PathBuf> {
    let mut text = String::from("mode: enforce\ndeny_exec:\n");
    text.push_str(&format!("  - sha256: {}\n", "ab".repeat(32)));
    for i in 1..POLICY_ENTRIES {
        // No superblock has device 0:0 (anonymous devices start at 0:1, which is a real one:
        // the kernel's internal tmpfs, where memfd executables live): nothing is denied.
        text.push_str(&format!("  - dev: \"0:0\"\n    ino: {}\n", 1_000_000 + i));
    }
    let p = dir.join("deny-10k.yml");
    std::fs::write(&p, text)?;
    Ok(p)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One loop under an agent started with `extra`, in seconds.
fn agent_loop(a: &BenchArgs, dir: &Path, r: usize, extra: &[String]) -> Result<f64> {
    let mut args: Vec<String> = vec![
        "--rules".into(),
        root().join("rules").display().to_string(),
        "--no-stdout".into(),
        "--logfile".into(),
        dir.join("alerts.log").display().to_string(),
        "--stats-interval".into(),
        "0".into(),
    ];
    args.extend_from_slice(extra);
    let agent = Agent::start(&args)?;
    let took = exec_loop(a.execs, dir, r)?.as_secs_f64();
    agent.stop()?;
    Ok(took)
}

fn policy_rounds(a: &BenchArgs, dir: &Path) -> Result<Value> {
    for r in 0..a.rounds {
        for k in 0..10 {
            std::fs::write(dir.join(format!("trigger-r{r}-{k}")), "aGk=\n")?;
        }
    }
    let policy = write_policy(dir)?;
    let with_policy = vec!["--policy".to_owned(), policy.display().to_string()];
    let (mut plain, mut denied) = (vec![], vec![]);
    for r in 0..a.rounds {
        step(&format!(
            "response: round {}/{}: policy off/on",
            r + 1,
            a.rounds
        ));
        let times = rotated(r, |which| match which {
            0 => Ok(exec_loop(a.execs, dir, r)?.as_secs_f64()),
            1 => agent_loop(a, dir, r, &[]),
            _ => agent_loop(a, dir, r, &with_policy),
        })?;
        plain.push(times[1] / times[0] - 1.0);
        denied.push(times[2] / times[0] - 1.0);
    }
    let pts = |v: &[f64]| {
        v.iter()
            .map(|x| (x * 1000.0).round() / 10.0)
            .collect::<Vec<_>>()
    };
    let deltas: Vec<f64> = denied.iter().zip(&plain).map(|(d, p)| d - p).collect();
    Ok(json!({
        "policy_entries": POLICY_ENTRIES,
        "slowdown_pct_no_policy": (median(plain.clone()) * 1000.0).round() / 10.0,
        "slowdown_pct_with_policy": (median(denied.clone()) * 1000.0).round() / 10.0,
        "policy_cost_pts": (median(deltas.clone()) * 1000.0).round() / 10.0,
        "policy_cost_pts_per_round": pts(&deltas),
        "slowdown_pct_no_policy_per_round": pts(&plain),
        "slowdown_pct_with_policy_per_round": pts(&denied),
    }))
}

fn kill_latency(a: &BenchArgs, dir: &Path) -> Result<Value> {
    let marker = format!("aurora-bench-kill-{}", std::process::id());
    let rules = dir.join("kill-rules");
    std::fs::create_dir_all(&rules)?;
    std::fs::write(
        rules.join("kill.yml"),
        format!(
            "title: bench kill\nid: 6c0e9a10-0000-4000-8000-0000000000b1\nstatus: test\n\
             level: high\nlogsource: {{product: linux, category: process_creation}}\n\
             detection: {{sel: {{CommandLine|contains: '{marker}'}}, condition: sel}}\n"
        ),
    )?;
    let cfg = dir.join("kill.yml");
    std::fs::write(
        &cfg,
        "response:\n  mode: enforce\n  rate_limit: 1000/sec\n  actions:\n    \
         - { rule: 6c0e9a10-0000-4000-8000-0000000000b1, action: kill }\n",
    )?;
    let agent = Agent::start(&[
        "--rules".into(),
        rules.display().to_string(),
        "-c".into(),
        cfg.display().to_string(),
        "--throttle-rate".into(),
        "0".into(),
        "--no-stdout".into(),
        "--logfile".into(),
        dir.join("kills.log").display().to_string(),
    ])?;
    let n = if a.quick { 50 } else { 300 };
    step(&format!("response: kill latency over {n} kills"));
    let mut ms = vec![];
    for _ in 0..n {
        use std::os::unix::process::CommandExt as _;
        let mut child = workload("/usr/bin/sleep").arg0(&marker).arg("30").spawn()?;
        let t = Instant::now();
        let st = child.wait()?;
        if st.signal() != Some(9) {
            bail!("a matched process was not killed: {st}");
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(5));
    }
    agent.stop()?;
    Ok(json!({
        "kills": n,
        "kill_latency_ms_median": (median(ms.clone()) * 100.0).round() / 100.0,
        "kill_latency_ms_p99": (percentile(ms, 0.99) * 100.0).round() / 100.0,
    }))
}

pub(crate) fn part_response(a: &BenchArgs) -> Result<Value> {
    let dir = tempdir()?;
    let mut out = policy_rounds(a, &dir)?;
    let kill = kill_latency(a, &dir)?;
    if let (Some(o), Some(k)) = (out.as_object_mut(), kill.as_object()) {
        o.extend(k.clone());
    }
    Ok(out)
}
