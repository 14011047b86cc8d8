//! Real daemons the tests start for themselves — a private rsyslogd with its own config, socket
//! and files in a temp dir — and the one way tests wait: `poll_until`, which asks a typed
//! question (a file, a port, a counter) until it is answered, never a fixed sleep.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::nix_kill;

/// Ask `probe` every 50 ms until it answers `Some`, for at most `secs`; panics naming `what`
/// when it never does.
pub fn poll_until<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private rsyslogd in the foreground: its config written into `dir`, stopped (SIGTERM, then
/// reaped) when dropped.
pub struct Rsyslogd {
    pub child: Child,
    pub dir: PathBuf,
}

impl Rsyslogd {
    /// Start with `conf` (rsyslog's RainerScript; `workDirectory` is set to `dir`) and wait
    /// until `ready` holds (a socket file exists, a port listens).
    pub fn start(dir: &Path, conf: &str, ready: impl Fn() -> bool) -> Rsyslogd {
        let text = format!("global(workDirectory=\"{}\")\n{conf}", dir.display());
        std::fs::write(dir.join("rsyslog.conf"), text).unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .args(["-n", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (apt package rsyslog; `cargo xtask setup --test-deps` installs it)");
        let mut d = Rsyslogd {
            child,
            dir: dir.to_path_buf(),
        };
        poll_until("rsyslogd ready", 10, || {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "rsyslogd exited at start ({status}): check {}",
                    dir.display()
                );
            }
            ready().then_some(())
        });
        d.dir = dir.to_path_buf();
        d
    }

    /// A file rsyslogd writes in its directory (empty until it exists).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Wait until `name` holds at least `n` lines (or 10 s passed) and return them.
    pub fn wait_lines(&self, name: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<String> = self.read(name).lines().map(str::to_owned).collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait for it to be gone.
    pub fn stop(mut self) {
        nix_kill(self.child.id(), 15);
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            nix_kill(self.child.id(), 15);
            let _ = self.child.wait();
        }
    }
}
