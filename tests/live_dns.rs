//! DNS correlation live (root): a real dnsmasq on 127.0.0.2:53 answers a tunnel-service name with
//! 127.0.0.3; this test process resolves it against that server and connects; the connection
//! event carries the name as DestinationHostname and the project rule on tunnel domains fires.
//! Nothing leaves the machine.
mod common;

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, Question, CLASS, QCLASS, QTYPE, TYPE};

const TUNNEL_RULE: &str = "dea7d5ee-56ee-56ff-9c06-cd8f7387aeab";

fn dnsmasq() -> KillOnDrop {
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.0.0.2",
            "--bind-interfaces",
            "--port=53",
            "--address=/trycloudflare.com/127.0.0.3",
            "--user=root",
            "--pid-file=",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (Debian's dnsmasq-base)");
    KillOnDrop(child)
}

/// Ask 127.0.0.2:53 for `name` (A) from this process; returns the first address.
fn resolve(name: &str) -> Ipv4Addr {
    let mut q = Packet::new_query(0x5a5a);
    q.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    let bytes = q.build_bytes_vec().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        sock.send_to(&bytes, "127.0.0.2:53").unwrap();
        let mut buf = [0u8; 1500];
        if let Ok(n) = sock.recv(&mut buf) {
            let p = Packet::parse(&buf[..n]).unwrap();
            if let Some(RData::A(a)) = p.answers.first().map(|r| &r.rdata) {
                return Ipv4Addr::from(a.address);
            }
        }
        assert!(Instant::now() < deadline, "dnsmasq did not answer");
    }
}

#[test]
#[ignore = "root, BPF and a dnsmasq it starts: run by `cargo xtask test`"]
fn connect_after_a_dns_answer_carries_the_name_and_alerts() {
    let _dns = dnsmasq();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("alerts.log");
    let ready = dir.path().join("ready.json");
    let agent = Command::new(aurora())
        .arg("--rules")
        .arg(repo().join("rules"))
        .args(["--no-stdout", "--json", "--throttle-rate", "0", "--logfile"])
        .arg(&log)
        .arg("--ready-file")
        .arg(&ready)
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = KillOnDrop(agent);
    let rx = stderr_lines(&mut agent.0);
    let state = wait_ready(&mut agent.0, &ready, &rx);

    let name = format!("{}.trycloudflare.com", marker("dns"));
    let ip = resolve(&name.to_uppercase());
    assert_eq!(ip, Ipv4Addr::new(127, 0, 0, 3));
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(std::net::TcpStream::connect((ip, port)).unwrap());

    let want = name.to_lowercase();
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert: Value = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let hit = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|a| a["rule"]["id"] == TUNNEL_RULE && a["event"]["DestinationPort"] == port);
        if let Some(a) = hit {
            break a;
        }
        assert!(Instant::now() < deadline, "no tunnel-domain alert:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let e = &alert["event"];
    assert_eq!(
        e["DestinationHostname"],
        want.as_str(),
        "lower case, no trailing dot"
    );
    assert_eq!(e["DestinationIp"], "127.0.0.3");
    assert_eq!(
        e["Image"],
        std::fs::canonicalize(std::env::current_exe().unwrap())
            .unwrap()
            .display()
            .to_string()
    );

    let metrics = http_get(metrics_port(&state), "/metrics").1;
    assert!(
        sample(&metrics, "aurora_dns_answers_total") >= 1,
        "{metrics}"
    );
    assert!(
        sample(&metrics, r#"aurora_dns_connects_total{resolved="true"}"#) >= 1,
        "{metrics}"
    );
    nix_kill(agent.0.id(), 15);
    assert!(agent.0.wait().unwrap().success());
}
