//! Command line + config file → validated settings for each stage. Validation fails fast with
//! a message that says what is wrong and what would be right.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::cli::{GlobalArgs, SensorArgs};
use crate::config::{self, ConfigFile};
use crate::enrich::EnrichConfig;
use crate::sources::ebpf::{ringsize, EbpfConfig};

pub const DEFAULT_RING: &str = "4M";
pub const DEFAULT_QUEUE: usize = 65536;
pub const DEFAULT_CORRELATION_CACHE: usize = 16384;

pub struct Settings {
    pub file: ConfigFile,
    pub ebpf: EbpfConfig,
    pub enrich: EnrichConfig,
    pub queue_size: usize,
}

pub fn load_file(global: &GlobalArgs) -> Result<ConfigFile> {
    match &global.config {
        Some(p) => Ok(config::load(p)?),
        None => Ok(ConfigFile::default()),
    }
}

impl Settings {
    pub fn for_sensors(global: &GlobalArgs, s: &SensorArgs) -> Result<Settings> {
        let file = load_file(global)?;
        let ring = s.ringbuf_size.clone().or_else(|| file.ringbuf_size.clone());
        let ring_bytes = ringsize::parse(ring.as_deref().unwrap_or(DEFAULT_RING))
            .with_context(|| "--ringbuf-size")?;
        let watch_dirs: Vec<PathBuf> = if s.watch_dir.is_empty() {
            file.watch_dir.clone().unwrap_or_default()
        } else {
            s.watch_dir.clone()
        };
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
        let queue_size = s.queue_size.or(file.queue_size).unwrap_or(DEFAULT_QUEUE);
        if queue_size == 0 {
            bail!("--queue-size 0: must be at least 1");
        }
        let cache = s
            .correlation_cache
            .or(file.correlation_cache)
            .unwrap_or(DEFAULT_CORRELATION_CACHE);
        if cache < 16 {
            bail!("--correlation-cache {cache}: must be at least 16");
        }
        let verbose = global.verbose.max(file.verbose.unwrap_or(0));
        Ok(Settings {
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
            },
            enrich: EnrichConfig {
                correlation_cache: cache,
                exit_grace: Duration::from_secs(5),
                watch_dirs,
            },
            queue_size,
            file,
        })
    }
}
