//! The kernel's copy of the policies (deny maps, exemptions, the policy flags in `ENFORCE`),
//! rewritten to match a resolved `PolicySet`. New entries go in before stale ones come out,
//! so a file denied by both the old and the new policy is never briefly allowed.
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _, Result};
use aurora_common::{
    DenyEntry, FileKey, ENFORCE_POLICY_EXEMPT_IMAGES, ENFORCE_POLICY_OPEN, ENFORCE_SLOT_POLICY,
    MAX_DENY_ENTRIES, MAX_EXEMPT_CGROUPS,
};
use aya::maps::{Array, HashMap, Map, MapData};
use aya::Pod;

use crate::response::PolicySet;

/// The maps the agent writes policies into (handed over by the loader by name).
pub const NAMES: [&str; 7] = [
    "LOST",
    "DENY_EXEC",
    "DENY_OPEN",
    "DENY_OPEN_DIRS",
    "EXEMPT_CGROUPS",
    "EXEMPT_IMAGES",
    "ENFORCE",
];

pub struct PolicyMaps {
    deny_exec: HashMap<MapData, FileKey, DenyEntry>,
    deny_open: HashMap<MapData, FileKey, DenyEntry>,
    deny_open_dirs: HashMap<MapData, FileKey, DenyEntry>,
    exempt_cgroups: HashMap<MapData, u64, u8>,
    exempt_images: HashMap<MapData, FileKey, u8>,
    enforce: Array<MapData, u32>,
}

/// Make `map` hold exactly `want` (inserts first, then removals).
fn sync<K: Pod + Ord, V: Pod>(
    name: &str,
    map: &mut HashMap<MapData, K, V>,
    want: &BTreeMap<K, V>,
    cap: u32,
) -> Result<()> {
    if want.len() > cap as usize {
        bail!("{} {name} entries: the kernel map holds {cap}", want.len());
    }
    for (k, v) in want {
        map.insert(k, v, 0)
            .with_context(|| format!("writing {name}"))?;
    }
    let stale: Vec<K> = map
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| !want.contains_key(k))
        .collect();
    for k in stale {
        let _ = map.remove(&k);
    }
    Ok(())
}

fn present<K: Ord + Copy>(keys: &BTreeSet<K>) -> BTreeMap<K, u8> {
    keys.iter().map(|k| (*k, 1)).collect()
}

impl PolicyMaps {
    pub fn new(take: &mut impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        Ok(PolicyMaps {
            deny_exec: HashMap::try_from(take("DENY_EXEC")?)?,
            deny_open: HashMap::try_from(take("DENY_OPEN")?)?,
            deny_open_dirs: HashMap::try_from(take("DENY_OPEN_DIRS")?)?,
            exempt_cgroups: HashMap::try_from(take("EXEMPT_CGROUPS")?)?,
            exempt_images: HashMap::try_from(take("EXEMPT_IMAGES")?)?,
            enforce: Array::try_from(take("ENFORCE")?)?,
        })
    }

    pub fn apply(&mut self, set: &PolicySet) -> Result<()> {
        // Exemptions first: a process exempt under both policies is never briefly denied.
        sync(
            "EXEMPT_CGROUPS",
            &mut self.exempt_cgroups,
            &present(&set.exempt_cgroups),
            MAX_EXEMPT_CGROUPS,
        )?;
        sync(
            "EXEMPT_IMAGES",
            &mut self.exempt_images,
            &present(&set.exempt_images),
            MAX_EXEMPT_CGROUPS,
        )?;
        sync("DENY_EXEC", &mut self.deny_exec, &set.deny_exec, MAX_DENY_ENTRIES)?;
        sync("DENY_OPEN", &mut self.deny_open, &set.deny_open, MAX_DENY_ENTRIES)?;
        sync(
            "DENY_OPEN_DIRS",
            &mut self.deny_open_dirs,
            &set.deny_open_dirs,
            MAX_EXEMPT_CGROUPS,
        )?;
        let mut flags = 0;
        if !set.deny_open.is_empty() || !set.deny_open_dirs.is_empty() {
            flags |= ENFORCE_POLICY_OPEN;
        }
        if !set.exempt_images.is_empty() {
            flags |= ENFORCE_POLICY_EXEMPT_IMAGES;
        }
        self.enforce
            .set(ENFORCE_SLOT_POLICY, flags, 0)
            .context("writing ENFORCE")?;
        Ok(())
    }
}
