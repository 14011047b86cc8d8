//! The prefilter may only save time: for every event, evaluating the prefilter's candidates
//! (and taking its "matches without evaluation" verdicts) must give exactly the hits of
//! evaluating every rule. Checked with every rule we have — the project's, SigmaHQ's and the
//! 1,183 scale rules (Windows rules relabelled, many of them `not filter`-only) — over every
//! fixture event and variants built to hit the prefilter's edge cases: Windows paths, empty
//! and missing fields, non-ASCII and mixed-case values.
mod common;

use std::sync::Arc;

use aurora_agent::detect::{DetectConfig, Detector};
use aurora_agent::event::{Event, Value};
use aurora_agent::sources::replay::parse::parse_line;
use aurora_agent::stats::DetectStats;
use common::*;

fn variants(ev: &Event) -> Vec<Event> {
    let mut out = vec![ev.clone()];
    let text = |name: &str| ev.get_str(name).map(str::to_owned);
    if let Some(image) = text("Image") {
        let base = image.rsplit('/').next().unwrap_or("x").to_owned();
        for v in [
            format!("C:\\Windows\\System32\\{base}.exe"),
            format!("C:\\Users\\Public\\{}", base.to_uppercase()),
            String::new(),
            "-".to_owned(),
            image.to_uppercase(),
            format!("{image}.exe"),
        ] {
            let mut e = ev.clone();
            e.set("Image", Value::Str(v.into()));
            out.push(e);
        }
        let mut e = ev.clone();
        e.fields.retain(|(k, _)| k != "Image");
        out.push(e);
    }
    if ev.get("DestinationPort").is_some() {
        // SigmaHQ's callback-port rule compares numbers: however the port is written.
        for v in [
            Value::Int(4444),
            Value::Str("4444.0".into()),
            Value::Str("+888".into()),
            Value::Str("4444.5".into()),
            Value::Int(22),
        ] {
            let mut e = ev.clone();
            e.set("DestinationPort", v);
            out.push(e);
        }
    }
    if let Some(name) = text("TargetFilename") {
        // Around SigmaHQ's long-filename regex (`[^/]{100,}$`, a length atom) and non-ASCII.
        for v in [
            format!("{name}{}", "x".repeat(100)),
            format!("/tmp/{}", "K".repeat(99)),
            format!("/tmp/{}", "K".repeat(100)),
            format!("/tmp/{}", "\u{212A}".repeat(40)),
        ] {
            let mut e = ev.clone();
            e.set("TargetFilename", Value::Str(v.into()));
            out.push(e);
        }
    }
    if let Some(cmd) = text("CommandLine") {
        for v in [
            format!("Ä {cmd} ſ K"),
            cmd.to_uppercase(),
            format!("cmd.exe /c {cmd} | find \"x\""),
            String::new(),
        ] {
            let mut e = ev.clone();
            e.set("CommandLine", Value::Str(v.into()));
            out.push(e);
        }
    }
    out
}

#[test]
fn prefiltered_evaluation_equals_evaluating_every_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let map = tmp.path().join("logsources.yml");
    // As in the benchmark: the scale rules are routed by category alone.
    std::fs::write(
        &map,
        std::fs::read_to_string(repo().join("rules/logsources.yml")).unwrap()
            + "  - { category: process_creation, kind: process_creation }\n",
    )
    .unwrap();
    let cfg = DetectConfig {
        rule_dirs: vec![repo().join("rules"), sigmahq(), sigmahq_scale()],
        logsource_map: Some(map),
        ..Default::default()
    };
    let mut d = Detector::load(&cfg, Arc::new(DetectStats::default())).expect("rules load");
    assert!(d.rule_count() > 1300, "all three rule sets loaded");

    let mut events = Vec::new();
    for entry in std::fs::read_dir(repo().join("tests/fixtures")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Ok(Some(ev)) = parse_line(line) {
                    events.extend(variants(&ev));
                }
            }
        }
    }
    assert!(events.len() > 5000, "{} events", events.len());

    let (mut hits, mut decided, mut compared) = (0usize, 0usize, 0usize);
    let mut fast = Vec::new();
    for ev in &events {
        for set in d.rule_sets(ev.kind) {
            set.evaluate(ev, &mut fast);
            let reference = set.evaluate_all(ev);
            assert_eq!(fast, reference, "prefilter changed the result for {ev:?}");
            hits += reference.len();
            decided += fast.iter().filter(|h| h.selections.is_empty()).count();
            compared += 1;
        }
    }
    // Not vacuous: rules matched, and some matches were decided without evaluation.
    eprintln!("{compared} events compared, {hits} hits, {decided} decided without evaluation");
    assert!(compared > 5000 && hits > 1000 && decided > 100);
}
