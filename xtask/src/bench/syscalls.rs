//! The syscall tax: what an agent costs a workload that makes many syscalls and no opens or
//! execs (2M one-byte `dd` copies). Syscall tracepoints put every syscall of every
//! task on the tracing slow path while attached; the VFS file hook does not. 2M one-byte copies
//! (4M syscalls) pinned to one CPU, alternating rounds, the median of per-round wall-time ratios
//! against the agent being down. (dd's CPU time from `times` was tried: tick-based, it was
//! noisier than wall time on this VM.)
use std::process::Stdio;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::exec::workload;
use super::{median, Agent, BenchArgs};
use crate::step;

/// Wall seconds of one `dd` run, pinned to the second CPU (less scheduler noise).
fn dd_loop() -> Result<f64> {
    let t = std::time::Instant::now();
    let st = workload("taskset")
        .args([
            "-c",
            "1",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=1",
            "count=2000000",
        ])
        .arg("status=none")
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("dd failed");
    }
    Ok(t.elapsed().as_secs_f64())
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
    let rounds = a.rounds.max(11);
    Ok(json!({
        "auto": tax("auto", rounds)?,
        "tracepoint": tax("tracepoint", rounds)?,
        "off": tax("off", rounds)?,
    }))
}
