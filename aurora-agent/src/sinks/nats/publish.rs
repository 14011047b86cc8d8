//! Delivery from the spools to JetStream: connect (retrying while the server is down), make
//! sure the stream exists, then per spool read a batch in order, publish it with its message
//! ids, wait for every acknowledgement, and only then commit the spool's cursor. A failed
//! batch is read again after a backoff; JetStream's duplicate window stores a retried message
//! once. Alerts and events are delivered by two loops, so an events backlog never delays an
//! alert.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::spool::Spool;
use crate::nats::{connect, ensure_stream, unreachable_reason, NatsConfig};
use crate::stats::SinkStats;

/// Messages in flight (published, acknowledgement awaited) per loop.
const BATCH: usize = 256;
/// Longest wait between delivery attempts while the server is away.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn run(
    cfg: NatsConfig,
    alerts: Spool,
    events: Option<Spool>,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<SinkStats>,
) {
    let client = match connect(&cfg.connect, Some(stats.clone())).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("nats: {e:#}");
            return;
        }
    };
    let mut js = jetstream::new(client.clone());
    js.set_timeout(ACK_TIMEOUT);
    let mut backoff = Duration::from_millis(100);
    let mut deadline: Option<Instant> = None;
    let mut said: Option<String> = None;
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
                // A stream request that timed out while no server is connected is a
                // connection problem: say that, not the timeout.
                let e = match client.connection_state() {
                    async_nats::connection::State::Connected => e,
                    _ => unreachable_reason(&cfg.connect).await.unwrap_or(e),
                };
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    tracing::warn!("nats: {e}; stopping");
                    return;
                }
                // Said once per reason, not once per retry.
                if said.as_ref() != Some(&e) {
                    tracing::warn!("nats: {e}; retrying");
                    said = Some(e);
                }
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
        // An attempt under way when the stop comes gets the drain time, no more.
        let ok = tokio::select! {
            r = publish_batch(&js, &batch) => r,
            _ = drain_over(deadline, stop.clone(), drain) => {
                reader.rewind(start);
                break;
            }
        };
        match ok {
            Ok(duplicates) => {
                let n = batch.len() as u64;
                if let Err(e) = spool.commit(reader.position(), n) {
                    tracing::error!("nats: saving the spool position: {e}");
                }
                let flow = if alerts { &stats.alerts } else { &stats.events };
                flow.delivered(n);
                stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
            }
            Err(_) => {
                reader.rewind(start);
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = drain_over(deadline, stop.clone(), drain) => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Resolves when the drain after a stop is over: at `deadline` when one is set, else `drain`
/// after the stop arrives.
async fn drain_over(deadline: Option<Instant>, mut stop: watch::Receiver<bool>, drain: Duration) {
    let d = match deadline {
        Some(d) => d,
        None => {
            // A dropped sender is a stop too.
            let _ = stop.wait_for(|s| *s).await;
            Instant::now() + drain
        }
    };
    tokio::time::sleep_until(d).await
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
