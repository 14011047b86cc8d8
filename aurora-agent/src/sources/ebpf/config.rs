//! The eBPF sensors' flags and config-file keys (one struct for both, like the sinks'),
//! resolved into an `EbpfConfig` with their defaults and validation.
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{ringsize, EbpfConfig, FileSensorMode};

/// The exec ring's size when `--ringbuf-size` is not given.
pub const DEFAULT_RING: &str = "512K";

#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct EbpfArgs {
    /// Size of the exec ring buffer (the exit, file and connect rings get a quarter): bytes,
    /// K/M suffix or pages (p); a power of two ≥ one page. Ring memory is resident (twice the
    /// size, mapped). Example: --ringbuf-size 4M
    #[arg(long, value_name = "SIZE")]
    pub ringbuf_size: Option<String>,
    /// Report file creation only under this directory (repeatable). [default: everywhere]
    /// Example: --watch-dir /etc --watch-dir /tmp
    #[arg(long = "watch-dir", value_name = "DIR")]
    pub watch_dir: Vec<PathBuf>,
    /// How file creation is observed: vfs (a hook in the VFS: sees io_uring, no cost to other
    /// syscalls), tracepoint (openat-family syscall tracepoints), or auto (vfs, else
    /// tracepoint, said at start), or off (no file events).
    #[arg(long, value_name = "MODE")]
    pub file_sensor: Option<String>,
}

impl EbpfArgs {
    /// The sensors' config; `verbose` (`-v` count) turns on kernel-side logging.
    pub fn build(&self, verbose: u8) -> Result<EbpfConfig> {
        let ring_bytes = ringsize::parse(self.ringbuf_size.as_deref().unwrap_or(DEFAULT_RING))
            .with_context(|| "--ringbuf-size")?;
        for d in &self.watch_dir {
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
        let file_sensor = match self.file_sensor.as_deref() {
            None => FileSensorMode::default(),
            Some(m) => FileSensorMode::parse(m).with_context(|| {
                let names: Vec<&str> = FileSensorMode::ALL.iter().map(|m| m.name()).collect();
                format!("--file-sensor {m}: expected one of {}", names.join(", "))
            })?,
        };
        Ok(EbpfConfig {
            ring_bytes,
            watch_dirs: self.watch_dir.clone(),
            kernel_log_level: match verbose {
                0 => 0,
                1 => 4,
                _ => 5,
            },
            file_sensor,
        })
    }
}
