//! The NATS fleet transport against a real `nats-server -js` (Debian's), started here on a
//! loopback port with a temp store: alerts arrive once each with their message ids across a
//! server outage; the spool survives an agent restart while the server is down; two
//! `aurora consume` instances sharing a durable consumer split a stream of events and
//! together alert once per matching event.
mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::nats::*;
use common::*;
use serde_json::Value;

const RECON: &str = "ba29fba0-cb6b-5643-8d5c-7ec32228ae5d";

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
#[ignore = "a nats-server it starts: run by `cargo xtask test`"]
fn alerts_arrive_once_each_across_a_server_outage_and_no_counter_calls_them_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(free_port(), &dir.path().join("store"));
    let url = server.url();
    let metrics = dir.path().join("replay.prom");
    let mut replay = Guarded::new(
        replay_cmd(&url, &dir.path().join("spool"))
            .arg("--metrics-file")
            .arg(&metrics)
            .arg("-")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = replay.child().stdin.take().unwrap();
    for pid in 1..=100 {
        stdin.write_all(recon_line(pid).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    let first = wait_count(&url, "aurora.alerts.>", 100, 20);
    assert_eq!(first.len(), 100, "alerts delivered while the server is up");
    let a = &first[0].1;
    assert_eq!(a["rule"]["id"], RECON);

    // The server goes away for 10 s; alerts keep coming; it comes back with its store.
    let (port, store) = server.stop();
    for pid in 101..=200 {
        stdin.write_all(recon_line(pid).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let server = NatsServer::start(port, &store);
    let all = wait_count(&url, "aurora.alerts.>", 200, 30);
    drop(stdin);
    let out = replay.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let pids = pids_once(&all);
    assert_eq!(
        pids,
        (1..=200).collect::<BTreeSet<i64>>(),
        "every alert exactly once"
    );
    // Everything was delivered later: nothing is "dropped", nothing left, one reconnection —
    // in the metrics and in the summary alike.
    let m = std::fs::read_to_string(&metrics).unwrap();
    let series = |name: &str| sample(&m, &format!("{name}{{sink=\"nats\",kind=\"alerts\"}}"));
    assert_eq!(series("aurora_sink_accepted_total"), 200, "{m}");
    assert_eq!(series("aurora_sink_sent_total"), 200, "{m}");
    assert_eq!(series("aurora_sink_dropped_total"), 0, "{m}");
    assert_eq!(series("aurora_sink_failed_total"), 0, "{m}");
    assert_eq!(series("aurora_sink_queued"), 0, "{m}");
    assert_eq!(series("aurora_sink_spooled_at_stop"), 0, "{m}");
    assert_eq!(
        sample(&m, "aurora_sink_reconnects_total{sink=\"nats\"}"),
        1,
        "{m}"
    );
    assert!(
        err.contains(
            "replay: sink nats: alerts sent=200 queued=0 dropped=0 failed=0 spooled_at_stop=0; reconnects=1"
        ),
        "the summary says the same: {err}"
    );
    assert_eq!(
        err.matches("connection lost").count(),
        1,
        "the outage is said once: {err}"
    );
    drop(server);
}

#[test]
#[ignore = "a nats-server it starts: run by `cargo xtask test`"]
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
    assert_eq!(family_sum(&metrics, "aurora_sink_dropped_total"), 0);
    assert!(
        err.contains(&format!("connecting to {url}: Connection refused")),
        "an unreachable server is named as such: {err}"
    );
    assert!(
        err.contains("nats: 50 alerts stay in the spool for the next run"),
        "{err}"
    );
    // A later run (nothing new to replay: /dev/null, a character device) delivers what the
    // earlier one spooled.
    let server = NatsServer::start(port, &dir.path().join("store"));
    let out = replay_cmd(&url, &spool).arg("/dev/null").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = wait_count(&url, "aurora.alerts.>", 50, 10);
    assert_eq!(pids_once(&msgs), (1..=50).collect::<BTreeSet<i64>>());
    drop(server);
}

/// Two `aurora consume` instances sharing the durable consumer `name` (with `extra` flags),
/// both pulling before `input` is published; returns each one's (output, alert pids).
fn split_between_two(
    url: &str,
    dir: &Path,
    name: &str,
    extra: &[&str],
    input: &Path,
) -> [(std::process::Output, Vec<i64>); 2] {
    let consume = |log: &Path| {
        let child = Command::new(aurora())
            .arg("consume")
            .arg("--rules")
            .arg(repo().join("rules"))
            .args(["--consumer", name])
            .args(extra)
            .args([
                "--no-stdout",
                // A waits while B starts: room for a loaded CI machine.
                "--idle-exit",
                "6",
                "--nats-url",
                url,
                "--logfile",
            ])
            .arg(log)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Guarded::new(child)
    };
    let (la, lb) = (
        dir.join(format!("{name}-a.log")),
        dir.join(format!("{name}-b.log")),
    );
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
            let now = waiting_pulls(url, name);
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
    let out = replay_cmd(url, &dir.join(format!("{name}-spool")))
        .arg("--nats-events")
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let (oa, ob) = (a.wait_with_output(), b.wait_with_output());
    for o in [&oa, &ob] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    [(oa, alerts(&la)), (ob, alerts(&lb))]
}

/// The events an instance's summary says it read.
fn events_read(o: &std::process::Output) -> u64 {
    let err = String::from_utf8_lossy(&o.stderr);
    err.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("consume: ")?;
            let (_, after) = rest.split_once(" messages = ")?;
            after.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no summary line: {err}"))
}

#[test]
#[ignore = "a nats-server it starts: run by `cargo xtask test`"]
fn consumers_sharing_a_name_read_the_stream_once_and_alert_once_per_event() {
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
    let [(oa, xa), (ob, xb)] = split_between_two(
        &url,
        dir.path(),
        "aurora-detect",
        &["--throttle-rate", "0"],
        &input,
    );
    let events = wait_count(&url, "aurora.events.>", 400, 20);
    assert_eq!(events.len(), 400, "every event published");
    assert_eq!(events[0].1["EventID"], 1);
    // Each message went to exactly one of them (how many to each is the server's timing: the
    // property is that together they read the stream once and alert once per event).
    assert_eq!(events_read(&oa) + events_read(&ob), 400);
    eprintln!("split: {} + {} alerts", xa.len(), xb.len());
    let mut all: Vec<i64> = xa.into_iter().chain(xb).collect();
    all.sort_unstable();
    let want: Vec<i64> = (1..=400).filter(|p| p % 2 == 0).collect();
    assert_eq!(
        all, want,
        "together: one alert per matching event, none twice"
    );
    // The position is the durable consumer's, not an instance's: a third instance with the
    // same name reads only what came after.
    let more = dir.path().join("more.jsonl");
    std::fs::write(&more, (401..=450).map(recon_line).collect::<String>()).unwrap();
    let out = replay_cmd(&url, &dir.path().join("more-spool"))
        .arg("--nats-events")
        .arg(&more)
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = dir.path().join("c.log");
    let c = Command::new(aurora())
        .arg("consume")
        .arg("--rules")
        .arg(repo().join("rules"))
        .args(["--consumer", "aurora-detect", "--throttle-rate", "0"])
        .args([
            "--no-stdout",
            "--idle-exit",
            "3",
            "--nats-url",
            &url,
            "--logfile",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert_eq!(events_read(&c), 50, "only what came after");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 50);
    drop(server);
}

/// docs/fleet.md: throttling in `consume` is per instance — each applies the per-rule budget
/// to the share of the stream it reads, so N instances alert up to N times the budget.
#[test]
#[ignore = "a nats-server it starts: run by `cargo xtask test`"]
fn with_throttling_each_consumer_spends_its_own_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(free_port(), &dir.path().join("store"));
    let url = server.url();
    // 400 matching events in the same second of event time: a burst of 3 and a rate that
    // refills nothing within it.
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, (1..=400).map(recon_line).collect::<String>()).unwrap();
    let budget = 3;
    let [(oa, xa), (ob, xb)] = split_between_two(
        &url,
        dir.path(),
        "aurora-throttled",
        &["--throttle-rate", "0.0001", "--throttle-burst", "3"],
        &input,
    );
    let (ea, eb) = (events_read(&oa), events_read(&ob));
    assert_eq!(ea + eb, 400, "the stream was split");
    assert_eq!(xa.len() as u64, ea.min(budget), "A spends its own budget");
    assert_eq!(xb.len() as u64, eb.min(budget), "B spends its own budget");
    // One instance alone (a local replay of the same input) alerts the budget once.
    let out = Command::new(aurora())
        .arg("replay")
        .arg("--rules")
        .arg(repo().join("rules"))
        .args(["--throttle-rate", "0.0001", "--throttle-burst", "3"])
        .args(["--no-stdout", "--logfile"])
        .arg(dir.path().join("local.log"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let local = std::fs::read_to_string(dir.path().join("local.log")).unwrap();
    assert_eq!(local.lines().count() as u64, budget);
    drop(server);
}

/// What is on the bus but is not an event — an empty message, a line that is not JSON — is
/// counted apart and said with its stream sequence; the events around it still alert, and
/// `consume --metrics-file` writes the counters.
#[test]
#[ignore = "a nats-server it starts: run by `cargo xtask test`"]
fn consume_counts_empty_and_rejected_messages_with_their_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(free_port(), &dir.path().join("store"));
    let url = server.url();
    // The stream and three messages: an event, an empty one, a non-event.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        let _ = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: "AURORA".into(),
                subjects: vec!["aurora.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        for payload in [recon_line(7), String::new(), "not json".into()] {
            js.publish("aurora.events.h.process_creation", payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    let metrics = dir.path().join("consume.prom");
    let out = Command::new(aurora())
        .arg("consume")
        .arg("--rules")
        .arg(repo().join("rules"))
        .args(["--json", "--throttle-rate", "0", "--idle-exit", "2"])
        .args(["--nats-url", &url, "--metrics-file"])
        .arg(&metrics)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a rejected message makes the exit non-zero: {err}"
    );
    assert!(
        err.contains("consume: 3 messages = 1 events + 1 empty + 1 rejected; 1 alerts"),
        "{err}"
    );
    assert!(err.contains("sequence 2: empty message"), "{err}");
    assert!(err.contains("sequence 3: not JSON"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(
        sample(
            &m,
            "aurora_events_processed_total{kind=\"process_creation\"}"
        ),
        1,
        "{m}"
    );
    drop(server);
}
