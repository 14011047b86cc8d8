//! Detection: rules routed by logsource (one rule set per event kind, so a rule only ever sees
//! events of its logsource), process exclusions, per-rule throttling → alerts. Rules are
//! compiled and evaluated by rsigma; which rules to evaluate per event is decided by our
//! prefilter (`prefilter/`).
pub mod alert;
pub mod audit_feed;
pub mod check;
pub mod config;
pub use config::{mapping, DetectConfig};
pub mod logsource;
mod parallel;
pub mod prefilter;
pub mod rules;
pub mod ruleset;
pub mod throttle;

use std::collections::BTreeMap;
use std::sync::Arc;

use rsigma_parser::SigmaRule;

use crate::event::names as f;
use crate::event::time::UtcTimeCache;
use crate::event::{Event, EventKind};
use crate::stats::{bump, DetectStats, RuleCounters, RuleStates};
use alert::{Alert, MatchInfo};
use audit_feed::{AuditFeed, Watch};
use rules::{LoadedRule, RuleEntry, RuleMeta, RuleStatus, Summary};
use ruleset::{PreparedRule, RuleSet};
use throttle::Throttle;

/// The rules of one logsource mapping entry, and the conditions its events must meet.
struct RoutedSet {
    route: logsource::Route,
    set: RuleSet,
}

/// Compiled rules per mapping entry (route index): (metadata index, rule).
type PerRoute = BTreeMap<usize, Vec<(usize, PreparedRule)>>;

/// A rule whose compiling waits for the first event of its kind (`defer_compile`).
struct PendingRule {
    entry: usize,
    meta: usize,
    route: usize,
    rule: Box<SigmaRule>,
}

/// The rule sets of `per_route`, built on up to `threads` threads, added to their kinds'
/// sets in route order.
fn add_sets(
    sets: &mut [Vec<RoutedSet>; EventKind::COUNT],
    routes: &[logsource::Route],
    per_route: PerRoute,
    threads: usize,
) {
    let built = parallel::map_ordered(per_route.into_iter().collect(), threads, |(r, list)| {
        (r, RuleSet::build(list))
    });
    for (r, set) in built {
        if let Some(route) = routes.get(r) {
            sets[route.kind.index()].push(RoutedSet {
                route: route.clone(),
                set,
            });
        }
    }
}

pub struct Detector {
    /// Per event kind, the rule sets of the mapping entries routed to it.
    sets: [Vec<RoutedSet>; EventKind::COUNT],
    /// Per event kind, its rules still to compile (deferred); emptied by its first event.
    pending: [Vec<PendingRule>; EventKind::COUNT],
    /// The mapping's entries, by route index (for sets built after loading).
    routes: Vec<logsource::Route>,
    compile_threads: usize,
    metas: Vec<Arc<RuleMeta>>,
    throttle: Throttle,
    /// Reads the UtcTime of events with hits (event-time throttle).
    times: UtcTimeCache,
    /// The hits of one rule set on one event, reused.
    hits: Vec<ruleset::RuleHit>,
    /// auditd records made from the sensors' events, when an active auditd rule can use them.
    feed: Option<AuditFeed>,
    /// The records made from one event, reused.
    made: Vec<Event>,
    /// Per rule, its counters in `stats.rules`, fetched on the rule's first match.
    counters: Vec<Option<Arc<RuleCounters>>>,
    exclude: Vec<String>,
    host: Arc<str>,
    stats: Arc<DetectStats>,
    /// sha256 of the rule files this set was loaded from (`rules::digest`).
    pub digest: String,
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
    /// The host name alerts carry.
    pub fn host(&self) -> Arc<str> {
        self.host.clone()
    }

    /// Load, classify and compile the rule set. Rule problems are reported as entries (and
    /// warned about); only directory, mapping or flag problems are errors.
    pub fn load(cfg: &DetectConfig, stats: Arc<DetectStats>) -> Result<Self, DetectorError> {
        let map = mapping(cfg)?;
        let opts = rules::LoadOptions {
            min_level: cfg.min_level,
            collected: cfg.collected.as_deref(),
            threads: cfg.compile_threads,
            defer_compile: cfg.defer_compile,
            audit_from_sensors: cfg.audit_from_sensors,
        };
        let dirs = cfg.dirs();
        let mut entries = rules::load(&dirs, &map, &opts)?;
        let digest = rules::digest(&dirs);
        let throttle = if cfg.event_time_throttle {
            Throttle::event_time(cfg.throttle_rate, cfg.throttle_burst)?
        } else {
            Throttle::wall(cfg.throttle_rate, cfg.throttle_burst)?
        };
        let mut metas = Vec::new();
        // Rules move out of the entries: compiled ones into per-route lists, deferred ones
        // into their kind's pending list.
        let mut per_route = PerRoute::new();
        let mut pending: [Vec<PendingRule>; EventKind::COUNT] = Default::default();
        for (entry, e) in entries.iter_mut().enumerate() {
            let (RuleStatus::Active { route, kind, .. }, Some(m), Some(rule)) =
                (&e.status, &e.meta, e.rule.take())
            else {
                continue;
            };
            let meta = metas.len();
            metas.push(m.clone());
            match rule {
                LoadedRule::Compiled(c) => per_route.entry(*route).or_default().push((meta, *c)),
                LoadedRule::Parsed(rule) => pending[kind.index()].push(PendingRule {
                    entry,
                    meta,
                    route: *route,
                    rule,
                }),
            }
        }
        let routes: Vec<logsource::Route> = map.routes().cloned().collect();
        let mut sets: [Vec<RoutedSet>; EventKind::COUNT] = Default::default();
        add_sets(&mut sets, &routes, per_route, cfg.compile_threads);
        for e in &entries {
            if let RuleStatus::Invalid { reason } = &e.status {
                warn_skipped(e, reason);
            }
        }
        let summary = rules::summarize(&entries);
        let auditd_too = cfg
            .collected
            .as_ref()
            .is_none_or(|k| k.contains(&EventKind::Audit));
        let feed = AuditFeed::new(
            entries
                .iter()
                .filter(|e| matches!(e.status, RuleStatus::Active { .. }))
                .filter_map(|e| e.audit_feed.as_ref()),
            auditd_too,
        );
        Ok(Detector {
            feed,
            made: Vec::new(),
            sets,
            pending,
            routes,
            compile_threads: cfg.compile_threads,
            counters: vec![None; metas.len()],
            metas,
            throttle,
            times: UtcTimeCache::default(),
            hits: Vec::new(),
            exclude: cfg.process_exclude.clone(),
            host: hostname(),
            stats,
            entries,
            summary,
            digest,
        })
    }

    /// Compile the deferred rules of `kind` (its first event has arrived) into its rule sets.
    /// A rule that does not compile is reported now, and the published rule states updated.
    fn compile_pending(&mut self, kind: EventKind) {
        let pending = std::mem::take(&mut self.pending[kind.index()]);
        let compiled = parallel::map_ordered(pending, self.compile_threads, |p| {
            let result = rules::compile(&p.rule);
            (p, result)
        });
        let mut per_route = PerRoute::new();
        let mut failed = false;
        for (p, result) in compiled {
            match result {
                Ok(c) => per_route.entry(p.route).or_default().push((p.meta, c)),
                Err(reason) => {
                    let e = &mut self.entries[p.entry];
                    warn_skipped(e, &reason);
                    e.status = RuleStatus::Invalid { reason };
                    failed = true;
                }
            }
        }
        add_sets(
            &mut self.sets,
            &self.routes,
            per_route,
            self.compile_threads,
        );
        if failed {
            self.summary = rules::summarize(&self.entries);
            self.publish_states();
        }
    }

    /// SIGHUP: like `load`, but all or nothing — a set with any invalid rule is refused, so a
    /// typo pushed to the rules directory never silently removes a rule from a running agent.
    /// Every rule is compiled now, deferred or not, to know.
    pub fn reload(cfg: &DetectConfig, stats: Arc<DetectStats>) -> Result<Self, DetectorError> {
        let eager = DetectConfig {
            defer_compile: false,
            ..cfg.clone()
        };
        let d = Self::load(&eager, stats)?;
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

    /// Publish this set's rule states (active/inactive/invalid) and digest as the running ones.
    pub fn publish_states(&self) {
        if let Ok(mut d) = self.stats.rule_digest.lock() {
            d.clone_from(&self.digest);
        }
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
        bump(&self.stats.events);
        bump(&self.stats.events_per_kind[ev.kind.index()]);
        if self.excluded(ev) {
            bump(&self.stats.excluded);
            return;
        }
        if ev.kind == EventKind::Audit && self.audit_duplicate(ev, false) {
            return;
        }
        self.evaluate_kind(ev, out);
        if let Some(feed) = &mut self.feed {
            let mut made = std::mem::take(&mut self.made);
            feed.make(ev, &mut made);
            for m in made.drain(..) {
                bump(&self.stats.audit_made);
                bump(&self.stats.events_per_kind[EventKind::Audit.index()]);
                if !self.audit_duplicate(&m, true) {
                    self.evaluate_kind(&m, out);
                }
            }
            self.made = made;
        }
    }

    /// An auditd record already evaluated from the other origin (counted).
    fn audit_duplicate(&mut self, ev: &Event, made: bool) -> bool {
        let Some(dedup) = self.feed.as_mut().and_then(|f| f.dedup.as_mut()) else {
            return false;
        };
        let sensors = made || audit_feed::from_sensors(ev);
        let t = ev
            .get_str(f::UTC_TIME)
            .and_then(|s| self.times.ns(s))
            .unwrap_or(0);
        let dup = dedup.duplicate(ev, sensors, t);
        if dup {
            bump(&self.stats.audit_duplicates);
        }
        dup
    }

    /// The rule sets of the event's kind on one event.
    fn evaluate_kind(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        if !self.pending[ev.kind.index()].is_empty() {
            self.compile_pending(ev.kind);
        }
        let mut shared: Option<Arc<Event>> = None;
        let mut hits = std::mem::take(&mut self.hits);
        crate::event::keyword_scope(|| {
            for r in 0..self.sets[ev.kind.index()].len() {
                let routed = &mut self.sets[ev.kind.index()][r];
                if !routed.route.admits(ev) {
                    continue;
                }
                routed.set.evaluate(ev, &mut hits);
                if !hits.is_empty() {
                    self.alert(ev, r, &mut hits, &mut shared, out);
                }
            }
        });
        self.hits = hits;
    }

    /// Throttle and turn the hits of one rule set into alerts.
    fn alert(
        &mut self,
        ev: &Event,
        set_index: usize,
        hits: &mut Vec<ruleset::RuleHit>,
        shared: &mut Option<Arc<Event>>,
        out: &mut Vec<Alert>,
    ) {
        if matches!(self.throttle, Throttle::EventTime { .. }) {
            let t = ev.get_str(f::UTC_TIME).and_then(|s| self.times.ns(s));
            self.throttle.observe_time(t);
        }
        let set = &self.sets[ev.kind.index()][set_index].set;
        for hit in hits.drain(..) {
            bump(&self.stats.matches);
            let idx = hit.meta;
            if idx >= self.metas.len() {
                continue;
            }
            let (stats, metas) = (&self.stats, &self.metas);
            let counters = self.counters[idx]
                .get_or_insert_with(|| stats.rule_counters(metas[idx].key(), &metas[idx].title));
            bump(&counters.matches);
            if !self.throttle.allow(idx) {
                bump(&counters.throttled);
                continue;
            }
            bump(&counters.alerts);
            let meta = self.metas[idx].clone();
            let fields = set.matched_fields(&hit, ev);
            bump(&self.stats.alerts);
            let now = chrono::Utc::now();
            self.stats.last_alert_ms.store(
                now.timestamp_millis() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            out.push(Alert {
                time: now,
                host: self.host.clone(),
                rule: meta,
                matched: MatchInfo {
                    selections: hit.selections,
                    fields,
                },
                event: shared.get_or_insert_with(|| Arc::new(ev.clone())).clone(),
                response: None,
            });
        }
    }

    /// The compiled rule sets of one event kind, one per mapping entry (tests compare the
    /// prefiltered evaluation with the exhaustive one through them).
    pub fn rule_sets(&mut self, kind: EventKind) -> impl Iterator<Item = &mut RuleSet> {
        if !self.pending[kind.index()].is_empty() {
            self.compile_pending(kind);
        }
        self.sets[kind.index()].iter_mut().map(|r| &mut r.set)
    }

    /// The files active auditd rules' PATH selections name, for the kernel to watch.
    pub fn audit_watches(&self) -> Vec<Watch> {
        let mut w: Vec<Watch> = self
            .entries
            .iter()
            .filter(|e| matches!(e.status, RuleStatus::Active { .. }))
            .filter_map(|e| e.audit_feed.as_ref())
            .flat_map(|f| f.watches.iter().cloned())
            .collect();
        w.sort();
        w.dedup();
        w
    }

    /// Kinds that have at least one active rule.
    pub fn active_kinds(&self) -> Vec<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|k| !self.sets[k.index()].is_empty() || !self.pending[k.index()].is_empty())
            .collect()
    }
}

/// The one warning for a rule that is not used (at load, or when a deferred rule compiles).
fn warn_skipped(e: &RuleEntry, reason: &str) {
    tracing::warn!("rule skipped: {}: {reason}", e.path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESS_RULE: &str = "title: curl\nid: 11111111-1111-1111-1111-111111111111\n\
        logsource: {category: process_creation, product: linux}\n\
        detection: {sel: {Image|endswith: /curl}, condition: sel}\nlevel: high\n";
    /// Parses, but its regex does not compile.
    const BROKEN_AUDIT_RULE: &str = "title: broken\nid: 22222222-2222-2222-2222-222222222222\n\
        logsource: {product: linux, service: auditd}\n\
        detection: {sel: {type|re: '(unclosed'}, condition: sel}\nlevel: high\n";

    fn detector(dir: &std::path::Path, defer_compile: bool) -> Detector {
        let cfg = DetectConfig {
            rule_dirs: vec![dir.to_path_buf()],
            defer_compile,
            ..Default::default()
        };
        Detector::load(&cfg, Arc::new(DetectStats::default())).expect("rules load")
    }

    fn alerts(d: &mut Detector, ev: &Event) -> Vec<String> {
        let mut out = Vec::new();
        d.evaluate(ev, &mut out);
        out.iter().map(|a| a.rule.title.clone()).collect()
    }

    #[test]
    fn deferred_rules_compile_on_their_kinds_first_event_and_report_failures_then() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("curl.yml"), PROCESS_RULE).unwrap();
        std::fs::write(tmp.path().join("broken.yml"), BROKEN_AUDIT_RULE).unwrap();
        let mut exec = Event::new(EventKind::ProcessCreation);
        exec.push_str(f::IMAGE, "/usr/bin/curl");
        let mut audit = Event::new(EventKind::Audit);
        audit.push_str("type", "EXECVE");

        let mut eager = detector(tmp.path(), false);
        assert_eq!((eager.summary.active, eager.summary.invalid), (1, 1));

        let mut deferred = detector(tmp.path(), true);
        assert_eq!((deferred.summary.active, deferred.summary.invalid), (2, 0));
        assert_eq!(
            deferred.active_kinds(),
            vec![EventKind::ProcessCreation, EventKind::Audit]
        );
        assert_eq!(alerts(&mut deferred, &exec), alerts(&mut eager, &exec));
        assert_eq!(alerts(&mut deferred, &exec), ["curl"]);
        // The auditd rule is compiled (and found broken) only now.
        assert!(alerts(&mut deferred, &audit).is_empty());
        assert_eq!((deferred.summary.active, deferred.summary.invalid), (1, 1));
        let broken = deferred
            .entries
            .iter()
            .find(|e| e.path.ends_with("broken.yml"));
        assert!(matches!(
            &broken.unwrap().status,
            RuleStatus::Invalid { reason } if reason.starts_with("does not compile")
        ));
        // Reloading compiles every rule, deferred or not, and so refuses the set.
        let cfg = DetectConfig {
            rule_dirs: vec![tmp.path().to_path_buf()],
            defer_compile: true,
            ..Default::default()
        };
        assert!(Detector::reload(&cfg, Arc::new(DetectStats::default())).is_err());
    }

    #[test]
    fn matched_selections_come_out_in_the_same_order_every_run() {
        // rsigma keeps selections in a hash map whose order differs per map: without the
        // sort, eight loads of this rule would almost surely not all agree.
        let tmp = tempfile::tempdir().unwrap();
        let rule = concat!(
            "title: three\n",
            "logsource: {category: process_creation, product: linux}\n",
            "detection:\n",
            "  sel_c: {Image|endswith: /curl}\n",
            "  sel_a: {Image|contains: bin}\n",
            "  sel_b: {Image|startswith: /usr}\n",
            "  condition: 1 of sel_*\n",
        );
        std::fs::write(tmp.path().join("three.yml"), rule).unwrap();
        let mut exec = Event::new(EventKind::ProcessCreation);
        exec.push_str(f::IMAGE, "/usr/bin/curl");
        for _ in 0..8 {
            let mut d = detector(tmp.path(), false);
            let mut out = Vec::new();
            d.evaluate(&exec, &mut out);
            assert_eq!(out[0].matched.selections, ["sel_a", "sel_b", "sel_c"]);
        }
    }
}
