//! Kernel images for the matrix: Debian's `cloud-amd64` kernel packages, fetched through apt
//! with a private configuration under `target/kernels/apt` (the system's apt state and sources
//! are never touched), unpacked with `dpkg --fsys-tarfile`, cached under `target/kernels/`.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::{root, run, step};

/// Where a kernel package comes from.
#[derive(Clone, Copy, Debug)]
pub enum Archive {
    /// The main archive (`debian`), e.g. bookworm.
    Main(&'static str),
    /// The security archive (`debian-security`), e.g. bullseye-security.
    Security(&'static str),
}

/// A kernel of the matrix: a pinned package, and the series to fall back to (newest of it)
/// when the archive no longer carries the pinned build.
#[derive(Clone, Copy, Debug)]
pub struct Pinned {
    pub package: &'static str,
    /// Package-name prefix of the series (`linux-image-5.10.0-`).
    pub series: &'static str,
    pub archive: Archive,
}

/// A kernel ready to boot.
pub struct Kernel {
    pub package: String,
    pub vmlinuz: PathBuf,
}

fn dir() -> PathBuf {
    root().join("target/kernels")
}

/// The Debian mirrors this machine already uses (its apt sources), so the matrix fetches from
/// wherever the administrator points apt. `AURORA_DEBIAN_MIRROR` and
/// `AURORA_DEBIAN_SECURITY_MIRROR` override them.
fn mirrors() -> Result<(String, String)> {
    let mut uris = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(&"URIs:") => uris.extend(words[1..].iter().map(|s| s.to_string())),
                Some(&"deb") => {
                    // `deb [options] URI suite ...`
                    let uri = words[1..].iter().find(|w| w.contains("://"));
                    uris.extend(uri.map(|s| s.to_string()));
                }
                _ => {}
            }
        }
    }
    let find = |suffix: &str| {
        uris.iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .find(|u| u.ends_with(suffix))
    };
    let main = std::env::var("AURORA_DEBIAN_MIRROR")
        .ok()
        .or_else(|| find("/debian"));
    let security = std::env::var("AURORA_DEBIAN_SECURITY_MIRROR")
        .ok()
        .or_else(|| find("/debian-security"));
    match (main, security) {
        (Some(m), Some(s)) => Ok((m, s)),
        _ => bail!(
            "no Debian mirror found in /etc/apt/sources.list(.d): set AURORA_DEBIAN_MIRROR and \
             AURORA_DEBIAN_SECURITY_MIRROR to the URIs of the debian and debian-security archives"
        ),
    }
}

/// apt-get/apt-cache with the private configuration.
fn apt(tool: &str) -> Command {
    let base = dir().join("apt");
    let mut c = Command::new(tool);
    for (k, v) in [
        ("Dir::Etc::SourceList", base.join("sources.list")),
        ("Dir::Etc::SourceParts", base.join("sources.list.d")),
        ("Dir::State::Lists", base.join("lists")),
        ("Dir::Cache", base.join("cache")),
        ("Dir::State::status", PathBuf::from("/var/lib/dpkg/status")),
    ] {
        c.arg("-o").arg(format!("{k}={}", v.display()));
    }
    c.args(["-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]);
    c
}

fn prepare_apt(kernels: &[Pinned]) -> Result<()> {
    let base = dir().join("apt");
    for d in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
        std::fs::create_dir_all(base.join(d))?;
    }
    let (main, security) = mirrors()?;
    let mut list = String::new();
    for k in kernels {
        let (uri, suite) = match k.archive {
            Archive::Main(s) => (&main, s),
            Archive::Security(s) => (&security, s),
        };
        let line = format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} {suite} main\n"
        );
        if !list.contains(&line) {
            list.push_str(&line);
        }
    }
    let path = base.join("sources.list");
    let stamp = base.join("lists/.updated");
    let fresh = std::fs::read_to_string(&path).is_ok_and(|old| old == list)
        && stamp
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() < 24 * 3600));
    if fresh {
        return Ok(());
    }
    std::fs::write(&path, &list)?;
    step("updating the private apt lists for kernel packages (target/kernels/apt)");
    run(apt("apt-get").args(["update", "-qq"]))?;
    std::fs::write(stamp, b"")?;
    Ok(())
}

/// The pinned package if the archive still has it, else the newest of its series.
fn resolve(k: &Pinned) -> Result<String> {
    let out = apt("apt-cache")
        .args(["search", "--names-only"])
        .arg(format!("^{}", k.series.replace('.', "\\.")))
        .output()
        .context("apt-cache search")?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(" - ").next())
        .filter(|n| n.ends_with("-cloud-amd64") && !n.contains("-dbg"))
        .map(str::to_owned)
        .collect();
    if names.iter().any(|n| n == k.package) {
        return Ok(k.package.to_owned());
    }
    names.sort_by_key(|a| version_key(a));
    let newest = names.pop().with_context(|| {
        format!(
            "no {}*-cloud-amd64 package in {:?}: is the mirror reachable?",
            k.series, k.archive
        )
    })?;
    step(&format!(
        "pinned {} is no longer in the archive; using {newest}",
        k.package
    ));
    Ok(newest)
}

/// Numbers in a package name, for ordering builds of one series.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn extract_vmlinuz(deb: &Path, out: &Path) -> Result<()> {
    let tmp = out.with_extension("unpack");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    run(Command::new("sh").arg("-c").arg(format!(
        "dpkg --fsys-tarfile '{}' | tar -x -C '{}' --wildcards './boot/vmlinuz-*'",
        deb.display(),
        tmp.display()
    )))?;
    let boot = tmp.join("boot");
    let image = std::fs::read_dir(&boot)?
        .flatten()
        .map(|e| e.path())
        .next()
        .with_context(|| format!("no vmlinuz in {}", deb.display()))?;
    std::fs::rename(image, out)?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// Every kernel of the list, downloaded and unpacked once (cached in target/kernels).
pub fn kernels(list: &[Pinned]) -> Result<Vec<Kernel>> {
    let debs = dir().join("debs");
    std::fs::create_dir_all(&debs)?;
    let mut apt_ready = false;
    let mut out = Vec::new();
    for k in list {
        let cached = dir().join(format!("{}.vmlinuz", k.package));
        if cached.exists() {
            out.push(Kernel {
                package: k.package.to_owned(),
                vmlinuz: cached,
            });
            continue;
        }
        if !apt_ready {
            prepare_apt(list)?;
            apt_ready = true;
        }
        let package = resolve(k)?;
        let vmlinuz = dir().join(format!("{package}.vmlinuz"));
        if !vmlinuz.exists() {
            step(&format!("downloading {package}"));
            run(apt("apt-get")
                .args(["download", "-qq", &package])
                .current_dir(&debs))?;
            let deb = std::fs::read_dir(&debs)?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{package}_")))
                })
                .with_context(|| format!("apt-get download {package} left no .deb"))?;
            extract_vmlinuz(&deb, &vmlinuz)?;
            std::fs::remove_file(deb)?;
        }
        out.push(Kernel { package, vmlinuz });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn orders_builds_numerically() {
        let mut v = [
            "linux-image-6.12.99+deb12-cloud-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12.101+deb12-cloud-amd64",
        ];
        v.sort_by_key(|n| version_key(n));
        assert_eq!(v[2], "linux-image-6.12.117+deb12-cloud-amd64");
    }
}
