//! A private auditd instance for the tests: its log in a temp dir (`auditd -c DIR`), rules
//! loaded by auditctl; dropped, it deletes its rules, stops and disables auditing.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::nix_kill;

/// The key of the tests' audit rules.
pub const KEY: &str = "aurora-live-test";

pub struct Auditd {
    child: Child,
}

pub fn auditctl(args: &[&str]) {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .expect("auditctl (apt package auditd; `cargo xtask setup --test-deps` installs it)");
    assert!(
        out.status.success(),
        "auditctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Auditd {
    /// auditd logging to `dir/audit.log`, with every execve and the writes to `watch` keyed
    /// `key`.
    pub fn start(dir: &Path, watch: &Path, key: &str) -> Auditd {
        let running = Command::new("pgrep")
            .args(["-x", "auditd"])
            .output()
            .unwrap();
        assert!(
            !running.status.success(),
            "an auditd already runs here (pid {}): this test starts its own",
            String::from_utf8_lossy(&running.stdout).trim()
        );
        let conf = dir.join("auditd.conf");
        // The private instance's configuration, shared with tests/fixtures/record_auditd.sh.
        let text = include_str!("../helpers/auditd.conf")
            .replace("@LOG_FILE@", &dir.join("audit.log").display().to_string());
        std::fs::write(&conf, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
        let child = Command::new("auditd")
            .arg("-c")
            .arg(dir)
            .arg("-n")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("auditd (apt package auditd)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("audit.log").exists() {
            assert!(Instant::now() < deadline, "auditd wrote no log in 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        auditctl(&["-D"]);
        auditctl(&[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "execve",
            "-k",
            key,
        ]);
        auditctl(&["-w", watch.to_str().unwrap(), "-p", "wa", "-k", key]);
        Auditd { child }
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        let _ = Command::new("auditctl").arg("-D").output();
        nix_kill(self.child.id(), 15);
        let _ = self.child.wait();
        let _ = Command::new("auditctl").args(["-e", "0"]).output();
    }
}
