//! The NATS sink's flags and config-file keys (`--nats-*`, `--spool-*`), resolved into a
//! `NatsConfig` with its defaults. `aurora consume` reads the same flags to find its stream.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{NatsConfig, NatsSink};
use crate::nats::NatsConnectArgs;
use crate::sinks::registry::{SinkConfig, SinkContext};
use crate::sinks::Sink;

#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct NatsArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub connect: NatsConnectArgs,
    /// Also publish every enriched event (aurora.events.HOST.KIND) for central detection.
    #[arg(long)]
    pub nats_events: bool,
    /// JetStream stream (created with subjects aurora.> when missing).
    #[arg(long, value_name = "NAME")]
    pub nats_stream: Option<String>,
    /// Do not create the stream; wait for it to exist.
    #[arg(long)]
    pub nats_no_create: bool,
    /// Limit of a created stream in bytes (K/M/G suffix).
    #[arg(long, value_name = "SIZE")]
    pub nats_stream_max_bytes: Option<String>,
    /// Age limit of a created stream's messages, in hours.
    #[arg(long, value_name = "HOURS")]
    pub nats_stream_max_age: Option<u64>,
    /// Directory of the NATS spool (shared by the agent and replay: a later run delivers what
    /// an earlier one spooled).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Disk budget of the spool (K/M/G suffix); over it the oldest events are dropped first,
    /// then the oldest alerts, counted.
    #[arg(long, value_name = "SIZE")]
    pub spool_max_bytes: Option<String>,
}

/// A size as `byte_size` reads it, in the largest unit that divides it (`1G`, `256M`).
pub fn size_text(bytes: u64) -> String {
    [(30, 'G'), (20, 'M'), (10, 'K')]
        .into_iter()
        .find(|(shift, _)| bytes != 0 && bytes.is_multiple_of(1u64 << shift))
        .map(|(shift, unit)| format!("{}{unit}", bytes >> shift))
        .unwrap_or_else(|| bytes.to_string())
}

/// `512K`, `256M`, `1G` or bytes.
fn byte_size(flag: &str, s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .with_context(|| format!("{flag} {s}: expected a positive size such as 256M"))
}

impl NatsArgs {
    /// The resolved settings, with defaults; None without a URL.
    pub fn resolve(&self, drain: Duration) -> Result<Option<NatsConfig>> {
        let Some(connect) = self.connect.resolve()? else {
            if self.nats_events || self.nats_stream.is_some() {
                bail!("--nats-events/--nats-stream given without --nats-url");
            }
            return Ok(None);
        };
        let stream_max_bytes = match &self.nats_stream_max_bytes {
            Some(s) => i64::try_from(byte_size("--nats-stream-max-bytes", s)?)?,
            None => NatsConfig::DEFAULT_STREAM_MAX_BYTES,
        };
        let spool_max_bytes = match &self.spool_max_bytes {
            Some(s) => byte_size("--spool-max-bytes", s)?,
            None => NatsConfig::DEFAULT_SPOOL_MAX_BYTES,
        };
        let stream_max_age = match self.nats_stream_max_age {
            Some(0) => bail!("--nats-stream-max-age 0: must be at least 1 hour"),
            Some(h) => Duration::from_secs(h * 3600),
            None => NatsConfig::DEFAULT_STREAM_MAX_AGE,
        };
        Ok(Some(NatsConfig {
            connect,
            events: self.nats_events,
            stream: self
                .nats_stream
                .clone()
                .unwrap_or_else(|| NatsConfig::DEFAULT_STREAM.into()),
            create_stream: !self.nats_no_create,
            stream_max_bytes,
            stream_max_age,
            spool_dir: self
                .spool_dir
                .clone()
                .unwrap_or_else(|| NatsConfig::DEFAULT_SPOOL_DIR.into()),
            spool_max_bytes,
            drain,
        }))
    }
}

impl SinkConfig for NatsArgs {
    fn build(&self, cx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        Ok(match self.resolve(cx.nats_drain)? {
            Some(cfg) => Some(Box::new(NatsSink::start(cfg, &cx.rt)?)),
            None => None,
        })
    }
}
