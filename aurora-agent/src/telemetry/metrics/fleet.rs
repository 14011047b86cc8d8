//! The fleet control plane's families: heartbeats, commands, bundles, convergences.
use std::borrow::Cow;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::Counter;

use super::{family, label, v, Labels};
use crate::stats::FleetStats;

pub(super) fn encode(enc: &mut DescriptorEncoder, f: &FleetStats) -> Result<(), std::fmt::Error> {
    family(
        enc,
        "aurora_fleet_heartbeats",
        "Heartbeats put in the fleet's bucket, by result (a failed one is retried next interval).",
        Counter,
        [
            (label("result", "ok"), v(&f.heartbeats_ok)),
            (label("result", "failed"), v(&f.heartbeats_failed)),
        ],
    )?;
    family(
        enc,
        "aurora_fleet_commands",
        "Fleet commands answered, by result.",
        Counter,
        [
            (label("result", "ok"), v(&f.commands_ok)),
            (label("result", "failed"), v(&f.commands_failed)),
        ],
    )?;
    let bundles: Vec<(Labels, u64)> = f
        .bundles
        .lock()
        .map(|m| {
            m.iter()
                .map(|((kind, state), n)| {
                    (
                        vec![
                            (Cow::Borrowed("kind"), Cow::Borrowed(*kind)),
                            (Cow::Borrowed("state"), Cow::Borrowed(*state)),
                        ],
                        *n,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    family(
        enc,
        "aurora_fleet_bundles",
        "Fleet bundles looked at, by kind (rules, policy) and state (accepted, refused).",
        Counter,
        bundles,
    )?;
    family(
        enc,
        "aurora_fleet_convergences",
        "Times the kernel was brought to the operator's isolation intent.",
        Counter,
        [(vec![], v(&f.convergences))],
    )
}
