//! The module picture in README.md ("Architecture") holds: every `crate::MODULE` a module of
//! aurora-agent names is one its layer may import. Data flows one way — sources → enrich →
//! detect → sinks, put together by pipeline, driven by commands — and telemetry, stats,
//! config, nats, event and policy are below them all. response acts on what detection and
//! the kernel decided, so it sits above sources, enrich and detect, below pipeline. fleet, the
//! control plane, sits beside the pipeline: it reads the counters and asks response to act;
//! console, the fleet's web face, only talks to the control plane and the stream.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

/// Module → the crate modules it may name (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("event", &[]),
    ("config", &[]),
    ("policy", &[]),
    ("stats", &["event"]),
    ("nats", &["stats"]),
    ("telemetry", &["stats", "event", "policy"]),
    (
        "sources",
        &["event", "stats", "telemetry", "nats", "config", "policy"],
    ),
    ("enrich", &["sources", "event", "stats", "config", "policy"]),
    ("detect", &["event", "stats", "config"]),
    (
        "sinks",
        &["detect", "event", "stats", "nats", "config", "telemetry"],
    ),
    (
        "response",
        &["policy", "sources", "enrich", "detect", "event", "stats"],
    ),
    (
        "fleet",
        &[
            "response",
            "policy",
            "sources",
            "detect",
            "stats",
            "telemetry",
            "nats",
        ],
    ),
    ("console", &["fleet", "nats"]),
    (
        "pipeline",
        &[
            "response",
            "policy",
            "sources",
            "enrich",
            "detect",
            "sinks",
            "event",
            "stats",
            "telemetry",
            "config",
            "alloc",
            "nats",
        ],
    ),
    (
        "cli",
        &[
            "console",
            "fleet",
            "response",
            "policy",
            "sources",
            "enrich",
            "detect",
            "sinks",
            "pipeline",
            "telemetry",
            "nats",
            "event",
            "config",
        ],
    ),
];

/// Every `crate::NAME` in the files under `path`.
fn named(path: &Path, out: &mut BTreeMap<String, Vec<String>>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            named(&e.unwrap().path(), out);
        }
        return;
    }
    if path.extension().is_none_or(|x| x != "rs") {
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `aurora_crate::`, not ours
        }
        let name: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        out.entry(name)
            .or_default()
            .push(path.display().to_string());
    }
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let src = repo().join("aurora-agent/src");
    let mut bad = Vec::new();
    for (module, allowed) in ALLOWED {
        let dir = src.join(module);
        let path = if dir.is_dir() {
            dir
        } else {
            src.join(format!("{module}.rs"))
        };
        assert!(path.exists(), "{}", path.display());
        let mut uses = BTreeMap::new();
        named(&path, &mut uses);
        for (name, files) in uses {
            if name != *module && !allowed.contains(&name.as_str()) && name != "VERSION" {
                bad.push(format!("{module} imports crate::{name} ({})", files[0]));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
