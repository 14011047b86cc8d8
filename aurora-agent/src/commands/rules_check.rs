//! `aurora rules check DIR...`: exit 0 when every rule parses (inactive is fine), 1 otherwise.
use anyhow::Result;

use crate::cli::RulesCheckArgs;
use crate::detect::rules::{self, AlertLevel, RuleStatus};
use crate::detect::{check, mapping, DetectConfig};

/// Returns whether every rule was valid.
pub fn run(args: RulesCheckArgs) -> Result<bool> {
    let cfg = DetectConfig {
        rule_dirs: args.dirs.clone(),
        logsource_map: args.logsource_map.clone(),
        ..Default::default()
    };
    let map = mapping(&cfg)?;
    let opts = rules::LoadOptions {
        min_level: AlertLevel::Informational,
        collected: None,
        threads: cfg.compile_threads,
        defer_compile: false,
        audit_from_sensors: true,
    };
    let entries = rules::load(&args.dirs, &map, &opts)?;
    let summary = rules::summarize(&entries);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        check::write_json(&mut out, &entries, &summary)?;
    } else {
        check::write_text(&mut out, &entries, &summary)?;
    }
    Ok(!entries
        .iter()
        .any(|e| matches!(e.status, RuleStatus::Invalid { .. })))
}
