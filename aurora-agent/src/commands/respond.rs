//! `aurora policy check`, `aurora isolate`, `aurora unisolate`: the response commands an
//! operator (or the fleet) runs by hand. Each writes what it did as one Response event (JSON)
//! on stdout, the same event shape the agent's sinks carry.
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{IsolateArgs, UnisolateArgs};
use crate::event::{names as f, Event, EventKind};
use crate::policy::PolicySet;
use crate::response::isolate;

/// Returns whether every file is valid; prints a line per file (and per error).
pub fn policy_check(files: &[PathBuf]) -> Result<bool> {
    let mut ok = true;
    for file in files {
        match PolicySet::load(std::slice::from_ref(file)) {
            Ok(set) => {
                let counts: Vec<String> = set
                    .counts()
                    .into_iter()
                    .map(|(list, mode, n)| format!("{list} {mode}: {n}"))
                    .collect();
                println!(
                    "{}: ok ({} entries{}{}; exempt cgroups {}, images {})",
                    file.display(),
                    set.entries.len(),
                    if counts.is_empty() { "" } else { "; " },
                    counts.join(", "),
                    set.exempt_cgroups.len(),
                    set.exempt_images.len()
                );
            }
            Err(e) => {
                ok = false;
                println!("{e}");
            }
        }
    }
    Ok(ok)
}

fn response_event(action: &str, allowed: &[isolate::Allow]) -> Event {
    let mut ev = Event::new(EventKind::Response);
    ev.push_str(
        f::UTC_TIME,
        chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string(),
    );
    ev.push_str(f::ACTION, action);
    ev.push_str(f::OPERATION, "isolation");
    let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
    ev.push_str(f::ALLOWED, list.join(","));
    ev
}

pub fn isolate(args: &IsolateArgs) -> Result<()> {
    let file = super::settings::load_file(&args.global)?;
    let mut allows = vec![];
    for a in &args.allow {
        allows.extend(isolate::parse_allow(a)?);
    }
    // The agent's own collectors stay reachable: its syslog targets and NATS servers.
    let outputs = crate::cli::OutputArgs::default().layered(&file)?;
    allows.extend(collector_allows(&outputs));
    allows.dedup();
    isolate::isolate(&allows)?;
    println!(
        "{}",
        serde_json::to_string(&response_event("isolated", &allows))?
    );
    Ok(())
}

/// What isolation keeps reachable of an agent's outputs: its NATS servers and syslog targets.
pub fn collector_allows(outputs: &crate::cli::OutputArgs) -> Vec<isolate::Allow> {
    let mut collectors: Vec<String> = outputs.nats.connect.nats_url.clone();
    collectors.extend(outputs.udp.udp_target.clone());
    collectors.extend(outputs.tcp.tcp_target.clone());
    isolate::collectors(&collectors)
}

pub fn unisolate(_args: &UnisolateArgs) -> Result<()> {
    let was = isolate::unisolate()?;
    let action = if was { "unisolated" } else { "not_isolated" };
    println!("{}", serde_json::to_string(&response_event(action, &[]))?);
    Ok(())
}
