//! `aurora` (no subcommand): the live agent.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::alerting::{spawn_reloader, AlertHandler, Control};
use super::live::LiveSession;
use super::settings::{build_sinks, detect_config, Settings};
use crate::cli::RunArgs;
use crate::detect::{DetectConfig, Detector};
use crate::enrich::Enricher;
use crate::pipeline::consume;
use crate::sinks::SinkSet;
use crate::stats::Stats;
use crate::telemetry::ready::ReadyFile;
use crate::telemetry::Telemetry;

/// nice 10 and the idle I/O class, so the agent yields to the workload it watches.
fn lower_priority() -> Result<()> {
    // SAFETY: plain syscalls on the current process.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, 10) != 0 {
            return Err(std::io::Error::last_os_error()).context("setpriority(10)");
        }
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        if libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            IOPRIO_CLASS_IDLE << 13,
        ) != 0
        {
            return Err(std::io::Error::last_os_error()).context("ioprio_set(idle)");
        }
    }
    Ok(())
}

/// Wait for every network sink to deliver its queue (bounded), counting what is left.
pub async fn close_sinks(sinks: &mut SinkSet, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    for (stats, task) in sinks.shutdown() {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            let left = stats.queued.swap(0, Ordering::Relaxed);
            stats.dropped.fetch_add(left, Ordering::Relaxed);
            tracing::warn!("{}: {left} alerts undelivered at shutdown", stats.name);
        }
    }
}

fn report(stats: &Stats, prev: crate::stats::Snapshot, secs: f64) {
    tracing::info!("stats: {}", stats.line(prev, secs));
    for l in stats.throttle_lines() {
        tracing::info!("stats: {l}");
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let settings = Settings::for_sensors(&args.global, &args.sensors)?;
    let file = settings.file.clone();
    let mut cfg: DetectConfig = detect_config(&args.detect, &file, false)?;
    cfg.collected = Some(settings.collected_kinds());
    let stats = Arc::new(Stats::default());
    // Fail fast on the logsource mapping before touching the kernel (flags and rule
    // directories were validated by detect_config).
    crate::detect::mapping(&cfg)?;
    let stats_interval = args.stats_interval.or(file.stats_interval).unwrap_or(60);
    let trace = args.trace || file.trace.unwrap_or(false);
    if args.low_prio || file.low_prio.unwrap_or(false) {
        lower_priority()?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = super::signals::Shutdown::install()?;
        let sinks = build_sinks(&args.output, &file, &tokio::runtime::Handle::current())?;
        for s in sinks.all_stats() {
            stats.register_sink(s);
        }
        let telemetry = Telemetry::start(settings.metrics_listen, stats.clone()).await?;
        let mut enricher = Enricher::new(&settings.enrich, stats.enrich.clone());
        let (session, rx) =
            LiveSession::start(&settings.ebpf, &settings.logs, settings.queue_size, &stats).await?;
        let seeded = enricher.seed_from_proc();
        // Rules load after the sensors (loading the sensors parses the kernel's BTF; not holding
        // both at once lowers the agent's peak memory), and on the pipeline thread that will
        // evaluate them: their allocations stay in that thread's heap (freeing them from another
        // thread is slower in mimalloc), and the runtime keeps serving /readyz meanwhile.
        // Events wait in the queue.
        let control = Arc::new(Control::default());
        let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
        let consumer = {
            let (cfg, stats, control) = (cfg.clone(), stats.detect.clone(), control.clone());
            std::thread::Builder::new()
                .name("aurora-pipeline".into())
                .spawn(move || {
                    let detector = match Detector::load(&cfg, stats) {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = loaded_tx.send(Err(e));
                            return None;
                        }
                    };
                    let _ =
                        loaded_tx.send(Ok((detector.summary.to_string(), detector.rule_count())));
                    let handler = AlertHandler::new(detector, sinks, trace, control);
                    Some(consume(rx, enricher, handler))
                })?
        };
        let (summary, rule_count) = loaded_rx
            .await
            .map_err(|_| anyhow::anyhow!("pipeline thread ended while loading the rules"))??;
        tracing::info!("rules: {summary}");
        if rule_count == 0 {
            tracing::warn!("no active rules: events are collected but nothing can alert");
        }
        let mut state = session.ready_state(Some(rule_count));
        state.metrics = telemetry.addr;
        let _ready = ReadyFile::publish(settings.ready_file.as_deref(), &state)?;
        tracing::info!(processes = seeded, "sensors attached; watching");
        telemetry.ready(&state);

        let reloader = spawn_reloader(cfg, stats.detect.clone(), control.clone())?;

        let refresher = session.spawn_refresher(stats.clone());
        let reporter_stats = stats.clone();
        let reporter = tokio::spawn(async move {
            if stats_interval == 0 {
                return;
            }
            let mut tick = tokio::time::interval(Duration::from_secs(stats_interval));
            tick.tick().await;
            let mut last = Instant::now();
            let mut prev = reporter_stats.snapshot();
            loop {
                tick.tick().await;
                report(&reporter_stats, prev, last.elapsed().as_secs_f64());
                prev = reporter_stats.snapshot();
                last = Instant::now();
            }
        });

        shutdown.wait().await;
        let started = Instant::now();
        reporter.abort();
        refresher.abort();
        reloader.abort();
        session.shutdown(&stats).await;
        let mut handler = tokio::task::spawn_blocking(move || consumer.join())
            .await?
            .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?
            .context("pipeline thread ended without its handler")?;
        close_sinks(
            &mut handler.sinks,
            Duration::from_millis(1500).saturating_sub(started.elapsed()),
        )
        .await;
        tracing::info!("final: {}", stats.line(Default::default(), 0.0));
        for l in stats.throttle_lines() {
            tracing::info!("final: {l}");
        }
        Ok(())
    })
}
