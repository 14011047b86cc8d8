//! `--logfile`: append-only, created 0600, O_NOFOLLOW (a symlink planted at the path is refused)
//! and O_CLOEXEC; reopened on SIGHUP so logrotate's rename-and-signal works.
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::registry::{payload, SinkConfig, SinkContext};
use super::syslog::format::{Formatter, Payload};
use super::{count, Sink};
use crate::detect::alert::Alert;
use crate::stats::SinkStats;

/// What `--logfile` holds unless `--logfile-format` says otherwise: one JSON alert a line.
pub const DEFAULT_FORMAT: Payload = Payload::Json;

#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct LogfileConfig {
    /// Append alerts to this file (created 0600; reopened on SIGHUP for logrotate).
    /// Example: -l /var/log/aurora/alerts.log
    #[arg(short = 'l', long, value_name = "PATH")]
    pub logfile: Option<PathBuf>,
    /// Format of --logfile: json|syslog.
    #[arg(long, value_name = "FORMAT")]
    pub logfile_format: Option<String>,
}

impl SinkConfig for LogfileConfig {
    fn build(&self, cx: &SinkContext) -> anyhow::Result<Option<Box<dyn Sink>>> {
        let Some(path) = &self.logfile else {
            return Ok(None);
        };
        let format = match payload(
            "--logfile-format",
            self.logfile_format.as_deref(),
            DEFAULT_FORMAT,
        )? {
            Payload::Json => FileFormat::Json,
            Payload::Text => FileFormat::Syslog(cx.formatter(Payload::Text)),
        };
        Ok(Some(Box::new(FileSink::new(path, format)?)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogfileError {
    #[error("--logfile {0}: parent directory does not exist")]
    NoParent(PathBuf),
    #[error("--logfile {0}: is a symbolic link; refusing to follow it")]
    Symlink(PathBuf),
    #[error("--logfile {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn open(path: &Path) -> Result<File, LogfileError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(LogfileError::NoParent(path.to_path_buf()));
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                LogfileError::Symlink(path.to_path_buf())
            } else {
                LogfileError::Open {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })
}

pub enum FileFormat {
    Json,
    Syslog(Formatter),
}

pub struct FileSink {
    path: PathBuf,
    format: FileFormat,
    out: Option<BufWriter<File>>,
    stats: Arc<SinkStats>,
}

impl FileSink {
    pub fn new(path: &Path, format: FileFormat) -> Result<Self, LogfileError> {
        let f = open(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            format,
            out: Some(BufWriter::new(f)),
            stats: Arc::new(SinkStats::named(format!("logfile:{}", path.display()))),
        })
    }
}

impl Sink for FileSink {
    fn emit(&mut self, a: &Alert) {
        let line = match &self.format {
            FileFormat::Json => a.to_json(),
            FileFormat::Syslog(f) => f.format(a),
        };
        let ok = match self.out.as_mut() {
            Some(o) => o
                .write_all(line.as_bytes())
                .and_then(|()| o.write_all(b"\n"))
                .is_ok(),
            None => false,
        };
        count(&self.stats, ok);
    }

    fn flush(&mut self) {
        if let Some(o) = self.out.as_mut() {
            if let Err(e) = o.flush() {
                tracing::warn!("logfile {}: {e}", self.path.display());
            }
        }
    }

    fn reopen(&mut self) {
        self.flush();
        match open(&self.path) {
            Ok(f) => {
                self.out = Some(BufWriter::new(f));
                tracing::info!("logfile {} reopened", self.path.display());
            }
            Err(e) => {
                // Keep writing to the old file rather than losing alerts.
                tracing::error!("{e}; still writing to the previously open file");
            }
        }
    }

    fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::tests::sample_alert;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_0600_appends_and_reopens_after_rename() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.log");
        let mut s = FileSink::new(&p, FileFormat::Json).unwrap();
        s.emit(&sample_alert("a", "one"));
        s.flush();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::rename(&p, dir.path().join("alerts.log.1")).unwrap();
        s.reopen();
        s.emit(&sample_alert("b", "two"));
        s.flush();
        let new = std::fs::read_to_string(&p).unwrap();
        let old = std::fs::read_to_string(dir.path().join("alerts.log.1")).unwrap();
        assert!(old.contains("\"one\"") && !old.contains("\"two\""));
        assert!(new.contains("\"two\"") && new.lines().count() == 1);
    }

    #[test]
    fn symlink_and_missing_parent_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(open(&link), Err(LogfileError::Symlink(_))));
        let e = open(&dir.path().join("nope/alerts.log")).unwrap_err();
        assert!(
            e.to_string().contains("parent directory does not exist"),
            "{e}"
        );
    }
}
