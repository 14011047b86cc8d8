//! The one locator for test data that is not ours to ship: the SigmaHQ Linux rule corpus and
//! the rule-count scaling corpus. Used by the test suites, the benches and xtask (which
//! includes this file), so every consumer looks in the same places, in this order:
//! 1. the environment (`AURORA_SIGMAHQ`, `AURORA_SIGMAHQ_SCALE`);
//! 2. `../shared/` beside the repository (how CI lays it out);
//! 3. `target/testdata/`, where `cargo xtask test` puts the pinned fetch of SigmaHQ.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// SigmaHQ commit the corpora are taken from (the Linux rules and the scale set).
pub const SIGMAHQ_COMMIT: &str = "8eaafff1f2845a696050e05e72ba1140ee190698";

#[derive(Clone, Copy, Debug)]
pub enum Corpus {
    /// Every SigmaHQ rule with `product: linux` (248 at the pinned commit).
    SigmaHq,
    /// 1,183 Windows process_creation rules rewritten to `product: linux`.
    SigmaHqScale,
}

impl Corpus {
    pub fn env_var(self) -> &'static str {
        match self {
            Corpus::SigmaHq => "AURORA_SIGMAHQ",
            Corpus::SigmaHqScale => "AURORA_SIGMAHQ_SCALE",
        }
    }

    pub fn dir_name(self) -> &'static str {
        match self {
            Corpus::SigmaHq => "sigmahq",
            Corpus::SigmaHqScale => "sigmahq-scale",
        }
    }

    /// Where the pinned fetch leaves this corpus.
    pub fn fetched(self, repo: &Path) -> PathBuf {
        repo.join("target/testdata").join(self.dir_name())
    }
}

/// The corpus directory, or a message that says how to provide it.
pub fn locate(corpus: Corpus, repo: &Path) -> Result<PathBuf, String> {
    let var = corpus.env_var();
    if let Some(v) = std::env::var_os(var) {
        let p = PathBuf::from(v);
        return if p.is_dir() {
            Ok(p)
        } else {
            Err(format!("{var}={} is not a directory", p.display()))
        };
    }
    let candidates = [
        repo.join("../shared").join(corpus.dir_name()),
        corpus.fetched(repo),
    ];
    candidates
        .iter()
        .find(|p| p.is_dir())
        .cloned()
        .ok_or_else(|| {
            format!(
                "test data '{}' not found: set {var} to its directory, place it at {}, or run \
             `cargo xtask test`, which fetches SigmaHQ commit {SIGMAHQ_COMMIT} into {} \
             (needs git and network access to github.com)",
                corpus.dir_name(),
                candidates[0].display(),
                candidates[1].display(),
            )
        })
}

/// [`locate`] for tests and benches: a missing corpus fails with the message alone.
pub fn require(corpus: Corpus, repo: &Path) -> PathBuf {
    locate(corpus, repo).unwrap_or_else(|msg| {
        eprintln!("{msg}");
        std::process::exit(2)
    })
}
