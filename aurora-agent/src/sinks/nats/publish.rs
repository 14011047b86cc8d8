//! Delivery from the spools to JetStream: connect (retrying while the server is down), make
//! sure the stream exists, then per spool read a batch in order, publish it with its message
//! ids, wait for every acknowledgement, and only then commit the spool's cursor. A failed
//! batch is read again after a backoff; JetStream's duplicate window stores a retried message
//! once. Alerts and events are delivered by two loops, so an events backlog never delays an
//! alert.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::spool::Spool;
use super::NatsConfig;
use crate::stats::SinkStats;

/// Messages in flight (published, acknowledgement awaited) per loop.
const BATCH: usize = 256;
/// Longest wait between delivery attempts while the server is away.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection options from the config (credentials, nkey, TLS) with reconnects forever.
pub async fn connect(cfg: &NatsConfig) -> anyhow::Result<async_nats::Client> {
    use anyhow::Context as _;
    let mut opts = async_nats::ConnectOptions::new()
        .name("aurora")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(2000)));
    if let Some(c) = &cfg.credentials {
        opts = opts
            .credentials_file(c)
            .await
            .with_context(|| format!("--nats-creds {}", c.display()))?;
    }
    if let Some(k) = &cfg.nkey {
        let seed =
            std::fs::read_to_string(k).with_context(|| format!("--nats-nkey {}", k.display()))?;
        opts = opts.nkey(seed.trim().to_owned());
    }
    if let Some(ca) = &cfg.tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let urls: Vec<async_nats::ServerAddr> = cfg
        .urls
        .iter()
        .map(|u| u.parse().with_context(|| format!("--nats-url {u}")))
        .collect::<anyhow::Result<_>>()?;
    opts.connect(urls).await.context("connecting to NATS")
}

/// The stream exists (created with the configured limits when allowed and missing).
pub async fn ensure_stream(js: &jetstream::Context, cfg: &NatsConfig) -> Result<(), String> {
    match js.get_stream(&cfg.stream).await {
        Ok(_) => Ok(()),
        Err(e) if !cfg.create_stream => {
            Err(format!("stream {}: {e} (--nats-no-create)", cfg.stream))
        }
        Err(_) => js
            .create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: vec!["aurora.>".into()],
                storage: stream::StorageType::File,
                max_bytes: cfg.stream_max_bytes,
                max_age: cfg.stream_max_age,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map(|_| tracing::info!("nats: created stream {} (subjects aurora.>)", cfg.stream))
            .map_err(|e| format!("creating stream {}: {e}", cfg.stream)),
    }
}

pub async fn run(
    cfg: NatsConfig,
    alerts: Spool,
    events: Option<Spool>,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<SinkStats>,
) {
    let client = match connect(&cfg).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("nats: {e:#}");
            report_left(&alerts, events.as_ref(), &stats);
            return;
        }
    };
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_TIMEOUT);
    let mut backoff = Duration::from_millis(100);
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && *stop.borrow() {
            deadline = Some(Instant::now() + cfg.drain);
        }
        let attempt = ensure_stream(&js, &cfg);
        let result = match deadline {
            Some(d) => tokio::time::timeout_at(d, attempt)
                .await
                .unwrap_or_else(|_| Err("no answer before the drain deadline".into())),
            None => tokio::select! {
                r = attempt => r,
                _ = stop.changed() => continue,
            },
        };
        match result {
            Ok(()) => break,
            Err(e) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    tracing::warn!("nats: {e}");
                    report_left(&alerts, events.as_ref(), &stats);
                    return;
                }
                tracing::warn!("nats: {e}; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    let alert_loop = deliver(
        js.clone(),
        alerts,
        notify.clone(),
        stop.clone(),
        stats.clone(),
        cfg.drain,
        true,
    );
    match events {
        Some(ev) => {
            let event_loop = deliver(js, ev, notify, stop, stats, cfg.drain, false);
            tokio::join!(alert_loop, event_loop);
        }
        None => alert_loop.await,
    }
}

/// One spool's delivery loop. After `stop`, keeps going for `drain` at most.
async fn deliver(
    js: jetstream::Context,
    spool: Spool,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<SinkStats>,
    drain: Duration,
    alerts: bool,
) {
    let mut reader = spool.reader();
    let mut backoff = Duration::from_millis(100);
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && *stop.borrow() {
            deadline = Some(Instant::now() + drain);
        }
        let start = reader.position();
        let batch = match reader.read(BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("nats: reading the spool: {e}");
                Vec::new()
            }
        };
        if batch.is_empty() {
            if deadline.is_some() {
                break;
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let attempt = publish_batch(&js, &batch);
        let ok = match deadline {
            Some(d) => tokio::time::timeout_at(d, attempt).await.unwrap_or(Err(0)),
            None => attempt.await,
        };
        match ok {
            Ok(duplicates) => {
                let n = batch.len() as u64;
                if let Err(e) = spool.commit(reader.position(), n) {
                    tracing::error!("nats: saving the spool position: {e}");
                }
                if alerts {
                    stats.sent.fetch_add(n, Ordering::Relaxed);
                    let q = stats.queued.load(Ordering::Relaxed);
                    stats.queued.fetch_sub(n.min(q), Ordering::Relaxed);
                } else {
                    stats.events_sent.fetch_add(n, Ordering::Relaxed);
                }
                stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
            }
            Err(_) => {
                reader.rewind(start);
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    report(&spool, if alerts { "alerts" } else { "events" }, &stats);
}

fn report(spool: &Spool, what: &str, stats: &SinkStats) {
    let left = spool.pending_records();
    stats.spooled_at_stop.fetch_add(left, Ordering::Relaxed);
    if left > 0 {
        tracing::warn!("nats: {left} {what} stay in the spool for the next run");
    }
}

fn report_left(alerts: &Spool, events: Option<&Spool>, stats: &SinkStats) {
    report(alerts, "alerts", stats);
    if let Some(e) = events {
        report(e, "events", stats);
    }
}

/// Publish every record, then wait for every acknowledgement. Ok(duplicates) when all were
/// stored; Err(acknowledged) at the first failure.
async fn publish_batch(
    js: &jetstream::Context,
    batch: &[super::spool::Record],
) -> Result<u64, u64> {
    let mut acks = Vec::with_capacity(batch.len());
    for r in batch {
        let msg = PublishMessage::build()
            .payload(r.payload.clone().into())
            .message_id(&r.id);
        match js.send_publish(r.subject.clone(), msg).await {
            Ok(f) => acks.push(f),
            Err(e) => {
                tracing::debug!("nats: publish failed: {e}");
                return Err(0);
            }
        }
    }
    let mut duplicates = 0;
    for (i, f) in acks.into_iter().enumerate() {
        match f.await {
            Ok(ack) => duplicates += u64::from(ack.duplicate),
            Err(e) => {
                tracing::debug!("nats: no acknowledgement: {e}");
                return Err(i as u64);
            }
        }
    }
    Ok(duplicates)
}
