//! Loading rule directories: every *.yml/*.yaml parsed, each rule classified as active (with its
//! event kind), inactive (logsource not collected, or below --min-level) or invalid (with the
//! reason). Nothing is dropped without being named.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rsigma_parser::{Level, SigmaRule};
use serde::Serialize;

use super::audit_feed::{self, analyze::Feed};
use super::logsource::{self, LogsourceMap};
use super::parallel;
use super::ruleset::PreparedRule;
use crate::event::EventKind;

/// What an alert says about its rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleMeta {
    pub id: Option<String>,
    pub title: String,
    pub level: AlertLevel,
    pub status: Option<String>,
    pub tags: Vec<String>,
    pub author: Option<String>,
    pub references: Vec<String>,
    pub path: String,
}

impl RuleMeta {
    /// The rule id, or its title when it has none (throttle and stats key).
    pub fn key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.title)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl AlertLevel {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "informational" | "info" => Some(Self::Informational),
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "informational",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    fn from_sigma(l: Option<Level>) -> Self {
        match l {
            Some(Level::Informational) => Self::Informational,
            Some(Level::Low) => Self::Low,
            Some(Level::Medium) | None => Self::Medium,
            Some(Level::High) => Self::High,
            Some(Level::Critical) => Self::Critical,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum RuleStatus {
    Active {
        kind: EventKind,
        /// The logsource mapping entry routing it (rules of one entry share a rule set).
        #[serde(skip)]
        route: usize,
        /// auditd rules: what feeds them here, `auditd` (its log) and/or `ebpf` (records
        /// made from the sensors' events, `audit_feed`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        fed_by: Vec<&'static str>,
    },
    Inactive {
        reason: String,
    },
    Invalid {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct RuleEntry {
    pub path: PathBuf,
    pub meta: Option<Arc<RuleMeta>>,
    pub status: RuleStatus,
    /// The rule, for active rules: compiled, or only parsed when compiling is deferred.
    pub rule: Option<LoadedRule>,
    /// auditd rules the sensors can feed: which made records can match, which files to watch.
    pub audit_feed: Option<Feed>,
}

/// An active rule as loading leaves it.
#[derive(Debug, Clone)]
pub enum LoadedRule {
    Compiled(Box<PreparedRule>),
    /// Parsed only (`LoadOptions::defer_compile`): the detector compiles it when an event of
    /// its kind first arrives.
    Parsed(Box<SigmaRule>),
}

/// How rules are classified and loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// Rules below this level are loaded inactive.
    pub min_level: AlertLevel,
    /// The event kinds the run collects; rules of other kinds are loaded inactive, saying
    /// which flag turns their source on, and are not compiled. None: every kind.
    pub collected: Option<&'a [EventKind]>,
    /// Threads that parse and compile rule files.
    pub threads: usize,
    /// Leave active rules parsed, not compiled (see `LoadedRule::Parsed`).
    pub defer_compile: bool,
    /// The eBPF sensors run (or their records are replayed): auditd rules they can feed are
    /// active without an auditd log.
    pub audit_from_sensors: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("rules directory {0}: does not exist")]
    Missing(PathBuf),
    #[error("rules path {0}: is not a directory")]
    NotADirectory(PathBuf),
    #[error("rules directory {0}: contains no *.yml or *.yaml rule files")]
    Empty(PathBuf),
    #[error("no rules directory given: use --rules DIR (e.g. --rules rules)")]
    NoneGiven,
}

/// Every rule file under `dir` (sorted, so loading order and reports are stable).
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    if !dir.exists() {
        return Err(LoadError::Missing(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(LoadError::NotADirectory(dir.to_path_buf()));
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .filter(|p| p.file_name().and_then(|n| n.to_str()) != Some(logsource::FILE_NAME))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    Ok(files)
}

/// sha256 over every rule file of `dirs` (its path below its directory and its text, in load
/// order): the same rules give the same digest wherever they are installed. Unreadable
/// directories and files count as empty.
pub fn digest(dirs: &[PathBuf]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for dir in dirs {
        for file in rule_files(dir).unwrap_or_default() {
            let rel = file.strip_prefix(dir).unwrap_or(&file);
            h.update(rel.as_os_str().as_encoded_bytes());
            h.update([0]);
            h.update(std::fs::read(&file).unwrap_or_default());
            h.update([0]);
        }
    }
    format!("{:x}", h.finalize())
}

fn meta(rule: &SigmaRule, path: &Path) -> RuleMeta {
    RuleMeta {
        id: rule.id.clone(),
        title: rule.title.clone(),
        level: AlertLevel::from_sigma(rule.level),
        status: rule.status.map(|s| format!("{s:?}").to_ascii_lowercase()),
        tags: rule.tags.clone(),
        author: rule.author.clone(),
        references: rule.references.clone(),
        path: path.display().to_string(),
    }
}

/// Parse, classify and compile every rule of `dirs`, files on up to `opts.threads` threads.
/// Directory problems are errors; rule problems (unparsable, uncompilable) are entries with
/// status Invalid.
pub fn load(
    dirs: &[PathBuf],
    map: &LogsourceMap,
    opts: &LoadOptions,
) -> Result<Vec<RuleEntry>, LoadError> {
    if dirs.is_empty() {
        return Err(LoadError::NoneGiven);
    }
    let mut files = Vec::new();
    for dir in dirs {
        files.extend(rule_files(dir)?);
    }
    let per_file = parallel::map_ordered(files, opts.threads, |path| {
        let mut out = Vec::new();
        load_file(&path, map, opts, &mut out);
        out
    });
    Ok(per_file.into_iter().flatten().collect())
}

fn invalid(path: &Path, reason: String) -> RuleEntry {
    RuleEntry {
        path: path.to_path_buf(),
        meta: None,
        status: RuleStatus::Invalid { reason },
        rule: None,
        audit_feed: None,
    }
}

fn load_file(path: &Path, map: &LogsourceMap, opts: &LoadOptions, out: &mut Vec<RuleEntry>) {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, &text, map, opts, out),
        Err(e) => out.push(invalid(path, e.to_string())),
    }
}

/// Classify the rules of one file's text (`path` names it in entries). Never panics on input:
/// the fuzz target `rule_loader` feeds it arbitrary text.
pub fn load_text(
    path: &Path,
    text: &str,
    map: &LogsourceMap,
    opts: &LoadOptions,
    out: &mut Vec<RuleEntry>,
) {
    let collection = match rsigma_parser::parse_sigma_yaml(text) {
        Ok(c) => c,
        Err(e) => return out.push(invalid(path, e.to_string())),
    };
    for e in &collection.errors {
        out.push(invalid(path, e.clone()));
    }
    if !collection.correlations.is_empty() || !collection.filters.is_empty() {
        out.push(invalid(
            path,
            "correlation and filter documents are not supported yet (detection rules only)".into(),
        ));
    }
    for mut rule in collection.rules {
        keywords_contain(&mut rule);
        let m = Arc::new(meta(&rule, path));
        if let Some(reason) = unsupported(&rule) {
            out.push(RuleEntry {
                path: path.to_path_buf(),
                meta: Some(m),
                status: RuleStatus::Invalid { reason },
                rule: None,
                audit_feed: None,
            });
            continue;
        }
        let (status, loaded, audit_feed) = classify(rule, &m, map, opts);
        out.push(RuleEntry {
            path: path.to_path_buf(),
            meta: Some(m),
            status,
            rule: loaded,
            audit_feed,
        });
    }
}

/// A parsed rule's status, the rule when it is active (compiled unless deferred), and what
/// the sensors can feed it (auditd rules). Inactive rules are not compiled: they cost nothing.
fn classify(
    rule: SigmaRule,
    m: &RuleMeta,
    map: &LogsourceMap,
    opts: &LoadOptions,
) -> (RuleStatus, Option<LoadedRule>, Option<Feed>) {
    let inactive = |reason| (RuleStatus::Inactive { reason }, None, None);
    let Some(r) = map.route(&rule.logsource) else {
        return inactive(format!(
            "logsource {} is not collected",
            logsource::describe(&rule.logsource)
        ));
    };
    if m.level < opts.min_level {
        return inactive(format!(
            "level {} is below --min-level {}",
            m.level.as_str(),
            opts.min_level.as_str()
        ));
    }
    let feed = (r.kind == EventKind::Audit && opts.audit_from_sensors)
        .then(|| audit_feed::analyze::analyze(&rule))
        .filter(Feed::fed);
    let source_runs = opts.collected.is_none_or(|kinds| kinds.contains(&r.kind));
    if !source_runs && feed.is_none() {
        return inactive(format!(
            "no {} source runs here ({})",
            r.kind,
            source_hint(r.kind)
        ));
    }
    let mut fed_by = Vec::new();
    if r.kind == EventKind::Audit {
        if source_runs {
            fed_by.push("auditd");
        }
        if feed.is_some() {
            fed_by.push("ebpf");
        }
    }
    let active = RuleStatus::Active {
        kind: r.kind,
        route: r.index,
        fed_by,
    };
    if opts.defer_compile {
        return (active, Some(LoadedRule::Parsed(Box::new(rule))), feed);
    }
    match compile(&rule) {
        Ok(c) => (active, Some(LoadedRule::Compiled(Box::new(c))), feed),
        Err(reason) => (RuleStatus::Invalid { reason }, None, None),
    }
}

/// A parsed rule compiled and classified for the prefilter, or the reason it does not compile
/// (its entry's Invalid reason).
pub fn compile(rule: &SigmaRule) -> Result<PreparedRule, String> {
    rsigma_eval::compile_rule(rule)
        .map(PreparedRule::new)
        .map_err(|e| format!("does not compile: {e}"))
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

/// Counts for the one-line summary.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub parsed: usize,
    pub invalid: usize,
    pub active: usize,
    pub inactive: usize,
    pub active_per_kind: Vec<(String, usize)>,
}

pub fn summarize(entries: &[RuleEntry]) -> Summary {
    let mut s = Summary::default();
    let mut per = std::collections::BTreeMap::<EventKind, usize>::new();
    for e in entries {
        if e.meta.is_some() {
            s.parsed += 1;
        }
        match &e.status {
            RuleStatus::Active { kind, .. } => {
                s.active += 1;
                *per.entry(*kind).or_default() += 1;
            }
            RuleStatus::Inactive { .. } => s.inactive += 1,
            RuleStatus::Invalid { .. } => s.invalid += 1,
        }
    }
    s.active_per_kind = per
        .into_iter()
        .map(|(k, n)| (k.category().to_owned(), n))
        .collect();
    s
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per: Vec<String> = self
            .active_per_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        write!(
            f,
            "{} parsed, {} invalid, {} active ({}), {} inactive",
            self.parsed,
            self.invalid,
            self.active,
            if per.is_empty() {
                "none".into()
            } else {
                per.join(", ")
            },
            self.inactive
        )
    }
}

/// What the engine would accept but cannot honour, so the rule could never fire as written:
/// `expand` placeholders (`%admins%`) need values from a pipeline configuration, which Aurora
/// does not have; compiled as they are, they would only match the literal `%admins%`.
fn unsupported(rule: &SigmaRule) -> Option<String> {
    use rsigma_parser::{Detection, Modifier};
    fn expands(d: &Detection) -> bool {
        match d {
            Detection::AllOf(items) => items
                .iter()
                .any(|i| i.field.modifiers.contains(&Modifier::Expand)),
            Detection::AnyOf(ds) | Detection::And(ds) => ds.iter().any(expands),
            _ => false,
        }
    }
    rule.detection.named.values().any(expands).then(|| {
        "the expand modifier needs placeholder values, which Aurora has no configuration for \
         (the rule could only match the literal placeholder)"
            .to_owned()
    })
}

/// Field-less values are keywords, searched in the whole event (`event/sigma.rs` says what that
/// is per kind). rsigma compiles a field-less item written as a mapping (`'|all': [a, b]`, used
/// by SigmaHQ's jexboss, pwnkit, find_cred_in_files, binary_padding and CVE-2022-29799 rules)
/// as exact matches, and with `|all` requires every value in one and the same field value,
/// which a log line whose program and message (or an EXECVE record whose a0 and a2) carry the
/// keywords never meets. Per the specification each keyword is a substring of the event, and
/// `|all` means each of them is found somewhere in it: such an item becomes one field-less
/// `contains` item per value (items of a mapping are ANDed).
fn keywords_contain(rule: &mut SigmaRule) {
    use rsigma_parser::{Detection, DetectionItem, Modifier};
    fn walk(d: &mut Detection) {
        match d {
            Detection::AllOf(items) => {
                let mut out = Vec::with_capacity(items.len());
                for mut item in std::mem::take(items) {
                    let m = &mut item.field.modifiers;
                    let shaped = m.iter().any(|x| {
                        !matches!(x, Modifier::All | Modifier::Cased | Modifier::Contains)
                    });
                    if item.field.name.is_some() || shaped {
                        out.push(item);
                        continue;
                    }
                    let all = m.contains(&Modifier::All);
                    m.retain(|x| !matches!(x, Modifier::All | Modifier::Contains));
                    m.push(Modifier::Contains);
                    if all && item.values.len() > 1 {
                        out.extend(item.values.iter().map(|v| DetectionItem {
                            field: item.field.clone(),
                            values: vec![v.clone()],
                        }));
                    } else {
                        out.push(item);
                    }
                }
                *items = out;
            }
            Detection::AnyOf(ds) | Detection::And(ds) => ds.iter_mut().for_each(walk),
            _ => {}
        }
    }
    rule.detection.named.values_mut().for_each(walk);
}
