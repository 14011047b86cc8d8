//! The syscall tax: what an agent costs a workload that makes many syscalls and no opens or
//! execs (1M one-byte `dd` reads and writes). Syscall tracepoints put every syscall of every
//! task on the tracing slow path while attached; the VFS file hook does not. Measured as dd's
//! own CPU time (user + system, from the shell's `times`), which the slow path raises and which
//! other load on the machine does not; alternating rounds, the median of per-round ratios
//! against the agent being down.
use std::process::Stdio;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::{median, workload, Agent, BenchArgs};
use crate::step;

/// CPU seconds (user + system) of one `dd` run.
fn dd_loop() -> Result<f64> {
    let out = workload("bash")
        .args([
            "-c",
            "dd if=/dev/zero of=/dev/null bs=1 count=1000000 status=none && times",
        ])
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("dd failed");
    }
    // `times`: the shell's user/system line, then its children's ("0m0.312s 0m0.951s").
    let text = String::from_utf8_lossy(&out.stdout);
    let children = text.lines().nth(1).unwrap_or_default();
    let secs = |t: &str| -> Option<f64> {
        let (m, s) = t.trim_end_matches('s').split_once('m')?;
        Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
    };
    let total: Option<f64> = children.split_whitespace().map(secs).sum();
    total.with_context(|| format!("unexpected `times` output: {text}"))
}

/// Tax of the agent with `--file-sensor MODE` (returns the mode that really ran, as its
/// ready file said, and the per-round slowdowns).
fn tax(mode: &str, rounds: usize) -> Result<Value> {
    let mut ratios = Vec::new();
    let mut ran = String::new();
    for r in 0..rounds {
        step(&format!(
            "syscalls: --file-sensor {mode}: round {}/{rounds}",
            r + 1
        ));
        let base = dd_loop()?;
        let agent = Agent::start(&[
            "record".into(),
            "--output".into(),
            "/dev/null".into(),
            "--file-sensor".into(),
            mode.into(),
        ])?;
        ran = agent.ready["file_sensor"]["mode"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let with = dd_loop()?;
        agent.stop()?;
        ratios.push(with / base);
    }
    let per_round: Vec<f64> = ratios
        .iter()
        .map(|r| ((r - 1.0) * 1000.0).round() / 10.0)
        .collect();
    Ok(json!({
        "file_sensor_requested": mode,
        "file_sensor_ran": ran,
        "tax_pct": ((median(ratios) - 1.0) * 1000.0).round() / 10.0,
        "tax_pct_per_round": per_round,
    }))
}

pub fn part(a: &BenchArgs) -> Result<Value> {
    let rounds = a.rounds.max(9);
    Ok(json!({
        "auto": tax("auto", rounds)?,
        "tracepoint": tax("tracepoint", rounds)?,
        "off": tax("off", rounds)?,
    }))
}
