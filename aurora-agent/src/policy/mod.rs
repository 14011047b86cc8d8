//! Policies: what the kernel denies (`--policy FILE`), parsed and resolved to what the
//! kernel compares (`load`), the set in force shared between the sensors' map writer and the
//! enricher (`PolicyHandle`), and how this kernel enforces it (`Enforcement`). Below the
//! pipeline's stages: the sensors, enrichment and telemetry all read it.
mod load;
mod watch;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use load::{cgroup2_root, file_key, kernel_dev, Entry, Mode, PolicyError, PolicySet};
pub use watch::WatchSpec;

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
/// (`sources::ebpf::enforce`).
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
