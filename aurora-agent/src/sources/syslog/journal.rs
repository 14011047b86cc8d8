//! The journal as a source: `journalctl -o json --follow` as a child process (no libsystemd
//! linkage, works with any journald version that exports JSON), resuming after the cursor
//! journalctl itself keeps in `--cursor-file`.
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::JournalParser;
use crate::sources::follow::LineParser;
use crate::sources::RawEvent;
use crate::stats::LogSourceStats;

const SOCKET: &str = "/run/systemd/journal/socket";

/// Whether journald runs here (its socket exists) and journalctl is installed.
pub fn available() -> bool {
    Path::new(SOCKET).exists() && which("journalctl")
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

pub struct Journal {
    child: Child,
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Start following. With a cursor file, continue after the entry it names; without one
    /// (or on first start) begin with new entries.
    pub fn spawn(
        cursor_file: Option<PathBuf>,
        tx: mpsc::Sender<RawEvent>,
        stats: Arc<LogSourceStats>,
    ) -> std::io::Result<Journal> {
        let mut cmd = Command::new("journalctl");
        cmd.args(["-o", "json", "--follow", "--no-pager", "--quiet"]);
        match &cursor_file {
            Some(f) if f.is_file() => {
                cmd.arg(format!("--cursor-file={}", f.display()));
            }
            Some(f) => {
                cmd.arg(format!("--cursor-file={}", f.display()))
                    .arg("--lines=0");
            }
            None => {
                cmd.arg("--lines=0");
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let thread = std::thread::Builder::new()
            .name("aurora-journal".into())
            .spawn(move || {
                let mut parser = JournalParser;
                let mut out = Vec::new();
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    stats.lines.fetch_add(1, Ordering::Relaxed);
                    if let Err(reason) = parser.line(&line, &mut out) {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("journal: {reason} (skipped)");
                    }
                    for ev in out.drain(..) {
                        stats.events.fetch_add(1, Ordering::Relaxed);
                        if tx.blocking_send(RawEvent::Log(ev)).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(Journal {
            child,
            thread: Some(thread),
        })
    }

    /// SIGTERM journalctl (it writes its cursor file as it exits), then read what it printed.
    pub fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
