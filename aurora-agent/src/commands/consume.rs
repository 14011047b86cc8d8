//! `aurora consume`: central detection. Events that agents published with `--nats-events`
//! are read from a JetStream stream as a durable pull consumer and go through the same
//! pipeline as `replay` (events in the same JSON shape, the same parser); instances that share
//! a consumer name split the stream between them, which is how detection scales past one
//! machine. The consumer is the pipeline's input (`sources/jetstream.rs`): a batch is
//! acknowledged only after its alerts were written to the sinks.
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::settings::{detect_config, load_file};
use crate::cli::ConsumeArgs;
use crate::nats::NatsConfig;
use crate::pipeline::builder::{close_sinks, Topology, CLOSE_WAIT_RECORDED};
use crate::sources::jetstream::{JetStreamInput, JetStreamSource, DEFAULT_CONSUMER};

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
    let (_reloader, shutdown, source) = rt.block_on(async {
        let reloader = topology.spawn_reloader()?;
        let shutdown = super::signals::Shutdown::install()?;
        let source = JetStreamSource::subscribe(&nats, &consumer_name).await?;
        tracing::info!("consuming stream {} as {consumer_name}", nats.stream);
        anyhow::Ok((reloader, shutdown, source))
    })?;
    let mut input = JetStreamInput::new(rt.handle().clone(), source, idle, shutdown.wait());
    pipeline.run(&mut input);
    let counts = input.counts;
    let mut handler = pipeline.finish();
    rt.block_on(close_sinks(&mut handler.sinks, CLOSE_WAIT_RECORDED));
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
