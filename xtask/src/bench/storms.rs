//! Loss under load: a file-creation storm (syscalls and io_uring) with a loopback connect storm,
//! and the smallest ring size that loses nothing under two parallel exec loops.
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::exec::workload;
use super::{counter_sum, cpu_seconds, tempdir, Agent, BenchArgs};
use crate::step;

pub fn part_storms(a: &BenchArgs) -> Result<Value> {
    let n = if a.quick { 500 } else { 5000 };
    let dir = tempdir()?;
    let out = dir.join("events.jsonl");
    let agent = Agent::start(&[
        "record".into(),
        "--output".into(),
        out.display().to_string(),
    ])?;
    let c0 = cpu_seconds(agent.pid());
    step(&format!(
        "storms: {n} new files, {n} more through io_uring, {n} loopback connects"
    ));
    let files = dir.join("files");
    std::fs::create_dir(&files)?;
    for i in 0..n {
        std::fs::File::create(files.join(format!("f{i}")))?;
    }
    // The same number again, created through io_uring alone (no open syscall).
    let uring = crate::kernels::uring_helper()?;
    let uring_files = dir.join("uring");
    std::fs::create_dir(&uring_files)?;
    let st = Command::new(&uring)
        .current_dir(&uring_files)
        .args((0..n).map(|i| format!("u{i}")))
        .status()?;
    if !st.success() {
        bail!("io_uring helper failed");
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let acceptor = std::thread::spawn(move || {
        for _ in 0..n {
            if listener.accept().is_err() {
                break;
            }
        }
    });
    for _ in 0..n {
        drop(TcpStream::connect(("127.0.0.1", port))?);
    }
    let _ = acceptor.join();
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_seconds(agent.pid()) - c0;
    let stats = agent.stop()?;
    let text = std::fs::read_to_string(&out)?;
    let prefix = format!("\"TargetFilename\":\"{}/f", files.display());
    let file_seen = text.lines().filter(|l| l.contains(&prefix)).count();
    let uring_prefix = format!("\"TargetFilename\":\"{}/u", uring_files.display());
    let uring_seen = text.lines().filter(|l| l.contains(&uring_prefix)).count();
    let dport = format!("\"DestinationPort\":{port}");
    let out_seen = text
        .lines()
        .filter(|l| l.contains(&dport) && l.contains("\"Initiated\":\"true\""))
        .count();
    let in_seen = text
        .lines()
        .filter(|l| l.contains(&dport) && l.contains("\"Initiated\":\"false\""))
        .count();
    Ok(json!({
        "file_creates": n, "file_events_seen": file_seen, "uring_events_seen": uring_seen,
        "connects": n, "outbound_seen": out_seen, "inbound_seen": in_seen,
        "lost": counter_sum(&stats, "aurora_ring_kernel_lost_total") + counter_sum(&stats, "aurora_queue_dropped_total"),
        "agent_cpu_s_per_1000_events": ((cpu / (3 * n) as f64 * 1000.0) * 10000.0).round() / 10000.0,
    }))
}

pub fn part_ring(a: &BenchArgs) -> Result<Value> {
    let n = if a.quick { 1000 } else { 4000 };
    let mut tried = vec![];
    for size in ["16K", "64K", "256K", "1M", "4M", "16M"] {
        let agent = Agent::start(&[
            "record".into(),
            "--output".into(),
            "/dev/null".into(),
            "--ringbuf-size".into(),
            size.into(),
        ])?;
        step(&format!(
            "ring: {size} under two parallel exec loops of {} execs",
            n / 2
        ));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..n / 2).for_each(|_| drop(workload("/bin/true").status()))
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        std::thread::sleep(Duration::from_millis(300));
        let stats = agent.stop()?;
        let lost = counter_sum(&stats, "aurora_ring_kernel_lost_total");
        tried.push(json!({"ringbuf_size": size, "kernel_lost": lost}));
        if lost == 0 {
            return Ok(json!({"smallest_zero_loss": size, "execs": n, "tried": tried}));
        }
    }
    Ok(json!({"smallest_zero_loss": null, "execs": n, "tried": tried}))
}
