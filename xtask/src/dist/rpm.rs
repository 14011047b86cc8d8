//! The .rpm, in RHEL's conventions (unit in /usr/lib/systemd/system, flags in
//! /etc/sysconfig/aurora, licenses under /usr/share/licenses, zsh completions in
//! site-functions), built with rpmbuild from Debian's `rpm` package: the staged tree is the
//! whole %install, so the .rpm holds the same files as the .deb. Scriptlets do what
//! RHEL's %systemd_* macros do (those macros are not in Debian's rpm): reload on install, stop
//! and disable on erase, try-restart on upgrade; not enabled on install (same policy as the
//! .deb). /etc files are %config(noreplace).
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use super::{stage, write, Inputs, RHEL, VERSION};
use crate::run;

fn rpm_arch(deb_arch: &str) -> &str {
    match deb_arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
}

/// %files entries for the staged tree: our directories, files, /etc as config.
fn files_section(tree: &Path) -> Result<String> {
    let mut out = String::new();
    for d in [
        "/etc/aurora",
        "/usr/share/aurora",
        "/usr/share/doc/aurora",
        "/usr/share/licenses/aurora",
    ] {
        let mut stack = vec![tree.join(d.trim_start_matches('/'))];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                out += &format!("%dir /{}\n", p.strip_prefix(tree)?.display());
                for e in std::fs::read_dir(&p)? {
                    let e = e?.path();
                    if e.is_dir() {
                        stack.push(e);
                    }
                }
            }
        }
    }
    let list = Command::new("sh")
        .arg("-c")
        .arg("find . -type f | LC_ALL=C sort | sed 's|^\\.||'")
        .current_dir(tree)
        .output()
        .context("find")?;
    for f in String::from_utf8(list.stdout)?.lines() {
        if f.starts_with("/usr/share/licenses/") {
            out += &format!("%license {f}\n");
        } else if f.starts_with("/etc/") {
            out += &format!("%config(noreplace) {f}\n");
        } else {
            out += &format!("{f}\n");
        }
    }
    out +=
        "%dir %attr(0750,root,root) /var/log/aurora\n%dir %attr(0700,root,root) /var/lib/aurora\n";
    Ok(out)
}

fn spec(tree: &Path, arch: &str) -> Result<String> {
    Ok(format!(
        r#"Name: aurora
Version: {VERSION}
Release: 1
Summary: Linux host EDR agent with eBPF telemetry and Sigma rules
License: MIT OR Apache-2.0
Group: System Environment/Daemons
Packager: Aurora maintainers <aurora@example.org>
URL: https://example.org/aurora
Requires: logrotate
BuildArch: {arch}
%global debug_package %{{nil}}
%global __os_install_post %{{nil}}
%define _build_id_links none

%description
Aurora collects process, file, network and DNS telemetry with eBPF CO-RE
programs, follows auditd's log and the system logs, and evaluates Sigma rules
routed by logsource. Alerts go to stdout, a file or a syslog collector.

%install
cp -a {tree}/. %{{buildroot}}/
mkdir -p %{{buildroot}}/var/log/aurora %{{buildroot}}/var/lib/aurora

%post
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi

%preun
if [ $1 -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now aurora.service >/dev/null 2>&1 || :
fi

%postun
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ $1 -ge 1 ]; then systemctl try-restart aurora.service >/dev/null 2>&1 || :; fi
fi

%files
{files}
%changelog
* Mon Nov 30 2026 Aurora maintainers <aurora@example.org> - {VERSION}-1
- auditd and system-log sources, DNS correlation, VFS file sensor, metrics, packages.
"#,
        tree = tree.display(),
        files = files_section(tree)?,
    ))
}

pub fn build(dist: &Path, inputs: &Inputs) -> Result<PathBuf> {
    let arch = rpm_arch(&inputs.arch).to_owned();
    let tree = dist.join(format!("rpm-{arch}"));
    stage(&tree, inputs, &RHEL)?;
    let top = dist.join("rpmbuild");
    let _ = std::fs::remove_dir_all(&top);
    let spec_path = top.join("aurora.spec");
    write(&spec_path, spec(&tree, &arch)?.as_bytes(), 0o644)?;
    let epoch = inputs.epoch.to_string();
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--quiet")
        .args(["--define", &format!("_topdir {}", top.display())])
        .args(["--define", "_buildhost reproducible"])
        .args(["--define", "use_source_date_epoch_as_buildtime 1"])
        .args(["--define", "clamp_mtime_to_source_date_epoch 1"])
        .args([
            "--define",
            "_source_payload w9.gzdio",
            "--define",
            "_binary_payload w9.gzdio",
        ])
        .env("SOURCE_DATE_EPOCH", &epoch)
        .arg(&spec_path))?;
    let built = top.join(format!("RPMS/{arch}/aurora-{VERSION}-1.{arch}.rpm"));
    let out = dist.join(built.file_name().context("rpm name")?);
    std::fs::rename(&built, &out).with_context(|| format!("moving {}", built.display()))?;
    Ok(out)
}
