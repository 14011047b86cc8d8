//! The exec part: an exec loop with and without the agent in alternating rounds (slowdown,
//! agent CPU and BPF run time per exec, peak RSS, loss, triggers alerted), and the loop
//! itself, which the auditd comparison shares.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{counter_sum, cpu_seconds, median, tempdir, Agent, BenchArgs};
use crate::step;

/// SigmaHQ's "Decode Base64 Encoded Text" rule, which each `base64 -d` trigger must raise.
const TRIGGER_RULE: &str = "e2072cab-8c9a-459b-b63c-40ae79e27031";

/// Nanoseconds the agent's BPF programs have run (the kernel counts them while
/// `kernel.bpf_stats_enabled` is 1), summed over the program fds in `/proc/PID/fdinfo`.
fn bpf_run_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|info| info.contains("prog_tag:"))
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("run_time_ns:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// Turns on the kernel's BPF run-time accounting for the life of the guard.
struct BpfStats(Option<String>);

impl BpfStats {
    const PATH: &'static str = "/proc/sys/kernel/bpf_stats_enabled";
    fn enable() -> BpfStats {
        let old = std::fs::read_to_string(Self::PATH).ok();
        let _ = std::fs::write(Self::PATH, "1");
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old.trim());
        }
    }
}

/// Peak resident memory (VmHWM) in MB.
fn max_rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmHWM:")
}

/// One `/proc/PID/status` memory line (`VmHWM:`, `VmRSS:`) in MB.
fn status_mb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().trim_end_matches(" kB").trim().to_owned())
        })
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A command of the measured workload. `cargo xtask` runs us with cargo's LD_LIBRARY_PATH
/// (target/ and toolchain dirs); inherited, it makes the dynamic loader of every `/bin/true`
/// try ~35 opens instead of 2, which is not the exec anyone runs in production.
pub(crate) fn workload(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_remove("LD_LIBRARY_PATH");
    c
}

/// The exec loop: `n` execs of /bin/true, with 10 `base64 -d` triggers spread through it.
pub(crate) fn exec_loop(n: usize, trigger_dir: &Path, round: usize) -> Result<Duration> {
    let every = (n / 10).max(1);
    let t = Instant::now();
    for i in 0..n {
        let st = if i % every == every / 2 {
            let f = trigger_dir.join(format!("trigger-r{round}-{}", i / every));
            workload("/usr/bin/base64")
                .arg("-d")
                .arg(&f)
                .stdout(Stdio::null())
                .status()?
        } else {
            workload("/bin/true").status()?
        };
        if !st.success() {
            bail!("exec loop command failed");
        }
    }
    Ok(t.elapsed())
}

/// The run time of the agent's programs per exec, from a loop of `n` more execs with the
/// kernel's BPF accounting on. Measured apart: the accounting reads the clock twice per
/// program run, which the timed loop, like production, does not pay.
fn bpf_us_per_exec(agent: u32, n: usize) -> Result<f64> {
    let _stats_on = BpfStats::enable();
    let k0 = bpf_run_ns(agent);
    for _ in 0..n {
        if !workload("/bin/true").status()?.success() {
            bail!("exec loop command failed");
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    Ok((bpf_run_ns(agent) - k0) as f64 / 1000.0 / n as f64)
}

/// Round `r`'s loop without the agent, in seconds.
fn baseline_loop(a: &BenchArgs, trigger_dir: &Path, r: usize) -> Result<f64> {
    step(&format!(
        "exec: round {}/{}: baseline {} execs",
        r + 1,
        a.rounds,
        a.execs
    ));
    Ok(exec_loop(a.execs, trigger_dir, r)?.as_secs_f64())
}

pub(crate) fn part_exec(a: &BenchArgs, sigmahq: &Path) -> Result<Value> {
    let dir = tempdir()?;
    for r in 0..a.rounds {
        for k in 0..10 {
            std::fs::write(dir.join(format!("trigger-r{r}-{k}")), "aGk=\n")?;
        }
    }
    let (mut base, mut with) = (vec![], vec![]);
    let (mut cpu_per_1k, mut rss, mut lost, mut alerted) = (vec![], 0f64, 0u64, 10usize);
    let mut rss_after = 0f64;
    let mut kernel_us = vec![];
    for r in 0..a.rounds {
        // Which loop of a round runs first alternates (ABBA): a drift of the machine within a
        // round then favours neither side over the rounds.
        let baseline_first = r % 2 == 0;
        if baseline_first {
            base.push(baseline_loop(a, &dir, r)?);
        }
        let log = dir.join(format!("alerts-{r}.log"));
        let mut args = vec![
            "--rules".into(),
            sigmahq.display().to_string(),
            "--json".into(),
            "--no-stdout".into(),
            "--logfile".into(),
            log.display().to_string(),
            "--stats-interval".into(),
            "0".into(),
        ];
        if a.quick {
            // A quick loop's 10 triggers come ~150 ms apart, inside the production throttle's
            // burst of 5 per rule (1/s): half would be throttled. The full loop spaces them
            // ~1.5 s apart and keeps the production setting.
            args.extend(["--throttle-burst".into(), "10".into()]);
        }
        let agent = Agent::start(&args)?;
        step(&format!(
            "exec: round {}/{}: with the agent",
            r + 1,
            a.rounds
        ));
        let c0 = cpu_seconds(agent.pid());
        let took = exec_loop(a.execs, &dir, r)?;
        std::thread::sleep(Duration::from_millis(500));
        let c1 = cpu_seconds(agent.pid());
        kernel_us.push(bpf_us_per_exec(agent.pid(), (a.execs / 10).max(100))?);
        rss = rss.max(max_rss_mb(agent.pid()));
        rss_after = rss_after.max(status_mb(agent.pid(), "VmRSS:"));
        with.push(took.as_secs_f64());
        cpu_per_1k.push((c1 - c0) / a.execs as f64 * 1000.0);
        let stats = agent.stop()?;
        lost += counter_sum(&stats, "aurora_ring_kernel_lost_total")
            + counter_sum(&stats, "aurora_queue_dropped_total");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let hits = (0..10)
            .filter(|k| {
                // The full command line, as exec'd: argv[0] is the absolute path.
                let want = format!(
                    "/usr/bin/base64 -d {}",
                    dir.join(format!("trigger-r{r}-{k}")).display()
                );
                text.lines().any(|l| {
                    l.contains(TRIGGER_RULE) && l.contains(&format!("\"CommandLine\":\"{want}\""))
                })
            })
            .count();
        alerted = alerted.min(hits);
        if !baseline_first {
            base.push(baseline_loop(a, &dir, r)?);
        }
    }
    let ratios: Vec<f64> = base.iter().zip(&with).map(|(b, w)| w / b).collect();
    let per_round: Vec<f64> = ratios
        .iter()
        .map(|r| ((r - 1.0) * 1000.0).round() / 10.0)
        .collect();
    let slowdown = median(ratios) - 1.0;
    let (b, w) = (median(base), median(with));
    let cpu = median(cpu_per_1k);
    let kernel = median(kernel_us);
    // The CPU the agent adds per exec (its own and its programs'), as a share of one exec of
    // the baseline loop: unlike the wall-time slowdown, this does not move with the machine's
    // noise.
    let cpu_share = (cpu * 1000.0 + kernel) / (b * 1e6 / a.execs as f64);
    Ok(json!({
        "execs_per_loop": a.execs,
        "rounds": a.rounds,
        "baseline_loop_s": (b * 1000.0).round() / 1000.0,
        "with_agent_loop_s": (w * 1000.0).round() / 1000.0,
        "slowdown_pct": (slowdown * 1000.0).round() / 10.0,
        "slowdown_pct_per_round": per_round,
        "agent_cpu_s_per_1000_execs": (cpu * 10000.0).round() / 10000.0,
        "agent_cpu_us_per_exec": (cpu * 1000.0 * 10.0).round() / 10.0,
        "kernel_programs_us_per_exec": (kernel * 10.0).round() / 10.0,
        "added_cpu_pct_of_an_exec": (cpu_share * 1000.0).round() / 10.0,
        "agent_max_rss_mb": (rss * 10.0).round() / 10.0,
        "agent_rss_after_storm_mb": (rss_after * 10.0).round() / 10.0,
        "events_lost": lost,
        "triggers_alerted_of_10": alerted,
    }))
}
