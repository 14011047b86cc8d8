//! The NATS fleet transport: publish throughput with acknowledgements (alerts; events with
//! `--nats-events`) from `aurora replay` to a local `nats-server -js`, and what the disk spool
//! costs: the same replay with and without the NATS sink, per event.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::{median, tempdir, BenchArgs};
use crate::{root, step};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn server(dir: &Path) -> Result<(Server, String)> {
    let port = free_port()?;
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nats-server (apt package nats-server)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nats-server did not listen");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((Server(child), format!("nats://127.0.0.1:{port}")))
}

/// `n` process events, every `every`-th one a reconnaissance command the project rules alert on.
fn events(path: &Path, n: usize, every: usize) -> Result<()> {
    let mut s = String::with_capacity(n * 200);
    for i in 0..n {
        let (img, cmd) = if i % every == 0 {
            ("/usr/bin/whoami", "whoami")
        } else {
            ("/usr/bin/systemctl", "systemctl is-active nginx.service")
        };
        s += &format!(
            "{{\"EventID\":1,\"UtcTime\":\"2026-11-30 12:00:00.000\",\"ProcessId\":{},\"Image\":\"{img}\",\"CommandLine\":\"{cmd}\",\"ParentImage\":\"/usr/sbin/cron\",\"User\":\"root\"}}\n",
            10_000 + i
        );
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// Seconds a replay of `input` took, start to exit (its spool empty at exit).
fn replay(input: &Path, extra: &[&str], spool: &Path) -> Result<f64> {
    let metrics = spool.with_extension("prom");
    let t = Instant::now();
    let out = Command::new(root().join("target/release/aurora"))
        .arg("replay")
        .arg("--metrics-file")
        .arg(&metrics)
        .arg("--rules")
        .arg(root().join("rules"))
        .args([
            "--no-stdout",
            "--throttle-rate",
            "0",
            "--logfile",
            "/dev/null",
            "--spool-dir",
        ])
        .arg(spool)
        .args(extra)
        .arg(input)
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let m = std::fs::read_to_string(&metrics).unwrap_or_default();
    let left: f64 = m
        .lines()
        .filter(|l| l.starts_with("aurora_sink_spooled_at_stop"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    if !out.status.success() || left > 0.0 {
        bail!("replay did not deliver everything ({left} messages left in the spool):\n{err}");
    }
    Ok(secs)
}

pub fn part_nats(a: &BenchArgs) -> Result<Value> {
    let dir = tempdir()?;
    let n = (a.events / 4).max(10_000);
    let (alerts_in, events_in) = (dir.join("alerts.jsonl"), dir.join("events.jsonl"));
    events(&alerts_in, n, 1)?; // every event alerts
    events(&events_in, n, 100)?;
    let (mut plain, mut alerts, mut evs) = (vec![], vec![], vec![]);
    for r in 0..a.rounds.max(3) {
        step(&format!(
            "nats: round {}: {n} alerts, then {n} events, then neither",
            r + 1
        ));
        let (srv, url) = server(&dir.join(format!("s{r}")))?;
        alerts.push(replay(
            &alerts_in,
            &["--nats-url", &url],
            &dir.join(format!("sp-a{r}")),
        )?);
        evs.push(replay(
            &events_in,
            &["--nats-url", &url, "--nats-events"],
            &dir.join(format!("sp-e{r}")),
        )?);
        drop(srv);
        plain.push(replay(&events_in, &[], &dir.join(format!("sp-p{r}")))?);
    }
    let rate = |v: &[f64]| (n as f64 / median(v.to_vec())).round();
    let per_event_us = (median(evs.clone()) - median(plain.clone())) / n as f64 * 1e6;
    Ok(json!({
        "messages": n,
        "rounds": a.rounds.max(3),
        "alerts_per_s_acked": rate(&alerts),
        "events_per_s_acked": rate(&evs),
        "replay_without_nats_events_per_s": rate(&plain),
        "spool_and_publish_us_per_event": (per_event_us * 100.0).round() / 100.0,
        "alerts_s_per_round": alerts,
        "events_s_per_round": evs,
        "plain_s_per_round": plain,
    }))
}

/// The control plane at fleet scale: one process heartbeats as 1,000 agents on one
/// nats-server (`aurora fleet simulate`), then `aurora fleet status` is timed while they go
/// on; the bucket must hold one key per host however many heartbeats were put.
pub fn part_control(a: &BenchArgs) -> Result<Value> {
    const AGENTS: usize = 1000;
    const INTERVAL_S: f64 = 10.0;
    let dir = tempdir()?;
    let (_srv, url) = server(&dir)?;
    let aurora = root().join("target/release/aurora");
    step(&format!(
        "control: {AGENTS} simulated agents heartbeating every {INTERVAL_S} s"
    ));
    let sim = Command::new(&aurora)
        .args(["fleet", "simulate", "--nats-url", &url])
        .args(["--agents", &AGENTS.to_string()])
        .args(["--interval", &INTERVAL_S.to_string()])
        .args(["--duration", "40"])
        .stdout(Stdio::piped())
        .spawn()
        .context("aurora fleet simulate")?;
    // Every agent has put its first heartbeat after one interval.
    std::thread::sleep(Duration::from_secs_f64(INTERVAL_S + 2.0));
    let mut seconds = Vec::new();
    let mut listed = Vec::new();
    for _ in 0..a.rounds.max(10) {
        let t = Instant::now();
        let out = Command::new(&aurora)
            .args(["fleet", "status", "--json", "--nats-url", &url])
            .output()?;
        seconds.push(t.elapsed().as_secs_f64());
        if !out.status.success() {
            bail!("fleet status: {}", String::from_utf8_lossy(&out.stderr));
        }
        let hosts: Vec<Value> = serde_json::from_slice(&out.stdout)?;
        listed.push(hosts.len());
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = sim.wait_with_output()?;
    if !out.status.success() {
        bail!("fleet simulate: exit {:?}", out.status.code());
    }
    let sim: Value = serde_json::from_slice(&out.stdout).context("simulate's summary")?;
    let after = Command::new(&aurora)
        .args(["fleet", "status", "--json", "--nats-url", &url])
        .output()?;
    let keys = serde_json::from_slice::<Vec<Value>>(&after.stdout)?.len();
    let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
    Ok(json!({
        "agents": AGENTS,
        "heartbeat_interval_s": INTERVAL_S,
        "heartbeats_put": sim["puts"],
        "status_seconds_median": round3(median(seconds.clone())),
        "status_seconds_max": round3(seconds.iter().cloned().fold(0.0, f64::max)),
        "status_seconds_per_round": seconds.iter().map(|s| round3(*s)).collect::<Vec<_>>(),
        "hosts_listed_per_round": listed,
        "keys_after": keys,
        "heartbeat_bytes": sim["heartbeat_bytes"],
        "heartbeat_bytes_per_agent_hour": sim["bytes_per_agent_hour"],
    }))
}
