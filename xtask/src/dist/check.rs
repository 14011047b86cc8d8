//! `cargo xtask dist --check` (run by `cargo xtask test`): the packages as an operator meets
//! them. Rebuilt twice, same bytes; lintian reports no error and no warning; the .deb
//! installs, runs, has its manual page and a unit systemd accepts, and remove + purge leave
//! nothing behind; the .rpm lists its files in RHEL's places, with config files and
//! scriptlets, and rpmlint reports no error.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::step;

fn sha256(p: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .context("sha256sum")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_owned())
}

fn output(cmd: &mut Command) -> Result<(bool, String)> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

fn must(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let (ok, text) = output(cmd)?;
    if !ok {
        bail!("{shown} failed:\n{text}");
    }
    Ok(text)
}

pub fn run(artifacts: &[PathBuf]) -> Result<()> {
    reproducible(artifacts)?;
    let deb = artifacts
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("no .deb")?;
    let rpm = artifacts
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "rpm"))
        .context("no .rpm")?;
    lintian(deb)?;
    install_cycle(deb)?;
    rpm_checks(rpm)?;
    step("packages: all checks passed");
    Ok(())
}

fn reproducible(first: &[PathBuf]) -> Result<()> {
    step("reproducibility: building every artifact a second time");
    let before: Vec<String> = first.iter().map(|p| sha256(p)).collect::<Result<_>>()?;
    let second = super::build()?;
    for ((a, h), b) in first.iter().zip(&before).zip(&second) {
        let h2 = sha256(b)?;
        if *h != h2 {
            bail!("{} differs between two builds ({h} vs {h2})", a.display());
        }
        step(&format!("same bytes: {} {h}", a.display()));
    }
    Ok(())
}

fn lintian(deb: &Path) -> Result<()> {
    step(&format!("lintian {}", deb.display()));
    let (_, text) = output(
        Command::new("lintian")
            .args(["--tag-display-limit", "0"])
            .arg(deb),
    )?;
    print!("{text}");
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    if !bad.is_empty() {
        bail!("lintian: {} error(s)/warning(s)", bad.len());
    }
    Ok(())
}

fn exists(p: &str) -> bool {
    Path::new(p).exists()
}

fn install_cycle(deb: &Path) -> Result<()> {
    step("dpkg -i, run, man page, unit, remove, purge");
    must(Command::new("dpkg").arg("-i").arg(deb))?;
    let version = must(Command::new("/usr/bin/aurora").arg("--version"))?;
    if !version.contains(super::VERSION) {
        bail!("aurora --version: {version}");
    }
    let man =
        must(Command::new("man").args(["-P", "cat", "-l", "/usr/share/man/man8/aurora.8.gz"]))?;
    if !man.contains("aurora") {
        bail!("man aurora: {man}");
    }
    must(Command::new("man").args(["-P", "cat", "-l", "/usr/share/man/man8/aurora-replay.8.gz"]))?;
    must(Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/aurora.service"]))?;
    let conffiles = must(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "aurora"]))?;
    for want in [
        "/etc/default/aurora",
        "/etc/aurora/rules/logsources.yml",
        "/etc/logrotate.d/aurora",
    ] {
        if !conffiles.contains(want) {
            bail!("{want} is not a conffile:\n{conffiles}");
        }
    }
    for (dir, mode) in [("/var/log/aurora", 0o750), ("/var/lib/aurora", 0o700)] {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(dir).with_context(|| format!("{dir} not made by postinst"))?;
        if m.permissions().mode() & 0o7777 != mode {
            bail!(
                "{dir}: mode {:o}, want {mode:o}",
                m.permissions().mode() & 0o7777
            );
        }
    }
    must(Command::new("dpkg").args(["-r", "aurora"]))?;
    if exists("/usr/bin/aurora") || !exists("/etc/default/aurora") {
        bail!("after remove: the binary must be gone and the configuration kept");
    }
    must(Command::new("dpkg").args(["-P", "aurora"]))?;
    let left: Vec<&str> = [
        "/usr/bin/aurora",
        "/etc/default/aurora",
        "/etc/aurora",
        "/etc/logrotate.d/aurora",
        "/lib/systemd/system/aurora.service",
        "/var/log/aurora",
        "/var/lib/aurora",
        "/usr/share/doc/aurora",
        "/usr/share/aurora",
    ]
    .into_iter()
    .filter(|p| exists(p))
    .collect();
    if !left.is_empty() {
        bail!("left behind after purge: {left:?}");
    }
    let (known, _) = output(Command::new("dpkg").args(["-s", "aurora"]))?;
    if known {
        bail!("dpkg still knows aurora after purge");
    }
    Ok(())
}

fn rpm_checks(rpm: &Path) -> Result<()> {
    step(&format!(
        "rpm -qlp / --scripts / --configfiles, rpmlint {}",
        rpm.display()
    ));
    let list = must(Command::new("rpm").arg("-qlp").arg(rpm))?;
    for want in [
        "/usr/bin/aurora",
        "/usr/lib/systemd/system/aurora.service",
        "/etc/sysconfig/aurora",
        "/etc/aurora/rules/logsources.yml",
        "/usr/share/man/man8/aurora.8.gz",
        "/usr/share/bash-completion/completions/aurora",
        "/usr/share/zsh/site-functions/_aurora",
        "/usr/share/fish/vendor_completions.d/aurora.fish",
        "/usr/share/licenses/aurora/LICENSE-MIT",
        "/var/lib/aurora",
    ] {
        if !list.lines().any(|l| l == want) {
            bail!("{want} missing from the .rpm:\n{list}");
        }
    }
    let scripts = must(Command::new("rpm").args(["-qp", "--scripts"]).arg(rpm))?;
    for want in [
        "daemon-reload",
        "disable --now aurora.service",
        "try-restart aurora.service",
    ] {
        if !scripts.contains(want) {
            bail!("the .rpm scriptlets lack {want}:\n{scripts}");
        }
    }
    let config = must(Command::new("rpm").args(["-qp", "--configfiles"]).arg(rpm))?;
    if !config.contains("/etc/sysconfig/aurora") {
        bail!("/etc/sysconfig/aurora is not %config:\n{config}");
    }
    let unit = must(Command::new("sh").arg("-c").arg(format!(
        "rpm2cpio {} | cpio -i --quiet --to-stdout ./usr/lib/systemd/system/aurora.service",
        rpm.display()
    )))?;
    if !unit.contains("EnvironmentFile=-/etc/sysconfig/aurora")
        || !unit.contains("ExecStart=/usr/bin/aurora")
    {
        bail!("the .rpm's unit does not point at RHEL paths:\n{unit}");
    }
    let rc = crate::root().join("deploy/rpm/aurora.rpmlintrc");
    let (_, lint) = output(Command::new("rpmlint").arg("--rpmlintrc").arg(&rc).arg(rpm))?;
    print!("{lint}");
    let found: Vec<&str> = lint
        .lines()
        .filter(|l| l.contains(": E: ") || l.contains(": W: "))
        .collect();
    if !found.is_empty() {
        bail!(
            "rpmlint: {} error(s)/warning(s) not filtered with a reason",
            found.len()
        );
    }
    Ok(())
}
