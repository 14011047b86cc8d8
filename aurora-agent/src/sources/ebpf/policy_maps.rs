//! The kernel's copy of the policies: `DENY_EXEC` and `EXEMPT_CGROUPS`, rewritten to match a
//! resolved `PolicySet`. New entries go in before stale ones come out, so a file denied by
//! both the old and the new policy is never briefly allowed.
use anyhow::{Context as _, Result};
use aurora_common::{DenyEntry, FileKey, MAX_DENY_ENTRIES, MAX_EXEMPT_CGROUPS};
use aya::maps::{HashMap, Map, MapData};

use crate::response::PolicySet;

pub struct PolicyMaps {
    deny_exec: HashMap<MapData, FileKey, DenyEntry>,
    exempt_cgroups: HashMap<MapData, u64, u8>,
}

impl PolicyMaps {
    pub fn new(deny_exec: Map, exempt_cgroups: Map) -> Result<Self> {
        Ok(PolicyMaps {
            deny_exec: HashMap::try_from(deny_exec)?,
            exempt_cgroups: HashMap::try_from(exempt_cgroups)?,
        })
    }

    pub fn apply(&mut self, set: &PolicySet) -> Result<()> {
        if set.deny_exec.len() > MAX_DENY_ENTRIES as usize {
            anyhow::bail!(
                "{} exec deny entries: the kernel map holds {MAX_DENY_ENTRIES}",
                set.deny_exec.len()
            );
        }
        if set.exempt_cgroups.len() > MAX_EXEMPT_CGROUPS as usize {
            anyhow::bail!(
                "{} exempt cgroups: the kernel map holds {MAX_EXEMPT_CGROUPS}",
                set.exempt_cgroups.len()
            );
        }
        for (k, v) in &set.deny_exec {
            self.deny_exec
                .insert(k, v, 0)
                .context("writing DENY_EXEC")?;
        }
        for id in &set.exempt_cgroups {
            self.exempt_cgroups
                .insert(id, 1, 0)
                .context("writing EXEMPT_CGROUPS")?;
        }
        let stale: Vec<FileKey> = self
            .deny_exec
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !set.deny_exec.contains_key(k))
            .collect();
        for k in stale {
            let _ = self.deny_exec.remove(&k);
        }
        let stale: Vec<u64> = self
            .exempt_cgroups
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !set.exempt_cgroups.contains(k))
            .collect();
        for k in stale {
            let _ = self.exempt_cgroups.remove(&k);
        }
        Ok(())
    }
}
