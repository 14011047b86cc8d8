//! Response: what the agent does besides reporting, above detection: kills that rules ask
//! for (`kill`), sha256 denies resolved for processes the kernel held at exec (`hold`), and
//! host isolation (`isolate`). The policies themselves live in `crate::policy`. Decisions made in the kernel come back as block events through
//! the same pipeline as every other event; rule-driven kills are decided between detection
//! and the sinks, so the alert that caused one says what was done.
pub mod hold;
pub mod isolate;
pub mod kill;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::policy::{PolicyHandle, PolicySet};

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
