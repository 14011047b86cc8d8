//! The fleet control plane, on the NATS deployment the fleet already publishes to (no other
//! server, no protocol of our own): JetStream key-value buckets, an object store and
//! request/reply. It sits beside the pipeline, not in it: it reads the agent's counters and
//! asks the response layer to act.
//!
//! - Heartbeats: each agent puts its state under its host id in `AURORA_FLEET` every interval;
//!   `aurora fleet status` reads the bucket (`heartbeat`).
//! - Operator intent: the wanted isolation of each host, in `AURORA_INTENT`, written only by
//!   operators; agents converge to it (`intent`) and their heartbeats only report.
//! - Commands: request/reply on `aurora-cmd.<host>` (outside the `aurora.>` stream, whose
//!   acknowledgement would otherwise answer first); each command and each reply is also put in
//!   the stream as `aurora.fleet.<host>.command|reply` (`command`).
//! - Bundles: rules and policies signed with an ed25519 key, in the `AURORA_BUNDLES` object
//!   store; agents verify, validate and swap them (`bundle`, `agent`).
pub mod agent;
pub mod bundle;
pub mod command;
pub mod enroll;
pub mod heartbeat;
pub mod intent;
pub mod operator;
pub mod simulate;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, kv, object_store};
use serde::{Deserialize, Serialize};

/// The heartbeat bucket: one key per host id.
pub const HEARTBEATS: &str = "AURORA_FLEET";
/// The operator-intent bucket: `<host>.isolation`.
pub const INTENT: &str = "AURORA_INTENT";
/// The bundle object store: objects `rules` and `policy`.
pub const BUNDLES: &str = "AURORA_BUNDLES";
/// A heartbeat older than this many intervals marks its host stale.
pub const STALE_INTERVALS: u32 = 3;
/// Heartbeat keys of hosts not heard from for this long leave the bucket.
pub const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long `aurora fleet cmd` waits for a reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The subject an agent takes its commands on.
pub fn command_subject(host: &str) -> String {
    format!("aurora-cmd.{host}")
}

/// The stream subject of a host's command and reply records.
pub fn record_subject(host: &str, what: &str) -> String {
    format!("aurora.fleet.{host}.{what}")
}

/// The agent's fleet flags (config-file keys alike). The control plane runs whenever
/// `--nats-url` is given.
#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct FleetArgs {
    /// Seconds between heartbeats (a host silent for 3 intervals is stale); bundles and the
    /// operator's intent are checked as often.
    #[arg(long, value_name = "SECS")]
    pub heartbeat_interval: Option<f64>,
    /// Also run the rules of the fleet's signed rule bundle (`aurora fleet push-rules`),
    /// verified with --fleet-key.
    #[arg(long)]
    pub fleet_rules: bool,
    /// Also enforce the fleet's signed policy bundle (`aurora fleet push-policy`).
    #[arg(long)]
    pub fleet_policy: bool,
    /// The fleet's public signing key (the .pub file `aurora fleet keygen` writes).
    #[arg(long, value_name = "FILE")]
    pub fleet_key: Option<PathBuf>,
    /// Where accepted bundles are kept (they survive restarts and outages).
    #[arg(long, value_name = "DIR")]
    pub fleet_dir: Option<PathBuf>,
}

/// `FleetArgs`, resolved.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub interval: Duration,
    pub rules: bool,
    pub policy: bool,
    /// The public key bundles must be signed with (nkeys text form).
    pub key: Option<String>,
    pub dir: PathBuf,
}

impl FleetConfig {
    pub const DEFAULT_INTERVAL_SECS: f64 = 10.0;
    pub const DEFAULT_DIR: &'static str = "/var/lib/aurora/fleet";

    /// Where the accepted bundle of `kind` is (a link to its directory, swapped whole).
    pub fn current(&self, kind: bundle::BundleKind) -> PathBuf {
        self.dir.join(kind.name())
    }
}

impl FleetArgs {
    pub fn build(&self) -> Result<FleetConfig> {
        let secs = self
            .heartbeat_interval
            .unwrap_or(FleetConfig::DEFAULT_INTERVAL_SECS);
        if !(0.1..=3600.0).contains(&secs) {
            anyhow::bail!("--heartbeat-interval {secs}: expected 0.1 to 3600 seconds");
        }
        let key = match &self.fleet_key {
            Some(p) => Some(bundle::read_public_key(p)?),
            None if self.fleet_rules || self.fleet_policy => anyhow::bail!(
                "--fleet-rules/--fleet-policy need --fleet-key FILE (the fleet's public signing key)"
            ),
            None => None,
        };
        Ok(FleetConfig {
            interval: Duration::from_secs_f64(secs),
            rules: self.fleet_rules,
            policy: self.fleet_policy,
            key,
            dir: self
                .fleet_dir
                .clone()
                .unwrap_or_else(|| FleetConfig::DEFAULT_DIR.into()),
        })
    }
}

/// The fleet's buckets and object store, created when missing (operators: `aurora fleet init`;
/// an agent whose credentials may not create them gets the server's refusal).
pub struct Stores {
    pub heartbeats: kv::Store,
    pub intent: kv::Store,
    pub bundles: object_store::ObjectStore,
}

impl Stores {
    /// Open the stores, creating each that is missing when `create`.
    pub async fn open(js: &jetstream::Context, create: bool) -> Result<Stores> {
        let heartbeats = key_value(
            js,
            create,
            HEARTBEATS,
            "Aurora agents' heartbeats, one key per host id",
            1,
            HEARTBEAT_MAX_AGE,
        )
        .await?;
        let intent = key_value(
            js,
            create,
            INTENT,
            "What operators want of each host (isolation)",
            16,
            Duration::ZERO,
        )
        .await?;
        let bundles = match js.get_object_store(BUNDLES).await {
            Ok(s) => s,
            Err(_) if create => js
                .create_object_store(object_store::Config {
                    bucket: BUNDLES.into(),
                    description: Some("Aurora's signed rule and policy bundles".into()),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("creating object store {BUNDLES}"))?,
            Err(e) => return Err(e).with_context(|| format!("object store {BUNDLES}")),
        };
        Ok(Stores {
            heartbeats,
            intent,
            bundles,
        })
    }
}

/// A key-value bucket, created when missing and allowed. Created as the stream the client's
/// `create_key_value` would make, without its account query: that query's answer from the
/// nats-server 2.9 that Debian 12 ships does not parse in async-nats 0.51.
async fn key_value(
    js: &jetstream::Context,
    create: bool,
    bucket: &str,
    description: &str,
    history: i64,
    max_age: Duration,
) -> Result<kv::Store> {
    match js.get_key_value(bucket).await {
        Ok(s) => return Ok(s),
        Err(e) if !create => return Err(e).with_context(|| format!("key-value bucket {bucket}")),
        Err(_) => {}
    }
    js.create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: history,
        max_age,
        max_message_size: -1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating key-value bucket {bucket}"))?;
    js.get_key_value(bucket)
        .await
        .with_context(|| format!("key-value bucket {bucket}"))
}

/// The newest value of every key of `bucket`, read in one pass (one ordered consumer over the
/// last value per key; a `get` per key cost a round trip each). Bounded in time as a whole: a
/// server that stops answering midway is an error, not a wait.
pub async fn latest_values(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<std::collections::BTreeMap<String, bytes::Bytes>> {
    tokio::time::timeout(Duration::from_secs(30), read_latest(js, bucket))
        .await
        .with_context(|| format!("reading bucket {bucket}: not done within 30 s"))?
}

async fn read_latest(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<std::collections::BTreeMap<String, bytes::Bytes>> {
    use futures_util::StreamExt as _;
    let mut out = std::collections::BTreeMap::new();
    // Opened now: a store's status is what it was when it was opened.
    let store = js
        .get_key_value(bucket)
        .await
        .with_context(|| format!("key-value bucket {bucket}"))?;
    let status = store.status().await?;
    if status.values() == 0 {
        return Ok(out);
    }
    // Read up to the bucket's last revision when it was opened: values written after it (agents
    // heartbeat all the time) are not waited for, whatever the consumer says is pending.
    let last = status.info.state.last_sequence;
    let mut watch = store.watch_with_history(">").await?;
    while let Some(entry) = watch.next().await {
        let entry = entry?;
        let done = entry.delta == 0 || entry.revision >= last;
        if entry.operation == kv::Operation::Put {
            out.insert(entry.key, entry.value);
        } else {
            out.remove(&entry.key);
        }
        if done {
            break;
        }
    }
    Ok(out)
}

/// Seconds since the epoch, now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
