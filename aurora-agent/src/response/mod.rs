//! Response: what the agent does besides reporting. Policies the kernel enforces
//! (`policy`: exec denies, exemptions), kills that rules ask for (`kill`), and host
//! isolation (`isolate`). Decisions made in the kernel come back as block events through
//! the same pipeline as every other event; rule-driven kills are decided between detection
//! and the sinks, so the alert that caused one says what was done.
pub mod hold;
pub mod isolate;
pub mod kill;
pub mod policy;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use policy::{Mode, PolicyError, PolicySet};

/// The policies in force, shared by the sensors' map writer and the enricher (which names the
/// entry a block event matched). Replaced whole on reload.
#[derive(Clone, Default, Debug)]
pub struct PolicyHandle(Arc<RwLock<Arc<PolicySet>>>);

impl PolicyHandle {
    pub fn new(set: PolicySet) -> Self {
        PolicyHandle(Arc::new(RwLock::new(Arc::new(set))))
    }

    pub fn get(&self) -> Arc<PolicySet> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, set: PolicySet) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }
}

/// How one denied operation is enforced on this kernel, for the log, the ready file and
/// `aurora_enforcement_info`. Decided where the programs are attached
/// (`sources::ebpf::programs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Enforcement {
    /// `exec` or `open`.
    pub operation: String,
    /// `lsm` (the operation fails with EPERM), `tracepoint-sigkill` or `vfs-sigkill` (the
    /// process is killed on its way back to user space), or `none`.
    pub mechanism: String,
    pub reason: String,
}

/// The kernel's active LSMs (`/sys/kernel/security/lsm`), if securityfs is readable.
pub fn active_lsms() -> Option<String> {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Response counters: kernel decisions by action and mode (counted from the block events),
/// rule-driven outcomes, policy reloads, the entries in force and the enforcement in use.
#[derive(Default, Debug)]
pub struct ResponseStats {
    pub kills: kill::ResponseStats,
    /// (action, mode) → blocks.
    pub blocks: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
    /// (list, mode) → entries of the policies in force.
    pub entries: std::sync::Mutex<Vec<(&'static str, &'static str, u64)>>,
    /// (operation, how) of each enforcement in use, e.g. ("exec", "tracepoint-sigkill").
    pub enforcement: std::sync::Mutex<Vec<(String, String)>>,
    pub reloads_ok: std::sync::atomic::AtomicU64,
    /// Executables held for hashing, by outcome.
    pub holds_allowed: std::sync::atomic::AtomicU64,
    pub holds_denied: std::sync::atomic::AtomicU64,
    pub holds_failed: std::sync::atomic::AtomicU64,
    pub holds_gone: std::sync::atomic::AtomicU64,
    pub reloads_failed: std::sync::atomic::AtomicU64,
}

impl ResponseStats {
    pub fn count_block(&self, action: &str, mode: &str) {
        if let Ok(mut m) = self.blocks.lock() {
            *m.entry((action.to_owned(), mode.to_owned())).or_default() += 1;
        }
    }

    pub fn set_entries(&self, set: &PolicySet) {
        if let Ok(mut e) = self.entries.lock() {
            *e = set.counts();
        }
    }
}

/// Response flags and config-file keys.
#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ResponseArgs {
    /// Policy file of exec/open denies (repeatable; reloaded on SIGHUP). Check one with
    /// `aurora policy check FILE`.
    #[arg(long, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Rule-driven response (config file only: `response:` with mode, rate_limit, actions,
    /// allow_images, allow_cgroups).
    #[arg(skip)]
    pub response: Option<kill::ResponseConfig>,
}

/// What the live agent responds with, resolved.
pub struct ResponseSettings {
    pub policy_files: Vec<PathBuf>,
    pub policy: PolicyHandle,
    pub kill: kill::ResponseConfig,
}

impl ResponseArgs {
    pub fn build(&self) -> anyhow::Result<ResponseSettings> {
        let set = PolicySet::load(&self.policy)?;
        let kill = self.response.clone().unwrap_or_default();
        kill.validate()?;
        Ok(ResponseSettings {
            policy_files: self.policy.clone(),
            policy: PolicyHandle::new(set),
            kill,
        })
    }
}
