//! Aurora agent library: the stages of the pipeline, one module per concern.
//!
//! sources (ebpf, replay) → enrich (process table, /proc, users, cgroups) → detect (rules,
//! routing, throttle) → sinks (stdout, file, syslog). `main.rs` parses the command line and
//! wires them (through `commands`).
mod alloc;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod detect;
pub mod enrich;
pub mod event;
pub mod fleet;
pub mod nats;
pub mod pipeline;
pub mod policy;
pub mod response;
pub mod sinks;
pub mod sources;
pub mod stats;
pub mod telemetry;

/// `0.1.0 (commit)`: what `--version`, the ready file and `aurora_build_info` report.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("AURORA_GIT_COMMIT"),
    ")"
);
