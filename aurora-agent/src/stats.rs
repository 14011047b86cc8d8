//! Counters owned by each stage; one reporter reads them (periodic log line, final summary).
//! Every drop in the agent has a counter here: ring overflow, full queue, throttle, exclusion,
//! dead sink.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aurora_common::RING_COUNT;

const RINGS: usize = RING_COUNT as usize;

#[derive(Default)]
pub struct SourceStats {
    /// Records read from each ring.
    pub received: [AtomicU64; RINGS],
    /// Dropped because the pipeline queue was full.
    pub queue_dropped: [AtomicU64; RINGS],
    /// Reserve failures in the kernel (ring full), copied from the LOST map by the reporter.
    pub kernel_lost: [AtomicU64; RINGS],
    pub decode_errors: AtomicU64,
}

#[derive(Default)]
pub struct EnrichStats {
    pub proc_hits: AtomicU64,
    pub proc_misses: AtomicU64,
    pub proc_evictions: AtomicU64,
    pub proc_entries: AtomicU64,
    /// DNS answers parsed into the IP → name cache, and those that could not be parsed.
    pub dns_answers: AtomicU64,
    pub dns_parse_errors: AtomicU64,
    pub dns_cache_entries: AtomicU64,
    pub dns_cache_evictions: AtomicU64,
    /// Outbound connections whose destination had / had not been resolved on this host.
    pub dns_connects_resolved: AtomicU64,
    pub dns_connects_unresolved: AtomicU64,
    /// Container runtimes connected now, and the containers whose names are known.
    pub container_runtimes_up: AtomicU64,
    pub container_cache_entries: AtomicU64,
    /// Runtime inspections, and their outcomes.
    pub container_lookups: AtomicU64,
    pub container_resolved: AtomicU64,
    /// Container ids no connected runtime knew (or none was connected).
    pub container_unknown: AtomicU64,
    pub container_api_errors: AtomicU64,
    /// Events of a container process with and without its names (not known yet, or unknown).
    pub container_events_named: AtomicU64,
    pub container_events_unnamed: AtomicU64,
    /// Lookups not asked because the resolver's queue was full (asked again on a later event).
    pub container_requests_dropped: AtomicU64,
    pub container_evictions: AtomicU64,
}

/// Counters of one rule (by id, else title), shared by every rule set loaded since start so
/// they survive reloads.
#[derive(Debug, Default)]
pub struct RuleCounters {
    pub title: String,
    pub matches: AtomicU64,
    pub alerts: AtomicU64,
    /// Matches suppressed by the per-rule rate limit (never silent).
    pub throttled: AtomicU64,
}

/// How many rules of the running set are in each state.
#[derive(Clone, Copy, Debug, Default)]
pub struct RuleStates {
    pub active: u64,
    pub inactive: u64,
    pub invalid: u64,
}

/// The last SIGHUP reload: when, whether the new set replaced the old one, and its active rules
/// or why it was refused.
#[derive(Clone, Debug)]
pub struct ReloadResult {
    pub unix_seconds: f64,
    pub ok: bool,
    pub detail: String,
}

#[derive(Default)]
pub struct DetectStats {
    pub events: AtomicU64,
    /// Events evaluated, per kind (EventKind::index order).
    pub events_per_kind: [AtomicU64; crate::event::EventKind::COUNT],
    pub matches: AtomicU64,
    pub alerts: AtomicU64,
    pub excluded: AtomicU64,
    /// auditd records made from the sensors' events (`detect::audit_feed`), and auditd
    /// records not evaluated because the other origin's copy was.
    pub audit_made: AtomicU64,
    pub audit_duplicates: AtomicU64,
    /// Per rule key. The detector keeps each rule's Arc and bumps it without the lock (rules
    /// that match every event are throttled on every event).
    pub rules: Mutex<BTreeMap<String, Arc<RuleCounters>>>,
    pub rule_states: Mutex<RuleStates>,
    pub last_reload: Mutex<Option<ReloadResult>>,
    /// SIGHUP reloads that replaced the rules, and those refused.
    pub reloads_ok: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// sha256 of the running rule files (`rules::digest`), for the fleet's heartbeats.
    pub rule_digest: Mutex<String>,
    /// When the last alert was made, in Unix milliseconds (0: none yet).
    pub last_alert_ms: AtomicU64,
}

impl DetectStats {
    pub fn throttled_total(&self) -> u64 {
        self.rules
            .lock()
            .map(|m| {
                m.values()
                    .map(|c| c.throttled.load(Ordering::Relaxed))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The shared counters of one rule.
    pub fn rule_counters(&self, key: &str, title: &str) -> Arc<RuleCounters> {
        // A poisoned lock only means another thread panicked mid-update; keep counting.
        let mut m = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(RuleCounters {
                    title: title.to_owned(),
                    ..Default::default()
                })
            })
            .clone()
    }

    /// Every rule with counters, in key order.
    pub fn rule_snapshot(&self) -> Vec<(String, Arc<RuleCounters>)> {
        self.rules
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    pub fn set_rule_states(&self, s: RuleStates) {
        if let Ok(mut g) = self.rule_states.lock() {
            *g = s;
        }
    }

    /// A reload's outcome: the new set's active rules, or why it was refused. The result is
    /// in place before the counter moves, so a reader that saw the counter move reads it.
    pub fn record_reload(&self, outcome: Result<usize, String>) {
        let ok = outcome.is_ok();
        let unix_seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let detail = match outcome {
            Ok(n) => format!("{n} active rules"),
            Err(e) => e,
        };
        if let Ok(mut g) = self.last_reload.lock() {
            *g = Some(ReloadResult {
                unix_seconds,
                ok,
                detail,
            });
        }
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What became of the messages of one kind (alerts, or events) that a sink was handed. Each
/// message is counted once as accepted or failed; an accepted one later as sent or dropped, or
/// it is still queued (and, for a sink that spools, left in the spool at stop). So, per kind:
/// `carried + accepted = sent + dropped + queued`, where `carried` is what an earlier run left
/// in the spool.
#[derive(Default)]
pub struct Flow {
    /// Taken into the sink's queue or disk spool, to be delivered.
    pub accepted: AtomicU64,
    /// Delivered: written, or acknowledged by the server.
    pub sent: AtomicU64,
    /// Accepted but given up before delivery: a full queue, the spool's byte budget, or a
    /// network sink's queue at exit.
    pub dropped: AtomicU64,
    /// Never accepted: the write or the spool append failed.
    pub failed: AtomicU64,
    /// Waiting now, in the queue or the spool (gauge).
    pub queued: AtomicU64,
    /// Left in the disk spool when the sink stopped, delivered by the next run (gauge).
    pub spooled_at_stop: AtomicU64,
}

impl Flow {
    /// One write outcome of a sink that writes synchronously (accepted and sent at once).
    pub fn written(&self, ok: bool) {
        if ok {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            self.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` queued messages delivered.
    pub fn delivered(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        self.dequeue(n);
    }

    /// `n` queued messages given up.
    pub fn drop_queued(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.dequeue(n);
    }

    fn dequeue(&self, n: u64) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }

    /// What is still queued moves to the spool-at-stop gauge (a spooling sink stopped).
    pub fn settle_spooled(&self) -> u64 {
        let left = self.queued.swap(0, Ordering::Relaxed);
        self.spooled_at_stop.fetch_add(left, Ordering::Relaxed);
        left
    }

    /// What is still queued is lost (an in-memory queue at exit).
    pub fn settle_dropped(&self) -> u64 {
        let left = self.queued.swap(0, Ordering::Relaxed);
        self.dropped.fetch_add(left, Ordering::Relaxed);
        left
    }

    fn summary(&self, spools: bool) -> String {
        let mut s = format!(
            "sent={} queued={} dropped={} failed={}",
            load(&self.sent),
            load(&self.queued),
            load(&self.dropped),
            load(&self.failed)
        );
        if spools {
            s += &format!(" spooled_at_stop={}", load(&self.spooled_at_stop));
        }
        s
    }
}

#[derive(Default)]
pub struct SinkStats {
    pub name: String,
    /// The sink keeps what it could not deliver in a disk spool (NATS): left-overs at stop are
    /// spooled for the next run, not dropped.
    pub spools: bool,
    /// The sink ships events too (NATS with --nats-events).
    pub ships_events: bool,
    pub alerts: Flow,
    pub events: Flow,
    /// Connections (re)established after a loss or a failed attempt.
    pub reconnects: AtomicU64,
    /// Failed write or publish attempts (retried; what is finally lost is in `dropped`).
    pub errors: AtomicU64,
    /// Messages the server already had (a retried publish inside the duplicate window).
    pub duplicates: AtomicU64,
}

impl SinkStats {
    pub fn named(name: impl Into<String>) -> Self {
        SinkStats {
            name: name.into(),
            ..Default::default()
        }
    }

    /// A sink that spools to disk (and ships events when `events`).
    pub fn spooling(name: impl Into<String>, events: bool) -> Self {
        SinkStats {
            name: name.into(),
            spools: true,
            ships_events: events,
            ..Default::default()
        }
    }

    /// The flows this sink has: (label, flow).
    pub fn flows(&self) -> impl Iterator<Item = (&'static str, &Flow)> {
        std::iter::once(("alerts", &self.alerts))
            .chain(self.ships_events.then_some(("events", &self.events)))
    }

    /// The sink's counters in one text, the same in the periodic line, every command's summary
    /// and the warnings at stop: `nats: alerts sent=… queued=… dropped=… failed=… …`.
    pub fn summary(&self) -> String {
        let flows: Vec<String> = self
            .flows()
            .map(|(k, f)| format!("{k} {}", f.summary(self.spools)))
            .collect();
        format!(
            "{}: {}; reconnects={} errors={}{}",
            self.name,
            flows.join("; "),
            load(&self.reconnects),
            load(&self.errors),
            if self.spools {
                format!(" duplicates={}", load(&self.duplicates))
            } else {
                String::new()
            }
        )
    }

    /// A stopped sink's left-overs: spooled for the next run or dropped. Returns the warning to
    /// log when anything was left.
    pub fn settle_at_stop(&self) -> Option<String> {
        let left: Vec<String> = self
            .flows()
            .filter_map(|(k, f)| {
                let n = if self.spools {
                    f.settle_spooled()
                } else {
                    f.settle_dropped()
                };
                (n > 0).then(|| format!("{n} {k}"))
            })
            .collect();
        if left.is_empty() {
            return None;
        }
        Some(if self.spools {
            format!(
                "{}: {} stay in the spool for the next run",
                self.name,
                left.join(" and ")
            )
        } else {
            format!(
                "{}: {} undelivered at shutdown (dropped)",
                self.name,
                left.join(" and ")
            )
        })
    }
}

/// Counters of one followed log (auditd's log, a syslog file, the journal).
#[derive(Default)]
pub struct LogSourceStats {
    /// `auditd`, `syslog` or `journald`.
    pub kind: &'static str,
    /// The path followed (or `journal`).
    pub path: String,
    pub lines: AtomicU64,
    pub events: AtomicU64,
    /// Lines that could not be parsed (reported with the file and line, then skipped).
    pub rejected: AtomicU64,
    /// Lines over the length limit, skipped.
    pub too_long: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    /// Events not queued because the pipeline's queue was full.
    pub queue_full: AtomicU64,
}

impl LogSourceStats {
    pub fn new(kind: &'static str, path: impl Into<String>) -> Self {
        LogSourceStats {
            kind,
            path: path.into(),
            ..Default::default()
        }
    }
}

#[derive(Default)]
pub struct Stats {
    pub source: std::sync::Arc<SourceStats>,
    pub logs: Mutex<Vec<std::sync::Arc<LogSourceStats>>>,
    pub enrich: std::sync::Arc<EnrichStats>,
    pub detect: std::sync::Arc<DetectStats>,
    pub sinks: Mutex<Vec<std::sync::Arc<SinkStats>>>,
    pub response: std::sync::Arc<ResponseStats>,
    pub fleet: std::sync::Arc<FleetStats>,
}

/// The fleet control plane: heartbeats put, commands answered, bundles taken or refused, and
/// the times the kernel was brought to the operator's intent.
#[derive(Default, Debug)]
pub struct FleetStats {
    pub heartbeats_ok: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    pub commands_ok: AtomicU64,
    pub commands_failed: AtomicU64,
    /// (kind, state) → bundles.
    pub bundles: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    pub convergences: AtomicU64,
}

impl FleetStats {
    pub fn count_bundle(&self, kind: &'static str, state: &'static str) {
        if let Ok(mut m) = self.bundles.lock() {
            *m.entry((kind, state)).or_default() += 1;
        }
    }
}

/// Adds one to a counter that a single thread writes (the detector's counters: one detector
/// evaluates at a time, on the pipeline's thread): a plain load and store instead of a locked
/// read-modify-write, which cost ~20 cycles each and rules that match every event bump four
/// per event. Readers on other threads see each value or a later one.
pub fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn per_ring(a: &[AtomicU64; RINGS]) -> String {
    aurora_common::Ring::ALL
        .iter()
        .zip(a.iter())
        .map(|(r, v)| format!("{}={}", r.label(), load(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A snapshot to compute rates between two reports.
#[derive(Clone, Copy, Default)]
pub struct Snapshot {
    pub events: u64,
}

impl Stats {
    pub fn register_log_source(&self, s: std::sync::Arc<LogSourceStats>) {
        if let Ok(mut v) = self.logs.lock() {
            v.push(s);
        }
    }

    pub fn register_sink(&self, s: std::sync::Arc<SinkStats>) {
        if let Ok(mut v) = self.sinks.lock() {
            v.push(s);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            events: load(&self.detect.events),
        }
    }

    /// One line with every counter.
    pub fn line(&self, prev: Snapshot, secs: f64) -> String {
        let s = &self.source;
        let e = &self.enrich;
        let d = &self.detect;
        let rate = if secs > 0.0 {
            (load(&d.events) - prev.events) as f64 / secs
        } else {
            0.0
        };
        let sinks = self
            .sinks
            .lock()
            .map(|v| {
                v.iter()
                    .map(|k| format!("[{}]", k.summary()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        format!(
            "events received[{}] kernel_lost[{}] queue_dropped[{}] decode_errors={} | \
             processed={} rate={rate:.0}/s | proc_table entries={} hits={} misses={} evictions={} | \
             matches={} alerts={} throttled={} excluded={} | sinks: {}",
            per_ring(&s.received),
            per_ring(&s.kernel_lost),
            per_ring(&s.queue_dropped),
            load(&s.decode_errors),
            load(&d.events),
            load(&e.proc_entries),
            load(&e.proc_hits),
            load(&e.proc_misses),
            load(&e.proc_evictions),
            load(&d.matches),
            load(&d.alerts),
            d.throttled_total(),
            load(&d.excluded),
            if sinks.is_empty() { "none".into() } else { sinks },
        )
    }

    /// Per-rule throttle lines (rule id → suppressed count).
    pub fn throttle_lines(&self) -> Vec<String> {
        self.detect
            .rule_snapshot()
            .into_iter()
            .filter_map(|(r, c)| {
                let n = c.throttled.load(Ordering::Relaxed);
                (n > 0).then(|| format!("rule {r}: {n} matches suppressed by throttle"))
            })
            .collect()
    }

    pub fn total_lost(&self) -> u64 {
        self.source.kernel_lost.iter().map(load).sum::<u64>()
            + self.source.queue_dropped.iter().map(load).sum::<u64>()
    }
}

/// Response counters: kernel decisions by action and mode (counted from the block events),
/// rule-driven outcomes, policy reloads, the entries in force, the enforcement in use and the
/// executables held for hashing.
#[derive(Default, Debug)]
pub struct ResponseStats {
    /// (action, mode) → blocks.
    pub blocks: Mutex<std::collections::BTreeMap<(String, String), u64>>,
    /// (list, mode, count) of the policies in force.
    pub entries: Mutex<Vec<(&'static str, &'static str, u64)>>,
    /// (operation, mechanism) of each enforcement in use, e.g. ("exec", "tracepoint-sigkill").
    pub enforcement: Mutex<Vec<(String, String)>>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Rule-driven responses by outcome.
    pub killed: AtomicU64,
    pub would_kill: AtomicU64,
    pub rate_limited: AtomicU64,
    pub refused: AtomicU64,
    pub gone: AtomicU64,
    /// Executables held for hashing, by outcome.
    pub holds_allowed: AtomicU64,
    pub holds_denied: AtomicU64,
    pub holds_failed: AtomicU64,
    pub holds_gone: AtomicU64,
}

impl ResponseStats {
    pub fn count_block(&self, action: &str, mode: &str) {
        if let Ok(mut m) = self.blocks.lock() {
            *m.entry((action.to_owned(), mode.to_owned())).or_default() += 1;
        }
    }

    pub fn set_entries(&self, counts: Vec<(&'static str, &'static str, u64)>) {
        if let Ok(mut e) = self.entries.lock() {
            *e = counts;
        }
    }

    /// Rule-driven outcomes, for `aurora_response_total{outcome}`.
    pub fn outcomes(&self) -> [(&'static str, u64); 5] {
        [
            ("killed", load(&self.killed)),
            ("would_kill", load(&self.would_kill)),
            ("rate_limited", load(&self.rate_limited)),
            ("refused", load(&self.refused)),
            ("gone", load(&self.gone)),
        ]
    }
}
