//! Watches: files whose opens are reported, never refused — the files SigmaHQ's auditd PATH
//! rules name, so those rules see opens without auditd's watches. They share the open-deny
//! maps (a deny on the same file wins) with the `watch` flag set; each pattern is resolved
//! to the files it names when the policy is applied (again on every reload), `*` matching
//! within one path component as in the rules.
use std::path::{Path, PathBuf};

use aurora_common::{DenyEntry, DENY_WATCH_ANY, DENY_WATCH_WRITE};

use super::{file_key, Entry, Mode, PolicySet};

/// One watched pattern and whether reads count (else only opens for writing).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchSpec {
    pub pattern: String,
    pub reads: bool,
}

/// Files a pattern names now (none when nothing matches).
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &found {
            if !comp.contains('*') {
                next.push(base.join(comp));
                continue;
            }
            let Ok(dir) = std::fs::read_dir(base) else {
                continue;
            };
            let mut names: Vec<PathBuf> = dir
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(comp, n)))
                .map(|e| e.path())
                .collect();
            names.sort();
            next.extend(names);
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

/// `*` matches any run of characters; everything else itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl PolicySet {
    /// Add watches on the files `specs` name now; a file the policy denies keeps its deny.
    /// Kept in the set, so a reload resolves them again.
    pub fn add_watches(&mut self, specs: &[WatchSpec]) {
        for spec in specs {
            for path in expand(&spec.pattern) {
                self.add_watch(&path, spec.reads);
            }
        }
        self.watches = specs.to_vec();
    }

    fn add_watch(&mut self, path: &Path, reads: bool) {
        let Ok(key) = file_key(path) else {
            return;
        };
        let flags = if reads {
            DENY_WATCH_ANY
        } else {
            DENY_WATCH_WRITE
        };
        match self.deny_open.get_mut(&key) {
            // Watched by an earlier pattern: reads widen it; a deny stays a deny.
            Some(d) if d.flags & (DENY_WATCH_ANY | DENY_WATCH_WRITE) != 0 => {
                if reads {
                    d.flags = DENY_WATCH_ANY;
                }
            }
            Some(_) => {}
            None => {
                let entry = self.entries.len() as u32;
                self.entries.push(Entry {
                    source: "auditd rules".into(),
                    list: "watch",
                    what: format!("path {}", path.display()),
                    mode: Mode::Audit,
                });
                self.deny_open.insert(key, DenyEntry { entry, flags });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_a_component() {
        assert!(glob_match("*release", "os-release"));
        assert!(glob_match("*version", "debian_version"));
        assert!(!glob_match("*release", "release-notes"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn patterns_expand_to_existing_files_and_denies_win() {
        let dir = std::env::temp_dir().join(format!("aurora-watch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("home/alice")).unwrap();
        std::fs::write(dir.join("home/alice/.bashrc"), "").unwrap();
        std::fs::write(dir.join("os-release"), "").unwrap();
        std::fs::write(dir.join("denied"), "").unwrap();
        let d = dir.display();
        assert_eq!(
            expand(&format!("{d}/home/*/.bashrc")),
            vec![dir.join("home/alice/.bashrc")]
        );
        assert!(expand(&format!("{d}/nothing/*")).is_empty());
        let mut set = PolicySet::default();
        set.add(
            Path::new("p.yml"),
            &format!("mode: enforce\ndeny_open:\n  - path: {d}/denied\n"),
        )
        .unwrap();
        set.add_watches(&[
            WatchSpec {
                pattern: format!("{d}/*release"),
                reads: false,
            },
            WatchSpec {
                pattern: format!("{d}/denied"),
                reads: true,
            },
            WatchSpec {
                pattern: format!("{d}/os-release"),
                reads: true,
            },
        ]);
        let watched = set.deny_open[&file_key(&dir.join("os-release")).unwrap()];
        assert_eq!(watched.flags, DENY_WATCH_ANY, "reads widen a write watch");
        assert_eq!(set.entries[watched.entry as usize].list, "watch");
        let denied = set.deny_open[&file_key(&dir.join("denied")).unwrap()];
        assert_eq!(set.entries[denied.entry as usize].list, "deny_open");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
