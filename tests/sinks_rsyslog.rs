//! Alert delivery to a real rsyslog (Debian package, started here on loopback with a generated
//! config in a temp dir): UDP, TCP with octet counting, TLS (rsyslog-gnutls, CA and server
//! certificate generated here), and a collector that dies and comes back.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use common::daemons::Rsyslogd;
use common::*;

const BASE64_RULE: &str = "e2072cab-8c9a-459b-b63c-40ae79e27031";

/// rsyslogd with one input per transport, each written raw to its file.
fn rsyslog(dir: &Path, udp: u16, tcp: u16, tls: Option<u16>) -> Rsyslogd {
    let d = dir.display();
    let mut conf = String::new();
    if tls.is_some() {
        conf += &format!(
            "global(maxMessageSize=\"64k\" defaultNetstreamDriverCAFile=\"{d}/ca.pem\" defaultNetstreamDriverCertFile=\"{d}/server.pem\" defaultNetstreamDriverKeyFile=\"{d}/server.key\")\n"
        );
    } else {
        conf += "global(maxMessageSize=\"64k\")\n";
    }
    conf += &format!(
        "module(load=\"imudp\")\nmodule(load=\"imtcp\" maxSessions=\"50\")\n\
         template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
         ruleset(name=\"udp\") {{ action(type=\"omfile\" file=\"{d}/udp.log\" template=\"raw\") }}\n\
         ruleset(name=\"tcp\") {{ action(type=\"omfile\" file=\"{d}/tcp.log\" template=\"raw\") }}\n\
         ruleset(name=\"tls\") {{ action(type=\"omfile\" file=\"{d}/tls.log\" template=\"raw\") }}\n\
         input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\" ruleset=\"udp\")\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\" ruleset=\"tcp\")\n"
    );
    if let Some(p) = tls {
        conf += &format!(
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{p}\" ruleset=\"tls\" \
             streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n"
        );
    }
    Rsyslogd::start(dir, &conf, || {
        TcpStream::connect(("127.0.0.1", tcp)).is_ok()
    })
}

fn gen_certs(dir: &Path) {
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=aurora-test-ca 2>/dev/null; \
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null",
        d = dir.display()
    );
    assert!(
        Command::new("sh")
            .args(["-c", &sh])
            .status()
            .unwrap()
            .success(),
        "openssl"
    );
}

/// An event that fires the base64 rule, with a hostile command line.
fn hostile_event(i: usize) -> String {
    format!(
        r#"{{"EventID":1,"UtcTime":"2025-06-01 10:00:0{}.000","Image":"/usr/bin/base64","CommandLine":"base64 -d {i}\n<13>1 2025-06-01T00:00:00Z forged host - - - fake\r\u001b[31m]\"\\","ProcessId":{},"User":"root"}}"#,
        i % 10,
        1000 + i
    )
}

/// `aurora replay -` with `args`, writing its counters to `metrics` at exit.
fn replay_stdin(args: &[String], metrics: &Path) -> (Guarded, ChildStdin) {
    let mut child = Command::new(aurora())
        .args(["replay", "--no-stdout", "--throttle-rate", "0", "--rules"])
        .arg(sigmahq())
        .args(args)
        .arg("--metrics-file")
        .arg(metrics)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (Guarded::new(child), stdin)
}

fn finish(child: Guarded, stdin: ChildStdin) -> String {
    drop(stdin);
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
#[ignore = "a private rsyslogd: run by `cargo xtask test`"]
fn udp_tcp_and_tls_each_deliver_every_alert_once_with_exact_fields() {
    let dir = tempfile::tempdir().unwrap();
    gen_certs(dir.path());
    let (udp, tcp, tls) = (free_port(), free_port(), free_port());
    let rs = rsyslog(dir.path(), udp, tcp, Some(tls));
    let ca = dir.path().join("ca.pem").display().to_string();
    for (target, file, args) in [
        (
            "udp",
            "udp.log",
            vec!["--udp-target".into(), format!("127.0.0.1:{udp}")],
        ),
        (
            "tcp",
            "tcp.log",
            vec!["--tcp-target".into(), format!("127.0.0.1:{tcp}")],
        ),
        (
            "tls",
            "tls.log",
            vec![
                "--tcp-target".into(),
                format!("127.0.0.1:{tls}"),
                "--tcp-tls".into(),
                "--tls-ca".into(),
                ca.clone(),
            ],
        ),
    ] {
        let prom = dir.path().join(format!("{target}.prom"));
        let (child, mut stdin) = replay_stdin(&args, &prom);
        for i in 0..3 {
            writeln!(stdin, "{}", hostile_event(i)).unwrap();
        }
        finish(child, stdin);
        let m = std::fs::read_to_string(&prom).unwrap();
        for (family, want) in [
            ("aurora_sink_sent_total", 3),
            ("aurora_sink_queued", 0),
            ("aurora_sink_dropped_total", 0),
        ] {
            let got: u64 = m
                .lines()
                .filter(|l| l.starts_with(family) && !l.contains("sink=\"stdout\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .map(|v| v as u64)
                .sum();
            assert_eq!(got, want, "{target}: {family}: {m}");
        }
        let lines = rs.wait_lines(file, 3);
        assert_eq!(
            lines.len(),
            3,
            "{target}: each alert exactly once: {lines:#?}"
        );
        for (i, l) in lines.iter().enumerate() {
            assert!(
                l.starts_with("<13>1 "),
                "{target}: PRI = user(1) * 8 + low(5): {l}"
            );
            assert!(l.contains(" aurora "), "{target}: APP-NAME {l}");
            assert!(
                l.contains(" process_creation [aurora@32473 "),
                "{target}: MSGID + SD-ID {l}"
            );
            assert!(
                l.contains(&format!("ruleId=\"{BASE64_RULE}\"")),
                "{target}: {l}"
            );
            assert!(l.contains("level=\"low\""), "{target}: {l}");
            assert!(l.contains(&format!("CommandLine=\"base64 -d {i}\\\\n<13>1 2025-06-01T00:00:00Z forged host - - - fake\\\\r\\\\x1b[31m\\]\\\"\\\\\"")), "{target}: SD escaping {l}");
            assert!(
                !l.contains('\u{1b}') && !l.contains('\r'),
                "{target}: control characters neutralised"
            );
        }
    }
    rs.stop();
}

#[test]
#[ignore = "a private rsyslogd: run by `cargo xtask test`"]
fn dead_collector_queues_then_delivers_and_counts_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (free_port(), free_port());
    let rs = rsyslog(dir.path(), udp, tcp, None);
    let metrics_file = dir.path().join("replay.prom");
    let (child, mut stdin) = replay_stdin(
        &[
            "--tcp-target".into(),
            format!("127.0.0.1:{tcp}"),
            "--sink-queue".into(),
            "5".into(),
        ],
        &metrics_file,
    );
    for i in 0..2 {
        writeln!(stdin, "{}", hostile_event(i)).unwrap();
    }
    stdin.flush().unwrap();
    assert_eq!(rs.wait_lines("tcp.log", 2).len(), 2, "delivered while up");
    rs.stop();
    std::thread::sleep(Duration::from_millis(300));
    // Collector down: 8 alerts; the queue holds 5 (one more may be in the sender's hands).
    for i in 2..10 {
        writeln!(stdin, "{}", hostile_event(i)).unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let rs = rsyslog(dir.path(), udp, tcp, None);
    finish(child, stdin);
    let metrics = std::fs::read_to_string(&metrics_file).unwrap();
    let num = |k: &str| {
        sample(
            &metrics,
            &format!("aurora_sink_{k}{{sink=\"tcp:127.0.0.1:{tcp}\",kind=\"alerts\"}}"),
        )
    };
    let (sent, dropped) = (num("sent_total"), num("dropped_total"));
    assert_eq!(
        sent + dropped,
        10,
        "every alert sent or counted dropped:\n{metrics}"
    );
    assert!(
        dropped >= 2,
        "overflow beyond the queue counted:\n{metrics}"
    );
    assert!(
        sample(
            &metrics,
            &format!("aurora_sink_reconnects_total{{sink=\"tcp:127.0.0.1:{tcp}\"}}")
        ) >= 1,
        "{metrics}"
    );
    let lines = rs.wait_lines("tcp.log", sent as usize);
    assert_eq!(
        lines.len() as u64,
        sent,
        "what was queued arrived after the restart"
    );
    rs.stop();
}
