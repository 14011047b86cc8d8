//! Container names' families: runtimes connected, lookups, events with and without names.
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};

use super::{family, label, v};
use crate::stats::EnrichStats;

pub(super) fn encode(enc: &mut DescriptorEncoder, e: &EnrichStats) -> Result<(), std::fmt::Error> {
    family(
        enc,
        "aurora_container_runtimes_up",
        "Container runtime APIs connected now.",
        Gauge,
        [(vec![], v(&e.container_runtimes_up))],
    )?;
    family(
        enc,
        "aurora_container_cache_entries",
        "Containers in the names directory (known, pending, unknown, recently gone).",
        Gauge,
        [(vec![], v(&e.container_cache_entries))],
    )?;
    family(
        enc,
        "aurora_container_lookups",
        "Container inspections asked of a runtime, by outcome.",
        Counter,
        [
            (label("result", "resolved"), v(&e.container_resolved)),
            (label("result", "error"), v(&e.container_api_errors)),
            (
                label("result", "not_found"),
                v(&e.container_lookups)
                    .saturating_sub(v(&e.container_resolved) + v(&e.container_api_errors)),
            ),
        ],
    )?;
    family(
        enc,
        "aurora_container_unknown",
        "Container ids no connected runtime knew.",
        Counter,
        [(vec![], v(&e.container_unknown))],
    )?;
    family(
        enc,
        "aurora_container_events",
        "Events of container processes, by whether they carried the container's names.",
        Counter,
        [
            (label("named", "true"), v(&e.container_events_named)),
            (label("named", "false"), v(&e.container_events_unnamed)),
        ],
    )?;
    family(
        enc,
        "aurora_container_requests_dropped",
        "Name lookups not queued because the resolver was behind (asked again later).",
        Counter,
        [(vec![], v(&e.container_requests_dropped))],
    )?;
    family(
        enc,
        "aurora_container_evictions",
        "Containers dropped from the full names directory.",
        Counter,
        [(vec![], v(&e.container_evictions))],
    )
}
