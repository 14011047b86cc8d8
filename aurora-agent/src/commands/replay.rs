//! `aurora replay`: JSONL events through the same enrich → detect → sink path as live events,
//! with no kernel and no root. Rejected lines are reported as FILE:LINE: reason and counted;
//! the exit status is non-zero when any line was rejected.
use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::alerting::{spawn_reloader, AlertHandler, Control};
use super::run::close_sinks;
use super::settings::{build_sinks_draining, detect_config, load_file, NATS_DRAIN_REPLAY};
use crate::cli::{ReplayArgs, ReplayFormat};
use crate::detect::Detector;
use crate::enrich::replay::ReplayCorrelator;
use crate::pipeline::EventHandler;
use crate::sources::auditd::AuditParser;
use crate::sources::replay::{replay, replay_lines};
use crate::sources::syslog::{self, JournalParser, SyslogParser};
use crate::stats::Stats;

/// Returns whether every line was accepted.
pub fn run(args: ReplayArgs) -> Result<bool> {
    let file = load_file(&args.global)?;
    for p in &args.files {
        if p.as_os_str() != "-" && !p.is_file() {
            bail!("replay input {}: no such file", p.display());
        }
    }
    let cfg = detect_config(&args.detect, &file, true)?;
    let stats = Arc::new(Stats::default());
    let detector = Detector::load(&cfg, stats.detect.clone())?;
    tracing::info!("rules: {}", detector.summary);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sinks = build_sinks_draining(&args.output, &file, rt.handle(), NATS_DRAIN_REPLAY)?;
    for k in sinks.all_stats() {
        stats.register_sink(k);
    }
    let control = Arc::new(Control::default());
    {
        // SIGHUP reloads rules here too (replay from a pipe is how it is tested without root).
        let _guard = rt.enter();
        spawn_reloader(cfg.clone(), stats.detect.clone(), control.clone())?;
    }
    let mut handler = AlertHandler::new(detector, sinks, false, control);
    let mut correlator = ReplayCorrelator::new(65536);
    let (mut lines, mut events, mut rejected) = (0u64, 0u64, 0u64);
    let stderr = std::io::stderr();
    for path in &args.files {
        let name = path.display().to_string();
        let interactive = name == "-";
        let mut on_event = |mut ev| {
            events += 1;
            // A pipe feeds us as events happen: apply reloads before the event, show its alerts
            // at once. Files check for reloads every 4096 events.
            if interactive || events % 4096 == 0 {
                handler.poll_control();
            }
            correlator.complete(&mut ev);
            handler.handle(ev);
            if interactive {
                handler.flush();
            }
        };
        let mut on_reject = |r: crate::sources::replay::Rejected| {
            rejected += 1;
            let _ = writeln!(stderr.lock(), "{name}:{}: {}", r.line, r.reason);
        };
        let input: Box<dyn BufRead> = if interactive {
            Box::new(std::io::stdin().lock())
        } else {
            let f = File::open(path).with_context(|| format!("opening {name}"))?;
            Box::new(BufReader::with_capacity(1 << 16, f))
        };
        let n = match args.format {
            ReplayFormat::Jsonl => replay(input, &mut on_event, &mut on_reject),
            ReplayFormat::Auditd => {
                replay_lines(input, AuditParser::replay(), &mut on_event, &mut on_reject)
            }
            ReplayFormat::Syslog => {
                let parser = SyslogParser {
                    default_facility: syslog::default_facility(path),
                };
                replay_lines(input, parser, &mut on_event, &mut on_reject)
            }
            ReplayFormat::Journal => {
                replay_lines(input, JournalParser, &mut on_event, &mut on_reject)
            }
        }
        .with_context(|| format!("reading {name}"))?;
        lines += n;
    }
    handler.flush();
    rt.block_on(close_sinks(&mut handler.sinks, Duration::from_secs(5)));
    if let Some(path) = &args.metrics_file {
        let metrics = crate::telemetry::metrics::Metrics::new(stats.clone());
        std::fs::write(path, metrics.render())
            .with_context(|| format!("--metrics-file {}", path.display()))?;
    }
    let alerts = stats.detect.alerts.load(Ordering::Relaxed);
    let mut err = stderr.lock();
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
        writeln!(
            err,
            "replay: sink {}: sent={} queued={} dropped={} reconnects={} errors={}",
            k.name,
            k.sent.load(Ordering::Relaxed),
            k.queued.load(Ordering::Relaxed),
            k.dropped.load(Ordering::Relaxed),
            k.reconnects.load(Ordering::Relaxed),
            k.errors.load(Ordering::Relaxed)
        )?;
    }
    Ok(rejected == 0)
}
