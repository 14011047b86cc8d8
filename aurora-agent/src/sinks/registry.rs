//! Every sink, registered once. Each sink's module owns its config struct (a clap `Args` and a
//! serde struct whose names are the long flags and config-file keys) and builds itself from it
//! (`SinkConfig::build`); `sinks!` (invoked in `sinks/mod.rs`) declares the modules, flattens
//! their configs into the `OutputArgs` every command takes, layers the config file under
//! them, and builds the set. A new sink is one new module and one line in `sinks!`.
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::syslog::format::{self as syslog_format, Formatter, Payload, Rfc};
use super::{Sink, SinkSet};

/// Settings shared by the sinks that speak syslog or queue for a collector.
#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct SinkCommon {
    /// Syslog protocol: 5424 or 3164.
    #[arg(long, value_name = "RFC")]
    pub syslog_rfc: Option<u16>,
    /// Syslog facility: a name (user, daemon, auth, local0..local7) or number 0-23.
    #[arg(long, value_name = "FACILITY")]
    pub syslog_facility: Option<String>,
    /// Alerts held per network sink while its collector is unreachable; overflow is counted.
    #[arg(long, value_name = "N")]
    pub sink_queue: Option<usize>,
}

impl SinkCommon {
    pub const DEFAULT_RFC: u16 = 5424;
    pub const DEFAULT_FACILITY: &'static str = "user";
    pub const DEFAULT_QUEUE: usize = 10_000;

    pub(super) fn context(
        &self,
        rt: &tokio::runtime::Handle,
        nats_drain: Duration,
    ) -> Result<SinkContext> {
        let rfc = match self.syslog_rfc.unwrap_or(Self::DEFAULT_RFC) {
            5424 => Rfc::R5424,
            3164 => Rfc::R3164,
            n => bail!("--syslog-rfc {n}: expected 5424 or 3164"),
        };
        let name = self
            .syslog_facility
            .as_deref()
            .unwrap_or(Self::DEFAULT_FACILITY);
        let facility = syslog_format::facility(name).with_context(|| {
            format!("--syslog-facility {name}: expected a name (user, daemon, auth, local0..local7) or 0-23")
        })?;
        let queue = self.sink_queue.unwrap_or(Self::DEFAULT_QUEUE);
        if queue == 0 {
            bail!("--sink-queue 0: must be at least 1");
        }
        Ok(SinkContext {
            rt: rt.clone(),
            rfc,
            facility,
            queue,
            nats_drain,
        })
    }
}

/// What a sink's `build` gets besides its own config.
pub struct SinkContext {
    /// Where delivery tasks run.
    pub rt: tokio::runtime::Handle,
    rfc: Rfc,
    facility: u8,
    /// Messages a network sink holds for an unreachable collector.
    pub queue: usize,
    /// How long a stopping process keeps delivering to NATS.
    pub nats_drain: Duration,
}

impl SinkContext {
    pub fn formatter(&self, payload: Payload) -> Formatter {
        Formatter {
            rfc: self.rfc,
            payload,
            facility: self.facility,
            pid: std::process::id(),
        }
    }
}

/// `json` or `syslog`, for the flag named `flag`.
pub fn payload(flag: &str, v: Option<&str>, default: Payload) -> Result<Payload> {
    let Some(v) = v else {
        return Ok(default);
    };
    match [Payload::Json, Payload::Text]
        .into_iter()
        .find(|p| payload_name(*p) == v)
    {
        Some(p) => Ok(p),
        None => bail!("{flag} {v}: expected json or syslog"),
    }
}

/// A payload's name on the command line (what `payload` parses).
pub fn payload_name(p: Payload) -> &'static str {
    match p {
        Payload::Json => "json",
        Payload::Text => "syslog",
    }
}

/// A sink's own settings.
pub trait SinkConfig {
    /// The sink these settings ask for; None when they ask for none.
    fn build(&self, cx: &SinkContext) -> Result<Option<Box<dyn Sink>>>;
}

/// Declares each sink module and flattens its config into `OutputArgs`, in registration order.
macro_rules! sinks {
    ($(mod $module:ident { $($field:ident: $config:ident),+ })+) => {
        $(pub mod $module;)+

        /// Where alerts go: every registered sink's flags.
        #[derive(clap::Args, Debug, Clone, Default)]
        pub struct OutputArgs {
            #[command(flatten)]
            pub common: $crate::sinks::registry::SinkCommon,
            $($(
                #[command(flatten)]
                pub $field: $module::$config,
            )+)+
        }

        impl OutputArgs {
            /// These flags over the config file.
            pub fn layered(
                &self,
                file: &$crate::config::ConfigFile,
            ) -> anyhow::Result<OutputArgs> {
                Ok(OutputArgs {
                    common: file.layer(&self.common)?,
                    $($($field: file.layer(&self.$field)?,)+)+
                })
            }

            /// Every sink asked for, delivery tasks on `rt`. At least one is required.
            pub fn build(
                &self,
                rt: &tokio::runtime::Handle,
                nats_drain: std::time::Duration,
            ) -> anyhow::Result<SinkSet> {
                use $crate::sinks::registry::SinkConfig as _;
                let cx = self.common.context(rt, nats_drain)?;
                let mut set = SinkSet::default();
                $($(
                    if let Some(s) = self.$field.build(&cx)? {
                        set.push(s);
                    }
                )+)+
                $crate::sinks::registry::require_output(set)
            }
        }
    };
}

/// A run whose alerts go nowhere is a configuration mistake.
pub fn require_output(set: SinkSet) -> Result<SinkSet> {
    if set.is_empty() {
        bail!("no output: --no-stdout without --logfile, --udp-target, --tcp-target or --nats-url would discard every alert");
    }
    Ok(set)
}
