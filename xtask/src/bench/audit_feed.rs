//! The auditd-feed part: the exec loop under the agent with SigmaHQ's rules and the auditd
//! records made from its sensors (`--audit-from-sensors on`, the default) against the same
//! agent with them off, and against no agent, in rotating rounds; the points of slowdown and
//! the agent's CPU per exec the made records add.
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::exec::exec_loop;
use super::{cpu_seconds, median, rotated, tempdir, Agent, BenchArgs};
use crate::step;

/// One loop under the agent with the feed `on`: (seconds, agent CPU µs per exec).
fn agent_loop(a: &BenchArgs, sigmahq: &Path, dir: &Path, r: usize, on: bool) -> Result<(f64, f64)> {
    let args: Vec<String> = vec![
        "--rules".into(),
        sigmahq.display().to_string(),
        "--no-stdout".into(),
        "--logfile".into(),
        dir.join("alerts.log").display().to_string(),
        "--stats-interval".into(),
        "0".into(),
        "--audit-log".into(),
        "off".into(),
        "--audit-from-sensors".into(),
        if on { "on" } else { "off" }.into(),
    ];
    let agent = Agent::start(&args)?;
    let c0 = cpu_seconds(agent.pid());
    let took = exec_loop(a.execs, dir, r)?.as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let cpu_us = (cpu_seconds(agent.pid()) - c0) * 1e6 / a.execs as f64;
    agent.stop()?;
    Ok((took, cpu_us))
}

fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) fn part(a: &BenchArgs, sigmahq: &Path) -> Result<Value> {
    let dir = tempdir()?;
    for r in 0..a.rounds {
        for k in 0..10 {
            std::fs::write(dir.join(format!("trigger-r{r}-{k}")), "aGk=\n")?;
        }
    }
    let (mut off, mut on, mut cpu_off, mut cpu_on) = (vec![], vec![], vec![], vec![]);
    for r in 0..a.rounds {
        step(&format!(
            "auditfeed: round {}/{}: none, feed off, feed on",
            r + 1,
            a.rounds
        ));
        let times = rotated(r, |which| match which {
            0 => Ok(exec_loop(a.execs, &dir, r)?.as_secs_f64()),
            1 => {
                let (t, c) = agent_loop(a, sigmahq, &dir, r, false)?;
                cpu_off.push(c);
                Ok(t)
            }
            _ => {
                let (t, c) = agent_loop(a, sigmahq, &dir, r, true)?;
                cpu_on.push(c);
                Ok(t)
            }
        })?;
        off.push((times[1] / times[0] - 1.0) * 100.0);
        on.push((times[2] / times[0] - 1.0) * 100.0);
    }
    let cost: Vec<f64> = on.iter().zip(&off).map(|(n, f)| n - f).collect();
    let cpu_cost: Vec<f64> = cpu_on.iter().zip(&cpu_off).map(|(n, f)| n - f).collect();
    let per = |v: &[f64]| v.iter().map(|x| tenth(*x)).collect::<Vec<_>>();
    Ok(json!({
        "slowdown_pct_feed_off": tenth(median(off.clone())),
        "slowdown_pct_feed_on": tenth(median(on.clone())),
        "feed_cost_pts": tenth(median(cost.clone())),
        "feed_cost_pts_per_round": per(&cost),
        "agent_cpu_us_per_exec_feed_off": tenth(median(cpu_off.clone())),
        "agent_cpu_us_per_exec_feed_on": tenth(median(cpu_on.clone())),
        "feed_cpu_us_per_exec": tenth(median(cpu_cost.clone())),
        "feed_cpu_us_per_exec_per_round": per(&cpu_cost),
    }))
}
