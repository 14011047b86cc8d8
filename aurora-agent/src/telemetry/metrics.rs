//! Prometheus metrics from the one set of counters (`stats::Stats`): rendered at scrape time by
//! a prometheus-client collector, in the classic text format promtool and every Prometheus read.
//! The periodic stats log line reads the same atomics, so the two can never disagree.
mod containers;
mod fleet;
mod response;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::event::EventKind;
use crate::stats::Stats;

/// What the agent is, for `aurora_build_info` (set once the sensors are attached).
#[derive(Clone, Debug, Default)]
pub struct BuildInfo {
    pub version: String,
    pub kernel: String,
    /// Mode of each sensor, e.g. ("file", "vfs").
    pub sensors: Vec<(String, String)>,
}

struct StatsCollector {
    stats: Arc<Stats>,
    info: Arc<std::sync::Mutex<BuildInfo>>,
}

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsCollector")
    }
}

type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

fn v(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// One family: `name` with `help`, one sample per label set.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let fam = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(fam)?,
            _ => ConstGauge::new(value as i64).encode(fam)?,
        }
    }
    Ok(())
}

fn label(k: &'static str, v: impl Into<Cow<'static, str>>) -> Labels {
    vec![(Cow::Borrowed(k), v.into())]
}

fn per_ring(a: &[AtomicU64]) -> Vec<(Labels, u64)> {
    aurora_common::Ring::ALL
        .iter()
        .zip(a)
        .map(|(r, n)| (label("ring", r.label()), v(n)))
        .collect()
}

impl StatsCollector {
    fn encode_sources(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let s = &self.stats;
        let info = self.info.lock().map(|i| i.clone()).unwrap_or_default();
        let mut labels: Labels = vec![
            (Cow::Borrowed("version"), info.version.into()),
            (Cow::Borrowed("kernel"), info.kernel.into()),
        ];
        for (sensor, mode) in info.sensors {
            labels.push((format!("{sensor}_sensor").into(), mode.into()));
        }
        family(
            enc,
            "aurora_build_info",
            "Agent version, kernel and the mode of each sensor.",
            Gauge,
            [(labels, 1)],
        )?;
        family(
            enc,
            "aurora_ring_events_received",
            "Records read from each kernel ring.",
            Counter,
            per_ring(&s.source.received),
        )?;
        family(
            enc,
            "aurora_ring_kernel_lost",
            "Records lost in the kernel because a ring was full.",
            Counter,
            per_ring(&s.source.kernel_lost),
        )?;
        family(
            enc,
            "aurora_queue_dropped",
            "Records dropped because the pipeline queue was full, by ring.",
            Counter,
            per_ring(&s.source.queue_dropped),
        )?;
        family(
            enc,
            "aurora_decode_errors",
            "Ring records that could not be decoded.",
            Counter,
            [(vec![], v(&s.source.decode_errors))],
        )?;
        Ok(())
    }

    fn encode_detection(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::Counter;
        let s = &self.stats;
        let d = &s.detect;
        let kinds = EventKind::ALL.iter().map(|k| {
            (
                label("kind", k.category()),
                v(&d.events_per_kind[k.index()]),
            )
        });
        family(
            enc,
            "aurora_events_processed",
            "Events evaluated by detection, by kind.",
            Counter,
            kinds,
        )?;
        family(
            enc,
            "aurora_events_excluded",
            "Events skipped by --process-exclude.",
            Counter,
            [(vec![], v(&d.excluded))],
        )?;
        family(
            enc,
            "aurora_audit_records_made",
            "auditd records made from the eBPF sensors' events for the auditd rules.",
            Counter,
            [(vec![], v(&d.audit_made))],
        )?;
        family(
            enc,
            "aurora_audit_duplicates",
            "auditd records not evaluated: the same record from the other origin (auditd's log or the sensors) was.",
            Counter,
            [(vec![], v(&d.audit_duplicates))],
        )?;
        Ok(())
    }

    fn encode_rules(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let d = &self.stats.detect;
        let rules = d.rule_snapshot();
        let per_rule = |pick: fn(&crate::stats::RuleCounters) -> &AtomicU64| {
            rules
                .iter()
                .map(move |(id, c)| {
                    let l: Labels = vec![
                        (Cow::Borrowed("rule_id"), id.clone().into()),
                        (Cow::Borrowed("rule_title"), c.title.clone().into()),
                    ];
                    (l, v(pick(c)))
                })
                .collect::<Vec<_>>()
        };
        family(
            enc,
            "aurora_rule_matches",
            "Events that matched each rule (rules that matched at least once).",
            Counter,
            per_rule(|c| &c.matches),
        )?;
        family(
            enc,
            "aurora_rule_alerts",
            "Alerts raised by each rule.",
            Counter,
            per_rule(|c| &c.alerts),
        )?;
        family(
            enc,
            "aurora_rule_throttled",
            "Matches of each rule suppressed by the rate limit.",
            Counter,
            per_rule(|c| &c.throttled),
        )?;
        let st = d.rule_states.lock().map(|g| *g).unwrap_or_default();
        family(
            enc,
            "aurora_rules",
            "Rules of the running set by state.",
            Gauge,
            [
                (label("state", "active"), st.active),
                (label("state", "inactive"), st.inactive),
                (label("state", "invalid"), st.invalid),
            ],
        )?;
        family(
            enc,
            "aurora_rules_reloads",
            "SIGHUP rule reloads, by result (ok: the rules were replaced; refused: kept).",
            Counter,
            [
                (label("result", "ok"), v(&d.reloads_ok)),
                (label("result", "refused"), v(&d.reloads_refused)),
            ],
        )?;
        if let Some(r) = d.last_reload.lock().ok().and_then(|g| g.clone()) {
            // Fractional: a whole-second value would misplace the reload by up to a second.
            let mut m = enc.encode_descriptor(
                "aurora_rules_last_reload_timestamp_seconds",
                "When the last SIGHUP rule reload ran (Unix time).",
                None,
                Gauge,
            )?;
            ConstGauge::new(r.unix_seconds).encode(m.encode_family(&Labels::new())?)?;
            family(
                enc,
                "aurora_rules_last_reload_success",
                "1 when the last reload replaced the rules, 0 when it was refused.",
                Gauge,
                [(vec![], u64::from(r.ok))],
            )?;
        }
        Ok(())
    }

    fn encode_enrichment(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let s = &self.stats;
        let e = &s.enrich;
        family(
            enc,
            "aurora_process_table_entries",
            "Processes in the process table.",
            Gauge,
            [(vec![], v(&e.proc_entries))],
        )?;
        family(
            enc,
            "aurora_process_table_hits",
            "Process-table lookups that found the process.",
            Counter,
            [(vec![], v(&e.proc_hits))],
        )?;
        family(
            enc,
            "aurora_process_table_misses",
            "Process-table lookups that did not.",
            Counter,
            [(vec![], v(&e.proc_misses))],
        )?;
        family(
            enc,
            "aurora_process_table_evictions",
            "Processes evicted from the full table.",
            Counter,
            [(vec![], v(&e.proc_evictions))],
        )?;
        family(
            enc,
            "aurora_dns_answers",
            "DNS answers received by processes and parsed into the name cache.",
            Counter,
            [(vec![], v(&e.dns_answers))],
        )?;
        family(
            enc,
            "aurora_dns_parse_errors",
            "DNS answers that could not be parsed.",
            Counter,
            [(vec![], v(&e.dns_parse_errors))],
        )?;
        family(
            enc,
            "aurora_dns_cache_entries",
            "Entries in the IP-to-name caches (per process and global).",
            Gauge,
            [(vec![], v(&e.dns_cache_entries))],
        )?;
        family(
            enc,
            "aurora_dns_cache_evictions",
            "Entries evicted from the full IP-to-name caches.",
            Counter,
            [(vec![], v(&e.dns_cache_evictions))],
        )?;
        family(
            enc,
            "aurora_dns_connects",
            "Outbound connections by whether their destination had been resolved on this host.",
            Counter,
            [
                (label("resolved", "true"), v(&e.dns_connects_resolved)),
                (label("resolved", "false"), v(&e.dns_connects_unresolved)),
            ],
        )?;
        containers::encode(enc, e)
    }

    fn encode_log_sources(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::Counter;
        let logs = self
            .stats
            .logs
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let per = |pick: fn(&crate::stats::LogSourceStats) -> &AtomicU64| {
            logs.iter()
                .map(|k| {
                    let labels: Labels = vec![
                        (Cow::Borrowed("source"), Cow::Borrowed(k.kind)),
                        (Cow::Borrowed("path"), Cow::Owned(k.path.clone())),
                    ];
                    (labels, v(pick(k)))
                })
                .collect::<Vec<_>>()
        };
        for (name, help, pick) in [
            (
                "aurora_log_lines",
                "Lines read from each followed log.",
                (|k| &k.lines) as fn(&crate::stats::LogSourceStats) -> &AtomicU64,
            ),
            (
                "aurora_log_events",
                "Events made from each followed log.",
                |k| &k.events,
            ),
            (
                "aurora_log_rejected_lines",
                "Lines of each followed log that could not be parsed (skipped).",
                |k| &k.rejected,
            ),
            (
                "aurora_log_too_long_lines",
                "Lines over the length limit (skipped).",
                |k| &k.too_long,
            ),
            ("aurora_log_rotations", "Rotations followed.", |k| {
                &k.rotations
            }),
            ("aurora_log_truncations", "Truncations seen.", |k| {
                &k.truncations
            }),
            (
                "aurora_log_queue_full",
                "Events dropped because the pipeline queue was full.",
                |k| &k.queue_full,
            ),
        ] {
            family(enc, name, help, Counter, per(pick))?;
        }
        Ok(())
    }

    fn encode_sinks(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use crate::stats::{Flow, SinkStats};
        use MetricType::{Counter, Gauge};
        let s = &self.stats;
        let sinks = s.sinks.lock().map(|v| v.clone()).unwrap_or_default();
        // Per sink and kind (alerts, events): see `stats::Flow` for how the five add up.
        let per_flow = |pick: fn(&Flow) -> &AtomicU64| {
            sinks
                .iter()
                .flat_map(|k| {
                    k.flows().map(move |(kind, f)| {
                        let mut l = label("sink", k.name.clone());
                        l.push((Cow::Borrowed("kind"), Cow::Borrowed(kind)));
                        (l, v(pick(f)))
                    })
                })
                .collect::<Vec<_>>()
        };
        type FlowFamily = (
            &'static str,
            &'static str,
            MetricType,
            fn(&Flow) -> &AtomicU64,
        );
        let flows: [FlowFamily; 6] = [
            (
                "aurora_sink_accepted",
                "Messages taken into each sink's queue or disk spool, by kind (alerts, events).",
                Counter,
                |f| &f.accepted,
            ),
            (
                "aurora_sink_sent",
                "Messages delivered (written, or acknowledged by the server), by kind.",
                Counter,
                |f| &f.sent,
            ),
            (
                "aurora_sink_dropped",
                "Accepted messages given up before delivery (queue full, spool budget, a \
                 network queue at exit), by kind.",
                Counter,
                |f| &f.dropped,
            ),
            (
                "aurora_sink_failed",
                "Messages that could not be written or spooled at all, by kind.",
                Counter,
                |f| &f.failed,
            ),
            (
                "aurora_sink_queued",
                "Messages waiting in each sink's queue or spool, by kind.",
                Gauge,
                |f| &f.queued,
            ),
            (
                "aurora_sink_spooled_at_stop",
                "Messages a stopped sink left in its disk spool for the next run (NATS), by kind.",
                Gauge,
                |f| &f.spooled_at_stop,
            ),
        ];
        for (name, help, kind, pick) in flows {
            family(enc, name, help, kind, per_flow(pick))?;
        }
        let per_sink = |pick: fn(&SinkStats) -> &AtomicU64| {
            sinks
                .iter()
                .map(|k| (label("sink", k.name.clone()), v(pick(k))))
                .collect::<Vec<_>>()
        };
        family(
            enc,
            "aurora_sink_reconnects",
            "Connections of each network sink re-established after a loss.",
            Counter,
            per_sink(|k| &k.reconnects),
        )?;
        family(
            enc,
            "aurora_sink_errors",
            "Failed write or publish attempts of each sink (retried).",
            Counter,
            per_sink(|k| &k.errors),
        )?;
        family(
            enc,
            "aurora_sink_duplicates",
            "Messages the server already held (retries inside JetStream's duplicate window).",
            Counter,
            per_sink(|k| &k.duplicates),
        )
    }
}

impl Collector for StatsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_sources(&mut enc)?;
        self.encode_detection(&mut enc)?;
        self.encode_rules(&mut enc)?;
        self.encode_enrichment(&mut enc)?;
        self.encode_log_sources(&mut enc)?;
        response::encode(&mut enc, &self.stats.response)?;
        fleet::encode(&mut enc, &self.stats.fleet)?;
        self.encode_sinks(&mut enc)
    }
}

/// The registry behind `/metrics`, and the build info it reports.
pub struct Metrics {
    registry: Registry,
    info: Arc<std::sync::Mutex<BuildInfo>>,
}

impl Metrics {
    pub fn new(stats: Arc<Stats>) -> Self {
        let info = Arc::new(std::sync::Mutex::new(BuildInfo {
            version: crate::VERSION.to_owned(),
            ..Default::default()
        }));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StatsCollector {
            stats,
            info: info.clone(),
        }));
        Metrics { registry, info }
    }

    pub fn set_build_info(&self, kernel: String, sensors: Vec<(String, String)>) {
        if let Ok(mut i) = self.info.lock() {
            i.kernel = kernel;
            i.sensors = sensors;
        }
    }

    /// The exposition, Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Every counter in the Prometheus text format, written to `path` (`--metrics-file`).
pub fn write_file(path: &std::path::Path, stats: Arc<Stats>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::write(path, Metrics::new(stats).render())
        .with_context(|| format!("--metrics-file {}", path.display()))
}
