//! `-c FILE`: YAML with the same keys as the long flags. Unknown keys are errors naming the key,
//! the file and the line; command-line flags override what the file says.
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    // detection
    pub rules: Option<Vec<PathBuf>>,
    pub logsource_map: Option<PathBuf>,
    pub throttle_rate: Option<f64>,
    pub throttle_burst: Option<u32>,
    pub min_level: Option<String>,
    pub process_exclude: Option<Vec<String>>,
    // outputs
    pub json: Option<bool>,
    pub no_stdout: Option<bool>,
    pub logfile: Option<PathBuf>,
    pub logfile_format: Option<String>,
    pub udp_target: Option<String>,
    pub udp_format: Option<String>,
    pub tcp_target: Option<String>,
    pub tcp_format: Option<String>,
    pub tcp_framing: Option<String>,
    pub tcp_tls: Option<bool>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub syslog_rfc: Option<u16>,
    pub syslog_facility: Option<String>,
    pub sink_queue: Option<usize>,
    pub nats_url: Option<Vec<String>>,
    pub nats_events: Option<bool>,
    pub nats_creds: Option<PathBuf>,
    pub nats_nkey: Option<PathBuf>,
    pub nats_tls_ca: Option<PathBuf>,
    pub nats_stream: Option<String>,
    pub nats_no_create: Option<bool>,
    pub nats_stream_max_bytes: Option<String>,
    pub nats_stream_max_age: Option<u64>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: Option<String>,
    // sensors
    pub ringbuf_size: Option<String>,
    pub watch_dir: Option<Vec<PathBuf>>,
    pub queue_size: Option<usize>,
    pub correlation_cache: Option<usize>,
    pub ready_file: Option<PathBuf>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub file_sensor: Option<String>,
    pub audit_log: Option<String>,
    pub system_log: Option<Vec<String>>,
    pub state_dir: Option<PathBuf>,
    // agent
    pub stats_interval: Option<u64>,
    pub low_prio: Option<bool>,
    pub trace: Option<bool>,
    pub verbose: Option<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    yaml_serde::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys() {
        let c = parse(
            Path::new("a.yml"),
            "rules: [rules]\nthrottle-rate: 2.5\njson: true\n",
        )
        .unwrap();
        assert_eq!(c.rules, Some(vec![PathBuf::from("rules")]));
        assert_eq!(c.throttle_rate, Some(2.5));
        assert_eq!(c.json, Some(true));
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err = parse(
            Path::new("/etc/aurora.yml"),
            "json: true\nthrotle-rate: 2\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/aurora.yml: "), "{msg}");
        assert!(msg.contains("throtle-rate"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse(Path::new("c.yml"), "throttle-burst: lots\n").unwrap_err();
        assert!(
            err.to_string().contains("throttle-burst") || err.to_string().contains("line 1"),
            "{err}"
        );
    }
}
