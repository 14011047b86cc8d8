//! `aurora rules check DIR...`: exit 0 when every rule parses (inactive is fine), 1 otherwise.
use anyhow::Result;

use crate::cli::RulesCheckArgs;
use crate::detect::rules::{self, AlertLevel, RuleStatus};
use crate::detect::{check, mapping, DetectConfig};

/// Returns whether every rule was valid.
pub fn run(args: RulesCheckArgs) -> Result<bool> {
    let (entries, summary) = check_dirs(&args.dirs, args.logsource_map.clone())?;
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

/// Every rule of `dirs` with its verdict, as `rules check` and `fleet push-rules` report them.
pub fn check_dirs(
    dirs: &[std::path::PathBuf],
    logsource_map: Option<std::path::PathBuf>,
) -> Result<(Vec<rules::RuleEntry>, rules::Summary)> {
    let cfg = DetectConfig {
        rule_dirs: dirs.to_vec(),
        logsource_map,
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
    let entries = rules::load(dirs, &map, &opts)?;
    let summary = rules::summarize(&entries);
    Ok((entries, summary))
}
