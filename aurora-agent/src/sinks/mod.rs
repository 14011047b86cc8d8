//! Where alerts leave the agent: stdout (json|text), a logfile (json|syslog), syslog over UDP,
//! TCP or TLS. Local sinks write synchronously into buffers flushed when the pipeline idles;
//! network sinks hand formatted messages to their own task through a bounded queue, so a dead
//! collector never blocks detection (overflow is counted); the NATS sink spools to disk
//! first and delivers from there (`nats/`).
#[macro_use]
pub mod registry;
pub mod sanitize;
pub mod syslog;
pub mod text;

// The sinks: `mod MODULE { FIELD: ConfigType }`, one line each (see `registry`).
sinks! {
    mod stdout { stdout: StdoutConfig }
    mod file { logfile: LogfileConfig }
    mod network { udp: UdpConfig, tcp: TcpConfig }
    mod nats { nats: NatsArgs }
}

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::detect::alert::Alert;
use crate::stats::SinkStats;

pub trait Sink: Send {
    fn emit(&mut self, alert: &Alert);
    /// Every enriched event, for sinks that ship events too (`wants_events`).
    fn event(&mut self, _ev: &crate::event::Event) {}
    fn wants_events(&self) -> bool {
        false
    }
    fn flush(&mut self) {}
    /// Whether an alert is durable (in a disk spool) once `emit` returns. Such sinks are
    /// handed each alert before any other sink, so an alert a user saw on stdout or in a log
    /// is never missing from the spool after a crash.
    fn durable(&self) -> bool {
        false
    }
    /// SIGHUP: reopen files (logrotate).
    fn reopen(&mut self) {}
    fn stats(&self) -> Arc<SinkStats>;
    /// Stop accepting alerts; a sink with a delivery task returns it so the caller can wait
    /// for the queue to drain.
    fn shutdown(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

#[derive(Default)]
pub struct SinkSet {
    sinks: Vec<Box<dyn Sink>>,
}

impl SinkSet {
    /// Add a sink; durable ones go before every other (see `Sink::durable`).
    pub fn push(&mut self, s: Box<dyn Sink>) {
        if s.durable() {
            let at = self.sinks.iter().take_while(|k| k.durable()).count();
            self.sinks.insert(at, s);
        } else {
            self.sinks.push(s);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Whether any sink ships events (checked once: the hot path skips `event` otherwise).
    pub fn wants_events(&self) -> bool {
        self.sinks.iter().any(|s| s.wants_events())
    }

    pub fn event(&mut self, ev: &crate::event::Event) {
        for s in &mut self.sinks {
            if s.wants_events() {
                s.event(ev);
            }
        }
    }

    pub fn emit(&mut self, a: &Alert) {
        for s in &mut self.sinks {
            s.emit(a);
        }
    }

    pub fn flush(&mut self) {
        for s in &mut self.sinks {
            s.flush();
        }
    }

    pub fn reopen(&mut self) {
        for s in &mut self.sinks {
            s.reopen();
        }
    }

    /// Flush local sinks and close network sinks: returns (counters, task) to wait on.
    pub fn shutdown(&mut self) -> Vec<(Arc<SinkStats>, tokio::task::JoinHandle<()>)> {
        self.flush();
        self.sinks
            .iter_mut()
            .filter_map(|s| s.shutdown().map(|t| (s.stats(), t)))
            .collect()
    }

    pub fn all_stats(&self) -> Vec<Arc<SinkStats>> {
        self.sinks.iter().map(|s| s.stats()).collect()
    }
}

/// Count one write outcome on a sink.
pub(crate) fn count(stats: &SinkStats, ok: bool) {
    stats.alerts.written(ok);
    if !ok {
        stats.errors.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use crate::detect::alert::{Alert, MatchInfo};
    use crate::detect::rules::{AlertLevel, RuleMeta};
    use crate::event::{names as f, Event, EventKind};

    pub fn sample_alert(cmdline: &str, title: &str) -> Alert {
        let mut ev = Event::new(EventKind::ProcessCreation);
        ev.push_str(f::UTC_TIME, "2024-05-01 12:34:56.789");
        ev.push_str(f::IMAGE, "/usr/bin/bash");
        ev.push_str(f::COMMAND_LINE, cmdline);
        ev.push_int(f::PROCESS_ID, 4242);
        Alert {
            time: chrono::DateTime::parse_from_rfc3339("2024-05-01T12:34:56.789Z")
                .unwrap()
                .into(),
            host: "testhost".into(),
            rule: Arc::new(RuleMeta {
                id: Some("r-1".into()),
                title: title.into(),
                level: AlertLevel::High,
                status: Some("test".into()),
                tags: vec!["attack.t1059".into()],
                author: None,
                references: vec![],
                path: "rules/x.yml".into(),
            }),
            matched: MatchInfo {
                selections: vec!["selection".into()],
                fields: vec![],
            },
            event: Arc::new(ev),
            response: None,
        }
    }
}
