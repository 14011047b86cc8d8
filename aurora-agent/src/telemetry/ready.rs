//! `--ready-file PATH`: a JSON document written (atomically) once the sensors are attached and,
//! for the live agent, the rules are loaded; removed at exit. Tests, the bench, scripts and the
//! kernel matrix wait for it and read what loaded from it instead of matching log lines.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

/// One kernel program as loaded on this kernel.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    /// Attach point (`category/name` for tracepoints, the function for fentry/fexit).
    pub attach: String,
    pub attached: bool,
    /// Instructions the verifier processed (kernel 5.16+; absent before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_insns: Option<u32>,
}

/// The file sensor that is running, and why that one.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct FileSensorState {
    /// "vfs", "tracepoint" or "off".
    pub mode: String,
    /// Why the VFS hook is not used (absent when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// Where the programs were loaded, and why there.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct LoaderState {
    /// "child" (the agent never holds the kernel's BTF) or "in-process".
    pub mode: String,
    /// Why not in the child (absent when there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReadyState {
    pub pid: u32,
    pub version: &'static str,
    /// `uname -r` of the running kernel.
    pub kernel: String,
    pub programs: Vec<ProgramStatus>,
    /// The file sensor's mode ("vfs" or "tracepoint") and why.
    pub file_sensor: FileSensorState,
    /// Where the programs were loaded ("child" or "in-process") and why.
    pub loader: LoaderState,
    /// Active rules (absent for `record`, which loads none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_active: Option<usize>,
    /// Where `/metrics` is served (`--metrics-listen`; with port 0, the port chosen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<std::net::SocketAddr>,
    /// The logs followed: `{"source": "auditd"|"syslog"|"journald", "path": ...}`.
    pub log_sources: Vec<LogSourceState>,
    /// How each denied operation is enforced here, and why that way.
    pub enforcement: Vec<crate::policy::Enforcement>,
    /// Whether the host is isolated (`aurora isolate`); absent when nft could not tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogSourceState {
    pub source: &'static str,
    pub path: String,
}

impl ReadyState {
    pub fn new(
        programs: Vec<ProgramStatus>,
        file_sensor: FileSensorState,
        loader: LoaderState,
        rules_active: Option<usize>,
    ) -> Self {
        ReadyState {
            pid: std::process::id(),
            version: crate::VERSION,
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            programs,
            file_sensor,
            loader,
            rules_active,
            metrics: None,
            log_sources: Vec::new(),
            enforcement: Vec::new(),
            isolated: None,
        }
    }
}

/// The ready file of one run: written once, removed when dropped (at exit).
pub struct ReadyFile {
    path: Option<PathBuf>,
}

impl ReadyFile {
    /// Write `state` to `path` through a temporary file and a rename, so a reader never sees a
    /// partial document. `None` path: nothing to do.
    pub fn publish(path: Option<&Path>, state: &ReadyState) -> Result<ReadyFile> {
        let Some(path) = path else {
            return Ok(ReadyFile { path: None });
        };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(state)?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("--ready-file {}: renaming into place", path.display()))?;
        Ok(ReadyFile {
            path: Some(path.to_owned()),
        })
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_whole_document_and_removes_it_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let state = ReadyState::new(
            vec![ProgramStatus {
                name: "sched_process_exec".into(),
                attach: "sched/sched_process_exec".into(),
                attached: true,
                verified_insns: Some(1234),
            }],
            FileSensorState {
                mode: "vfs".into(),
                fallback_reason: None,
            },
            LoaderState {
                mode: "child".into(),
                reason: None,
            },
            Some(7),
        );
        let f = ReadyFile::publish(Some(&path), &state).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["programs"][0]["verified_insns"], 1234);
        assert_eq!(v["rules_active"], 7);
        assert_eq!(v["file_sensor"]["mode"], "vfs");
        assert_eq!(v["loader"]["mode"], "child");
        assert_eq!(v["pid"], std::process::id());
        assert!(!dir.path().join("ready.tmp").exists());
        drop(f);
        assert!(!path.exists());
    }
}
