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

use super::settings::{detect_config, load_file};
use crate::cli::ConsumeArgs;
use crate::nats::NatsConfig;
use crate::pipeline::alerting::AlertHandler;
use crate::pipeline::builder::{close_sinks, Topology};
use crate::pipeline::Pipeline;
use crate::sources::jetstream::{self, Decoded, JetStreamSource, DEFAULT_CONSUMER};
use crate::sources::RawEvent;

/// Returns whether no message was rejected (empty ones are counted and said, as blank lines are
/// skipped in `replay`).
pub fn run(args: ConsumeArgs) -> Result<bool> {
    let file = load_file(&args.global)?;
    let detect = detect_config(&args.detect, &file, true)?;
    let mut outputs = args.output.layered(&file)?;
    let mut nats = outputs
        .nats
        .resolve(NatsConfig::DRAIN_RECORDED)?
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
    let (rt, topology, stage) =
        Topology::build_recorded(detect, &outputs, NatsConfig::DRAIN_RECORDED)?;
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

/// One message into the pipeline (or counted as empty or rejected, with its stream sequence).
fn push_message(
    m: &async_nats::jetstream::Message,
    stream: &str,
    pipeline: &mut Pipeline<AlertHandler>,
    counts: &mut Counts,
) {
    counts.messages += 1;
    match jetstream::decode(m) {
        Decoded::Event(ev) => {
            counts.events += 1;
            pipeline.push(RawEvent::Recorded(ev));
        }
        Decoded::Empty => {
            counts.empty += 1;
            let seq = jetstream::sequence(m);
            tracing::warn!("stream {stream} sequence {seq}: empty message (skipped)");
        }
        Decoded::Rejected(reason) => {
            counts.rejected += 1;
            let seq = jetstream::sequence(m);
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
    let mut source = JetStreamSource::subscribe(nats, name).await?;
    tracing::info!("consuming stream {} as {name}", nats.stream);
    let mut counts = Counts::default();
    let mut last = Instant::now();
    let mut stop = std::pin::pin!(shutdown.wait());
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(250));
        let batch = tokio::select! {
            _ = &mut stop => break,
            _ = tick => None,
            b = source.next_batch() => b,
        };
        let Some(batch) = batch else {
            if idle.is_some_and(|i| last.elapsed() >= i) {
                break;
            }
            continue;
        };
        last = Instant::now();
        for m in &batch {
            push_message(m, &source.stream, pipeline, &mut counts);
        }
        // Alerts written before the events are acknowledged: a crash here redelivers them.
        pipeline.idle();
        for m in batch {
            if let Err(e) = m.ack().await {
                tracing::warn!("NATS: acknowledging: {e}");
            }
        }
    }
    Ok(counts)
}
