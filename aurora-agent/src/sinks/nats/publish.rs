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

/// Connection options from the config (credentials, nkey, TLS) with reconnects forever. With
/// `stats`, each outage is logged once when it starts (with the client's reason) and once when
/// it ends, and the reconnection is counted.
pub async fn connect(
    cfg: &NatsConfig,
    stats: Option<Arc<SinkStats>>,
) -> anyhow::Result<async_nats::Client> {
    use anyhow::Context as _;
    let mut opts = async_nats::ConnectOptions::new()
        .name("aurora")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(2000)));
    if let Some(stats) = stats {
        let outage = Arc::new(std::sync::Mutex::new(Outage::default()));
        opts = opts.event_callback(move |event| {
            let (stats, outage) = (stats.clone(), outage.clone());
            async move {
                if let Ok(mut o) = outage.lock() {
                    o.on(&event, &stats);
                }
            }
        });
    }
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

/// One connection's outages as the client reports them: the first event of an outage is
/// logged with its reason, the reconnection with its length; each reconnection is counted.
#[derive(Default)]
struct Outage {
    /// Connected once already (the first connection is not a reconnection).
    was_connected: bool,
    /// When the current outage began.
    since: Option<std::time::Instant>,
    /// The client's reason for it, once said.
    said: bool,
}

impl Outage {
    fn on(&mut self, event: &async_nats::Event, stats: &SinkStats) {
        use async_nats::Event;
        match event {
            Event::Connected => {
                if let Some(since) = self.since.take() {
                    if self.was_connected {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!(
                        "nats: connected again after {:.1} s; delivering what was spooled",
                        since.elapsed().as_secs_f64()
                    );
                }
                self.was_connected = true;
                self.said = false;
            }
            Event::Disconnected => {
                self.since.get_or_insert_with(std::time::Instant::now);
                tracing::warn!("nats: connection lost; spooling until the server is back");
                self.said = true;
            }
            Event::ClientError(e) => {
                self.since.get_or_insert_with(std::time::Instant::now);
                if !self.said {
                    tracing::warn!("nats: cannot connect ({e}); spooling and retrying");
                    self.said = true;
                }
            }
            _ => {}
        }
    }
}

/// Why no server answers, in the operating system's words (the client retries quietly): the
/// first URL's TCP connect error, or None when a server does accept connections.
async fn unreachable_reason(cfg: &NatsConfig) -> Option<String> {
    let url = cfg.urls.first()?;
    let addr: async_nats::ServerAddr = url.parse().ok()?;
    let target = (addr.host().to_owned(), addr.port());
    match tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(target),
    )
    .await
    {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("connecting to {url}: {e}")),
        Err(_) => Some(format!("connecting to {url}: no answer within 1 s")),
    }
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
    let client = match connect(&cfg, Some(stats.clone())).await {
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
                    _ => unreachable_reason(&cfg).await.unwrap_or(e),
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
