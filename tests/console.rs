//! `aurora console` against the fleet of `tests/fleet_control.rs` (a real nats-server with
//! deploy/nats's configuration, two live agents in network namespaces the test made): HTTP-level
//! refusals (no session, no CSRF token, a viewer acting), then a real browser (chromium through
//! selenium, `tests/helpers/console_browser.py`) logs in, sees both agents, sees an alert arrive
//! live and its process chain, isolates a host through the confirmation, logs out. Screenshots
//! are kept in target/console/.
mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::daemons::poll_until;
use common::fleet::{marker_rule, Fleet};
use common::*;

/// One HTTP/1.1 request: (status, headers, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Log in; the session cookie and the CSRF token of its pages.
fn login(port: u16, user: &str, password: &str) -> (String, String) {
    let (status, head, _) = http(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("user={user}&password={password}"),
    );
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let (_, _, page) = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    let csrf = page
        .split("name=csrf content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page's CSRF token")
        .to_owned();
    (cookie, csrf)
}

fn command(port: u16, cookie: &str, csrf: Option<&str>) -> (u16, String) {
    let mut headers = vec![("Cookie", cookie), ("Content-Type", "application/json")];
    if let Some(t) = csrf {
        headers.push(("X-CSRF-Token", t));
    }
    let (status, _, body) = http(
        port,
        "POST",
        "/api/cmd",
        &headers,
        r#"{"host":"hosta","words":["ping"]}"#,
    );
    (status, body)
}

#[test]
#[ignore = "root, network namespaces, eBPF, nats-server, chromium: run by `cargo xtask test`"]
fn console_refuses_without_session_csrf_or_role_and_works_in_a_browser() {
    let f = Fleet::start(&["--nats-events"]);
    // A rule the browser triggers, pushed as a bundle.
    let bundle = f.path("console-rules");
    marker_rule(&bundle, "console", "aurora-console-marker");
    let (ok, out) = f.push_rules("fleet.seed", &bundle);
    assert!(ok, "{out}");
    f.wait_bundle("the console rule runs", |b| b["state"] == "accepted");

    let users = f.path("users");
    for (name, role, password) in [
        ("ann", "operator", "operator-pass-1"),
        ("vic", "viewer", "viewer-pass-12"),
    ] {
        let mut add = Command::new(aurora())
            .args(["console", "--users"])
            .arg(&users)
            .args(["--add-user", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        add.stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        assert!(add.wait().unwrap().success());
    }
    let port = free_port();
    let console = KillOnDrop(
        Command::new(aurora())
            .arg("console")
            .args(f.server.flags("ops"))
            .arg("--users")
            .arg(&users)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap(),
    );
    poll_until("the console listens", 15, || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });

    // HTTP: no session, no CSRF token, a viewer acting, a wrong password.
    let (status, head, _) = http(port, "GET", "/", &[], "");
    assert!(status == 303 && head.contains("location: /login"), "{head}");
    assert_eq!(http(port, "GET", "/api/agents", &[], "").0, 401);
    assert_eq!(http(port, "GET", "/alerts/1", &[], "").0, 303);
    let (status, _, _) = http(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "user=ann&password=wrong-password",
    );
    assert_eq!(status, 401);
    let (viewer, viewer_csrf) = login(port, "vic", "viewer-pass-12");
    let (status, body) = command(port, &viewer, Some(&viewer_csrf));
    assert!(
        status == 403 && body.contains("viewers cannot act"),
        "{status} {body}"
    );
    let (operator, csrf) = login(port, "ann", "operator-pass-1");
    let (status, body) = command(port, &operator, None);
    assert!(status == 403 && body.contains("CSRF"), "{status} {body}");
    let (status, _) = command(port, &operator, Some(&viewer_csrf));
    assert_eq!(status, 403, "another session's token");
    let (status, body) = command(port, &operator, Some(&csrf));
    assert!(
        status == 200 && body.contains("active rules"),
        "{status} {body}"
    );
    let (status, _, body) = http(port, "GET", "/api/agents", &[("Cookie", &operator)], "");
    assert!(
        status == 200 && body.contains("hosta") && body.contains("hostb"),
        "{body}"
    );

    // TLS when given a certificate.
    let tls = f.path("console-tls");
    std::fs::create_dir_all(&tls).unwrap();
    common::fleet::make_tls(&tls, "127.0.0.1");
    let tls_port = free_port();
    let _tls_console = KillOnDrop(
        Command::new(aurora())
            .arg("console")
            .args(f.server.flags("ops"))
            .arg("--users")
            .arg(&users)
            .args(["--listen", &format!("127.0.0.1:{tls_port}")])
            .arg("--tls-cert")
            .arg(tls.join("server.pem"))
            .arg("--tls-key")
            .arg(tls.join("server-key.pem"))
            .spawn()
            .unwrap(),
    );
    poll_until("the TLS console listens", 15, || {
        TcpStream::connect(("127.0.0.1", tls_port)).ok()
    });
    let curl = |url: String| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(tls.join("ca.pem"))
            .arg(url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(format!("https://127.0.0.1:{tls_port}/login")), "200");
    assert_eq!(
        curl(format!("http://127.0.0.1:{tls_port}/login")),
        "000",
        "no plain HTTP"
    );

    // The browser.
    let shots = repo().join("target/console");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/helpers/console_browser.py"))
        .args([
            &format!("http://127.0.0.1:{port}"),
            "ann",
            "aurora-console-marker",
            "Fleet bundle console",
            "hosta",
        ])
        .arg(&shots)
        .env("AURORA_CONSOLE_PASSWORD", "operator-pass-1")
        .output()
        .expect("python3 with selenium (apt python3-selenium)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim_end().ends_with("ok"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in ["agents.png", "alert.png"] {
        assert!(
            std::fs::metadata(shots.join(shot)).unwrap().len() > 10_000,
            "{shot}"
        );
    }
    assert!(
        f.net.tables(0).contains("aurora_isolation"),
        "isolated from the browser"
    );
    assert!(!f.net.tables(1).contains("aurora_isolation"));
    drop(console);
}
