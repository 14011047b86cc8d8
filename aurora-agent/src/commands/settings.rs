//! Command line + config file → validated settings for each stage. Validation fails fast with
//! a message that says what is wrong and what would be right.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::cli::{self, DetectArgs, GlobalArgs, SensorArgs};
use crate::config::ConfigFile;
use crate::detect::rules::AlertLevel;
use crate::detect::DetectConfig;
use crate::enrich::EnrichConfig;
use crate::event::EventKind;
use crate::sources::ebpf::{ringsize, EbpfConfig, FileSensorMode};
use crate::sources::logs::{LogSourcesConfig, DEFAULT_STATE_DIR};

pub const DEFAULT_RING: &str = "512K";
pub const DEFAULT_QUEUE: usize = 65536;

pub struct Settings {
    pub file: ConfigFile,
    pub ebpf: EbpfConfig,
    pub enrich: EnrichConfig,
    pub queue_size: usize,
    pub logs: LogSourcesConfig,
    pub ready_file: Option<PathBuf>,
    pub metrics_listen: Option<std::net::SocketAddr>,
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
        let s: SensorArgs = file.layer(s)?;
        let verbose = file.layer(global)?.verbose;
        let ring_bytes = ringsize::parse(s.ringbuf_size.as_deref().unwrap_or(DEFAULT_RING))
            .with_context(|| "--ringbuf-size")?;
        let watch_dirs = s.watch_dir.clone();
        for d in &watch_dirs {
            if !d.is_absolute() {
                bail!("--watch-dir {}: must be an absolute path", d.display());
            }
            if d.as_os_str().len() > aurora_common::PREFIX_LEN {
                bail!(
                    "--watch-dir {}: longer than {} bytes",
                    d.display(),
                    aurora_common::PREFIX_LEN
                );
            }
        }
        let queue_size = s.queue_size.unwrap_or(DEFAULT_QUEUE);
        if queue_size == 0 {
            bail!("--queue-size 0: must be at least 1");
        }
        let enrich_defaults = EnrichConfig::default();
        let cache = s
            .correlation_cache
            .unwrap_or(enrich_defaults.correlation_cache);
        if cache < 16 {
            bail!("--correlation-cache {cache}: must be at least 16");
        }
        let file_sensor = match s.file_sensor.as_deref() {
            None => FileSensorMode::default(),
            Some(m) => FileSensorMode::parse(m).with_context(|| {
                let names: Vec<&str> = FileSensorMode::ALL.iter().map(|m| m.name()).collect();
                format!("--file-sensor {m}: expected one of {}", names.join(", "))
            })?,
        };
        let logs = LogSourcesConfig::resolve(
            s.audit_log.as_deref(),
            &s.system_log,
            Some(
                s.state_dir
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            ),
        )?;
        Ok(Settings {
            logs,
            ebpf: EbpfConfig {
                ring_bytes,
                watch_dirs: watch_dirs.clone(),
                kernel_log_level: if verbose >= 2 {
                    5
                } else if verbose == 1 {
                    4
                } else {
                    0
                },
                file_sensor,
            },
            enrich: EnrichConfig {
                correlation_cache: cache,
                watch_dirs,
                ..enrich_defaults
            },
            queue_size,
            ready_file: s.ready_file.clone(),
            metrics_listen: s.metrics_listen,
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
    let d: DetectArgs = file.layer(d)?;
    let rule_dirs = d.rules.clone();
    if rule_dirs.is_empty() {
        bail!("no rules: give --rules DIR (repeatable), e.g. --rules rules");
    }
    for dir in &rule_dirs {
        // Fail fast with the directory named (the loader re-checks each file).
        crate::detect::rules::rule_files(dir)?;
    }
    let defaults = DetectConfig::default();
    let min_level = match d.min_level.clone() {
        None => defaults.min_level,
        Some(s) => AlertLevel::parse(&s).with_context(|| {
            format!("--min-level {s}: expected informational, low, medium, high or critical")
        })?,
    };
    let throttle_rate = d.throttle_rate.unwrap_or(defaults.throttle_rate);
    let throttle_burst = d.throttle_burst.unwrap_or(defaults.throttle_burst);
    // Validate now so a bad value is reported before sensors load.
    crate::detect::throttle::Throttle::validate(throttle_rate, throttle_burst)?;
    Ok(DetectConfig {
        rule_dirs,
        logsource_map: d.logsource_map.clone(),
        min_level,
        throttle_rate,
        throttle_burst,
        process_exclude: d.process_exclude.clone(),
        event_time_throttle,
        collected: None,
        compile_threads: defaults.compile_threads,
        defer_compile: defaults.defer_compile,
    })
}

/// How long a stopping agent keeps delivering to NATS (its shutdown budget is 1.5 s).
pub const NATS_DRAIN_LIVE: Duration = Duration::from_secs(1);
/// How long `replay` waits for NATS acknowledgements before leaving the rest in the spool.
pub const NATS_DRAIN_REPLAY: Duration = Duration::from_secs(4);
