//! Host isolation (root, real nftables): inside two network namespaces this test creates (a
//! veth pair; the addresses exist only there), `aurora isolate` cuts the "host" namespace off
//! but for the allowed address, an agent restart leaves it isolated, and `aurora unisolate`
//! restores it. The host's own ruleset is compared before and after: never touched.
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::daemons::poll_until;
use common::*;

/// Two namespaces joined by a veth pair: `host` (10.231.N.1) is the one isolated; `peer`
/// listens on 10.231.N.2 and 10.231.N.3.
struct Netns {
    host: String,
    peer: String,
    net: String,
    listeners: Vec<Child>,
}

const PORT: u16 = 18080;

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

impl Netns {
    fn create() -> Netns {
        let id = std::process::id() % 200 + 20;
        let host = format!("aur-iso-h-{}", std::process::id());
        let peer = format!("aur-iso-p-{}", std::process::id());
        let net = format!("10.231.{id}");
        let (vh, vp) = (format!("aurh{id}"), format!("aurp{id}"));
        let ns = Netns {
            host: host.clone(),
            peer: peer.clone(),
            net: net.clone(),
            listeners: vec![],
        };
        ip(&["netns", "add", &host]);
        ip(&["netns", "add", &peer]);
        ip(&[
            "link", "add", &vh, "netns", &host, "type", "veth", "peer", "name", &vp, "netns", &peer,
        ]);
        for (n, dev, addrs) in [
            (&host, &vh, vec![format!("{net}.1/24")]),
            (
                &peer,
                &vp,
                vec![format!("{net}.2/24"), format!("{net}.3/24")],
            ),
        ] {
            for a in addrs {
                ip(&["-n", n, "addr", "add", &a, "dev", dev]);
            }
            ip(&["-n", n, "link", "set", dev, "up"]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ns
    }

    fn exec(&self, ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]);
        c
    }

    /// A TCP listener in the peer namespace on `addr` that accepts and closes.
    fn listen(&mut self, addr: &str) {
        let code = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('{addr}',{PORT}))\ns.listen(64)\nwhile True:\n  c,_=s.accept()\n  c.close()\n"
        );
        let child = self
            .exec(&self.peer.clone())
            .args(["python3", "-c", &code])
            .spawn()
            .unwrap();
        self.listeners.push(child);
    }

    /// Whether a TCP connect from the host namespace to `addr` succeeds (1 s timeout).
    fn connects(&self, addr: &str) -> bool {
        let code = format!(
            "import socket,sys\ntry:\n  socket.create_connection(('{addr}',{PORT}),timeout=1).close()\n\
             except OSError:\n  sys.exit(1)\n"
        );
        self.exec(&self.host)
            .args(["python3", "-c", &code])
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for l in &mut self.listeners {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.host])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.peer])
            .status();
    }
}

fn host_ruleset() -> String {
    run_ok(Command::new("nft").args(["list", "ruleset"]))
}

#[test]
#[ignore = "root, network namespaces and nftables: run by `cargo xtask test`"]
fn isolate_allows_only_the_allowed_address_survives_an_agent_restart_and_unisolate_lifts_it() {
    let host_before = host_ruleset();
    let mut ns = Netns::create();
    let (blocked, allowed) = (format!("{}.2", ns.net), format!("{}.3", ns.net));
    ns.listen(&blocked);
    ns.listen(&allowed);
    poll_until("the peer listens", 10, || {
        (ns.connects(&blocked) && ns.connects(&allowed)).then_some(())
    });

    let out = run_ok(ns.exec(&ns.host).arg(aurora()).args([
        "isolate",
        "--allow",
        &format!("{allowed}:{PORT}"),
    ]));
    let event: serde_json::Value = serde_json::from_str(out.trim()).expect("an isolation event");
    assert_eq!(event["EventID"], 102);
    assert_eq!(event["Action"], "isolated");
    assert_eq!(s(&event, "Allowed"), format!("{allowed}:{PORT}"));
    assert!(!ns.connects(&blocked), "isolated: the peer is cut off");
    assert!(ns.connects(&allowed), "the allowed address stays reachable");
    let isolated_here = run_ok(ns.exec(&ns.host).args(["nft", "list", "tables"]));
    assert!(
        isolated_here.contains("aurora_isolation"),
        "{isolated_here}"
    );

    // The agent (started and stopped in that namespace) reports it and leaves it in place.
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let rules = repo().join("rules");
    let mut agent = KillOnDrop(
        ns.exec(&ns.host)
            .arg(aurora())
            .arg("--rules")
            .arg(&rules)
            .args(["--no-stdout", "--logfile"])
            .arg(dir.path().join("alerts.log"))
            .arg("--ready-file")
            .arg(&ready)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = stderr_lines(&mut agent.0);
    let state = wait_ready(&mut agent.0, &ready, &rx);
    assert_eq!(state["isolated"], true, "{state}");
    nix_kill(state["pid"].as_u64().unwrap() as u32, 15);
    poll_until("the agent stopped", 10, || agent.0.try_wait().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !ns.connects(&blocked),
        "still isolated after the agent stopped"
    );
    assert!(ns.connects(&allowed));

    let out = run_ok(ns.exec(&ns.host).arg(aurora()).arg("unisolate"));
    assert!(out.contains("\"Action\":\"unisolated\""), "{out}");
    assert!(ns.connects(&blocked), "unisolate restores the network");
    let again = run_ok(ns.exec(&ns.host).arg(aurora()).arg("unisolate"));
    assert!(again.contains("not_isolated"), "{again}");
    drop(ns);
    assert_eq!(
        host_ruleset(),
        host_before,
        "the host's ruleset was never touched"
    );
}
