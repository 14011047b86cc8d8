//! `aurora consume`: central detection. Events that agents published with `--nats-events`
//! are read from a JetStream stream as a durable pull consumer and go through the same
//! pipeline as `replay` (events in the same JSON shape, the same parser); instances that share
//! a consumer name split the stream between them, which is how detection scales past one
//! machine. A batch is acknowledged only after its alerts were written to the sinks; a
//! message that is not an event is reported (stream sequence and reason) and acknowledged so
//! it is not redelivered forever.
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::StreamExt;

use super::settings::{detect_config, load_file, NATS_DRAIN_REPLAY};
use crate::cli::ConsumeArgs;
use crate::pipeline::alerting::AlertHandler;
use crate::pipeline::builder::{close_sinks, Topology};
use crate::pipeline::Pipeline;
use crate::sinks::nats::{publish, NatsConfig};
use crate::sources::replay::parse::parse_line;
use crate::sources::RawEvent;

pub const DEFAULT_CONSUMER: &str = "aurora-detect";
const BATCH: usize = 256;
/// Messages asked for per pull: small enough that instances sharing a consumer interleave.
const PULL: usize = 64;

/// Returns whether no message was rejected (empty ones are counted and said, as blank lines are
/// skipped in `replay`).
pub fn run(args: ConsumeArgs) -> Result<bool> {
    let file = load_file(&args.global)?;
    let detect = detect_config(&args.detect, &file, true)?;
    let mut outputs = args.output.layered(&file)?;
    let mut nats = outputs
        .nats
        .resolve(NATS_DRAIN_REPLAY)?
        .context("consume reads from NATS: give --nats-url URL")?;
    if let Some(s) = &args.stream {
        nats.stream = s.clone();
    }
    let consumer_name = args
        .consumer
        .clone()
        .unwrap_or_else(|| DEFAULT_CONSUMER.into());
    // Alerts go to the ordinary outputs; the NATS flags name where events come from.
    outputs.nats = Default::default();
    let (rt, topology, stage) = Topology::build_recorded(detect, &outputs, NATS_DRAIN_REPLAY)?;
    let (mut pipeline, _) = stage.load(topology.recorded_enricher())?;
    let idle = args.idle_exit.map(Duration::from_secs_f64);
    let counts = rt.block_on(async {
        let _reloader = topology.spawn_reloader()?;
        let shutdown = super::signals::Shutdown::install()?;
        consume(&nats, &consumer_name, idle, &mut pipeline, shutdown).await
    })?;
    let mut handler = pipeline.finish();
    rt.block_on(close_sinks(&mut handler.sinks, Duration::from_secs(5)));
    if let Some(path) = &args.metrics_file {
        crate::telemetry::metrics::write_file(path, topology.stats.clone())?;
    }
    let alerts = topology.stats.detect.alerts.load(Ordering::Relaxed);
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "consume: {} messages = {} events + {} empty + {} rejected; {alerts} alerts, {} throttled",
        counts.messages,
        counts.events,
        counts.empty,
        counts.rejected,
        topology.stats.detect.throttled_total(),
    )?;
    for k in handler.sinks.all_stats() {
        writeln!(err, "consume: sink {}", k.summary())?;
    }
    Ok(counts.rejected == 0)
}

/// What the messages read were; `messages = events + empty + rejected`.
#[derive(Default)]
struct Counts {
    messages: u64,
    events: u64,
    /// Messages with no payload (or only white space): not an event, acknowledged.
    empty: u64,
    /// Messages that are not an event (not JSON, not an event's shape), acknowledged.
    rejected: u64,
}

/// The durable pull consumer's message stream on `nats.stream`.
async fn subscribe(nats: &NatsConfig, name: &str) -> Result<pull::Stream> {
    let js = jetstream::new(publish::connect(nats, None).await?);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = publish::ensure_stream(&js, nats).await {
        anyhow::ensure!(Instant::now() < deadline, "NATS: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stream = js.get_stream(&nats.stream).await.context("stream")?;
    stream
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
        .context("pulling messages")
}

/// One message into the pipeline (or counted as rejected, with its stream sequence).
fn push_message(
    m: &jetstream::Message,
    stream: &str,
    pipeline: &mut Pipeline<AlertHandler>,
    counts: &mut Counts,
) {
    counts.messages += 1;
    match std::str::from_utf8(&m.payload)
        .map_err(|e| e.to_string())
        .and_then(parse_line)
    {
        Ok(Some(ev)) => {
            counts.events += 1;
            pipeline.push(RawEvent::Recorded(ev));
        }
        Ok(None) => {
            counts.empty += 1;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            tracing::warn!("stream {stream} sequence {seq}: empty message (skipped)");
        }
        Err(reason) => {
            counts.rejected += 1;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            tracing::warn!("stream {stream} sequence {seq}: {reason} (skipped)");
        }
    }
}

async fn consume(
    nats: &NatsConfig,
    name: &str,
    idle: Option<Duration>,
    pipeline: &mut Pipeline<AlertHandler>,
    shutdown: super::signals::Shutdown,
) -> Result<Counts> {
    let consumer = subscribe(nats, name).await?;
    tracing::info!("consuming stream {} as {name}", nats.stream);
    let mut consumer = consumer.ready_chunks(BATCH);
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
            match m {
                Ok(m) => {
                    push_message(&m, &nats.stream, pipeline, &mut counts);
                    done.push(m);
                }
                Err(e) => tracing::warn!("NATS: {e}"),
            }
        }
        // Alerts written before the events are acknowledged: a crash here redelivers them.
        pipeline.idle();
        for m in done {
            if let Err(e) = m.ack().await {
                tracing::warn!("NATS: acknowledging: {e}");
            }
        }
    }
    Ok(counts)
}
