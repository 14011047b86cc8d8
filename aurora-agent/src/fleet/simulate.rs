//! Many heartbeating agents from one process, for the bench: each simulated host puts a
//! heartbeat shaped like a real agent's (its sensors, enforcement, digests, bundles) every
//! interval, the hosts spread evenly over the interval. Prints one JSON line of what was put.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use async_nats::jetstream;

use super::heartbeat::{BundleState, Heartbeat};
use super::Stores;

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub nats: crate::nats::NatsConnectArgs,
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Seconds between one agent's heartbeats.
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 25.0)]
    pub duration: f64,
}

/// A heartbeat as a live agent on this kind of host sends it.
fn template(host: &str) -> Heartbeat {
    let sensors: BTreeMap<String, String> = [
        ("aurora_exec", "sched/sched_process_exec"),
        ("aurora_exit", "sched/sched_process_exit"),
        ("aurora_fork", "sched/sched_process_fork"),
        ("aurora_vfs_create", "security_inode_create"),
        ("aurora_tcp_connect", "sock/inet_sock_set_state"),
        ("aurora_dns", "net/netif_receive_skb"),
        ("aurora_exec_deny", "bprm_check_security"),
        ("aurora_open_deny", "file_open"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let digest = "4f1c0a5e9b2d7c3e8a6f0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";
    Heartbeat {
        host_id: host.to_owned(),
        hostname: host.to_owned(),
        boot_id: "0c7f3a52-8d3e-4c1b-9a4f-2e6d5b7c8a90".into(),
        version: crate::VERSION.into(),
        kernel: "6.1.0-28-cloud-amd64".into(),
        sensors,
        file_sensor: "vfs".into(),
        enforcement: [("exec", "lsm"), ("open", "lsm")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        rules_digest: digest.into(),
        rules_active: 226,
        policy_digest: digest.into(),
        policy_entries: 12,
        isolated: Some(false),
        events: 123_456_789,
        alerts: 1_234,
        lost: 0,
        last_alert: Some(super::unix_now()),
        bundles: BTreeMap::from([(
            "rules".to_owned(),
            BundleState {
                digest: digest.into(),
                state: "accepted".into(),
                reason: None,
                at: super::unix_now(),
            },
        )]),
        ..Default::default()
    }
}

pub async fn run(args: SimulateArgs) -> Result<bool> {
    let cfg = args.nats.resolve()?.context("give --nats-url URL")?;
    let client = crate::nats::connect(&cfg, None).await?;
    let js = jetstream::new(client);
    let stores = Stores::open(&js, true).await?;
    let agents: Vec<Heartbeat> = (0..args.agents)
        .map(|i| template(&format!("sim-{i:05}")))
        .collect();
    let gap = Duration::from_secs_f64(args.interval / args.agents.max(1) as f64);
    let started = Instant::now();
    let (mut puts, mut bytes, mut failed) = (0u64, 0u64, 0u64);
    let mut next = tokio::time::Instant::now();
    'run: loop {
        for hb in &agents {
            if started.elapsed().as_secs_f64() >= args.duration {
                break 'run;
            }
            let mut hb = hb.clone();
            hb.sent = super::unix_now();
            hb.interval = args.interval;
            let body = serde_json::to_vec(&hb)?;
            bytes += body.len() as u64;
            match stores.heartbeats.put(&hb.host_id, body.into()).await {
                Ok(_) => puts += 1,
                Err(_) => failed += 1,
            }
            next += gap;
            tokio::time::sleep_until(next).await;
        }
    }
    let per_put = bytes as f64 / puts.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "agents": args.agents,
            "interval_s": args.interval,
            "puts": puts,
            "failed": failed,
            "heartbeat_bytes": per_put.round(),
            "bytes_per_agent_hour": (per_put * 3600.0 / args.interval).round(),
        })
    );
    Ok(failed == 0)
}
