//! The test corpora for `cargo xtask test|bench`: located through the one locator
//! (`tests/common/testdata.rs`), or fetched at the pinned SigmaHQ commit into target/testdata
//! when neither the environment nor the shared folder beside the clone provides them. The located paths are exported
//! to the child processes (cargo test, the benches) through the locator's variables, so they
//! all use the same data.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::testdata::{locate, Corpus, SIGMAHQ_COMMIT};
use crate::{root, run, step};

const SIGMAHQ_GIT: &str = "https://github.com/SigmaHQ/sigma.git";
/// SigmaHQ's folders that hold Linux rules (the layout the corpus keeps).
const RULE_TREES: &[&str] = &["rules", "rules-emerging-threats", "rules-threat-hunting"];

/// Both corpora, fetched if needed; sets AURORA_SIGMAHQ(_SCALE) for child processes.
pub fn ensure() -> Result<(PathBuf, PathBuf)> {
    let repo = root();
    let missing = [Corpus::SigmaHq, Corpus::SigmaHqScale]
        .into_iter()
        .find_map(|c| locate(c, &repo).err());
    if let Some(how) = missing {
        if let Err(e) = fetch_pinned(&repo) {
            bail!("{how}.\nThe pinned fetch did not work: {e:#}");
        }
    }
    let mut out = Vec::new();
    for c in [Corpus::SigmaHq, Corpus::SigmaHqScale] {
        let p = locate(c, &repo).map_err(anyhow::Error::msg)?;
        step(&format!("test data {}: {}", c.dir_name(), p.display()));
        // SAFETY: single-threaded at this point (before any child or thread is started).
        unsafe { std::env::set_var(c.env_var(), &p) };
        out.push(p);
    }
    Ok((out[0].clone(), out[1].clone()))
}

fn fetch_pinned(repo: &Path) -> Result<()> {
    let src = repo.join("target/testdata/sigmahq-src");
    if !src.join(".git").is_dir() || !src.join("rules").is_dir() {
        step(&format!(
            "fetching SigmaHQ {SIGMAHQ_COMMIT} (test data; set AURORA_SIGMAHQ and \
             AURORA_SIGMAHQ_SCALE to use a local copy instead)"
        ));
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&src)?;
        let git = |args: &[&str]| run(Command::new("git").arg("-C").arg(&src).args(args));
        git(&["init", "-q"])?;
        git(&["fetch", "-q", "--depth", "1", SIGMAHQ_GIT, SIGMAHQ_COMMIT])
            .context("fetching SigmaHQ (no network access to github.com?)")?;
        git(&["checkout", "-q", "FETCH_HEAD"])?;
    }
    derive_linux(&src, &Corpus::SigmaHq.fetched(repo))?;
    derive_scale(&src, &Corpus::SigmaHqScale.fetched(repo))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            yaml_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
    Ok(())
}

fn copy_license(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::copy(
        src.join("LICENSE.Detection.Rules.md"),
        dest.join("LICENSE.DRL-1.1"),
    )
    .context("SigmaHQ checkout has no LICENSE.Detection.Rules.md")?;
    Ok(())
}

/// Every rule whose logsource product is linux, original paths kept.
fn derive_linux(src: &Path, dest: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dest);
    copy_license(src, dest)?;
    let mut n = 0;
    for tree in RULE_TREES {
        let mut files = Vec::new();
        yaml_files(&src.join(tree), &mut files)?;
        for f in files {
            let text = std::fs::read_to_string(&f)?;
            if !text.lines().any(|l| l.trim() == "product: linux") {
                continue;
            }
            let rel = f.strip_prefix(src)?;
            std::fs::create_dir_all(dest.join(rel).parent().context("rule path")?)?;
            std::fs::write(dest.join(rel), text)?;
            n += 1;
        }
    }
    if n == 0 {
        bail!("no Linux rules found in {}", src.display());
    }
    step(&format!(
        "derived {n} SigmaHQ Linux rules into {}",
        dest.display()
    ));
    Ok(())
}

/// SigmaHQ's Windows process_creation rules with `product: windows` → `product: linux`
/// (rule-count scaling only; the corpus README says why two of them match every event).
fn derive_scale(src: &Path, dest: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dest);
    copy_license(src, dest)?;
    let mut files = Vec::new();
    yaml_files(&src.join("rules/windows/process_creation"), &mut files)?;
    for f in &files {
        let text = std::fs::read_to_string(f)?.replace("product: windows", "product: linux");
        std::fs::write(dest.join(f.file_name().context("rule name")?), text)?;
    }
    step(&format!(
        "derived {} scale rules into {}",
        files.len(),
        dest.display()
    ));
    Ok(())
}
