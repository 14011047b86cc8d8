//! Every flag the documentation names exists: each `--flag` in README.md and docs/*.md is in
//! `aurora --help` or a subcommand's, or is another tool's flag listed here with its tool.
mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

/// Flags of other programs the docs show in commands, and whose they are.
const OTHER_TOOLS: &[(&str, &str)] = &[
    ("--check", "cargo xtask dist"),
    ("--parts", "cargo xtask bench"),
    ("--quick", "cargo xtask bench"),
    ("--rounds", "cargo xtask bench"),
    ("--workspace", "cargo test"),
    ("--include-ignored", "cargo test"),
    ("--test-threads", "cargo test"),
    ("--configfiles", "rpm"),
    ("--scripts", "rpm"),
    ("--depth", "git clone"),
    ("--follow", "journalctl"),
    ("--load", "augenrules"),
    ("--now", "systemctl"),
    ("--offline", "systemd-analyze security"),
    ("--uninstall", "deploy/install.sh"),
    ("--with-audit-rules", "deploy/install.sh"),
];

fn help_text() -> String {
    let mut all = String::new();
    for sub in [
        &[][..],
        &["replay"],
        &["record"],
        &["rules", "check"],
        &["consume"],
        &["fleet", "cmd"],
        &["fleet", "push-rules"],
        &["fleet", "enroll"],
        &["fleet", "status"],
        &["console"],
    ] {
        let out = Command::new(aurora())
            .args(sub)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "aurora {sub:?} --help");
        all += &String::from_utf8_lossy(&out.stdout);
    }
    all
}

/// `--name` tokens of a text (letters, digits and dashes after two dashes).
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        let starts = b[i] == b'-'
            && b[i + 1] == b'-'
            && b[i + 2].is_ascii_lowercase()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-'));
        if starts {
            let end = (i + 2..b.len())
                .find(|&j| !(b[j].is_ascii_alphanumeric() || b[j] == b'-'))
                .unwrap_or(b.len());
            out.insert(text[i..end].trim_end_matches('-').to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn every_flag_the_docs_name_exists() {
    let help = help_text();
    let known: BTreeSet<String> = flags(&help);
    let mut docs = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    assert!(docs.len() > 5, "README and the docs");
    let mut unknown = Vec::new();
    for d in &docs {
        for f in flags(&std::fs::read_to_string(d).unwrap()) {
            if !known.contains(&f) && !OTHER_TOOLS.iter().any(|(o, _)| *o == f) {
                unknown.push(format!("{}: {f}", d.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "flags the docs name that aurora does not have:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_readme_is_short_and_no_document_is_a_diary() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 300,
        "README.md has {} lines",
        readme.lines().count()
    );
    let out = Command::new("git")
        .args(["grep", "-n", "-i", "-E", "session [0-9]"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
