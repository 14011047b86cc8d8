//! The fleet control plane's test fixtures: network namespaces joined to the host by veth
//! pairs, a test CA, nats-server started with deploy/nats's configuration, and NATS clients of
//! the enrolled identities.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::daemons::poll_until;
use super::*;

pub fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// The server side (host addresses of two veth pairs) and one namespace per agent.
pub struct Net {
    id: u32,
    namespaces: Vec<String>,
    links: Vec<String>,
    children: Vec<Child>,
}

impl Net {
    pub fn create() -> Net {
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
    pub fn server_addr(&self) -> String {
        format!("10.232.{}.1", self.id)
    }

    pub fn ns(&self, side: usize) -> &str {
        &self.namespaces[side]
    }

    pub fn tables(&self, side: usize) -> String {
        run_ok(Command::new("ip").args(["netns", "exec", self.ns(side), "nft", "list", "tables"]))
    }

    /// Whether a TCP connect from agent `side`'s namespace to the server address on `port`
    /// succeeds (1 s timeout).
    pub fn connects(&self, side: usize, port: u16) -> bool {
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

    /// GET http://127.0.0.1:PORT/PATH inside agent `side`'s namespace.
    pub fn http_get(&self, side: usize, port: u16, path: &str) -> String {
        let code = format!(
            "import urllib.request\nprint(urllib.request.urlopen('http://127.0.0.1:{port}{path}',timeout=5).read().decode())"
        );
        run_ok(Command::new("ip").args(["netns", "exec", self.ns(side), "python3", "-c", &code]))
    }

    /// A TCP listener on the server address that accepts and closes.
    pub fn listen(&mut self, port: u16) {
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
pub fn make_tls(dir: &Path, addr: &str) {
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
pub struct Server {
    child: Child,
    pub url: String,
    pub dir: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, addr: &str, port: u16) -> Server {
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
    pub fn flags(&self, identity: &str) -> Vec<String> {
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
    pub fn fleet(&self, args: &[&str]) -> (bool, String, String) {
        self.fleet_as("ops", args)
    }

    pub fn fleet_as(&self, identity: &str, args: &[&str]) -> (bool, String, String) {
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

    pub fn status(&self) -> Vec<Value> {
        let (ok, out, err) = self.fleet(&["status", "--json"]);
        assert!(ok, "fleet status: {err}");
        serde_json::from_str(&out).expect("fleet status --json")
    }

    pub fn host(&self, id: &str) -> Option<Value> {
        self.status().into_iter().find(|h| h["host_id"] == id)
    }

    /// Wait until `id`'s heartbeat satisfies `pred`.
    pub fn wait_host(&self, what: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
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
pub fn client(
    server: &Server,
    identity: &str,
    host: &str,
) -> (
    tokio::runtime::Runtime,
    async_nats::Client,
    aurora_agent::nats::Refusals,
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
    let refused = aurora_agent::nats::Refusals::default();
    let client = rt.block_on(async {
        refused
            .watch(aurora_agent::nats::options(&cfg).await.unwrap())
            .connect(aurora_agent::nats::server_addrs(&cfg).unwrap())
            .await
            .unwrap()
    });
    (rt, client, refused)
}

pub fn marker_rule(dir: &Path, name: &str, marker: &str) {
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

pub fn run_marker(marker: &str) {
    Command::new("sh")
        .args(["-c", &format!("echo {marker} > /dev/null")])
        .status()
        .unwrap();
}

pub fn alerted(agent: &Agent, title: &str, n: usize) -> bool {
    agent
        .wait_for(15, n, |a| a["rule"]["title"].as_str() == Some(title))
        .len()
        >= n
}

/// The running fleet: the network, the server, keys, and the two agents.
pub struct Fleet {
    // Dropped in this order: agents, server, namespaces, files.
    pub agents: [Option<Agent>; 2],
    pub server: Server,
    pub net: Net,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// More flags for both agents.
    extra: Vec<String>,
}

/// Seconds between heartbeats in these tests.
pub const INTERVAL: &str = "1";

pub const HOSTS: [&str; 2] = ["hosta", "hostb"];

impl Fleet {
    /// Server, identities, keys and both agents (with `extra` flags), up.
    pub fn start(extra: &[&str]) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let net = Net::create();
        let addr = net.server_addr();
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        make_tls(&dir.join("tls"), &addr);
        let aurora_fleet = |args: &[&str], path: PathBuf| {
            run_ok(Command::new(aurora()).arg("fleet").args(args).arg(path));
        };
        aurora_fleet(
            &["enroll", "--operator", "ops", "hosta", "hostb", "--dir"],
            dir.join("aurora"),
        );
        aurora_fleet(&["keygen"], dir.join("fleet"));
        aurora_fleet(&["keygen"], dir.join("other"));
        let port = free_port();
        let server = Server::start(dir, &addr, port);
        let (ok, _, err) = server.fleet(&["init"]);
        assert!(ok, "fleet init: {err}");
        let mut fleet = Fleet {
            dir: tmp,
            server,
            net,
            port,
            agents: [None, None],
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        fleet.start_agent(0);
        fleet.start_agent(1);
        fleet
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn start_agent(&mut self, side: usize) {
        let host = HOSTS[side];
        let mut args: Vec<std::ffi::OsString> = self
            .server
            .flags(host)
            .into_iter()
            .map(Into::into)
            .collect();
        for (flag, value) in [
            ("--host-id", host.into()),
            ("--heartbeat-interval", INTERVAL.into()),
            ("--fleet-key", self.path("fleet.pub")),
            ("--fleet-dir", self.path(&format!("fleet-{host}"))),
            ("--spool-dir", self.path(&format!("spool-{host}"))),
            ("--rules", repo().join("rules")),
        ] {
            args.push(flag.into());
            args.push(value.into());
        }
        args.push("--fleet-rules".into());
        args.push("--fleet-policy".into());
        args.extend(self.extra.iter().map(Into::into));
        let dir = self.path(&format!("agent-{host}"));
        std::fs::create_dir_all(&dir).unwrap();
        self.agents[side] = Some(Agent::start_in(&dir, Some(self.net.ns(side)), &args));
    }

    pub fn agent(&self, side: usize) -> &Agent {
        self.agents[side].as_ref().expect("agent running")
    }

    /// `aurora fleet cmd HOST WORDS` as the operator; the reply.
    pub fn reply(&self, host: &str, words: &[&str]) -> Value {
        let mut args = vec!["cmd", "--operator", "test-operator", host];
        args.extend_from_slice(words);
        let (ok, out, err) = self.server.fleet(&args);
        assert!(ok, "fleet cmd {words:?}: {out}{err}");
        serde_json::from_str(out.trim()).expect("a reply")
    }

    pub fn push_rules(&self, key: &str, dir: &Path) -> (bool, String) {
        let key = self.path(key).display().to_string();
        let (ok, out, err) =
            self.server
                .fleet(&["push-rules", "--key", &key, &dir.display().to_string()]);
        (ok, out + &err)
    }

    /// Wait until every agent's heartbeat says what `pred` wants of its rules bundle.
    pub fn wait_bundle(&self, what: &str, pred: impl Fn(&Value) -> bool) {
        for host in HOSTS {
            self.server
                .wait_host(what, host, |h| pred(&h["bundles"]["rules"]));
        }
    }
}
