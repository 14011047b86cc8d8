//! The handler for the agent, `replay` and `consume`: detection, then every sink. Rule reloads and
//! logfile reopening (SIGHUP) are handed in through `Control` and applied between events.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::detect::alert::{Alert, MatchInfo};
use crate::detect::rules::{AlertLevel, RuleMeta};
use crate::detect::{DetectConfig, Detector};
use crate::event::{names as f, Event, EventKind};
use crate::pipeline::EventHandler;
use crate::response::kill::Responder;
use crate::sinks::SinkSet;
use crate::stats::DetectStats;
use crate::stats::ResponseStats;

#[derive(Default)]
pub struct Control {
    pub new_detector: Mutex<Option<Detector>>,
    pub reopen: AtomicBool,
}

/// SIGHUP: reload the rules atomically (a set that fails to load, or has an invalid rule, is
/// refused and the running rules stay) and ask the sinks to reopen their files; then `after`
/// (replay rewrites its `--metrics-file`, so a script sees each reload's outcome). Must be called
/// inside a tokio runtime; the handler is installed before it returns.
pub fn spawn_reloader(
    cfg: DetectConfig,
    stats: Arc<DetectStats>,
    control: Arc<Control>,
    after: Option<Box<dyn Fn() + Send>>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match Detector::reload(&cfg, stats.clone()) {
                Ok(d) => {
                    stats.record_reload(Ok(d.summary.active));
                    if let Ok(mut slot) = control.new_detector.lock() {
                        *slot = Some(d);
                    }
                }
                Err(e) => {
                    stats.record_reload(Err(e.to_string()));
                    tracing::error!("rule reload failed, keeping the current rules: {e}")
                }
            }
            control.reopen.store(true, Ordering::Relaxed);
            if let Some(after) = &after {
                after();
            }
        }
    }))
}

pub struct AlertHandler {
    pub detector: Detector,
    pub sinks: SinkSet,
    trace: bool,
    control: Arc<Control>,
    buf: Vec<Alert>,
    /// A sink ships events too (NATS --nats-events).
    ship_events: bool,
    /// Alerts per rule key (for summaries).
    pub per_rule: std::collections::BTreeMap<String, u64>,
    /// Rule-driven kills (`response:` in the config file); none when no rule has an action.
    responder: Option<Responder>,
    response_stats: Arc<ResponseStats>,
    /// The built-in rule every Response event (a block, an isolation) is alerted under, so
    /// every sink writes it as it writes alerts.
    response_rule: Arc<RuleMeta>,
}

/// The id of the built-in rule of Response events.
pub const RESPONSE_RULE_ID: &str = "aurora-response";

fn response_rule() -> Arc<RuleMeta> {
    Arc::new(RuleMeta {
        id: Some(RESPONSE_RULE_ID.into()),
        title: "Aurora response".into(),
        level: AlertLevel::High,
        status: Some("stable".into()),
        tags: vec![],
        author: None,
        references: vec![],
        path: "(built in)".into(),
    })
}

impl AlertHandler {
    pub fn new(detector: Detector, sinks: SinkSet, trace: bool, control: Arc<Control>) -> Self {
        detector.publish_states();
        AlertHandler {
            detector,
            ship_events: sinks.wants_events(),
            sinks,
            trace,
            control,
            buf: Vec::new(),
            per_rule: Default::default(),
            responder: None,
            response_stats: Default::default(),
            response_rule: response_rule(),
        }
    }

    /// Count block events into `stats` and act on alerts whose rule has an action.
    pub fn with_response(
        mut self,
        responder: Option<Responder>,
        stats: Arc<ResponseStats>,
    ) -> Self {
        self.responder = responder;
        self.response_stats = stats;
        self
    }

    /// The alert every Response event raises under the built-in rule.
    fn response_alert(&self, ev: &Event) -> Alert {
        let action = ev.get_str(f::ACTION).unwrap_or_default();
        let mode = ev.get_str(f::MODE).unwrap_or_default();
        self.response_stats.count_block(action, mode);
        Alert {
            time: chrono::Utc::now(),
            host: self.detector.host(),
            rule: self.response_rule.clone(),
            matched: MatchInfo {
                selections: vec![],
                fields: vec![],
            },
            event: Arc::new(ev.clone()),
            response: None,
        }
    }
}

impl EventHandler for AlertHandler {
    fn handle(&mut self, ev: Event) {
        if self.trace {
            tracing::info!(target: "aurora::trace", "{}", serde_json::to_string(&ev).unwrap_or_default());
        }
        if ev.kind == EventKind::Response {
            let a = self.response_alert(&ev);
            self.buf.push(a);
        }
        self.detector.evaluate(&ev, &mut self.buf);
        for mut a in self.buf.drain(..) {
            if let Some(r) = self.responder.as_mut() {
                a.response = r.respond(&a);
            }
            *self.per_rule.entry(a.rule.key().to_owned()).or_default() += 1;
            self.sinks.emit(&a);
        }
        // The event is shipped after its alerts: a spooled event's alerts are already durable
        // (the NATS sink writes alerts through), so a crash never leaves a delivered event
        // without its alerts.
        if self.ship_events {
            self.sinks.event(&ev);
        }
    }

    fn flush(&mut self) {
        self.sinks.flush();
    }

    fn poll_control(&mut self) {
        if let Ok(mut slot) = self.control.new_detector.try_lock() {
            if let Some(d) = slot.take() {
                tracing::info!("rules reloaded: {}", d.summary);
                d.publish_states();
                self.detector = d;
            }
        }
        if self.control.reopen.swap(false, Ordering::Relaxed) {
            self.sinks.reopen();
        }
    }
}
