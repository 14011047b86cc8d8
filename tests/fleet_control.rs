//! The fleet control plane against a real nats-server started with deploy/nats's configuration
//! (TLS on, one nkey per agent from `aurora fleet enroll`, the operator identity for
//! `aurora fleet`): two live agents, each in a network namespace this test makes (a veth pair
//! to the host side, whose address the server listens on), heartbeat, take signed bundles,
//! refuse bad ones, obey commands, converge to the operator's isolation intent, and cannot use
//! each other's subjects.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemons::poll_until;
use common::fleet::{alerted, client, marker_rule, run_marker, Fleet, HOSTS};
use common::*;
use serde_json::Value;

/// Both agents listed, with sensors and the same rules.
fn heartbeats(f: &Fleet) -> String {
    let a = f
        .server
        .wait_host("hosta heartbeats", "hosta", |h| h["stale"] == false);
    let b = f
        .server
        .wait_host("hostb heartbeats", "hostb", |h| h["stale"] == false);
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
    let (ok, table, _) = f.server.fleet(&["status"]);
    assert!(
        ok && table.contains("hosta") && table.contains("hostb"),
        "{table}"
    );
    s(&a, "rules_digest").to_owned()
}

/// A signed bundle is taken by both agents and fires; bad ones are refused with the reason
/// while the accepted rules keep alerting.
fn bundles(f: &Fleet, digest_before: &str) {
    let bundle = f.path("bundle");
    marker_rule(&bundle, "one", "aurora-fleet-marker-1");
    let (ok, out) = f.push_rules("fleet.seed", &bundle);
    assert!(ok, "{out}");
    for host in HOSTS {
        // The running digest changes once the reloaded rules are in place.
        f.server
            .wait_host("the bundle is accepted and running", host, |h| {
                h["bundles"]["rules"]["state"] == "accepted" && h["rules_digest"] != digest_before
            });
    }
    run_marker("aurora-fleet-marker-1");
    assert!(alerted(f.agent(0), "Fleet bundle one", 1));
    assert!(alerted(f.agent(1), "Fleet bundle one", 1));

    let (ok, out) = f.push_rules("other.seed", &bundle);
    assert!(ok, "{out}");
    f.wait_bundle("the foreign bundle is refused", |b| {
        b["state"] == "refused" && s(b, "reason").contains("signature does not verify")
    });

    // What `push-rules` would never store is signed and stored here directly.
    let (rt, ops, _) = client(&f.server, "ops", "ops");
    let stores = rt
        .block_on(async {
            aurora_agent::fleet::Stores::open(&async_nats::jetstream::new(ops), false).await
        })
        .unwrap();
    let seed = aurora_agent::fleet::bundle::read_seed(&f.path("fleet.seed")).unwrap();
    let kind = aurora_agent::fleet::bundle::BundleKind::Rules;
    let signed = |dir: &Path| {
        aurora_agent::fleet::bundle::Bundle::from_paths(kind, &[dir.to_path_buf()])
            .unwrap()
            .sign(&seed)
            .unwrap()
    };
    let mut tampered = signed(&bundle);
    let at = tampered.payload.len() / 2;
    tampered.payload[at] ^= 0x01;
    rt.block_on(aurora_agent::fleet::bundle::put(&stores, kind, &tampered))
        .unwrap();
    f.wait_bundle("the tampered bundle is refused", |b| {
        b["state"] == "refused" && s(b, "reason").contains("digest mismatch")
    });

    let invalid = f.path("invalid");
    marker_rule(&invalid, "two", "aurora-fleet-marker-2");
    std::fs::write(
        invalid.join("broken.yml"),
        "title: broken\nlogsource: {category: process_creation, product: linux}\n\
         detection:\n  sel:\n    Image|nosuchmodifier: x\n  condition: sel\n",
    )
    .unwrap();
    let (ok, out) = f.push_rules("fleet.seed", &invalid);
    assert!(
        !ok && out.contains("invalid rule"),
        "push-rules checks first: {out}"
    );
    rt.block_on(aurora_agent::fleet::bundle::put(
        &stores,
        kind,
        &signed(&invalid),
    ))
    .unwrap();
    f.wait_bundle("the invalid bundle is refused", |b| {
        b["state"] == "refused" && s(b, "reason").contains("invalid rules")
    });

    run_marker("aurora-fleet-marker-1");
    run_marker("aurora-fleet-marker-2");
    assert!(alerted(f.agent(0), "Fleet bundle one", 2));
    assert!(alerted(f.agent(1), "Fleet bundle one", 2));
    assert!(f
        .agent(1)
        .alerts()
        .iter()
        .all(|a| a["rule"]["title"] != "Fleet bundle two"));

    // A policy bundle, the same way (audit mode: nothing refused yet).
    let tool = f.path("denied-tool");
    std::fs::copy("/bin/true", &tool).unwrap();
    let policy = f.path("deny.yml");
    std::fs::write(
        &policy,
        format!("deny_exec:\n  - path: {}\n", tool.display()),
    )
    .unwrap();
    let key = f.path("fleet.seed").display().to_string();
    let (ok, out, err) =
        f.server
            .fleet(&["push-policy", "--key", &key, &policy.display().to_string()]);
    assert!(ok, "{out}{err}");
    for host in HOSTS {
        f.server.wait_host("the policy bundle runs", host, |h| {
            h["bundles"]["policy"]["state"] == "accepted" && n(h, "policy_entries") == 1
        });
    }
    assert!(
        Command::new(&tool).status().unwrap().success(),
        "audit mode denies nothing"
    );
}

/// ping, reload, policy-mode, kill by ProcessGuid.
fn commands(f: &Fleet) {
    assert!(s(&f.reply("hosta", &["ping"]), "result").contains("active rules"));
    assert!(s(&f.reply("hosta", &["reload"]), "result").starts_with("reloaded"));
    let mode = f.reply("hostb", &["policy-mode", "enforce"]);
    assert!(s(&mode, "result").contains("enforce mode"), "{mode}");
    f.server.wait_host("policy mode reported", "hostb", |h| {
        h["policy_mode"] == "enforce"
    });
    // The shell's command line names the marker; it then becomes `sleep` (same process).
    let victim = KillOnDrop(
        Command::new("sh")
            .args(["-c", "exec sleep 300", "aurora-fleet-marker-1"])
            .spawn()
            .unwrap(),
    );
    let pid = victim.0.id();
    let hit = f.agent(1).wait_for(15, 1, |a| {
        a["rule"]["title"] == "Fleet bundle one"
            && a["event"]["ProcessId"].as_u64() == Some(u64::from(pid))
    });
    let guid = s(&hit[0]["event"], "ProcessGuid").to_owned();
    let killed = f.reply("hostb", &["kill", &guid]);
    assert_eq!(killed["ok"], true, "{killed}");
    poll_until("the process is gone", 5, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        stat.map_or(true, |s| s.contains(") Z ")).then_some(())
    });
}

/// Every command and every reply is in the stream, with who sent it.
fn records(f: &Fleet) {
    let (rt, ops, _) = client(&f.server, "ops", "ops");
    let records: Vec<Value> = rt.block_on(async {
        let js = async_nats::jetstream::new(ops);
        common::nats::read_subject(&js, "aurora.fleet.>")
            .await
            .into_iter()
            .map(|m| {
                let mut v: Value = serde_json::from_slice(&m.payload).unwrap();
                v["subject"] = m.subject.to_string().into();
                v
            })
            .collect()
    });
    let ping = records
        .iter()
        .find(|r| r["subject"] == "aurora.fleet.hosta.command" && r["command"] == "ping")
        .expect("the ping command is recorded");
    assert_eq!(ping["by"], "test-operator");
    let reply = records
        .iter()
        .find(|r| r["subject"] == "aurora.fleet.hosta.reply" && r["id"] == ping["id"])
        .expect("its reply is recorded");
    assert_eq!(reply["ok"], true);
    let kill = records
        .iter()
        .find(|r| r["subject"] == "aurora.fleet.hostb.reply" && r["command"] == "kill")
        .expect("the kill's reply is recorded");
    assert!(s(kill, "result").starts_with("killed pid"), "{kill}");
}

/// Isolation of one agent; intent applied after a restart; a forged heartbeat changes nothing.
fn isolation(f: &mut Fleet) {
    let probe = f.port + 1;
    f.net.listen(probe);
    poll_until("the probe listens", 10, || {
        (f.net.connects(0, probe) && f.net.connects(1, probe)).then_some(())
    });
    let isolated = f.reply("hosta", &["isolate"]);
    assert!(s(&isolated, "result").starts_with("isolated"), "{isolated}");
    assert!(f.net.tables(0).contains("aurora_isolation"));
    assert!(!f.net.tables(1).contains("aurora_isolation"));
    assert!(!f.net.connects(0, probe), "hosta is cut off");
    assert!(f.net.connects(1, probe), "hostb is not");
    f.server.wait_host("hosta reports isolation", "hosta", |h| {
        h["isolated"] == true && h["wanted_isolated"] == true
    });

    f.agents[0].take().unwrap().stop();
    let (ok, out, err) = f.server.fleet(&["cmd", "hosta", "unisolate"]);
    assert!(ok && out.contains("intent recorded"), "{out}{err}");
    assert!(
        f.net.tables(0).contains("aurora_isolation"),
        "nothing lifts it while the agent is down"
    );
    f.start_agent(0);
    poll_until("hosta converges to unisolated", 20, || {
        (!f.net.tables(0).contains("aurora_isolation")).then_some(())
    });
    assert!(f.net.connects(0, probe));

    assert!(s(&f.reply("hosta", &["isolate"]), "result").starts_with("isolated"));
    let (rt, as_a, refused) = client(&f.server, "hosta", "hosta");
    rt.block_on(async {
        let js = async_nats::jetstream::new(as_a.clone());
        let hb = js.get_key_value("AURORA_FLEET").await.unwrap();
        let mut forged = f.server.host("hosta").unwrap();
        forged["isolated"] = false.into();
        hb.put("hosta", serde_json::to_vec(&forged).unwrap().into())
            .await
            .expect("an agent writes its own heartbeat");
        let intent = b"{\"isolated\":false,\"by\":\"hosta\",\"at\":0}".to_vec();
        let acked = match js
            .publish("$KV.AURORA_INTENT.hosta.isolation", intent.into())
            .await
        {
            Ok(ack) => tokio::time::timeout(Duration::from_secs(2), ack)
                .await
                .is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        assert!(!acked, "an agent's identity cannot write the intent");
        wait_refused(&refused, &["$KV.AURORA_INTENT.hosta.isolation"]).await;
    });
    assert_eq!(f.server.host("hosta").unwrap()["wanted_isolated"], true);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        f.net.tables(0).contains("aurora_isolation"),
        "the agent stays isolated"
    );
    f.server
        .wait_host("hosta's own heartbeat again", "hosta", |h| {
            h["isolated"] == true
        });
    assert!(s(&f.reply("hosta", &["unisolate"]), "result").starts_with("unisolated"));
}

/// Wait (on the client's runtime, which handles the server's errors) until the server refused
/// a publish to each of `subjects`.
async fn wait_refused(refused: &aurora_agent::nats::Refusals, subjects: &[&str]) {
    let all = || {
        let r = refused.all();
        subjects.iter().all(|sub| {
            let said = format!("Permissions Violation for Publish to \"{sub}\"");
            r.iter().any(|e| e.contains(&said))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !all() {
        assert!(
            Instant::now() < deadline,
            "not refused: {:?}",
            refused.all()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Agent A's identity cannot publish on B's subjects nor command.
fn permissions(f: &Fleet) {
    let (rt, as_a, refused) = client(&f.server, "hosta", "hosta");
    rt.block_on(async {
        as_a.publish("aurora.alerts.hostb", "forged".into())
            .await
            .unwrap();
        as_a.publish("aurora-cmd.hostb", "{}".into()).await.unwrap();
        as_a.flush().await.unwrap();
        wait_refused(&refused, &["aurora.alerts.hostb", "aurora-cmd.hostb"]).await;
    });
    let mut args = vec!["cmd".to_owned()];
    args.extend(f.server.flags("hosta"));
    args.extend(["--host-id", "hosta", "hostb", "ping"].map(String::from));
    let out = Command::new(aurora())
        .arg("fleet")
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permissions Violation"),
        "{err}"
    );
}

/// Stale after 3 intervals without a heartbeat; the other stays fresh.
fn staleness(f: &mut Fleet) {
    assert_eq!(f.server.host("hostb").unwrap()["stale"], false);
    f.agents[1].as_mut().unwrap().kill();
    let b = f
        .server
        .wait_host("hostb goes stale", "hostb", |h| h["stale"] == true);
    let (age, interval) = (b["age"].as_f64().unwrap(), b["interval"].as_f64().unwrap());
    assert!(age > 3.0 * interval, "stale only past 3 intervals: {b}");
    assert_eq!(f.server.host("hosta").unwrap()["stale"], false);
    // What hosta did is in its metrics.
    let metrics = f
        .net
        .http_get(0, metrics_port(&f.agent(0).ready), "/metrics");
    assert!(
        sample(&metrics, "aurora_fleet_heartbeats_total{result=\"ok\"}") > 0,
        "{metrics}"
    );
    assert!(sample(&metrics, "aurora_fleet_commands_total{result=\"ok\"}") > 0);
    assert!(
        sample(&metrics, "aurora_fleet_convergences_total") > 0,
        "unisolated on restart"
    );
    assert!(
        sample(
            &metrics,
            "aurora_fleet_bundles_total{kind=\"policy\",state=\"accepted\"}"
        ) > 0
    );
}

#[test]
#[ignore = "root, network namespaces, nftables, eBPF and nats-server: run by `cargo xtask test`"]
fn fleet_heartbeats_bundles_commands_intent_and_permissions() {
    let mut f = Fleet::start(&[]);
    let digest = heartbeats(&f);
    bundles(&f, &digest);
    commands(&f);
    records(&f);
    isolation(&mut f);
    permissions(&f);
    staleness(&mut f);
    f.agents[0].take().unwrap().stop();
}
