//! The log sources of the live agent: auditd's log and the system logs (journal or syslog
//! files), each followed on its own thread into the pipeline's queue. Which logs are read is
//! decided here once, from the flags and what exists on the host, and said at start.
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::auditd::{self, AuditParser};
use super::follow::{self, Follow, Follower};
use super::syslog::{self, journal::Journal, SyslogParser};
use super::tail::CursorStore;
use super::RawEvent;
use crate::stats::{LogSourceStats, Stats};

/// Where state kept across restarts lives (read positions of followed logs).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/aurora";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemLog {
    Journal,
    File(PathBuf),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSourcesConfig {
    /// auditd's log; None: not read.
    pub audit_log: Option<PathBuf>,
    pub system_logs: Vec<SystemLog>,
    /// Where read positions persist; None: start at the end, keep nothing (`record`).
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogConfigError {
    #[error("--system-log {0}: give journald, off, or an absolute file path")]
    BadSystemLog(String),
    #[error("--audit-log {0}: give off or an absolute file path")]
    BadAuditLog(String),
}

/// The followed logs' flags and config-file keys.
#[derive(clap::Args, Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct LogArgs {
    /// auditd's log to follow: a path, or off. auditd keeps the audit socket; Aurora reads
    /// its log (with the rules in deploy/auditd/aurora.rules).
    /// Example: --audit-log /var/log/audit/audit.log
    #[arg(long, value_name = "PATH|off")]
    pub audit_log: Option<String>,
    /// A system log to follow (repeatable): journald, a syslog file, or off.
    /// Example: --system-log /var/log/auth.log
    #[arg(long = "system-log", value_name = "journald|PATH|off")]
    pub system_log: Vec<String>,
    /// Directory for state kept across restarts: the read position in each followed log, so
    /// a restart neither loses nor repeats lines.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl LogArgs {
    /// The logs to follow, with the state directory defaulted.
    pub fn build(&self) -> Result<LogSourcesConfig, LogConfigError> {
        LogSourcesConfig::resolve(
            self.audit_log.as_deref(),
            &self.system_log,
            Some(
                self.state_dir
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            ),
        )
    }
}

impl LogSourcesConfig {
    /// From `--audit-log` and `--system-log` values (flags over the config file already).
    /// Unset: auditd's default log if it exists; the journal if journald runs, else the
    /// default syslog files that exist.
    pub fn resolve(
        audit: Option<&str>,
        system: &[String],
        state_dir: Option<PathBuf>,
    ) -> Result<Self, LogConfigError> {
        let audit_log = match audit {
            Some("off") => None,
            Some(p) if p.starts_with('/') => Some(PathBuf::from(p)),
            Some(p) => return Err(LogConfigError::BadAuditLog(p.into())),
            None => Some(PathBuf::from(auditd::DEFAULT_LOG)).filter(|p| p.is_file()),
        };
        let mut system_logs = Vec::new();
        if system.is_empty() {
            if syslog::journal::available() {
                system_logs.push(SystemLog::Journal);
            } else {
                system_logs.extend(
                    syslog::DEFAULT_FILES
                        .iter()
                        .map(PathBuf::from)
                        .filter(|p| p.is_file())
                        .map(SystemLog::File),
                );
            }
        }
        for s in system {
            match s.as_str() {
                "off" => {}
                "journald" | "journal" => system_logs.push(SystemLog::Journal),
                p if p.starts_with('/') => system_logs.push(SystemLog::File(p.into())),
                p => return Err(LogConfigError::BadSystemLog(p.into())),
            }
        }
        if system.iter().any(|s| s == "off") {
            system_logs.clear();
        }
        Ok(LogSourcesConfig {
            audit_log,
            system_logs,
            state_dir,
        })
    }

    /// `auditd /var/log/audit/audit.log`, `journald journal`, `syslog /var/log/auth.log`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(p) = &self.audit_log {
            v.push(("auditd", p.display().to_string()));
        }
        for s in &self.system_logs {
            v.push(match s {
                SystemLog::Journal => ("journald", "journal".to_owned()),
                SystemLog::File(p) => ("syslog", p.display().to_string()),
            });
        }
        v
    }
}

/// The running log sources.
#[derive(Default)]
pub struct LogSources {
    followers: Vec<Follower>,
    journal: Option<Journal>,
}

impl LogSources {
    pub fn start(
        cfg: &LogSourcesConfig,
        tx: &mpsc::Sender<RawEvent>,
        stats: &Stats,
    ) -> std::io::Result<LogSources> {
        let mut out = LogSources::default();
        let cursors = |name: &str| -> Option<CursorStore> {
            let dir = cfg.state_dir.as_ref()?;
            match CursorStore::new(dir, name) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(
                        "state directory {}: {e}; {name} is read from its end at each start",
                        dir.display()
                    );
                    None
                }
            }
        };
        for (kind, path) in cfg.describe() {
            let s = Arc::new(LogSourceStats::new(kind, path.clone()));
            stats.register_log_source(s.clone());
            let file = PathBuf::from(&path);
            match kind {
                "auditd" => {
                    if !file.exists() {
                        tracing::warn!(
                            "--audit-log {path}: does not exist yet; read once it appears"
                        );
                    }
                    let f = Follow {
                        cursors: cursors(&path),
                        path: file,
                    };
                    out.followers
                        .push(follow::spawn(f, AuditParser::live(), tx.clone(), s)?);
                }
                "syslog" => {
                    let parser = SyslogParser {
                        default_facility: syslog::default_facility(&file),
                    };
                    let f = Follow {
                        cursors: cursors(&path),
                        path: file,
                    };
                    out.followers.push(follow::spawn(f, parser, tx.clone(), s)?);
                }
                _ => {
                    let cursor_file = cursors("journal").map(|c| c.path().with_extension("cursor"));
                    out.journal = Some(Journal::spawn(cursor_file, tx.clone(), s)?);
                }
            }
            tracing::info!("log source: {kind} {path}");
        }
        if cfg.audit_log.is_none() {
            tracing::info!(
                "auditd log: not read ({} does not exist; --audit-log PATH to set it)",
                auditd::DEFAULT_LOG
            );
        }
        Ok(out)
    }

    /// Read what is left, close open events, save positions.
    pub fn stop(self) {
        for f in self.followers {
            f.stop();
        }
        if let Some(j) = self.journal {
            j.stop();
        }
    }
}
