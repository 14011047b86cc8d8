//! The NATS fleet transport against a real `nats-server -js` (Debian's), started here on a
//! loopback port with a temp store: alerts arrive once each with their message ids across a
//! server outage; the spool survives an agent restart while the server is down; two
//! `aurora consume` instances sharing a durable consumer split a stream of events and
//! together alert once per matching event.
mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::Value;

const RECON: &str = "ba29fba0-cb6b-5643-8d5c-7ec32228ae5d";

struct NatsServer {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    fn start(port: u16, store: &Path) -> NatsServer {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (apt package nats-server; `cargo xtask setup --test-deps`)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        NatsServer {
            child,
            port,
            store: store.to_path_buf(),
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) -> (u16, PathBuf) {
        nix_kill(self.child.id(), 15);
        let _ = self.child.wait();
        (self.port, self.store.clone())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message on `subject` in stream AURORA: (Nats-Msg-Id, payload).
fn stream_messages(url: &str, subject: &str) -> Vec<(String, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let Ok(stream) = js.get_stream("AURORA").await else {
            return Vec::new();
        };
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut msgs = consumer.messages().await.unwrap();
        let mut out = Vec::new();
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(Duration::from_millis(700), msgs.next()).await
        {
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push((id, serde_json::from_slice(&m.payload).unwrap()));
        }
        out
    })
}

/// Pull requests waiting on the durable consumer `name` (0 while it does not exist).
fn waiting_pulls(url: &str, name: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(client) = async_nats::connect(url).await else {
            return 0;
        };
        let js = async_nats::jetstream::new(client);
        let Ok(stream) = js.get_stream("AURORA").await else {
            return 0;
        };
        let Ok(mut c) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(name)
            .await
        else {
            return 0;
        };
        c.info().await.map(|i| i.num_waiting).unwrap_or(0)
    })
}

fn wait_count(url: &str, subject: &str, n: usize, secs: u64) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = stream_messages(url, subject);
        if m.len() >= n || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn recon_line(pid: u64) -> String {
    format!("{{\"EventID\":1,\"Image\":\"/usr/bin/whoami\",\"CommandLine\":\"whoami\",\"ProcessId\":{pid}}}\n")
}

fn replay_cmd(url: &str, spool: &Path) -> Command {
    let mut c = Command::new(aurora());
    c.arg("replay")
        .arg("--rules")
        .arg(repo().join("rules"))
        .args([
            "--no-stdout",
            "--throttle-rate",
            "0",
            "--nats-url",
            url,
            "--spool-dir",
        ])
        .arg(spool);
    c
}

/// Alert pids of a set of messages, asserting ids are present and unique.
fn pids_once(msgs: &[(String, Value)]) -> BTreeSet<i64> {
    let ids: BTreeSet<&str> = msgs.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        msgs.iter().all(|(id, _)| !id.is_empty()),
        "every message has a Nats-Msg-Id"
    );
    assert_eq!(ids.len(), msgs.len(), "no message id twice");
    let pids: BTreeSet<i64> = msgs
        .iter()
        .map(|(_, a)| a["event"]["ProcessId"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), msgs.len(), "no alert twice");
    pids
}

#[test]
fn alerts_arrive_once_each_across_a_server_outage() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(free_port(), &dir.path().join("store"));
    let url = server.url();
    let mut replay = replay_cmd(&url, &dir.path().join("spool"))
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = replay.stdin.take().unwrap();
    for pid in 1..=100 {
        stdin.write_all(recon_line(pid).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    let first = wait_count(&url, "aurora.alerts.>", 100, 20);
    assert_eq!(first.len(), 100, "alerts delivered while the server is up");
    let a = &first[0].1;
    assert_eq!(a["rule"]["id"], RECON);

    // The server goes away; alerts keep coming; it comes back with its store.
    let (port, store) = server.stop();
    for pid in 101..=200 {
        stdin.write_all(recon_line(pid).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let server = NatsServer::start(port, &store);
    let all = wait_count(&url, "aurora.alerts.>", 200, 30);
    drop(stdin);
    let status = replay.wait().unwrap();
    assert!(status.success());
    let pids = pids_once(&all);
    assert_eq!(
        pids,
        (1..=200).collect::<BTreeSet<i64>>(),
        "every alert exactly once"
    );
    drop(server);
}

#[test]
fn the_spool_survives_an_agent_restart_while_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, (1..=50).map(recon_line).collect::<String>()).unwrap();
    // No server: the alerts can only be spooled.
    let (out, metrics) = with_metrics(replay_cmd(&url, &spool).arg(&input));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        family_sum(&metrics, "aurora_sink_spooled_at_stop"),
        50,
        "every alert stays in the spool: {metrics}"
    );
    // A later run (nothing new to replay) delivers what the earlier one spooled.
    let server = NatsServer::start(port, &dir.path().join("store"));
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = replay_cmd(&url, &spool).arg(&empty).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = wait_count(&url, "aurora.alerts.>", 50, 10);
    assert_eq!(pids_once(&msgs), (1..=50).collect::<BTreeSet<i64>>());
    drop(server);
}

#[test]
fn two_consumers_split_the_stream_and_together_alert_once_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(free_port(), &dir.path().join("store"));
    let url = server.url();
    // 400 events, every other one matching the reconnaissance rule.
    let mut lines = String::new();
    for pid in 1..=400u64 {
        if pid % 2 == 0 {
            lines += &recon_line(pid);
        } else {
            lines += &format!("{{\"EventID\":1,\"Image\":\"/usr/bin/true\",\"CommandLine\":\"true\",\"ProcessId\":{pid}}}\n");
        }
    }
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, lines).unwrap();
    let consume = |log: &Path| {
        Command::new(aurora())
            .arg("consume")
            .arg("--rules")
            .arg(repo().join("rules"))
            .args([
                "--no-stdout",
                "--throttle-rate",
                "0",
                // A waits while B starts: room for a loaded CI machine.
                "--idle-exit",
                "6",
                "--nats-url",
                &url,
                "--logfile",
            ])
            .arg(log)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (la, lb) = (dir.path().join("a.log"), dir.path().join("b.log"));
    // Both instances are pulling before the events arrive. One at a time: the count of waiting
    // pull requests says nothing of who made them (one client may hold two), so B is known to
    // pull only once the count rises above what A alone holds — and A's count is read only
    // after it has held still for a second. (Checking "≥ 2" with both started at once let one
    // instance take every message in CI: 0 + 200; so did reading A's count 300 ms after its
    // first pull, once: a loaded machine's A was still adding its own.)
    let settled_above = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut last, mut since) = (usize::MAX, Instant::now());
        loop {
            let now = waiting_pulls(&url, "aurora-detect");
            if now != last {
                (last, since) = (now, Instant::now());
            }
            if now > n && since.elapsed() >= Duration::from_secs(1) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "waiting pulls: {now}, not settled above {n}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let a = consume(&la);
    let alone = settled_above(0);
    let b = consume(&lb);
    settled_above(alone);
    let out = replay_cmd(&url, &dir.path().join("spool"))
        .arg("--nats-events")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = wait_count(&url, "aurora.events.>", 400, 20);
    assert_eq!(events.len(), 400, "every event published");
    assert_eq!(events[0].1["EventID"], 1);

    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&oa, &ob] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let alerts = |p: &Path| -> Vec<i64> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event"]["ProcessId"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    let (xa, xb) = (alerts(&la), alerts(&lb));
    assert!(
        !xa.is_empty() && !xb.is_empty(),
        "both instances did part of the work: {} + {}",
        xa.len(),
        xb.len()
    );
    let mut all: Vec<i64> = xa.into_iter().chain(xb).collect();
    all.sort_unstable();
    let want: Vec<i64> = (1..=400).filter(|p| p % 2 == 0).collect();
    assert_eq!(
        all, want,
        "together: one alert per matching event, none twice"
    );
    drop(server);
}
