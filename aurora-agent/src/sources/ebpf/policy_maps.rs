//! The kernel's copy of the policies (deny maps, exemptions, the policy flags in `ENFORCE`),
//! rewritten to match a resolved `PolicySet`. New entries go in before stale ones come out,
//! so a file denied by both the old and the new policy is never briefly allowed.
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _, Result};
use aurora_common::{
    DenyEntry, FileKey, FileStamp, ENFORCE_POLICY_EXEMPT_IMAGES, ENFORCE_POLICY_HASH,
    ENFORCE_POLICY_OPEN, ENFORCE_POLICY_OPEN_DIRS, ENFORCE_SLOT_POLICY, MAX_DENY_ENTRIES,
    MAX_EXEMPT_CGROUPS,
};
use aya::maps::{Array, HashMap, Map, MapData};
use aya::Pod;

use crate::policy::PolicySet;

/// The maps the agent writes policies into (handed over by the loader by name).
pub const NAMES: [&str; 8] = [
    "LOST",
    "KNOWN_EXEC",
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
    known_exec: HashMap<MapData, FileKey, FileStamp>,
    /// The sha256 entries the hash cache was filled under: a change empties it (a file
    /// hashed as allowed may be denied now).
    hashed_under: BTreeSet<[u8; 32]>,
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
            known_exec: HashMap::try_from(take("KNOWN_EXEC")?)?,
            hashed_under: BTreeSet::new(),
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
        sync(
            "DENY_EXEC",
            &mut self.deny_exec,
            &set.deny_exec,
            MAX_DENY_ENTRIES,
        )?;
        sync(
            "DENY_OPEN",
            &mut self.deny_open,
            &set.deny_open,
            MAX_DENY_ENTRIES,
        )?;
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
        if !set.deny_open_dirs.is_empty() {
            flags |= ENFORCE_POLICY_OPEN_DIRS;
        }
        if !set.exempt_images.is_empty() {
            flags |= ENFORCE_POLICY_EXEMPT_IMAGES;
        }
        let hashes: BTreeSet<[u8; 32]> = set.deny_sha256.keys().copied().collect();
        if hashes != self.hashed_under {
            let known: Vec<FileKey> = self.known_exec.keys().filter_map(|k| k.ok()).collect();
            for k in known {
                let _ = self.known_exec.remove(&k);
            }
            self.hashed_under = hashes;
        }
        if !set.deny_sha256.is_empty() {
            flags |= ENFORCE_POLICY_HASH;
        }
        self.enforce
            .set(ENFORCE_SLOT_POLICY, flags, 0)
            .context("writing ENFORCE")?;
        Ok(())
    }

    /// A held executable hashed and allowed: not held again while its stamp holds.
    pub fn learn_allowed(&mut self, key: FileKey, stamp: FileStamp) {
        let _ = self.known_exec.insert(key, stamp, 0);
    }

    /// A held executable whose hash is denied: its inode is denied from now on.
    pub fn learn_denied(&mut self, key: FileKey, deny: DenyEntry) {
        let _ = self.deny_exec.insert(key, deny, 0);
    }
}
