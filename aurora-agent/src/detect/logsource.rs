//! The logsource mapping (`rules/logsources.yml`): Sigma logsource → route (an event kind,
//! optionally narrowed by field values, e.g. system-log messages of the sshd program).
use std::collections::BTreeMap;
use std::path::Path;

use rsigma_parser::LogSource;
use serde::Deserialize;

use crate::event::EventKind;

/// The mapping shipped in `rules/logsources.yml`, built in so `--rules` of any directory works.
pub const BUILTIN: &str = include_str!("../../../rules/logsources.yml");
pub const FILE_NAME: &str = "logsources.yml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    logsources: Vec<Entry>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Entry {
    category: Option<String>,
    product: Option<String>,
    service: Option<String>,
    /// Logsource keys the rule must not have (`product: linux` keyword rules have neither
    /// category nor service).
    #[serde(default)]
    absent: Vec<String>,
    kind: String,
    /// Only events whose field has one of the listed values (case-insensitive) reach the rules
    /// of this entry.
    #[serde(default)]
    when: BTreeMap<String, Vec<String>>,
}

/// Where a rule's events come from: an event kind and the conditions an event of that kind
/// must meet (empty: every event of the kind).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The mapping entry's position: rules of one entry share one rule set.
    pub index: usize,
    pub kind: EventKind,
    pub when: Vec<(String, Vec<String>)>,
}

impl Route {
    /// Whether an event passes this route's conditions.
    pub fn admits(&self, ev: &crate::event::Event) -> bool {
        self.when.iter().all(|(field, values)| {
            ev.get(field).is_some_and(|v| {
                let v = v.as_text();
                values.iter().any(|want| want.eq_ignore_ascii_case(&v))
            })
        })
    }
}

#[derive(Debug, Clone)]
pub struct LogsourceMap {
    entries: Vec<(Entry, Route)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct MapError {
    pub path: String,
    pub reason: String,
}

fn eq(want: &Option<String>, have: &Option<String>) -> bool {
    match want {
        None => true,
        Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
    }
}

impl LogsourceMap {
    pub fn parse(origin: &str, text: &str) -> Result<Self, MapError> {
        let err = |reason: String| MapError {
            path: origin.to_owned(),
            reason,
        };
        let file: MappingFile = yaml_serde::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut entries = Vec::new();
        for (i, e) in file.logsources.into_iter().enumerate() {
            let kind = EventKind::from_category(&e.kind).ok_or_else(|| {
                let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.category()).collect();
                err(format!(
                    "entry {}: unknown kind '{}' ({})",
                    i + 1,
                    e.kind,
                    kinds.join(", ")
                ))
            })?;
            if let Some(bad) = e
                .absent
                .iter()
                .find(|k| !["category", "product", "service"].contains(&k.as_str()))
            {
                return Err(err(format!(
                    "entry {}: absent: '{bad}' is not a logsource key (category, product, service)",
                    i + 1
                )));
            }
            let route = Route {
                index: i,
                kind,
                when: e.when.clone().into_iter().collect(),
            };
            entries.push((e, route));
        }
        Ok(LogsourceMap { entries })
    }

    pub fn builtin() -> Self {
        Self::parse("built-in logsources.yml", BUILTIN).expect("built-in mapping parses")
    }

    pub fn load(path: &Path) -> Result<Self, MapError> {
        let text = std::fs::read_to_string(path).map_err(|e| MapError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Where a rule's logsource is routed to, if Aurora collects it.
    pub fn route(&self, ls: &LogSource) -> Option<&Route> {
        self.entries
            .iter()
            .find(|(e, _)| {
                eq(&e.category, &ls.category)
                    && eq(&e.product, &ls.product)
                    && eq(&e.service, &ls.service)
                    && e.absent.iter().all(|k| match k.as_str() {
                        "category" => ls.category.is_none(),
                        "product" => ls.product.is_none(),
                        _ => ls.service.is_none(),
                    })
            })
            .map(|(_, r)| r)
    }

    /// Every route, in mapping order.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.entries.iter().map(|(_, r)| r)
    }
}

/// `category=… product=… service=…` for messages.
pub fn describe(ls: &LogSource) -> String {
    let parts: Vec<String> = [
        ("category", &ls.category),
        ("product", &ls.product),
        ("service", &ls.service),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "empty logsource".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(c: Option<&str>, p: Option<&str>, s: Option<&str>) -> LogSource {
        LogSource {
            category: c.map(Into::into),
            product: p.map(Into::into),
            service: s.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn builtin_routes_linux_categories_only() {
        let m = LogsourceMap::builtin();
        assert_eq!(
            m.route(&ls(Some("process_creation"), Some("linux"), None))
                .map(|r| r.kind),
            Some(EventKind::ProcessCreation)
        );
        assert_eq!(
            m.route(&ls(Some("file_event"), Some("Linux"), None))
                .map(|r| r.kind),
            Some(EventKind::FileEvent)
        );
        assert_eq!(
            m.route(&ls(None, Some("linux"), Some("auditd")))
                .map(|r| r.kind),
            Some(EventKind::Audit)
        );
        let sshd = m.route(&ls(None, Some("linux"), Some("sshd"))).unwrap();
        assert_eq!(sshd.kind, EventKind::SystemLog);
        assert!(!sshd.when.is_empty());
        let bare = m.route(&ls(None, Some("linux"), None)).unwrap();
        assert_eq!(
            (bare.kind, bare.when.is_empty()),
            (EventKind::SystemLog, true)
        );
        assert_eq!(
            m.route(&ls(Some("process_creation"), Some("windows"), None)),
            None
        );
        assert_eq!(
            m.route(&ls(Some("process_access"), Some("linux"), None)),
            None,
            "an uncollected category is not taken for a keyword rule"
        );
        assert_eq!(m.route(&ls(None, Some("linux"), Some("nosuch"))), None);
    }

    #[test]
    fn absent_keys_match_anything_and_bad_kinds_are_named() {
        let m = LogsourceMap::parse(
            "t",
            "logsources:\n  - { category: process_creation, kind: process_creation }\n",
        )
        .unwrap();
        assert_eq!(
            m.route(&ls(Some("process_creation"), Some("windows"), None))
                .map(|r| r.kind),
            Some(EventKind::ProcessCreation)
        );
        let e = LogsourceMap::parse("m.yml", "logsources:\n  - { category: x, kind: dns }\n")
            .unwrap_err();
        assert!(
            e.to_string().contains("m.yml") && e.to_string().contains("dns"),
            "{e}"
        );
    }
}
