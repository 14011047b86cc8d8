//! `cargo xtask fuzz [SECONDS]`: every cargo-fuzz target in aurora-agent/fuzz (the JSONL replay
//! parser, the rule loader, the ring record decoders, the auditd, syslog/journal and DNS
//! parsers) for SECONDS each, seeded from the test fixtures; fails on any crash, naming the
//! input libFuzzer saved. A crash found becomes a regression test beside the parser.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::{root, run, step};

pub const TARGETS: &[&str] = &[
    "replay_jsonl",
    "rule_loader",
    "ring_decoder",
    "auditd",
    "syslog",
    "dns",
];

fn cargo_bin(name: &str) -> bool {
    std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".cargo/bin").join(name).is_file())
        .unwrap_or(false)
}

fn ensure_cargo_fuzz() -> Result<()> {
    if cargo_bin("cargo-fuzz") {
        return Ok(());
    }
    step("installing cargo-fuzz (about a minute)");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

/// Seed inputs: fixture lines and files, written once per target.
fn seed(corpus: &Path, target: &str) -> Result<()> {
    std::fs::create_dir_all(corpus)?;
    let fixtures = root().join("tests/fixtures");
    let mut n = 0usize;
    let mut put = |bytes: &[u8]| -> Result<()> {
        n += 1;
        std::fs::write(corpus.join(format!("seed-{n:04}")), bytes)?;
        Ok(())
    };
    let lines = |file: &str, max: usize| -> Result<Vec<String>> {
        let text = std::fs::read_to_string(fixtures.join(file)).with_context(|| file.to_owned())?;
        Ok(text.lines().take(max).map(str::to_owned).collect())
    };
    match target {
        "replay_jsonl" => {
            for f in [
                "attack_base64.jsonl",
                "benign.jsonl",
                "attack_tunnel_dns.jsonl",
                "sigmahq_synthetic.jsonl",
            ] {
                for l in lines(f, 40)? {
                    put(l.as_bytes())?;
                }
            }
        }
        "rule_loader" => {
            for e in std::fs::read_dir(root().join("rules/linux"))? {
                put(&std::fs::read(e?.path())?)?;
            }
        }
        "auditd" => {
            let all = lines("auditd_capture.log", 400)?;
            for chunk in all.chunks(8) {
                put(chunk.join("\n").as_bytes())?;
            }
        }
        "syslog" => {
            for l in lines("syslog_capture.log", 100)?
                .into_iter()
                .chain(lines("journal_export.jsonl", 100)?)
            {
                put(l.as_bytes())?;
            }
        }
        // An A answer for example.com and a CNAME chain (the unit tests' packets).
        "dns" => {
            put(&[
                0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p',
                b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e,
                0x10, 0, 4, 93, 184, 216, 34,
            ])?;
        }
        _ => {
            put(&[0u8; 64])?;
        }
    }
    Ok(())
}

pub fn run_fuzz(seconds: u64) -> Result<()> {
    ensure_cargo_fuzz()?;
    let fuzz_dir = root().join("aurora-agent/fuzz");
    let work = root().join("target/fuzz");
    step("building the fuzz targets (nightly, libFuzzer)");
    run(Command::new("cargo")
        .args(["+nightly", "fuzz", "build", "--fuzz-dir"])
        .arg(&fuzz_dir)
        .current_dir(root()))
    .context("building the fuzz targets")?;
    let mut failed: Vec<(String, PathBuf)> = Vec::new();
    for t in TARGETS {
        let corpus = work.join("corpus").join(t);
        if !corpus.exists() {
            seed(&corpus, t)?;
        }
        let artifacts = work.join("artifacts").join(t);
        std::fs::create_dir_all(&artifacts)?;
        step(&format!("fuzz {t}: {seconds} s"));
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg(t)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-rss_limit_mb=2048", "-print_final_stats=1"])
            .current_dir(root())
            .status()
            .context("cargo fuzz")?;
        if !status.success() {
            failed.push((t.to_string(), artifacts));
        }
    }
    if !failed.is_empty() {
        for (t, a) in &failed {
            eprintln!("xtask: fuzz {t}: crash, input saved in {}", a.display());
        }
        bail!("{} fuzz target(s) found a crash", failed.len());
    }
    step(&format!(
        "fuzz: {} targets, {seconds} s each, no crash",
        TARGETS.len()
    ));
    Ok(())
}
