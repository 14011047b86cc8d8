//! The fleet control plane against a real nats-server started with deploy/nats's configuration
//! (TLS on, one nkey per agent from `aurora fleet enroll`, the operator identity for
//! `aurora fleet`): two live agents, each in a network namespace this test makes (a veth pair
//! to the host side, whose address the server listens on), heartbeat, take signed bundles,
//! refuse bad ones, obey commands, converge to the operator's isolation intent, and cannot use
//! each other's subjects.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemons::poll_until;
use common::*;
use serde_json::Value;

const INTERVAL: &str = "1";

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// The server side (host addresses of two veth pairs) and one namespace per agent.
struct Net {
    id: u32,
    namespaces: Vec<String>,
    links: Vec<String>,
    children: Vec<Child>,
}

impl Net {
    fn create() -> Net {
        let id = std::process::id() % 200 + 20;
        let mut net = Net {
            id,
            namespaces: vec![],
            links: vec![],
            children: vec![],
        };
        for (i, side) in ["a", "b"].into_iter().enumerate() {
            let ns = format!("aur-fleet-{side}-{}", std::process::id());
            let (host_if, ns_if) = (format!("afl{side}{id}h"), format!("afl{side}{id}n"));
            let subnet = format!("10.{}.{id}", 232 + i);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns,
            ]);
            ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &host_if]);
            ip(&["link", "set", &host_if, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{subnet}.2/24"),
                "dev",
                &ns_if,
            ]);
            ip(&["-n", &ns, "link", "set", &ns_if, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("{subnet}.1"),
            ]);
            net.namespaces.push(ns);
            net.links.push(host_if);
        }
        net
    }

    /// Where the server listens (host side of agent A's veth; agent B routes to it).
    fn server_addr(&self) -> String {
        format!("10.232.{}.1", self.id)
    }

    fn ns(&self, side: usize) -> &str {
        &self.namespaces[side]
    }

    fn tables(&self, side: usize) -> String {
        run_ok(Command::new("ip").args(["netns", "exec", self.ns(side), "nft", "list", "tables"]))
    }

    /// Whether a TCP connect from agent `side`'s namespace to the server address on `port`
    /// succeeds (1 s timeout).
    fn connects(&self, side: usize, port: u16) -> bool {
        let code = format!(
            "import socket,sys\ntry:\n  socket.create_connection(('{}',{port}),timeout=1).close()\n\
             except OSError:\n  sys.exit(1)\n",
            self.server_addr()
        );
        Command::new("ip")
            .args(["netns", "exec", self.ns(side), "python3", "-c", &code])
            .status()
            .unwrap()
            .success()
    }

    /// A TCP listener on the server address that accepts and closes.
    fn listen(&mut self, port: u16) {
        let code = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('{}',{port}))\ns.listen(64)\nwhile True:\n  c,_=s.accept()\n  c.close()\n",
            self.server_addr()
        );
        let child = Command::new("python3").args(["-c", &code]).spawn().unwrap();
        self.children.push(child);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).status();
        }
    }
}

/// A CA and a server certificate for `addr` (openssl, in `dir`).
fn make_tls(dir: &Path, addr: &str) {
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=aurora-test-ca; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout server-key.pem -out server.csr -subj /CN=nats; \
         printf 'subjectAltName=IP:{addr}\\n' > ext; \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
           -out server.pem -days 2 -extfile ext",
        d = dir.display()
    );
    let out = Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// nats-server with deploy/nats/nats-server.conf, its paths and address replaced by this
/// test's (the permissions come whole from `aurora fleet enroll`'s accounts.conf).
struct Server {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path, addr: &str, port: u16) -> Server {
        let conf = std::fs::read_to_string(repo().join("deploy/nats/nats-server.conf")).unwrap();
        let conf = conf
            .replace("0.0.0.0:4222", &format!("{addr}:{port}"))
            .replace(
                "/var/lib/nats/jetstream",
                &dir.join("js").display().to_string(),
            )
            .replace("/etc/nats/tls/", &format!("{}/", dir.join("tls").display()));
        assert!(conf.contains(&format!("{addr}:{port}")), "{conf}");
        std::fs::write(dir.join("nats-server.conf"), conf).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(dir.join("nats-server.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server");
        poll_until("nats-server listens", 10, || {
            std::net::TcpStream::connect((addr, port)).ok()
        });
        Server {
            child,
            url: format!("tls://{addr}:{port}"),
            dir: dir.to_path_buf(),
        }
    }

    /// The flags that reach the server as `identity`.
    fn flags(&self, identity: &str) -> Vec<String> {
        vec![
            "--nats-url".into(),
            self.url.clone(),
            "--nats-tls-ca".into(),
            self.dir.join("tls/ca.pem").display().to_string(),
            "--nats-nkey".into(),
            self.dir
                .join(format!("aurora/{identity}.nk"))
                .display()
                .to_string(),
        ]
    }

    /// `aurora fleet ARGS` as the operator: (success, stdout, stderr).
    fn fleet(&self, args: &[&str]) -> (bool, String, String) {
        self.fleet_as("ops", args)
    }

    fn fleet_as(&self, identity: &str, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(aurora())
            .arg("fleet")
            .arg(args[0])
            .args(self.flags(identity))
            .args(&args[1..])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn status(&self) -> Vec<Value> {
        let (ok, out, err) = self.fleet(&["status", "--json"]);
        assert!(ok, "fleet status: {err}");
        serde_json::from_str(&out).expect("fleet status --json")
    }

    fn host(&self, id: &str) -> Option<Value> {
        self.status().into_iter().find(|h| h["host_id"] == id)
    }

    /// Wait until `id`'s heartbeat satisfies `pred`.
    fn wait_host(&self, what: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        poll_until(what, 30, || self.host(id).filter(|h| pred(h)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A NATS client of `identity` from this process (for what the CLI deliberately cannot do:
/// forging, tampering), keeping the server's refusals.
fn client(
    server: &Server,
    identity: &str,
    host: &str,
) -> (
    tokio::runtime::Runtime,
    async_nats::Client,
    Arc<Mutex<Vec<String>>>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = aurora_agent::nats::NatsConnect {
        urls: vec![server.url.clone()],
        credentials: None,
        nkey: Some(server.dir.join(format!("aurora/{identity}.nk"))),
        tls_ca: Some(server.dir.join("tls/ca.pem")),
        host: host.into(),
    };
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = refused.clone();
    let client = rt.block_on(async {
        aurora_agent::nats::options(&cfg)
            .await
            .unwrap()
            .event_callback(move |e| {
                let seen = seen.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = e {
                        seen.lock().unwrap().push(e.to_string());
                    }
                }
            })
            .connect(aurora_agent::nats::server_addrs(&cfg).unwrap())
            .await
            .unwrap()
    });
    (rt, client, refused)
}

fn marker_rule(dir: &Path, name: &str, marker: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.yml")),
        format!(
            "title: Fleet bundle {name}\nid: 6d0b3c1e-1111-4a5b-9c0d-{:012}\nstatus: test\n\
             logsource:\n  category: process_creation\n  product: linux\n\
             detection:\n  selection:\n    CommandLine|contains: {marker}\n  condition: selection\n\
             level: high\n",
            name.len()
        ),
    )
    .unwrap();
}

fn run_marker(marker: &str) {
    Command::new("sh")
        .args(["-c", &format!("echo {marker} > /dev/null")])
        .status()
        .unwrap();
}

fn alerted(agent: &Agent, title: &str, n: usize) -> bool {
    agent
        .wait_for(15, n, |a| a["rule"]["title"].as_str() == Some(title))
        .len()
        >= n
}

#[test]
#[ignore = "root, network namespaces, nftables, eBPF and nats-server: run by `cargo xtask test`"]
fn fleet_heartbeats_bundles_commands_intent_and_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut net = Net::create();
    let addr = net.server_addr();
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    make_tls(&dir.join("tls"), &addr);
    run_ok(
        Command::new(aurora())
            .args(["fleet", "enroll", "--operator", "ops", "--dir"])
            .arg(dir.join("aurora"))
            .args(["hosta", "hostb"]),
    );
    let port = free_port();
    let server = Server::start(dir, &addr, port);
    let (ok, _, err) = server.fleet(&["init"]);
    assert!(ok, "fleet init: {err}");
    run_ok(
        Command::new(aurora())
            .args(["fleet", "keygen"])
            .arg(dir.join("fleet")),
    );
    run_ok(
        Command::new(aurora())
            .args(["fleet", "keygen"])
            .arg(dir.join("other")),
    );

    let agent_args = |host: &str| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> =
            server.flags(host).into_iter().map(Into::into).collect();
        for x in [
            "--host-id",
            host,
            "--heartbeat-interval",
            INTERVAL,
            "--fleet-rules",
            "--fleet-key",
        ] {
            a.push(x.into());
        }
        a.push(dir.join("fleet.pub").into());
        a.push("--fleet-dir".into());
        a.push(dir.join(format!("fleet-{host}")).into());
        a.push("--spool-dir".into());
        a.push(dir.join(format!("spool-{host}")).into());
        a.push("--rules".into());
        a.push(repo().join("rules").into());
        a
    };
    let (dir_a, dir_b) = (dir.join("agent-a"), dir.join("agent-b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let mut agent_a = Some(Agent::start_in(
        &dir_a,
        Some(net.ns(0)),
        &agent_args("hosta"),
    ));
    let mut agent_b = Agent::start_in(&dir_b, Some(net.ns(1)), &agent_args("hostb"));

    // Heartbeats: both listed with their sensors and the same rule digest.
    let a = server.wait_host("hosta heartbeats", "hosta", |h| h["stale"] == false);
    let b = server.wait_host("hostb heartbeats", "hostb", |h| h["stale"] == false);
    for h in [&a, &b] {
        assert!(
            h["sensors"].as_object().is_some_and(|s| !s.is_empty()),
            "{h}"
        );
        assert!(!s(h, "file_sensor").is_empty(), "{h}");
        assert_eq!(s(h, "rules_digest").len(), 64, "{h}");
        assert!(n(h, "rules_active") > 0, "{h}");
        assert!(h["boot_id"].as_str().is_some_and(|b| !b.is_empty()), "{h}");
    }
    assert_eq!(a["rules_digest"], b["rules_digest"]);
    let (ok, table, _) = server.fleet(&["status"]);
    assert!(
        ok && table.contains("hosta") && table.contains("hostb"),
        "{table}"
    );

    // A signed bundle reaches both agents and its rule fires.
    let bundle = dir.join("bundle");
    marker_rule(&bundle, "one", "aurora-fleet-marker-1");
    let (ok, out, err) = server.fleet(&[
        "push-rules",
        "--key",
        &dir.join("fleet.seed").display().to_string(),
        &bundle.display().to_string(),
    ]);
    assert!(ok, "{out}{err}");
    let before = s(&a, "rules_digest").to_owned();
    for host in ["hosta", "hostb"] {
        // The running digest changes once the reloaded rules are in place.
        server.wait_host("the bundle is accepted and running", host, |h| {
            h["bundles"]["rules"]["state"] == "accepted" && h["rules_digest"] != before.as_str()
        });
    }
    run_marker("aurora-fleet-marker-1");
    assert!(alerted(agent_a.as_ref().unwrap(), "Fleet bundle one", 1));
    assert!(alerted(&agent_b, "Fleet bundle one", 1));

    // Refused: signed by another key; tampered; holding an invalid rule (push-rules itself
    // refuses that one, so it is signed and stored here directly).
    let (ok, _, err) = server.fleet(&[
        "push-rules",
        "--key",
        &dir.join("other.seed").display().to_string(),
        &bundle.display().to_string(),
    ]);
    assert!(ok, "{err}");
    for host in ["hosta", "hostb"] {
        let h = server.wait_host("the foreign bundle is refused", host, |h| {
            h["bundles"]["rules"]["state"] == "refused"
        });
        assert!(
            s(&h["bundles"]["rules"], "reason").contains("signature does not verify"),
            "{h}"
        );
    }
    let (rt, ops, _) = client(&server, "ops", "ops");
    let stores = rt.block_on(async {
        aurora_agent::fleet::Stores::open(&async_nats::jetstream::new(ops.clone()), false)
            .await
            .unwrap()
    });
    let seed = aurora_agent::fleet::bundle::read_seed(&dir.join("fleet.seed")).unwrap();
    let kind = aurora_agent::fleet::bundle::BundleKind::Rules;
    let mut tampered = aurora_agent::fleet::bundle::Bundle::from_paths(kind, std::slice::from_ref(&bundle))
        .unwrap()
        .sign(&seed)
        .unwrap();
    let at = tampered.payload.len() / 2;
    tampered.payload[at] ^= 0x01;
    rt.block_on(aurora_agent::fleet::bundle::put(&stores, kind, &tampered))
        .unwrap();
    for host in ["hosta", "hostb"] {
        let h = server.wait_host("the tampered bundle is refused", host, |h| {
            h["bundles"]["rules"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("digest mismatch"))
        });
        assert_eq!(h["bundles"]["rules"]["state"], "refused");
    }
    let invalid = dir.join("invalid");
    marker_rule(&invalid, "two", "aurora-fleet-marker-2");
    std::fs::write(invalid.join("broken.yml"), "title: broken\nlogsource: {category: process_creation, product: linux}\ndetection:\n  sel:\n    Image|nosuchmodifier: x\n  condition: sel\n").unwrap();
    let (ok, _, err) = server.fleet(&[
        "push-rules",
        "--key",
        &dir.join("fleet.seed").display().to_string(),
        &invalid.display().to_string(),
    ]);
    assert!(
        !ok && err.contains("invalid rule"),
        "push-rules checks first: {err}"
    );
    let signed = aurora_agent::fleet::bundle::Bundle::from_paths(kind, std::slice::from_ref(&invalid))
        .unwrap()
        .sign(&seed)
        .unwrap();
    rt.block_on(aurora_agent::fleet::bundle::put(&stores, kind, &signed))
        .unwrap();
    for host in ["hosta", "hostb"] {
        let h = server.wait_host("the invalid bundle is refused", host, |h| {
            h["bundles"]["rules"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("invalid rules"))
        });
        assert_eq!(h["bundles"]["rules"]["state"], "refused");
    }
    // The accepted rules keep alerting; the refused bundle's rule never does.
    run_marker("aurora-fleet-marker-1");
    run_marker("aurora-fleet-marker-2");
    assert!(alerted(agent_a.as_ref().unwrap(), "Fleet bundle one", 2));
    assert!(alerted(&agent_b, "Fleet bundle one", 2));
    assert!(agent_b
        .alerts()
        .iter()
        .all(|a| a["rule"]["title"] != "Fleet bundle two"));

    // Commands: ping, reload, policy-mode, kill by ProcessGuid.
    let reply = |host: &str, words: &[&str]| -> Value {
        let mut args = vec!["cmd", "--operator", "test-operator", host];
        args.extend_from_slice(words);
        let (ok, out, err) = server.fleet(&args);
        assert!(ok, "fleet cmd {words:?}: {out}{err}");
        serde_json::from_str(out.trim()).expect("a reply")
    };
    assert!(s(&reply("hosta", &["ping"]), "result").contains("active rules"));
    assert!(s(&reply("hosta", &["reload"]), "result").starts_with("reloaded"));
    assert!(s(&reply("hostb", &["policy-mode", "enforce"]), "result").contains("enforce mode"));
    server.wait_host("policy mode reported", "hostb", |h| {
        h["policy_mode"] == "enforce"
    });
    // The shell's command line names the marker; it then becomes `sleep` (same process).
    let victim = KillOnDrop(
        Command::new("sh")
            .args(["-c", "exec sleep 300", "aurora-fleet-marker-1"])
            .spawn()
            .unwrap(),
    );
    let hit = agent_b.wait_for(15, 1, |a| {
        a["rule"]["title"] == "Fleet bundle one"
            && a["event"]["ProcessId"].as_u64() == Some(u64::from(victim.0.id()))
    });
    let guid = s(&hit[0]["event"], "ProcessGuid").to_owned();
    let killed = reply("hostb", &["kill", &guid]);
    assert_eq!(killed["ok"], true, "{killed}");
    poll_until("the process is gone", 5, || {
        (!Path::new(&format!("/proc/{}", victim.0.id())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", victim.0.id()))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });

    // Isolation: the commanded host only; the fleet server stays reachable.
    net.listen(port + 1);
    poll_until("the probe listens", 10, || {
        (net.connects(0, port + 1) && net.connects(1, port + 1)).then_some(())
    });
    let isolated = reply("hosta", &["isolate"]);
    assert!(s(&isolated, "result").starts_with("isolated"), "{isolated}");
    assert!(net.tables(0).contains("aurora_isolation"));
    assert!(!net.tables(1).contains("aurora_isolation"));
    assert!(!net.connects(0, port + 1), "hosta is cut off");
    assert!(net.connects(1, port + 1), "hostb is not");
    server.wait_host("hosta reports isolation", "hosta", |h| {
        h["isolated"] == true && h["wanted_isolated"] == true
    });

    // Unisolated while down: the restarted agent converges.
    agent_a.take().unwrap().stop();
    let (ok, out, err) = server.fleet(&["cmd", "hosta", "unisolate"]);
    assert!(ok && out.contains("intent recorded"), "{out}{err}");
    assert!(
        net.tables(0).contains("aurora_isolation"),
        "nothing lifts it while the agent is down"
    );
    agent_a = Some(Agent::start_in(
        &dir_a,
        Some(net.ns(0)),
        &agent_args("hosta"),
    ));
    poll_until("hosta converges to unisolated", 20, || {
        (!net.tables(0).contains("aurora_isolation")).then_some(())
    });
    assert!(net.connects(0, port + 1));

    // A heartbeat saying "unisolated" never changes what operators want; agents cannot write
    // the intent.
    assert!(s(&reply("hosta", &["isolate"]), "result").starts_with("isolated"));
    let (rt_a, as_a, refused_a) = client(&server, "hosta", "hosta");
    rt_a.block_on(async {
        let js = async_nats::jetstream::new(as_a.clone());
        let hb = js.get_key_value("AURORA_FLEET").await.unwrap();
        let mut forged = server.host("hosta").unwrap();
        forged["isolated"] = false.into();
        hb.put("hosta", serde_json::to_vec(&forged).unwrap().into())
            .await
            .expect("an agent writes its own heartbeat");
        let intent_write = js
            .publish(
                "$KV.AURORA_INTENT.hosta.isolation",
                b"{\"isolated\":false,\"by\":\"hosta\",\"at\":0}"
                    .to_vec()
                    .into(),
            )
            .await;
        let acked = match intent_write {
            Ok(ack) => tokio::time::timeout(Duration::from_secs(2), ack)
                .await
                .is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        assert!(!acked, "an agent's identity cannot write the intent");
    });
    poll_until("the intent write is refused", 5, || {
        refused_a
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("Permissions Violation") && e.contains("AURORA_INTENT"))
            .then_some(())
    });
    let h = server.host("hosta").unwrap();
    assert_eq!(h["wanted_isolated"], true, "{h}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        net.tables(0).contains("aurora_isolation"),
        "the agent stays isolated"
    );
    server.wait_host("hosta's own heartbeat again", "hosta", |h| {
        h["isolated"] == true
    });
    assert!(s(&reply("hosta", &["unisolate"]), "result").starts_with("unisolated"));

    // Agent A's identity cannot publish on B's subjects nor command.
    // The refusals arrive as server errors, handled on this runtime: wait on it.
    rt_a.block_on(async {
        as_a.publish("aurora.alerts.hostb", "forged".into())
            .await
            .unwrap();
        as_a.publish("aurora-cmd.hostb", "{}".into()).await.unwrap();
        as_a.flush().await.unwrap();
        let refused_both = || {
            let r = refused_a.lock().unwrap();
            r.iter()
                .any(|e| e.contains("Permissions Violation for Publish to \"aurora.alerts.hostb\""))
                && r.iter().any(|e| {
                    e.contains("Permissions Violation for Publish to \"aurora-cmd.hostb\"")
                })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !refused_both() {
            assert!(
                Instant::now() < deadline,
                "not refused: {:?}",
                refused_a.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut a_cmd = vec!["cmd".to_owned()];
    a_cmd.extend(server.flags("hosta"));
    a_cmd.extend(["--host-id", "hosta", "hostb", "ping"].map(String::from));
    let out = Command::new(aurora())
        .arg("fleet")
        .args(&a_cmd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permissions Violation"),
        "{err}"
    );

    // Stale after 3 intervals without a heartbeat; the other stays fresh.
    agent_b.kill();
    let killed_at = Instant::now();
    let b = server.wait_host("hostb goes stale", "hostb", |h| h["stale"] == true);
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "stale too early: {:?} after the kill: {b}",
        killed_at.elapsed()
    );
    assert_eq!(server.host("hosta").unwrap()["stale"], false);
    agent_a.take().unwrap().stop();
    drop(stores);
    drop(ops);
    drop(rt);
    drop(server);
    drop(net);
}
