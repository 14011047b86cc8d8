//! The fleet sink: alerts (and, with `--nats-events`, every enriched event) published to NATS
//! JetStream with acknowledgement. Each message gets a `Nats-Msg-Id` once, when it is made,
//! so a retry inside the stream's duplicate window is stored once (at-least-once publishing,
//! exactly-once in the stream). Every message goes through the disk spool first (`spool`):
//! an outage or a restart is only a longer queue, drained in order on reconnect; the spool is
//! bounded by a byte budget that drops the oldest events before any alert.
//!
//! Subjects: `aurora.alerts.<host>`, `aurora.events.<host>.<kind>`; `publish` creates the
//! stream (`AURORA`, subjects `aurora.>`, file storage) when it does not exist.
pub mod config;
pub mod publish;
pub mod spool;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::{watch, Notify};

use super::Sink;
use crate::detect::alert::Alert;
use crate::event::Event;
use crate::stats::SinkStats;
pub use crate::nats::NatsConfig;
pub use config::NatsArgs;
use spool::{Record, Spool, SpoolWriter};

/// Message ids unique across runs: host, this run's start time, a counter.
struct Ids {
    prefix: String,
    seq: u64,
}

impl Ids {
    fn next(&mut self, kind: char) -> String {
        self.seq += 1;
        format!("{}-{kind}{}", self.prefix, self.seq)
    }
}

pub struct NatsSink {
    alerts: SpoolWriter,
    alert_spool: Spool,
    events: Option<(SpoolWriter, Spool)>,
    budget: u64,
    host: String,
    ids: Ids,
    notify: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<SinkStats>,
}

impl NatsSink {
    /// Open the spools (resuming what an earlier run left) and start delivering on `rt`.
    pub fn start(cfg: NatsConfig, rt: &tokio::runtime::Handle) -> Result<NatsSink> {
        let spool = |sub: &str| -> Result<Spool> {
            let d = cfg.spool_dir.join(sub);
            Spool::open(&d).with_context(|| format!("--spool-dir {}", d.display()))
        };
        let alert_spool = spool("alerts")?;
        let alerts = alert_spool.writer()?;
        let events = if cfg.events {
            let s = spool("events")?;
            Some((s.writer()?, s))
        } else {
            None
        };
        let stats = Arc::new(SinkStats::spooling("nats", cfg.events));
        let carried = alert_spool.pending_records();
        stats.alerts.queued.store(carried, Ordering::Relaxed);
        let carried_events = events.as_ref().map_or(0, |(_, s)| s.pending_records());
        stats.events.queued.store(carried_events, Ordering::Relaxed);
        if carried + carried_events > 0 {
            tracing::info!(
                "nats: {carried} alerts and {carried_events} events spooled by an earlier run are delivered first"
            );
        }
        let host = cfg.connect.host.clone();
        let started = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let notify = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let task = rt.spawn(publish::run(
            cfg.clone(),
            alert_spool.clone(),
            events.as_ref().map(|(_, s)| s.clone()),
            notify.clone(),
            stop_rx,
            stats.clone(),
        ));
        Ok(NatsSink {
            alerts,
            alert_spool,
            events,
            budget: cfg.spool_max_bytes,
            ids: Ids {
                prefix: format!("{host}-{started:x}"),
                seq: 0,
            },
            host,
            notify,
            stop,
            task: Some(task),
            stats,
        })
    }

    /// Over the byte budget: drop the oldest event segments, then (only then) alert ones.
    fn enforce_budget(&mut self) {
        let total = |s: &Self| {
            s.alert_spool.bytes() + s.events.as_ref().map(|(_, e)| e.bytes()).unwrap_or(0)
        };
        while total(self) > self.budget {
            let dropped = self
                .events
                .as_ref()
                .map(|(_, e)| e.drop_oldest())
                .unwrap_or(0);
            if dropped > 0 {
                self.stats.events.drop_queued(dropped);
                continue;
            }
            let lost = self.alert_spool.drop_oldest();
            if lost == 0 {
                break;
            }
            self.stats.alerts.drop_queued(lost);
            tracing::error!(
                "nats: spool budget exceeded by alerts alone: {lost} oldest alerts dropped"
            );
        }
    }
}

/// Count one spool append.
fn spooled(flow: &crate::stats::Flow, ok: bool) {
    if ok {
        flow.accepted.fetch_add(1, Ordering::Relaxed);
        flow.queued.fetch_add(1, Ordering::Relaxed);
    } else {
        flow.failed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Sink for NatsSink {
    /// Written through to the spool file (one write(2) per alert): once this returns the alert
    /// survives the agent being killed, and it is in the file before the event that caused it
    /// (the pipeline ships an event after its alerts).
    fn emit(&mut self, alert: &Alert) {
        let r = Record {
            id: self.ids.next('a'),
            subject: format!("aurora.alerts.{}", self.host),
            payload: alert.to_json().into_bytes(),
        };
        match self.alerts.append(&r).and_then(|()| self.alerts.flush()) {
            Ok(()) => {
                spooled(&self.stats.alerts, true);
                self.enforce_budget();
            }
            Err(e) => {
                spooled(&self.stats.alerts, false);
                tracing::error!("nats: spooling an alert failed: {e}");
            }
        }
    }

    fn event(&mut self, ev: &Event) {
        let Some((w, _)) = self.events.as_mut() else {
            return;
        };
        let r = Record {
            id: self.ids.next('e'),
            subject: format!("aurora.events.{}.{}", self.host, ev.kind.category()),
            payload: serde_json::to_vec(ev).unwrap_or_default(),
        };
        let ok = w.append(&r).is_ok();
        spooled(&self.stats.events, ok);
        if ok {
            self.enforce_budget();
        }
    }

    fn durable(&self) -> bool {
        true
    }

    fn wants_events(&self) -> bool {
        self.events.is_some()
    }

    fn flush(&mut self) {
        let mut ok = self.alerts.flush().is_ok();
        if let Some((w, _)) = self.events.as_mut() {
            ok &= w.flush().is_ok();
        }
        if !ok {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.notify.notify_one();
    }

    fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    fn shutdown(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.flush();
        let _ = self.stop.send(true);
        self.task.take()
    }
}
