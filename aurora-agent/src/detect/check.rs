//! `aurora rules check`: every rule with its verdict, for people or (`--json`) machines.
use std::io::Write;

use serde::Serialize;

use super::rules::{RuleEntry, RuleStatus, Summary};

#[derive(Serialize)]
struct JsonRule<'a> {
    path: String,
    id: Option<&'a str>,
    title: Option<&'a str>,
    #[serde(flatten)]
    status: &'a RuleStatus,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    summary: &'a Summary,
    rules: Vec<JsonRule<'a>>,
}

pub fn write_text(
    w: &mut dyn Write,
    entries: &[RuleEntry],
    summary: &Summary,
) -> std::io::Result<()> {
    for e in entries {
        let title = e.meta.as_ref().map(|m| m.title.as_str()).unwrap_or("-");
        let id = e.meta.as_ref().and_then(|m| m.id.as_deref()).unwrap_or("-");
        match &e.status {
            RuleStatus::Active { kind, fed_by, .. } => {
                let fed = if fed_by.is_empty() {
                    String::new()
                } else {
                    format!("  (fed by {})", fed_by.join(" and "))
                };
                writeln!(
                    w,
                    "active    {:<19} {id}  {}  {title}{fed}",
                    kind.category(),
                    e.path.display()
                )?
            }
            RuleStatus::Inactive { reason } => writeln!(
                w,
                "inactive  {:<19} {id}  {}  {title}: {reason}",
                "-",
                e.path.display()
            )?,
            RuleStatus::Invalid { reason } => writeln!(
                w,
                "invalid   {:<19} {id}  {}: {reason}",
                "-",
                e.path.display()
            )?,
        }
    }
    writeln!(w, "summary: {summary}")
}

pub fn write_json(
    w: &mut dyn Write,
    entries: &[RuleEntry],
    summary: &Summary,
) -> std::io::Result<()> {
    let report = JsonReport {
        summary,
        rules: entries
            .iter()
            .map(|e| JsonRule {
                path: e.path.display().to_string(),
                id: e.meta.as_ref().and_then(|m| m.id.as_deref()),
                title: e.meta.as_ref().map(|m| m.title.as_str()),
                status: &e.status,
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *w, &report)?;
    writeln!(w)
}
