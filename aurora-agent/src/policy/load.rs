//! Policy files (`--policy FILE`): what the kernel denies. Each file is parsed strictly
//! (unknown keys, malformed hashes and missing paths are errors naming the file and line),
//! then resolved to what the kernel compares: paths to (dev, inode), cgroup paths to cgroup v2
//! ids. Every entry keeps where it was written (`file:line`), which block events report.
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use aurora_common::{DenyEntry, FileKey, DENY_ENFORCE};
use serde::Deserialize;

/// audit: report what would be denied; enforce: deny it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Audit,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Enforce => "enforce",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    deny_exec: Vec<ExecEntryDoc>,
    #[serde(default)]
    deny_open: Vec<OpenEntryDoc>,
    #[serde(default)]
    exempt: ExemptDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecEntryDoc {
    path: Option<PathBuf>,
    sha256: Option<String>,
    /// `MAJOR:MINOR` as `stat -c %Hd:%Ld` prints it.
    dev: Option<String>,
    ino: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenEntryDoc {
    path: Option<PathBuf>,
    prefix: Option<PathBuf>,
    dev: Option<String>,
    ino: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExemptDoc {
    #[serde(default)]
    cgroups: Vec<String>,
    #[serde(default)]
    images: Vec<PathBuf>,
}

/// One deny entry as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `file:line`.
    pub source: String,
    /// `deny_exec` or `deny_open`.
    pub list: &'static str,
    /// What it names: `path /opt/x`, `sha256 9f86…`, `inode 8:1/1234`, `prefix /srv/`.
    pub what: String,
    pub mode: Mode,
}

/// Every loaded policy, resolved: the kernel maps' contents and the entries they point into.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    pub entries: Vec<Entry>,
    pub deny_exec: BTreeMap<FileKey, DenyEntry>,
    pub deny_open: BTreeMap<FileKey, DenyEntry>,
    /// Directories whose contents are denied to open (`prefix:` entries), by (dev, inode).
    pub deny_open_dirs: BTreeMap<FileKey, DenyEntry>,
    /// sha256 → entry, for executables user space hashes.
    pub deny_sha256: BTreeMap<[u8; 32], DenyEntry>,
    pub exempt_cgroups: BTreeSet<u64>,
    pub exempt_images: BTreeSet<FileKey>,
    pub files: Vec<PathBuf>,
    /// The watches added to it (`watch.rs`), resolved again on reload.
    pub watches: Vec<super::WatchSpec>,
    /// sha256 of the files' names and texts, in order (what the fleet's heartbeats report).
    pub digest: String,
    /// A mode the fleet imposed on every deny entry (`aurora fleet cmd HOST policy-mode`),
    /// kept across reloads like the watches.
    pub forced_mode: Option<Mode>,
}

impl PolicySet {
    /// Load and resolve every file, in order; the first error stops it. A directory stands
    /// for its `*.yml`/`*.yaml` files in name order (the fleet's policy bundle is one).
    pub fn load(files: &[PathBuf]) -> Result<PolicySet, PolicyError> {
        use sha2::Digest as _;
        let mut set = PolicySet {
            files: files.to_vec(),
            ..Default::default()
        };
        let mut digest = sha2::Sha256::new();
        for f in expand_dirs(files)? {
            let text = std::fs::read_to_string(&f).map_err(|e| PolicyError {
                file: f.display().to_string(),
                line: 0,
                reason: format!("cannot read policy file: {e}"),
            })?;
            digest.update(f.file_name().unwrap_or_default().as_encoded_bytes());
            digest.update([0]);
            digest.update(text.as_bytes());
            digest.update([0]);
            set.add(&f, &text)?;
        }
        set.digest = format!("{:x}", digest.finalize());
        Ok(set)
    }

    /// Every deny entry in `mode` (watches keep theirs: they never refuse anything).
    pub fn force_mode(&mut self, mode: Mode) {
        self.forced_mode = Some(mode);
        let watch: Vec<bool> = self.entries.iter().map(|e| e.list == "watch").collect();
        for (e, _) in self.entries.iter_mut().zip(&watch).filter(|(_, w)| !**w) {
            e.mode = mode;
        }
        let maps = [
            self.deny_exec.values_mut().collect::<Vec<_>>(),
            self.deny_open.values_mut().collect(),
            self.deny_open_dirs.values_mut().collect(),
            self.deny_sha256.values_mut().collect(),
        ];
        for d in maps.into_iter().flatten() {
            if watch.get(d.entry as usize) == Some(&false) {
                d.flags = match mode {
                    Mode::Enforce => d.flags | DENY_ENFORCE,
                    Mode::Audit => d.flags & !DENY_ENFORCE,
                };
            }
        }
    }

    /// Parse one file's text into the set.
    pub fn add(&mut self, file: &Path, text: &str) -> Result<(), PolicyError> {
        let name = file.display().to_string();
        let err = |line: usize, reason: String| PolicyError {
            file: name.clone(),
            line,
            reason,
        };
        let doc: PolicyDoc = if text.trim().is_empty() {
            PolicyDoc::default()
        } else {
            yaml_serde::from_str(text).map_err(|e| {
                let line = e.location().map(|l| l.line()).unwrap_or(0);
                err(line, e.to_string())
            })?
        };
        let exec_lines = item_lines(text, "deny_exec");
        for (i, e) in doc.deny_exec.into_iter().enumerate() {
            let line = exec_lines.get(i).copied().unwrap_or(0);
            let (what, target) = exec_target(e).map_err(|r| err(line, r))?;
            let deny = self.push(&name, line, "deny_exec", what, doc.mode);
            match target {
                Target::File(key) => {
                    self.deny_exec.insert(key, deny);
                }
                Target::Sha256(h) => {
                    self.deny_sha256.insert(h, deny);
                }
            }
        }
        let open_lines = item_lines(text, "deny_open");
        for (i, e) in doc.deny_open.into_iter().enumerate() {
            let line = open_lines.get(i).copied().unwrap_or(0);
            let (what, key, dir) = open_target(e).map_err(|r| err(line, r))?;
            let deny = self.push(&name, line, "deny_open", what, doc.mode);
            if dir {
                self.deny_open_dirs.insert(key, deny);
            } else {
                self.deny_open.insert(key, deny);
            }
        }
        let line_of = |needle: &str| find_line(text, needle);
        for cg in &doc.exempt.cgroups {
            let id = cgroup_id(cg).map_err(|r| err(line_of(cg), r))?;
            self.exempt_cgroups.insert(id);
        }
        for img in &doc.exempt.images {
            let key = file_key(img).map_err(|r| err(line_of(&img.to_string_lossy()), r))?;
            self.exempt_images.insert(key);
        }
        Ok(())
    }

    fn push(
        &mut self,
        file: &str,
        line: usize,
        list: &'static str,
        what: String,
        mode: Mode,
    ) -> DenyEntry {
        let entry = self.entries.len() as u32;
        self.entries.push(Entry {
            source: format!("{file}:{line}"),
            list,
            what,
            mode,
        });
        DenyEntry {
            entry,
            flags: if mode == Mode::Enforce {
                DENY_ENFORCE
            } else {
                0
            },
        }
    }

    /// No deny entries (watches do not count: they never refuse anything).
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|e| e.list == "watch")
    }

    /// Entries per list and mode, for the deny-entry gauges: `(list, mode, count)`.
    pub fn counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut m: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for e in &self.entries {
            *m.entry((e.list, e.mode.as_str())).or_default() += 1;
        }
        m.into_iter().map(|((l, md), n)| (l, md, n)).collect()
    }
}

/// Files as given, directories replaced by their policy files in name order.
fn expand_dirs(files: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    for f in files {
        if !f.is_dir() {
            out.push(f.clone());
            continue;
        }
        let list = std::fs::read_dir(f).map_err(|e| PolicyError {
            file: f.display().to_string(),
            line: 0,
            reason: format!("cannot read policy directory: {e}"),
        })?;
        let mut found: Vec<PathBuf> = list
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

enum Target {
    File(FileKey),
    Sha256([u8; 32]),
}

fn exec_target(e: ExecEntryDoc) -> Result<(String, Target), String> {
    match (e.path, e.sha256, e.dev, e.ino) {
        (Some(p), None, None, None) => {
            let key = file_key(&p)?;
            Ok((format!("path {}", p.display()), Target::File(key)))
        }
        (None, Some(h), None, None) => {
            let hash = parse_sha256(&h)?;
            Ok((
                format!("sha256 {}", h.to_ascii_lowercase()),
                Target::Sha256(hash),
            ))
        }
        (None, None, Some(dev), Some(ino)) => {
            let key = inode_key(&dev, ino)?;
            Ok((format!("inode {dev}/{ino}"), Target::File(key)))
        }
        _ => Err("an exec entry names exactly one of: path, sha256, or dev + ino".into()),
    }
}

fn open_target(e: OpenEntryDoc) -> Result<(String, FileKey, bool), String> {
    match (e.path, e.prefix, e.dev, e.ino) {
        (Some(p), None, None, None) => Ok((format!("path {}", p.display()), file_key(&p)?, false)),
        (None, Some(p), None, None) => {
            let meta = std::fs::metadata(&p).map_err(|e| format!("prefix {}: {e}", p.display()))?;
            if !meta.is_dir() {
                return Err(format!("prefix {}: not a directory", p.display()));
            }
            Ok((format!("prefix {}", p.display()), key_of(&meta), true))
        }
        (None, None, Some(dev), Some(ino)) => {
            Ok((format!("inode {dev}/{ino}"), inode_key(&dev, ino)?, false))
        }
        _ => Err("an open entry names exactly one of: path, prefix, or dev + ino".into()),
    }
}

/// The kernel's dev_t (`major << 20 | minor`) from stat's numbers.
pub fn kernel_dev(major: u64, minor: u64) -> u64 {
    (major << 20) | minor
}

fn key_of(meta: &std::fs::Metadata) -> FileKey {
    let dev = meta.dev();
    FileKey {
        dev: kernel_dev(libc::major(dev) as u64, libc::minor(dev) as u64),
        ino: meta.ino(),
    }
}

/// A path's (dev, inode), following symlinks (what exec and open reach).
pub fn file_key(path: &Path) -> Result<FileKey, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("path {}: {e}", path.display()))?;
    Ok(key_of(&meta))
}

fn inode_key(dev: &str, ino: u64) -> Result<FileKey, String> {
    let (maj, min) = dev
        .split_once(':')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| {
            format!("dev {dev:?}: expected MAJOR:MINOR (as `stat -c %Hd:%Ld` prints)")
        })?;
    Ok(FileKey {
        dev: kernel_dev(maj, min),
        ino,
    })
}

fn parse_sha256(h: &str) -> Result<[u8; 32], String> {
    let bad = || format!("sha256 {h:?}: expected 64 hexadecimal digits");
    if h.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The cgroup v2 id of a cgroup path (the inode of its directory in the cgroup2 mount).
fn cgroup_id(path: &str) -> Result<u64, String> {
    let root = cgroup2_root().ok_or_else(|| {
        format!(
            "cgroup {path}: no cgroup v2 hierarchy is mounted (exempt cgroups are cgroup v2 paths)"
        )
    })?;
    let dir = root.join(path.trim_start_matches('/'));
    let meta =
        std::fs::metadata(&dir).map_err(|e| format!("cgroup {path}: {}: {e}", dir.display()))?;
    Ok(meta.ino())
}

/// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup on pure v2, .../unified on hybrid).
pub fn cgroup2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mount = pre.split(' ').nth(4)?;
        (post.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// 1-based lines of the items of the block list under `key:` (`- ` at the list's indentation).
fn item_lines(text: &str, key: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| {
        l.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with(':'))
    }) else {
        return vec![];
    };
    let mut out = vec![];
    let mut indent = None;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = l.len() - t.len();
        if ind == 0 && !t.starts_with('-') {
            break;
        }
        if (t.starts_with("- ") || t == "-") && *indent.get_or_insert(ind) == ind {
            out.push(i + 1);
        }
    }
    out
}

fn find_line(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(text: &str) -> Result<PolicySet, PolicyError> {
        let mut set = PolicySet::default();
        set.add(Path::new("p.yml"), text).map(|()| set)
    }

    #[test]
    fn entries_resolve_and_name_their_line() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let set = add(&format!(
            "mode: enforce\n# comment\ndeny_exec:\n  - path: /bin/sh\n\n  - sha256: {hash}\n  - dev: '8:1'\n    ino: 42\n\
             deny_open:\n  - prefix: /tmp/\n"
        ))
        .unwrap();
        let lines: Vec<&str> = set.entries.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(lines, ["p.yml:4", "p.yml:6", "p.yml:7", "p.yml:10"]);
        assert!(set.entries.iter().all(|e| e.mode == Mode::Enforce));
        assert_eq!(set.deny_exec.len(), 2);
        assert!(set.deny_exec.contains_key(&FileKey {
            dev: kernel_dev(8, 1),
            ino: 42
        }));
        assert_eq!(set.deny_sha256.len(), 1);
        assert_eq!(set.deny_open_dirs.len(), 1);
        assert_eq!(
            set.counts(),
            vec![("deny_exec", "enforce", 3), ("deny_open", "enforce", 1)]
        );
    }

    #[test]
    fn default_mode_is_audit_and_flags_say_so() {
        let set = add("deny_exec:\n  - path: /bin/sh\n").unwrap();
        assert_eq!(set.entries[0].mode, Mode::Audit);
        assert_eq!(set.deny_exec.values().next().unwrap().flags, 0);
    }

    #[test]
    fn bad_input_names_line_and_reason() {
        for (text, line, reason) in [
            (
                "deny_exec:\n  - path: /bin/sh\nbogus: 1\n",
                3,
                "unknown field `bogus`",
            ),
            ("deny_exec:\n  - path: /nonexistent/x\n", 2, "No such file"),
            ("deny_exec:\n  - sha256: abc\n", 2, "64 hexadecimal"),
            (
                "deny_exec:\n  - path: /bin/sh\n    sha256: abc\n",
                2,
                "exactly one",
            ),
            ("deny_exec:\n  - dev: 'x'\n    ino: 1\n", 2, "MAJOR:MINOR"),
            ("deny_open:\n  - prefix: /bin/sh\n", 2, "not a directory"),
            ("mode: block\n", 1, "unknown variant"),
        ] {
            let e = add(text).unwrap_err();
            assert_eq!((e.line, e.file.as_str()), (line, "p.yml"), "{text}: {e}");
            assert!(e.reason.contains(reason), "{text}: {e}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = PolicySet::load(&[PathBuf::from("/nonexistent/policy.yml")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/policy.yml:0: cannot read"),
            "{e}"
        );
    }
}
