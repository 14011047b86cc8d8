//! Where a detecting pipeline is put together, once, for the live agent, `replay` and
//! `consume` (model: Vector's `topology/builder.rs`): the sinks the outputs ask for, the
//! counters every stage reports into, the SIGHUP reloader, and the stage that loads the rules
//! and joins an enricher to detection and the sinks. Commands only choose their source.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;

use super::alerting::{spawn_reloader, AlertHandler, Control};
use super::{consume, Pipeline};
use crate::detect::{DetectConfig, Detector};
use crate::enrich::{EnrichConfig, Enricher};
use crate::sinks::{OutputArgs, SinkSet};
use crate::sources::RawEvent;
use crate::stats::Stats;

/// What a detecting pipeline is made of.
pub struct TopologyConfig<'a> {
    pub detect: DetectConfig,
    pub outputs: &'a OutputArgs,
    /// Log every event (`--trace`).
    pub trace: bool,
    /// How long a stopping process keeps delivering to NATS.
    pub nats_drain: Duration,
    /// Rule-driven response (the live agent's `response:`; none elsewhere).
    pub response: crate::response::kill::ResponseConfig,
}

/// The parts of a running pipeline that outlive its construction: counters, reload control.
pub struct Topology {
    pub stats: Arc<Stats>,
    detect: DetectConfig,
    control: Arc<Control>,
}

/// Sinks built, rules not loaded yet: `load` runs on the thread that will evaluate them.
pub struct DetectionStage {
    detect: DetectConfig,
    sinks: SinkSet,
    control: Arc<Control>,
    stats: Arc<Stats>,
    trace: bool,
    response: crate::response::kill::ResponseConfig,
}

/// The pipeline's thread: it gives the handler back when its input ends (None: the rules
/// did not load).
pub type PipelineThread = std::thread::JoinHandle<Option<AlertHandler>>;

/// What the rules that loaded are, for the ready file and the log.
pub struct Loaded {
    pub rule_count: usize,
    /// Files the active auditd rules name, for the kernel to watch (`detect::audit_feed`).
    pub audit_watches: Vec<crate::detect::audit_feed::Watch>,
}

impl Topology {
    /// Build the sinks (their delivery tasks on `rt`) and register their counters.
    pub fn build(
        cfg: TopologyConfig,
        rt: &tokio::runtime::Handle,
    ) -> Result<(Topology, DetectionStage)> {
        let stats = Arc::new(Stats::default());
        let sinks = cfg.outputs.build(rt, cfg.nats_drain)?;
        for s in sinks.all_stats() {
            stats.register_sink(s);
        }
        let control = Arc::new(Control::default());
        let stage = DetectionStage {
            detect: cfg.detect.clone(),
            sinks,
            control: control.clone(),
            stats: stats.clone(),
            trace: cfg.trace,
            response: cfg.response.clone(),
        };
        let topology = Topology {
            stats,
            detect: cfg.detect,
            control,
        };
        Ok((topology, stage))
    }

    /// The pipeline of a mode that reads recorded events (replay, consume): its own runtime
    /// (one worker, for network sinks and signals), no `--trace`, a longer NATS drain.
    pub fn build_recorded(
        detect: DetectConfig,
        outputs: &OutputArgs,
        nats_drain: Duration,
    ) -> Result<(tokio::runtime::Runtime, Topology, DetectionStage)> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let cfg = TopologyConfig {
            detect,
            outputs,
            trace: false,
            nats_drain,
            response: Default::default(),
        };
        let (topology, stage) = Topology::build(cfg, rt.handle())?;
        Ok((rt, topology, stage))
    }

    /// SIGHUP reloads the rules and reopens the sinks' files. Call inside the runtime.
    pub fn spawn_reloader(&self) -> Result<tokio::task::JoinHandle<()>> {
        self.spawn_reloader_then(None)
    }

    /// `spawn_reloader`, calling `after` once each reload was tried.
    pub fn spawn_reloader_then(
        &self,
        after: Option<Box<dyn Fn() + Send>>,
    ) -> Result<tokio::task::JoinHandle<()>> {
        Ok(spawn_reloader(
            self.detect.clone(),
            self.stats.detect.clone(),
            self.control.clone(),
            after,
        )?)
    }

    /// An enricher for recorded events (replay, consume): nothing read from /proc.
    pub fn recorded_enricher(&self) -> Enricher {
        Enricher::new(&EnrichConfig::default(), self.stats.enrich.clone())
    }
}

impl DetectionStage {
    /// Load the rules and join `enricher` → detection → sinks.
    pub fn load(self, enricher: Enricher) -> Result<(Pipeline<AlertHandler>, Loaded)> {
        let detector = Detector::load(&self.detect, self.stats.detect.clone())?;
        tracing::info!("rules: {}", detector.summary);
        let rule_count = detector.rule_count();
        if rule_count == 0 {
            tracing::warn!("no active rules: events are collected but nothing can alert");
        }
        let responder =
            crate::response::kill::Responder::new(&self.response, self.stats.response.clone())?;
        let audit_watches = detector.audit_watches();
        let handler = AlertHandler::new(detector, self.sinks, self.trace, self.control)
            .with_response(responder, self.stats.response.clone());
        let loaded = Loaded {
            rule_count,
            audit_watches,
        };
        Ok((Pipeline::new(enricher, handler), loaded))
    }

    /// `load` and then `consume` on a thread of its own (the rules' allocations stay in the
    /// heap of the thread that evaluates them). Returns the thread (it gives the handler back
    /// when every sender is gone) and, once the rules loaded, what loaded.
    pub fn spawn(
        self,
        enricher: Enricher,
        rx: mpsc::Receiver<RawEvent>,
    ) -> Result<(
        PipelineThread,
        tokio::sync::oneshot::Receiver<Result<Loaded>>,
    )> {
        let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("aurora-pipeline".into())
            .spawn(move || match self.load(enricher) {
                Ok((pipeline, loaded)) => {
                    let _ = loaded_tx.send(Ok(loaded));
                    Some(consume(rx, pipeline))
                }
                Err(e) => {
                    let _ = loaded_tx.send(Err(e));
                    None
                }
            })?;
        Ok((thread, loaded_rx))
    }
}

/// How long the live agent takes to stop at most, from the signal to exit: the sinks get
/// what is left of it (NatsConfig::DRAIN_LIVE is set below it).
pub const SHUTDOWN_BUDGET_LIVE: Duration = Duration::from_millis(1500);
/// How long `replay` and `consume` wait for their sinks at exit (NatsConfig::DRAIN_RECORDED
/// is set below it).
pub const CLOSE_WAIT_RECORDED: Duration = Duration::from_secs(5);

/// Wait for every sink with a delivery task to finish (bounded by `wait`), then settle what is
/// left: a spooling sink keeps it for the next run, a network sink loses it. Each left-over is
/// counted once and said once, in the sink's own words (`SinkStats::settle_at_stop`).
pub async fn close_sinks(sinks: &mut SinkSet, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    for (stats, task) in sinks.shutdown() {
        let _ = tokio::time::timeout_at(deadline, task).await;
        if let Some(warning) = stats.settle_at_stop() {
            tracing::warn!("{warning}");
        }
    }
}
