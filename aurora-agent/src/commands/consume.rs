//! `aurora consume`: central detection. Events that agents published with `--nats-events`
//! are read from a JetStream stream as a durable pull consumer and go through the same
//! handler as `replay` (events in the same JSON shape, the same parser); instances that share
//! a consumer name split the stream between them, which is how detection scales past one
//! machine. A batch is acknowledged only after its alerts were written to the sinks; a
//! message that is not an event is reported (stream sequence and reason) and acknowledged so
//! it is not redelivered forever.
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::StreamExt;

use super::alerting::{spawn_reloader, AlertHandler, Control};
use super::run::close_sinks;
use super::settings::{build_sinks, detect_config, load_file, nats_config};
use crate::cli::ConsumeArgs;
use crate::detect::Detector;
use crate::enrich::replay::ReplayCorrelator;
use crate::pipeline::EventHandler;
use crate::sinks::nats::{publish, NatsConfig};
use crate::sources::replay::parse::parse_line;
use crate::stats::Stats;

pub const DEFAULT_CONSUMER: &str = "aurora-detect";
const BATCH: usize = 256;
/// Messages asked for per pull: small enough that instances sharing a consumer interleave.
const PULL: usize = 64;

/// Returns whether every message was an event.
pub fn run(args: ConsumeArgs) -> Result<bool> {
    let file = load_file(&args.global)?;
    let cfg = detect_config(&args.detect, &file, true)?;
    let mut nats = nats_config(&args.output.nats, &file)?
        .context("consume reads from NATS: give --nats-url URL")?;
    if let Some(s) = &args.stream {
        nats.stream = s.clone();
    }
    let consumer_name = args
        .consumer
        .clone()
        .unwrap_or_else(|| DEFAULT_CONSUMER.into());
    // Alerts go to the ordinary outputs; the NATS flags name where events come from.
    let mut outputs = args.output.clone();
    outputs.nats = Default::default();
    let mut no_nats_file = file.clone();
    no_nats_file.nats_url = None;
    let stats = Arc::new(Stats::default());
    let detector = Detector::load(&cfg, stats.detect.clone())?;
    tracing::info!("rules: {}", detector.summary);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sinks = build_sinks(&outputs, &no_nats_file, rt.handle())?;
    let control = Arc::new(Control::default());
    let mut handler = AlertHandler::new(detector, sinks, false, control.clone());
    let idle = args.idle_exit.map(Duration::from_secs_f64);
    let counts = rt.block_on(async {
        let _reloader = spawn_reloader(cfg.clone(), stats.detect.clone(), control)?;
        let shutdown = super::signals::Shutdown::install()?;
        let counts = consume(&nats, &consumer_name, idle, &mut handler, shutdown).await;
        close_sinks(&mut handler.sinks, Duration::from_secs(5)).await;
        counts
    })?;
    let alerts = stats.detect.alerts.load(Ordering::Relaxed);
    writeln!(
        std::io::stderr(),
        "consume: {} messages, {} events, {alerts} alerts, {} rejected",
        counts.messages,
        counts.events,
        counts.rejected
    )?;
    Ok(counts.rejected == 0)
}

#[derive(Default)]
struct Counts {
    messages: u64,
    events: u64,
    rejected: u64,
}

async fn consume(
    nats: &NatsConfig,
    name: &str,
    idle: Option<Duration>,
    handler: &mut AlertHandler,
    shutdown: super::signals::Shutdown,
) -> Result<Counts> {
    let js = jetstream::new(publish::connect(nats).await?);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = publish::ensure_stream(&js, nats).await {
        anyhow::ensure!(Instant::now() < deadline, "NATS: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stream = js.get_stream(&nats.stream).await.context("stream")?;
    let consumer: pull::Stream = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_owned()),
                filter_subject: "aurora.events.>".into(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("consumer {name} on stream {}", nats.stream))?
        .stream()
        .max_messages_per_batch(PULL)
        .messages()
        .await
        .context("pulling messages")?;
    tracing::info!("consuming stream {} as {name}", nats.stream);
    let mut consumer = consumer.ready_chunks(BATCH);
    let mut correlator = ReplayCorrelator::new(65536);
    let mut counts = Counts::default();
    let mut last = Instant::now();
    let mut stop = std::pin::pin!(shutdown.wait());
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(250));
        let batch = tokio::select! {
            _ = &mut stop => break,
            _ = tick => None,
            b = consumer.next() => b,
        };
        let Some(batch) = batch else {
            if idle.is_some_and(|i| last.elapsed() >= i) {
                break;
            }
            continue;
        };
        last = Instant::now();
        let mut done = Vec::with_capacity(batch.len());
        for m in batch {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("NATS: {e}");
                    continue;
                }
            };
            counts.messages += 1;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            match std::str::from_utf8(&m.payload)
                .map_err(|e| e.to_string())
                .and_then(parse_line)
            {
                Ok(Some(mut ev)) => {
                    counts.events += 1;
                    correlator.complete(&mut ev);
                    handler.handle(ev);
                }
                Ok(None) => {}
                Err(reason) => {
                    counts.rejected += 1;
                    tracing::warn!("stream {} sequence {seq}: {reason} (skipped)", nats.stream);
                }
            }
            done.push(m);
        }
        // Alerts written before the events are acknowledged: a crash here redelivers them.
        handler.flush();
        handler.poll_control();
        for m in done {
            if let Err(e) = m.ack().await {
                tracing::warn!("NATS: acknowledging: {e}");
            }
        }
    }
    Ok(counts)
}
