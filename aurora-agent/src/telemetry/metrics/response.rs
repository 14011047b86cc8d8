//! The response families: policy decisions made in the kernel, the policies in force and how
//! they are enforced, policy reloads, exec holds and rule-driven kills.
use std::borrow::Cow;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};

use super::{family, label, v, Labels};
use crate::stats::ResponseStats;

/// Two labels.
fn pair(k1: &'static str, v1: &str, k2: &'static str, v2: &str) -> Labels {
    vec![
        (Cow::Borrowed(k1), Cow::Owned(v1.to_owned())),
        (Cow::Borrowed(k2), Cow::Owned(v2.to_owned())),
    ]
}

pub(super) fn encode(
    enc: &mut DescriptorEncoder,
    r: &ResponseStats,
) -> Result<(), std::fmt::Error> {
    let blocks: Vec<(Labels, u64)> = r
        .blocks
        .lock()
        .map(|m| {
            m.iter()
                .map(|((action, mode), n)| (pair("action", action, "mode", mode), *n))
                .collect()
        })
        .unwrap_or_default();
    family(
        enc,
        "aurora_blocks",
        "Policy decisions made in the kernel, by action (blocked, killed, would_block) and mode.",
        Counter,
        blocks,
    )?;
    let entries: Vec<(Labels, u64)> = r
        .entries
        .lock()
        .map(|e| {
            e.iter()
                .map(|(list, mode, n)| (pair("list", list, "mode", mode), *n))
                .collect()
        })
        .unwrap_or_default();
    family(
        enc,
        "aurora_policy_entries",
        "Deny entries of the policies in force, by list and mode.",
        Gauge,
        entries,
    )?;
    let enforcement: Vec<(Labels, u64)> = r
        .enforcement
        .lock()
        .map(|e| {
            e.iter()
                .map(|(op, how)| (pair("operation", op, "mechanism", how), 1))
                .collect()
        })
        .unwrap_or_default();
    family(
        enc,
        "aurora_enforcement_info",
        "How each denied operation is enforced on this kernel.",
        Gauge,
        enforcement,
    )?;
    family(
        enc,
        "aurora_policy_reloads",
        "Policy reloads (SIGHUP) by result; a failed one keeps the running policy.",
        Counter,
        [
            (label("result", "ok"), v(&r.reloads_ok)),
            (label("result", "failed"), v(&r.reloads_failed)),
        ],
    )?;
    family(
        enc,
        "aurora_exec_holds",
        "Executables held at exec for sha256 checks, by outcome (allowed, denied, failed: hashed \
         or read failed and resumed, gone: exited before it was hashed).",
        Counter,
        [
            (label("outcome", "allowed"), v(&r.holds_allowed)),
            (label("outcome", "denied"), v(&r.holds_denied)),
            (label("outcome", "failed"), v(&r.holds_failed)),
            (label("outcome", "gone"), v(&r.holds_gone)),
        ],
    )?;
    family(
        enc,
        "aurora_response",
        "Rule-driven responses by outcome (killed, would_kill, rate_limited, refused, gone).",
        Counter,
        r.outcomes()
            .into_iter()
            .map(|(o, n)| (label("outcome", o), n)),
    )
}
