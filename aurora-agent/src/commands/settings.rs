//! Wiring only: the `-c` file laid under each component's own flags, and each component's
//! `build()` (which owns its defaults and validation) called in one place for the live
//! commands. Validation fails fast with a message that says what is wrong and what would be
//! right.
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{self, DetectArgs, GlobalArgs, SensorArgs};
use crate::config::ConfigFile;
use crate::detect::DetectConfig;
use crate::enrich::EnrichConfig;
use crate::event::EventKind;
use crate::sources::ebpf::{EbpfConfig, FileSensorMode};
use crate::sources::logs::LogSourcesConfig;

pub struct Settings {
    pub file: ConfigFile,
    pub ebpf: EbpfConfig,
    pub enrich: EnrichConfig,
    pub queue_size: usize,
    pub logs: LogSourcesConfig,
    pub ready_file: Option<PathBuf>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub cpu_policy: cli::CpuPolicy,
}

/// The `-c` file, or an empty one.
pub fn load_file(global: &GlobalArgs) -> Result<ConfigFile> {
    match &global.config {
        Some(p) => Ok(ConfigFile::load(p, &cli::config_keys())?),
        None => Ok(ConfigFile::default()),
    }
}

impl Settings {
    /// The event kinds this live run collects: the eBPF sensors' and the followed logs'.
    pub fn collected_kinds(&self) -> Vec<EventKind> {
        let mut k = vec![
            EventKind::ProcessCreation,
            EventKind::NetworkConnection,
            EventKind::ProcessTermination,
            // The agent's own decisions (policy blocks) come from the exec ring.
            EventKind::Response,
        ];
        if self.ebpf.file_sensor != FileSensorMode::Off {
            k.push(EventKind::FileEvent);
        }
        if self.logs.audit_log.is_some() {
            k.push(EventKind::Audit);
        }
        if !self.logs.system_logs.is_empty() {
            k.push(EventKind::SystemLog);
        }
        k
    }

    pub fn for_sensors(global: &GlobalArgs, s: &SensorArgs) -> Result<Settings> {
        let file = load_file(global)?;
        let verbose = file.layer(global)?.verbose;
        let ebpf = file.layer(&s.ebpf)?.build(verbose)?;
        let queue_size = file.layer(&s.queue)?.build()?;
        let enrich = file.layer(&s.enrich)?.build(ebpf.watch_dirs.clone())?;
        let logs = file.layer(&s.logs)?.build()?;
        let telemetry = file.layer(&s.telemetry)?;
        let cpu_policy = file.layer(&s.scheduling)?.cpu_policy.unwrap_or_default();
        Ok(Settings {
            cpu_policy,
            logs,
            ebpf,
            enrich,
            queue_size,
            ready_file: telemetry.ready_file,
            metrics_listen: telemetry.metrics_listen,
            file,
        })
    }
}

/// Detection settings from flags over the config file.
pub fn detect_config(
    d: &DetectArgs,
    file: &ConfigFile,
    event_time_throttle: bool,
) -> Result<DetectConfig> {
    file.layer(d)?.build(event_time_throttle)
}
