//! The logsource mapping (`rules/logsources.yml`): Sigma logsource → event kind.
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
    kind: String,
}

#[derive(Debug, Clone)]
pub struct LogsourceMap {
    entries: Vec<(Entry, EventKind)>,
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
                err(format!(
                    "entry {}: unknown kind '{}' (process_creation, network_connection, \
                     process_termination, file_event)",
                    i + 1,
                    e.kind
                ))
            })?;
            entries.push((e, kind));
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

    /// The event kind a rule's logsource is routed to, if Aurora collects it.
    pub fn route(&self, ls: &LogSource) -> Option<EventKind> {
        self.entries
            .iter()
            .find(|(e, _)| {
                eq(&e.category, &ls.category)
                    && eq(&e.product, &ls.product)
                    && eq(&e.service, &ls.service)
            })
            .map(|(_, k)| *k)
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
            m.route(&ls(Some("process_creation"), Some("linux"), None)),
            Some(EventKind::ProcessCreation)
        );
        assert_eq!(
            m.route(&ls(Some("file_event"), Some("Linux"), None)),
            Some(EventKind::FileEvent)
        );
        assert_eq!(m.route(&ls(None, Some("linux"), Some("auditd"))), None);
        assert_eq!(
            m.route(&ls(Some("process_creation"), Some("windows"), None)),
            None
        );
    }

    #[test]
    fn absent_keys_match_anything_and_bad_kinds_are_named() {
        let m = LogsourceMap::parse(
            "t",
            "logsources:\n  - { category: process_creation, kind: process_creation }\n",
        )
        .unwrap();
        assert_eq!(
            m.route(&ls(Some("process_creation"), Some("windows"), None)),
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
