//! Detection: rules routed by logsource (one rule set per event kind, so a rule only ever sees
//! events of its logsource), process exclusions, per-rule throttling → alerts. Rules are
//! compiled and evaluated by rsigma; which rules to evaluate per event is decided by our
//! prefilter (`prefilter/`).
pub mod alert;
pub mod check;
pub mod logsource;
pub mod prefilter;
pub mod rules;
pub mod ruleset;
pub mod throttle;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::event::names as f;
use crate::event::{Event, EventKind};
use crate::stats::{DetectStats, RuleCounters, RuleStates};
use alert::{Alert, MatchInfo};
use logsource::LogsourceMap;
use rules::{AlertLevel, RuleEntry, RuleMeta, RuleStatus, Summary};
use ruleset::RuleSet;
use throttle::Throttle;

#[derive(Clone, Debug)]
pub struct DetectConfig {
    pub rule_dirs: Vec<PathBuf>,
    pub logsource_map: Option<PathBuf>,
    pub min_level: AlertLevel,
    pub throttle_rate: f64,
    pub throttle_burst: u32,
    pub process_exclude: Vec<String>,
    /// Throttle on event timestamps (replay) instead of the wall clock (live).
    pub event_time_throttle: bool,
    /// The event kinds this run collects (the live agent: its sensors and the logs it
    /// follows); rules of other kinds are loaded inactive, saying why, and cost nothing.
    /// None: every kind (replay, consume, rules check).
    pub collected: Option<Vec<EventKind>>,
    /// Threads that compile rules. Several for replay and consume, where loading is part of
    /// the run time; one for the live agent, whose rules then sit in one thread's heap pages
    /// (1 MB less resident than when compiled on two).
    pub compile_threads: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            rule_dirs: vec![],
            logsource_map: None,
            min_level: AlertLevel::Informational,
            throttle_rate: 1.0,
            throttle_burst: 5,
            process_exclude: vec![],
            event_time_throttle: false,
            collected: None,
            compile_threads: 4,
        }
    }
}

/// The mapping to use: --logsource-map, else logsources.yml in the first rules dir having one,
/// else the built-in one.
pub fn mapping(cfg: &DetectConfig) -> Result<LogsourceMap, logsource::MapError> {
    if let Some(p) = &cfg.logsource_map {
        return LogsourceMap::load(p);
    }
    for d in &cfg.rule_dirs {
        let p = d.join(logsource::FILE_NAME);
        if p.is_file() {
            return LogsourceMap::load(&p);
        }
    }
    Ok(LogsourceMap::builtin())
}

/// The rules of one logsource mapping entry, and the conditions its events must meet.
struct RoutedSet {
    route: logsource::Route,
    set: RuleSet,
}

pub struct Detector {
    /// Per event kind, the rule sets of the mapping entries routed to it.
    sets: [Vec<RoutedSet>; EventKind::COUNT],
    metas: Vec<Arc<RuleMeta>>,
    throttle: Throttle,
    /// Per rule, its counters in `stats.rules`, fetched on the rule's first match.
    counters: Vec<Option<Arc<RuleCounters>>>,
    exclude: Vec<String>,
    host: Arc<str>,
    stats: Arc<DetectStats>,
    pub entries: Vec<RuleEntry>,
    pub summary: Summary,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error(transparent)]
    Load(#[from] rules::LoadError),
    #[error(transparent)]
    Map(#[from] logsource::MapError),
    #[error(transparent)]
    Throttle(#[from] throttle::ThrottleError),
    #[error("{0} invalid rule(s), first: {1}")]
    Invalid(usize, String),
}

fn hostname() -> Arc<str> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        .into()
}

impl Detector {
    /// Load, classify and compile the rule set. Rule problems are reported as entries (and
    /// warned about); only directory, mapping or flag problems are errors.
    pub fn load(cfg: &DetectConfig, stats: Arc<DetectStats>) -> Result<Self, DetectorError> {
        let map = mapping(cfg)?;
        let mut entries = rules::load(&cfg.rule_dirs, &map, cfg.min_level, false)?;
        if let Some(kinds) = &cfg.collected {
            for e in &mut entries {
                if let RuleStatus::Active { kind, .. } = e.status {
                    if !kinds.contains(&kind) {
                        e.status = RuleStatus::Inactive {
                            reason: format!("no {kind} source runs here ({})", source_hint(kind)),
                        };
                        e.rule = None;
                    }
                }
            }
        }
        let throttle = if cfg.event_time_throttle {
            Throttle::event_time(cfg.throttle_rate, cfg.throttle_burst)?
        } else {
            Throttle::wall(cfg.throttle_rate, cfg.throttle_burst)?
        };
        let mut sets: [Vec<RoutedSet>; EventKind::COUNT] = Default::default();
        let mut metas = Vec::new();
        let mut entries = entries;
        // (entry index, metadata index, rule) per mapping entry.
        let mut per_route: std::collections::BTreeMap<
            usize,
            Vec<(usize, usize, rsigma_parser::SigmaRule)>,
        > = Default::default();
        for (i, e) in entries.iter_mut().enumerate() {
            let (RuleStatus::Active { route, .. }, Some(rule), Some(meta)) =
                (e.status.clone(), e.rule.take(), &e.meta)
            else {
                continue;
            };
            per_route
                .entry(route)
                .or_default()
                .push((i, metas.len(), rule));
            metas.push(meta.clone());
        }
        let routes: Vec<&logsource::Route> = map.routes().collect();
        // By value: each route's parsed rules are dropped once compiled (lower loading peak).
        for (r, list) in per_route {
            let (set, errors) =
                RuleSet::compile(list.iter().map(|(_, m, r)| (*m, r)), cfg.compile_threads);
            for (pos, err) in errors {
                entries[list[pos].0].status = RuleStatus::Invalid {
                    reason: format!("does not compile: {err}"),
                };
            }
            if let (false, Some(route)) = (set.is_empty(), routes.get(r)) {
                let route = (*route).clone();
                sets[route.kind.index()].push(RoutedSet { route, set });
            }
        }
        for e in &entries {
            if let RuleStatus::Invalid { reason } = &e.status {
                tracing::warn!("rule skipped: {}: {reason}", e.path.display());
            }
        }
        let summary = rules::summarize(&entries);
        Ok(Detector {
            sets,
            counters: vec![None; metas.len()],
            metas,
            throttle,
            exclude: cfg.process_exclude.clone(),
            host: hostname(),
            stats,
            entries,
            summary,
        })
    }

    /// SIGHUP: like `load`, but all or nothing — a set with any invalid rule is refused, so a
    /// typo pushed to the rules directory never silently removes a rule from a running agent.
    pub fn reload(cfg: &DetectConfig, stats: Arc<DetectStats>) -> Result<Self, DetectorError> {
        let d = Self::load(cfg, stats)?;
        if d.summary.invalid > 0 {
            let first = d
                .entries
                .iter()
                .find_map(|e| match &e.status {
                    RuleStatus::Invalid { reason } => {
                        Some(format!("{}: {reason}", e.path.display()))
                    }
                    _ => None,
                })
                .unwrap_or_default();
            return Err(DetectorError::Invalid(d.summary.invalid, first));
        }
        Ok(d)
    }

    /// Publish this set's rule states (active/inactive/invalid) as the running ones.
    pub fn publish_states(&self) {
        self.stats.set_rule_states(RuleStates {
            active: self.summary.active as u64,
            inactive: self.summary.inactive as u64,
            invalid: self.summary.invalid as u64,
        });
    }

    pub fn rule_count(&self) -> usize {
        self.metas.len()
    }

    fn excluded(&self, ev: &Event) -> bool {
        !self.exclude.is_empty()
            && [f::IMAGE, f::COMMAND_LINE].iter().any(|name| {
                ev.get_str(name)
                    .is_some_and(|v| self.exclude.iter().any(|x| v.contains(x.as_str())))
            })
    }

    /// Evaluate one event against the rules of its kind.
    pub fn evaluate(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        self.stats.events_per_kind[ev.kind.index()].fetch_add(1, Ordering::Relaxed);
        if self.excluded(ev) {
            self.stats.excluded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut shared: Option<Arc<Event>> = None;
        for r in 0..self.sets[ev.kind.index()].len() {
            let routed = &mut self.sets[ev.kind.index()][r];
            if !routed.route.admits(ev) {
                continue;
            }
            let results = routed.set.evaluate(ev);
            if !results.is_empty() {
                self.alert(ev, r, results, &mut shared, out);
            }
        }
    }

    /// Throttle and turn the hits of one rule set into alerts.
    fn alert(
        &mut self,
        ev: &Event,
        set_index: usize,
        results: Vec<ruleset::RuleHit>,
        shared: &mut Option<Arc<Event>>,
        out: &mut Vec<Alert>,
    ) {
        if matches!(self.throttle, Throttle::EventTime { .. }) {
            self.throttle.observe_time(event_time_ns(ev));
        }
        let set = &self.sets[ev.kind.index()][set_index].set;
        for hit in results {
            self.stats.matches.fetch_add(1, Ordering::Relaxed);
            let idx = hit.meta;
            if idx >= self.metas.len() {
                continue;
            }
            let (stats, metas) = (&self.stats, &self.metas);
            let counters = self.counters[idx]
                .get_or_insert_with(|| stats.rule_counters(metas[idx].key(), &metas[idx].title));
            counters.matches.fetch_add(1, Ordering::Relaxed);
            if !self.throttle.allow(idx) {
                counters.throttled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            counters.alerts.fetch_add(1, Ordering::Relaxed);
            let meta = self.metas[idx].clone();
            let fields = set.matched_fields(&hit, ev);
            self.stats.alerts.fetch_add(1, Ordering::Relaxed);
            out.push(Alert {
                time: chrono::Utc::now(),
                host: self.host.clone(),
                rule: meta,
                matched: MatchInfo {
                    selections: hit.selections,
                    fields,
                },
                event: shared.get_or_insert_with(|| Arc::new(ev.clone())).clone(),
            });
        }
    }

    /// The compiled rule sets of one event kind, one per mapping entry (tests compare the
    /// prefiltered evaluation with the exhaustive one through them).
    pub fn rule_sets(&mut self, kind: EventKind) -> impl Iterator<Item = &mut RuleSet> {
        self.sets[kind.index()].iter_mut().map(|r| &mut r.set)
    }

    /// Kinds that have at least one active rule.
    pub fn active_kinds(&self) -> Vec<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|k| !self.sets[k.index()].is_empty())
            .collect()
    }
}

/// The flag that turns on the source of a kind.
fn source_hint(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Audit => "--audit-log PATH",
        EventKind::SystemLog => "--system-log journald|PATH",
        EventKind::FileEvent => "--file-sensor auto",
        _ => "the eBPF sensors",
    }
}

/// The event's UtcTime in ns since the epoch (Sysmon format or RFC 3339).
fn event_time_ns(ev: &Event) -> Option<i64> {
    let s = ev.get_str(f::UTC_TIME)?;
    crate::event::time::parse_utc_ns(s)
}
