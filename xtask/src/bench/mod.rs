//! `cargo xtask bench`: every figure a median over alternating runs, every cost a ratio against
//! a baseline measured in the same invocation. Prints a table and writes target/bench/results.json.
//!
//! Parts: detect (replay throughput, criterion-free harness in aurora-agent/benches), exec
//! (exec-loop slowdown, agent CPU per exec, max RSS, kernel loss, 10 triggers under the storm),
//! storms (file creation by syscalls and io_uring, loopback connects: seen vs expected), ring
//! (smallest zero-loss ring), syscalls (the syscall tax of each file sensor mode), auditd (the
//! exec loop under auditd's execve rule next to Aurora), nats (acked publish throughput and
//! the spool's cost).
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use crate::{root, run as run_cmd, step};

mod audit_feed;
mod exec;
mod fleet;
mod peers;
mod response;
mod storms;
mod syscalls;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Parts to run (comma-separated): detect, exec, storms, ring, syscalls, auditd, nats,
    /// control, response, auditfeed, fuzz.
    /// [default: all]
    #[arg(long, value_delimiter = ',')]
    parts: Vec<String>,
    /// Execs per loop in the exec part.
    #[arg(long, default_value_t = 20_000)]
    execs: usize,
    /// Alternating rounds (baseline, agent) per part. The exec part reports the median of the
    /// per-round ratios: on a noisy 2-core machine the loop time drifts by ±10 % over minutes,
    /// and a ratio of neighbouring runs cancels the drift (their order alternates too: ABBA).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Generated events for the detection part.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Small sizes everywhere (a smoke run, not for figures).
    #[arg(long)]
    quick: bool,
}

/// Round `r` of three loops (`run(0)`, `run(1)`, `run(2)`), each loop's time at its index.
/// Which runs first rotates with the round: a drift of the machine favours none of them.
pub(crate) fn rotated(r: usize, mut run: impl FnMut(usize) -> Result<f64>) -> Result<[f64; 3]> {
    let mut times = [0f64; 3];
    for k in 0..3 {
        let which = (k + r) % 3;
        times[which] = run(which)?;
    }
    Ok(times)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // fields 14/15 of stat are utime/stime; after "pid (comm) " they are at 11/12.
    (ticks(11) + ticks(12)) / 100.0
}

pub(crate) struct Agent {
    child: Child,
    /// The agent's stderr lines (kept so its reader thread keeps draining the pipe).
    _lines: std::sync::mpsc::Receiver<String>,
    /// Its ready file, as written once it was attached.
    pub ready: Value,
}

/// A part that fails half-way must not leave an agent behind (one with a policy would keep
/// enforcing it on the whole machine).
impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Agent {
    pub(crate) fn start(args: &[String]) -> Result<Agent> {
        let bin = root().join("target/release/aurora");
        let ready = std::env::temp_dir().join(format!("aurora-bench-ready-{}", std::process::id()));
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new(&bin)
            .args(args)
            .arg("--ready-file")
            .arg(&ready)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&ready) {
                break t;
            }
            if let Some(status) = child.try_wait()? {
                let seen: Vec<String> = lines.try_iter().collect();
                bail!(
                    "agent exited ({status}) before it was ready: {}",
                    seen.join("\n")
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("agent not ready within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let ready = serde_json::from_str(&text).context("the agent's ready file")?;
        Ok(Agent {
            child,
            _lines: lines,
            ready,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's `/metrics` exposition.
    fn metrics(&self) -> Result<String> {
        use std::io::{Read, Write};
        let addr = self.ready["metrics"]
            .as_str()
            .context("the ready file names no metrics address")?;
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default())
    }

    /// Read the counters (after the kernel-side ones were copied), then SIGTERM and wait;
    /// returns the metrics.
    pub(crate) fn stop(mut self) -> Result<String> {
        std::thread::sleep(Duration::from_millis(700));
        let metrics = self.metrics()?;
        run_cmd(
            Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string()),
        )?;
        self.child.wait()?;
        Ok(metrics)
    }
}

/// Sum of every series of the counter `name` in a Prometheus exposition.
pub(crate) fn counter_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A bench part's scratch directory (trigger files, alert logs, generated events), removed
/// with everything in it when the part ends, however it ends.
pub(crate) struct BenchDir(PathBuf);

impl std::ops::Deref for BenchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn tempdir() -> Result<BenchDir> {
    let d = std::env::temp_dir().join(format!(
        "aurora-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let d = if d.exists() { d.with_extension("x") } else { d };
    std::fs::create_dir_all(&d)?;
    Ok(BenchDir(d))
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    json!({"cpu": cpu, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "kernel": kernel})
}

pub fn run(mut a: BenchArgs) -> Result<()> {
    if a.quick {
        a.execs = a.execs.min(2000);
        a.events = a.events.min(20_000);
        a.rounds = a.rounds.min(1);
    }
    let all = a.parts.is_empty();
    let want = |p: &str| all || a.parts.iter().any(|x| x == p);
    let (sigmahq, _) = crate::corpora::ensure()?;
    let out_dir = root().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    // The commit measured is the one built (the tree may move on while the bench runs).
    let measured = commit();
    crate::build_release()?;
    let started = Instant::now();
    let mut results = json!({"machine": machine()});
    if want("detect") {
        step("detect: replay throughput (one thread)");
        let jp = out_dir.join("detect.json");
        run_cmd(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(root())
                .args([
                    "bench",
                    "--quiet",
                    "-p",
                    "aurora-agent",
                    "--bench",
                    "detection",
                    "--",
                ])
                .args([
                    "--events",
                    &a.events.to_string(),
                    "--rounds",
                    &a.rounds.max(3).to_string(),
                ])
                .arg("--json-out")
                .arg(&jp)
                .arg("--aurora")
                .arg(root().join("target/release/aurora"))
                .stdout(Stdio::null()),
        )?;
        results["detect"] = serde_json::from_str(&std::fs::read_to_string(&jp)?)?;
    }
    if want("exec") {
        results["exec"] = exec::part_exec(&a, &sigmahq)?;
    }
    if want("storms") {
        results["storms"] = storms::part_storms(&a)?;
    }
    if want("ring") {
        results["ring"] = storms::part_ring(&a)?;
    }
    if want("syscalls") {
        results["syscalls"] = syscalls::part(&a)?;
    }
    if want("auditd") {
        results["auditd"] = peers::part_auditd(&a, &sigmahq)?;
    }
    if want("nats") {
        results["nats"] = fleet::part_nats(&a)?;
    }
    if want("control") {
        results["control"] = fleet::part_control(&a)?;
    }
    if want("response") {
        results["response"] = response::part_response(&a)?;
    }
    if want("auditfeed") {
        results["auditfeed"] = audit_feed::part(&a, &sigmahq)?;
    }
    if want("fuzz") {
        let secs = if a.quick { 10 } else { 60 };
        crate::fuzz::run_fuzz(secs)?;
        results["fuzz"] =
            json!({"targets": crate::fuzz::TARGETS, "seconds_each": secs, "crashes": 0});
    }
    results["duration_s"] = json!(started.elapsed().as_secs());
    results["commit"] = json!(measured);
    results["parts"] = json!(a.parts);
    let text = serde_json::to_string_pretty(&results)?;
    let path = out_dir.join("results.json");
    std::fs::write(&path, &text)?;
    print_table(&results);
    step(&format!("wrote {}", path.display()));
    // Every run is data, kept with the code (docs/performance.md reads the newest of each part).
    if !a.quick {
        let dir = root().join(RESULTS_DIR);
        std::fs::create_dir_all(&dir)?;
        let stamp = utc_stamp();
        let kept = dir.join(format!("{stamp}.json"));
        std::fs::write(&kept, text)?;
        step(&format!(
            "kept {} (commit it with the change it measures)",
            kept.display()
        ));
    }
    Ok(())
}

/// Where every (non-quick) bench run is kept, one dated JSON file each.
pub const RESULTS_DIR: &str = "docs/performance/results";

/// `YYYY-MM-DDTHHMMSSZ` (UTC) from the system clock, without a date crate.
fn utc_stamp() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H%M%SZ"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "undated".into())
}

/// The commit measured (with `-dirty` when the tree has changes).
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    format!("{head}{}", if dirty { "-dirty" } else { "" })
}

fn print_table(r: &Value) {
    let row = |what: &str, v: &Value, target: &str| {
        println!("| {what:<46} | {:>14} | {target:<22} |", v.to_string())
    };
    println!(
        "| {:<46} | {:>14} | {:<22} |",
        "measure", "value", "target [Go peer]"
    );
    println!("|{}|{}|{}|", "-".repeat(48), "-".repeat(16), "-".repeat(24));
    // (part, JSON key, label, target [Go peer]) for the rows that print one value as it is.
    #[rustfmt::skip]
    const ROWS: &[(&str, &str, &str, &str)] = &[
        ("detect", "sigmahq_events_per_s", "replay detection, SigmaHQ rules (events/s)", ">= 500k [14.4k]"),
        ("detect", "parse_events_per_s", "JSONL parse alone (events/s)", "-"),
        ("detect", "parse_plus_detect_events_per_s", "parse + detection (events/s)", "-"),
        ("detect", "e2e_replay_events_per_s_per_round", "aurora replay FILE, start to exit (events/s)", ">= 500k"),
        ("detect", "e2e_replay_one_cpu_events_per_s_per_round", "the same, pinned to one CPU (events/s)", "-"),
        ("detect", "e2e_replay_max_rss_mb_per_round", "aurora replay peak RSS (MB)", "-"),
        ("detect", "with_scale_events_per_s", "with 1,183 scale rules (events/s)", "-"),
        ("detect", "scale_cost_pct", "scale rules cost (%)", "< 20"),
        ("detect", "scale_cost_pct_per_round", "scale rules cost, per round (%)", "-"),
        ("detect", "sigma_rust_events_per_s", "sigma-rust 0.7, same rules (events/s)", "-"),
        ("detect", "speedup_vs_sigma_rust", "speed-up vs sigma-rust (x)", "-"),
        ("exec", "slowdown_pct", "exec loop slowdown (%)", "<= 2 [+6..+24]"),
        ("exec", "agent_cpu_us_per_exec", "agent CPU per exec (us)", "<= 10 [200-650]"),
        ("exec", "kernel_programs_us_per_exec", "BPF programs per exec (us)", "-"),
        ("exec", "added_cpu_pct_of_an_exec", "added CPU, % of one exec", "-"),
        ("exec", "agent_cpu_s_per_1000_execs", "agent CPU per 1,000 execs (s)", "-"),
        ("exec", "agent_max_rss_mb", "agent max RSS, SigmaHQ rules (MB)", "<= 20 [65-81]"),
        ("exec", "agent_rss_after_storm_mb", "agent RSS after the storm (MB)", "-"),
        ("exec", "events_lost", "events lost in the storm", "0"),
        ("exec", "triggers_alerted_of_10", "triggers alerted under load (of 10)", "10 [8]"),
        ("control", "status_seconds_median", "fleet status, 1,000 heartbeating agents (s)", "< 1"),
        ("control", "status_seconds_max", "fleet status, slowest round (s)", "< 1"),
        ("control", "keys_after", "heartbeat keys after every agent put several", "1000"),
        ("control", "heartbeat_bytes", "heartbeat size (bytes)", "-"),
        ("control", "heartbeat_bytes_per_agent_hour", "heartbeat bytes per agent per hour", "-"),
        ("response", "slowdown_pct_no_policy", "exec loop slowdown, no policy (%)", "-"),
        ("response", "slowdown_pct_with_policy", "exec loop slowdown, 10,000-entry policy (%)", "-"),
        ("response", "policy_cost_pts", "cost of the policy (points)", "<= 0.5"),
        ("response", "policy_cost_pts_per_round", "cost of the policy, per round (points)", "-"),
        ("response", "kill_latency_ms_median", "rule-driven kill latency, median (ms)", "-"),
        ("response", "kill_latency_ms_p99", "rule-driven kill latency, p99 (ms)", "-"),
        ("auditfeed", "slowdown_pct_feed_off", "exec loop slowdown, auditd feed off (%)", "-"),
        ("auditfeed", "slowdown_pct_feed_on", "exec loop slowdown, auditd feed on (%)", "-"),
        ("auditfeed", "feed_cost_pts", "cost of the auditd feed (points)", "<= 0.3"),
        ("auditfeed", "feed_cost_pts_per_round", "cost of the auditd feed, per round (points)", "-"),
        ("auditfeed", "feed_cpu_us_per_exec", "agent CPU the feed adds per exec (us)", "<= 0.5"),
        ("auditfeed", "feed_cpu_us_per_exec_per_round", "the same, per round (us)", "-"),
    ];
    for (part, key, label, target) in ROWS {
        if let Some(p) = r.get(part) {
            row(label, &p[key], target);
        }
    }
    if let Some(s) = r.get("storms") {
        row(
            "file creates seen / made",
            &json!(format!("{}/{}", s["file_events_seen"], s["file_creates"])),
            "all",
        );
        row(
            "connects seen out / in / made",
            &json!(format!(
                "{}/{}/{}",
                s["outbound_seen"], s["inbound_seen"], s["connects"]
            )),
            "all",
        );
        row(
            "io_uring file creates seen / made",
            &json!(format!("{}/{}", s["uring_events_seen"], s["file_creates"])),
            "all",
        );
        row("storm events lost", &s["lost"], "0");
        row(
            "agent CPU per 1,000 storm events (s)",
            &s["agent_cpu_s_per_1000_events"],
            "-",
        );
    }
    if let Some(t) = r.get("syscalls") {
        for mode in ["auto", "tracepoint", "off"] {
            let m = &t[mode];
            row(
                &format!(
                    "syscall tax, --file-sensor {mode} (ran: {})",
                    m["file_sensor_ran"].as_str().unwrap_or("?")
                ),
                &json!(format!("{} % {}", m["tax_pct"], m["tax_pct_per_round"])),
                if mode == "tracepoint" { "-" } else { "<= 1" },
            );
        }
    }
    if let Some(x) = r.get("auditd") {
        row(
            "exec loop under auditd's execve rule (%)",
            &json!(format!(
                "{} {}",
                x["auditd_execve_slowdown_pct"], x["auditd_execve_slowdown_pct_per_round"]
            )),
            "[auditd: +20.7]",
        );
        row(
            "exec loop under Aurora, same rounds (%)",
            &json!(format!(
                "{} {}",
                x["aurora_slowdown_pct"], x["aurora_slowdown_pct_per_round"]
            )),
            "<= 2",
        );
    }
    if let Some(x) = r.get("nats") {
        row(
            "NATS alerts published, acked (/s)",
            &x["alerts_per_s_acked"],
            "-",
        );
        row(
            "NATS events published, acked (/s)",
            &x["events_per_s_acked"],
            "-",
        );
        row(
            "spool + publish cost per event (us)",
            &x["spool_and_publish_us_per_event"],
            "-",
        );
    }
    if let Some(g) = r.get("ring") {
        row(
            "smallest zero-loss --ringbuf-size",
            &g["smallest_zero_loss"],
            "-",
        );
    }
}
