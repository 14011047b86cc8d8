//! `aurora replay`: recorded events or raw logs through the same pipeline as live events, with
//! no kernel and no root. A file is the pipeline's input on this thread (`ReplayInput`); stdin
//! is read by a thread of its own into a queue that is the input, so alerts show as lines
//! arrive and SIGHUP applies between events. Rejected lines are reported as FILE:LINE: reason and
//! counted; the exit status is non-zero when any line was rejected.
use std::fs::File;
use std::io::{BufReader, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};

use super::settings::{detect_config, load_file};
use crate::cli::{ReplayArgs, ReplayFormat};
use crate::pipeline::alerting::AlertHandler;
use crate::pipeline::builder::{close_sinks, Topology, CLOSE_WAIT_RECORDED};
use crate::pipeline::Pipeline;
use crate::sources::replay::ReplayInput;
use crate::stats::{LogSourceStats, Stats};

/// Records a stdin replay holds between its reader and the pipeline.
const STDIN_QUEUE: usize = 4096;

/// Returns whether every line was accepted.
pub fn run(args: ReplayArgs) -> Result<bool> {
    let file = load_file(&args.global)?;
    // Any readable file: regular files, devices (/dev/null), FIFOs, process substitution.
    for p in &args.files {
        if p.as_os_str() == "-" {
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => bail!("replay input {}: is a directory", p.display()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("replay input {}: no such file", p.display())
            }
            Err(e) => bail!("replay input {}: {e}", p.display()),
        }
    }
    let mut detect = detect_config(&args.detect, &file, true)?;
    // A replay pays only for the rule kinds its input has; `rules check` reports them all.
    detect.defer_compile = true;
    let outputs = args.output.layered(&file)?;
    let (rt, topology, stage) =
        Topology::build_recorded(detect, &outputs, crate::nats::NatsConfig::DRAIN_RECORDED)?;
    // SIGHUP reloads rules here too (replay from a pipe is how it is tested without root).
    let _reloader = {
        let _guard = rt.enter();
        // With --metrics-file the counters are also written after each reload, so a script
        // feeding stdin sees whether its SIGHUP was taken.
        let after = args.metrics_file.clone().map(|path| {
            let stats = topology.stats.clone();
            Box::new(move || {
                if let Err(e) = crate::telemetry::metrics::write_file(&path, stats.clone()) {
                    tracing::warn!("{e:#}");
                }
            }) as Box<dyn Fn() + Send>
        });
        topology.spawn_reloader_then(after)?
    };
    let (mut pipeline, _) = stage.load(topology.recorded_enricher())?;
    for path in &args.files {
        let counters = Arc::new(LogSourceStats::new("replay", path.display().to_string()));
        topology.stats.register_log_source(counters.clone());
        if path.as_os_str() == "-" {
            replay_stdin(&mut pipeline, args.format, counters)?;
        } else {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let reader = BufReader::with_capacity(1 << 16, f);
            let mut input = ReplayInput::new(reader, args.format, path, counters);
            pipeline.run(&mut input);
            if let Some(e) = input.take_error() {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        }
    }
    let mut handler = pipeline.finish();
    rt.block_on(close_sinks(&mut handler.sinks, CLOSE_WAIT_RECORDED));
    if let Some(path) = &args.metrics_file {
        crate::telemetry::metrics::write_file(path, topology.stats.clone())?;
    }
    summary(&topology.stats, &handler)
}

/// stdin through the pipeline's queue: a reader thread is the source.
fn replay_stdin(
    pipeline: &mut Pipeline<AlertHandler>,
    format: ReplayFormat,
    counters: Arc<LogSourceStats>,
) -> Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(STDIN_QUEUE);
    let reader = std::thread::Builder::new()
        .name("aurora-stdin".into())
        .spawn(move || {
            let mut input =
                ReplayInput::new(std::io::stdin().lock(), format, Path::new("-"), counters);
            for r in &mut input {
                // The pipeline is gone only when this process is ending.
                let _ = tx.blocking_send(r);
            }
            input.take_error()
        })?;
    let mut rx = rx;
    pipeline.run(&mut rx);
    match reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdin reader panicked"))?
    {
        Some(e) => Err(e).context("reading stdin"),
        None => Ok(()),
    }
}

/// The closing report on stderr. Returns whether every line was accepted.
fn summary(stats: &Stats, handler: &AlertHandler) -> Result<bool> {
    let (mut lines, mut events, mut rejected) = (0, 0, 0);
    for s in stats.logs.lock().map(|l| l.clone()).unwrap_or_default() {
        lines += s.lines.load(Ordering::Relaxed);
        events += s.events.load(Ordering::Relaxed);
        rejected += s.rejected.load(Ordering::Relaxed);
    }
    let alerts = stats.detect.alerts.load(Ordering::Relaxed);
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "replay: {lines} lines read, {events} events, {alerts} alerts, {rejected} rejected lines, {} throttled, {} excluded",
        stats.detect.throttled_total(),
        stats.detect.excluded.load(Ordering::Relaxed)
    )?;
    for (rule, n) in &handler.per_rule {
        writeln!(err, "replay: rule {rule}: {n} alerts")?;
    }
    for l in stats.throttle_lines() {
        writeln!(err, "replay: {l}")?;
    }
    for k in handler.sinks.all_stats() {
        writeln!(err, "replay: sink {}", k.summary())?;
    }
    Ok(rejected == 0)
}
