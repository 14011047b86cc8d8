//! The .deb, to Debian policy: binary in /usr/bin (stripped), unit in /lib/systemd/system,
//! every file under /etc a conffile (an operator's edited rules or flags survive upgrades),
//! machine-readable copyright, changelog.gz, man pages, completions, md5sums, and maintainer
//! scripts through deb-systemd-helper/-invoke (deploy/debian/). `/var/log/aurora` and
//! `/var/lib/aurora` are made by postinst (0750, 0700) and removed on purge.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use super::{stage, write, Inputs, DEBIAN, VERSION};
use crate::{root, run};

/// `libc6 (>= 2.34), libgcc-s1`: from the binary's NEEDED entries and its newest GLIBC symbol.
fn depends(binary: &Path) -> Result<String> {
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .context("readelf")?;
    let needed = String::from_utf8_lossy(&dynamic.stdout).into_owned();
    let syms = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .context("objdump")?;
    let text = String::from_utf8_lossy(&syms.stdout);
    let glibc = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .max()
        .unwrap_or((2, 31));
    let mut deps = vec![format!("libc6 (>= {}.{})", glibc.0, glibc.1)];
    if needed.contains("libgcc_s.so.1") {
        deps.push("libgcc-s1 (>= 4.2)".into());
    }
    Ok(deps.join(", "))
}

fn installed_kib(dir: &Path) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                total += std::fs::metadata(&p)?.len().div_ceil(1024);
            }
        }
    }
    Ok(total)
}

fn md5sums(dir: &Path) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -path ./DEBIAN -prune -o -type f -print | LC_ALL=C sort | sed 's|^\\./||' | xargs -d '\\n' md5sum")
        .current_dir(dir)
        .output()
        .context("md5sum")?;
    anyhow::ensure!(out.status.success(), "md5sum failed");
    Ok(String::from_utf8(out.stdout)?)
}

pub fn build(dist: &Path, inputs: &Inputs) -> Result<PathBuf> {
    let dir = dist.join(format!("deb-{}", inputs.arch));
    let conffiles = stage(&dir, inputs, &DEBIAN)?;
    write(
        &dir.join("usr/share/lintian/overrides/aurora"),
        &std::fs::read(root().join("deploy/debian/lintian-overrides"))?,
        0o644,
    )?;
    let debian = dir.join("DEBIAN");
    let control = format!(
        "Package: aurora\n\
         Version: {VERSION}\n\
         Architecture: {arch}\n\
         Maintainer: Aurora maintainers <aurora@example.org>\n\
         Installed-Size: {size}\n\
         Depends: {deps}\n\
         Recommends: logrotate\n\
         Suggests: auditd, rsyslog\n\
         Section: admin\n\
         Priority: optional\n\
         Homepage: https://example.org/aurora\n\
         Description: Linux host EDR agent with eBPF telemetry and Sigma rules\n \
         Aurora collects process, file, network and DNS telemetry with eBPF CO-RE\n \
         programs, follows auditd's log and the system logs, and evaluates Sigma\n \
         rules routed by logsource (all of SigmaHQ's Linux rules have a sensor).\n \
         Alerts go to stdout, a file or a syslog collector as JSON or syslog.\n",
        arch = inputs.arch,
        size = installed_kib(&dir)?,
        deps = depends(&inputs.binary)?,
    );
    write(&debian.join("control"), control.as_bytes(), 0o644)?;
    write(
        &debian.join("conffiles"),
        (conffiles.join("\n") + "\n").as_bytes(),
        0o644,
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read(root().join("deploy/debian").join(script))?;
        write(&debian.join(script), &text, 0o755)?;
    }
    let sums = md5sums(&dir)?;
    write(&debian.join("md5sums"), sums.as_bytes(), 0o644)?;
    super::normalize(&dir, inputs.epoch)?;
    let deb = dist.join(format!("aurora_{VERSION}_{}.deb", inputs.arch));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .env("SOURCE_DATE_EPOCH", inputs.epoch.to_string())
        .arg(&dir)
        .arg(&deb))?;
    Ok(deb)
}
