//! What an agent says of itself every interval (one key per host id in `AURORA_FLEET`), and
//! how `aurora fleet status` shows the fleet from those keys.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use serde::{Deserialize, Serialize};

use crate::stats::Stats;
use crate::telemetry::ready::ReadyState;

/// One agent's state. Field names are the `--json` output of `aurora fleet status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    pub host_id: String,
    pub hostname: String,
    pub boot_id: String,
    pub version: String,
    pub kernel: String,
    /// When it was sent and how often they come (Unix seconds, seconds).
    pub sent: f64,
    pub interval: f64,
    pub started: f64,
    /// Attached programs by name (their attach point), and those that are not.
    pub sensors: BTreeMap<String, String>,
    pub sensors_unattached: Vec<String>,
    /// The file sensor's mode and, when it fell back, why.
    pub file_sensor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_sensor_fallback: Option<String>,
    /// How each denied operation is enforced (`exec: lsm`, `open: vfs-sigkill`).
    pub enforcement: BTreeMap<String, String>,
    /// A mode the fleet imposed on the policy (`policy-mode`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_mode: Option<String>,
    pub rules_digest: String,
    pub rules_active: u64,
    pub policy_digest: String,
    pub policy_entries: u64,
    /// Whether Aurora's isolation table is in the kernel (None: nft could not tell). Reported,
    /// never the operator's wish (that is in `AURORA_INTENT`).
    pub isolated: Option<bool>,
    pub events: u64,
    pub alerts: u64,
    /// Events lost: kernel rings full, queue full.
    pub lost: u64,
    /// Unix seconds of the last alert (None: none yet).
    pub last_alert: Option<f64>,
    /// The last bundle of each kind seen, and what became of it.
    pub bundles: BTreeMap<String, BundleState>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleState {
    /// sha256 of the bundle document.
    pub digest: String,
    /// `accepted` or `refused`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: f64,
}

/// What does not change while the agent runs, taken once from its ready state.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub host_id: String,
    pub hostname: String,
    pub boot_id: String,
    pub started: f64,
    pub interval: f64,
}

impl Heartbeat {
    /// The agent's state now, from its ready state (sensors) and counters.
    pub fn collect(id: &Identity, ready: &ReadyState, stats: &Stats) -> Heartbeat {
        let d = &stats.detect;
        let lost: u64 = stats
            .source
            .kernel_lost
            .iter()
            .chain(stats.source.queue_dropped.iter())
            .map(|c| c.load(Relaxed))
            .sum();
        let last_alert = match d.last_alert_ms.load(Relaxed) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        };
        let (sensors, unattached): (Vec<_>, Vec<_>) =
            ready.programs.iter().partition(|p| p.attached);
        Heartbeat {
            host_id: id.host_id.clone(),
            hostname: id.hostname.clone(),
            boot_id: id.boot_id.clone(),
            version: ready.version.to_owned(),
            kernel: ready.kernel.clone(),
            sent: super::unix_now(),
            interval: id.interval,
            started: id.started,
            sensors: sensors
                .into_iter()
                .map(|p| (p.name.clone(), p.attach.clone()))
                .collect(),
            sensors_unattached: unattached.into_iter().map(|p| p.name.clone()).collect(),
            file_sensor: ready.file_sensor.mode.clone(),
            file_sensor_fallback: ready.file_sensor.fallback_reason.clone(),
            enforcement: ready
                .enforcement
                .iter()
                .map(|e| (e.operation.clone(), e.mechanism.clone()))
                .collect(),
            policy_mode: None,
            rules_digest: d.rule_digest.lock().map(|g| g.clone()).unwrap_or_default(),
            rules_active: d.rule_states.lock().map(|g| g.active).unwrap_or_default(),
            policy_digest: String::new(),
            policy_entries: 0,
            isolated: ready.isolated,
            events: d.events.load(Relaxed),
            alerts: d.alerts.load(Relaxed),
            lost,
            last_alert,
            bundles: BTreeMap::new(),
        }
    }

    /// Not heard from for `super::STALE_INTERVALS` intervals at `now`.
    pub fn stale(&self, now: f64) -> bool {
        now - self.sent > self.interval * f64::from(super::STALE_INTERVALS)
    }
}

/// One row of `aurora fleet status`: the heartbeat, whether it is stale, and the operator's
/// wanted isolation (from the intent bucket, not from the agent).
#[derive(Clone, Debug, Serialize)]
pub struct StatusRow {
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    pub stale: bool,
    pub age: f64,
    pub wanted_isolated: Option<bool>,
}

/// Every host of the fleet with its last heartbeat, staleness and wanted isolation, by host id.
pub async fn status_rows(js: &async_nats::jetstream::Context) -> anyhow::Result<Vec<StatusRow>> {
    let now = super::unix_now();
    let heartbeats = super::latest_values(js, super::HEARTBEATS).await?;
    let intents = super::latest_values(js, super::INTENT).await?;
    let mut rows = Vec::with_capacity(heartbeats.len());
    for (host, bytes) in heartbeats {
        let heartbeat: Heartbeat = match serde_json::from_slice(&bytes) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("fleet: heartbeat of {host}: unreadable ({e}); skipped");
                continue;
            }
        };
        let wanted = intents
            .get(&super::intent::isolation_key(&host))
            .and_then(|b| serde_json::from_slice::<super::intent::IsolationIntent>(b).ok())
            .map(|w| w.isolated);
        rows.push(StatusRow {
            stale: heartbeat.stale(now),
            age: (now - heartbeat.sent).max(0.0),
            wanted_isolated: wanted,
            heartbeat,
        });
    }
    Ok(rows)
}

/// The table `aurora fleet status` prints.
pub fn table(rows: &[StatusRow]) -> String {
    let mut out = format!(
        "{:<20} {:<7} {:>6} {:<8} {:<10} {:<14} {:>5} {:<12} {:>10} {:>7} {:>6}  {}\n",
        "HOST",
        "STATE",
        "AGE",
        "VERSION",
        "FILE",
        "ENFORCE",
        "RULES",
        "DIGEST",
        "EVENTS",
        "ALERTS",
        "LOST",
        "ISOLATION (WANTED/REPORTED) · BUNDLES"
    );
    for r in rows {
        let h = &r.heartbeat;
        let enforce = if h.enforcement.is_empty() {
            "-".to_owned()
        } else {
            h.enforcement
                .iter()
                .map(|(op, m)| format!("{op}:{m}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let yes_no = |b: Option<bool>| match b {
            Some(true) => "isolated",
            Some(false) => "open",
            None => "?",
        };
        let bundles: Vec<String> = h
            .bundles
            .iter()
            .map(|(k, b)| format!("{k} {} {}", b.state, short(&b.digest)))
            .collect();
        out += &format!(
            "{:<20} {:<7} {:>5.0}s {:<8} {:<10} {:<14} {:>5} {:<12} {:>10} {:>7} {:>6}  {}/{} {}\n",
            h.host_id,
            if r.stale { "stale" } else { "ok" },
            r.age,
            h.version,
            h.file_sensor,
            enforce,
            h.rules_active,
            short(&h.rules_digest),
            h.events,
            h.alerts,
            h.lost,
            yes_no(r.wanted_isolated),
            yes_no(h.isolated),
            bundles.join(", ")
        );
    }
    out
}

/// The first 12 hex digits of a digest.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
