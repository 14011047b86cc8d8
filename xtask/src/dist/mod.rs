//! `cargo xtask dist`: everything an operator installs from, in dist/:
//! - `aurora-VERSION-ARCH.tar.gz`: binary, rules, deploy files, man pages, completions and
//!   `deploy/install.sh` (for hosts without a package manager path);
//! - `aurora_VERSION_ARCH.deb` (Debian policy; `deb.rs`) and `aurora-VERSION-1.x86_64.rpm`
//!   (RHEL conventions; `rpm.rs`), both staged here from one file list (`stage`);
//! - `aurora-VERSION-ARCH.debug`: the debug symbols the packaged binary was stripped of
//!   (`gdb` finds them through the binary's .gnu_debuglink).
//!
//! Reproducible: every timestamp is SOURCE_DATE_EPOCH (the last commit's time), archives are
//! sorted with numeric owners, compression carries no names or times (`gzip -n`); `--check`
//! builds twice and compares the bytes.
mod check;
mod deb;
mod rpm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::{root, run, step};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where a package puts things (Debian's and RHEL's conventions differ in a few places).
pub struct Layout {
    pub unit_dir: &'static str,
    pub env_file: &'static str,
    pub zsh_dir: &'static str,
    /// Debian ships copyright + changelog.gz in the doc dir; RPM ships licenses via %license.
    pub debian_docs: bool,
}

pub const DEBIAN: Layout = Layout {
    unit_dir: "lib/systemd/system",
    env_file: "etc/default/aurora",
    zsh_dir: "usr/share/zsh/vendor-completions",
    debian_docs: true,
};

pub const RHEL: Layout = Layout {
    unit_dir: "usr/lib/systemd/system",
    env_file: "etc/sysconfig/aurora",
    zsh_dir: "usr/share/zsh/site-functions",
    debian_docs: false,
};

/// The inputs every artifact is made from.
pub struct Inputs {
    /// The stripped binary.
    pub binary: PathBuf,
    /// `aurora generate-assets` output: man/ and completions/.
    pub assets: PathBuf,
    pub epoch: u64,
    pub arch: String,
}

fn arch() -> String {
    Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "amd64".into())
}

/// The last commit's time (reproducible builds' SOURCE_DATE_EPOCH), unless set already.
fn source_date_epoch() -> Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.parse().context("SOURCE_DATE_EPOCH is not a number");
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root())
        .output()
        .context("git log")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("git log -1 --format=%ct gave no time (not a git checkout? set SOURCE_DATE_EPOCH)")
}

/// Strip the release binary; keep its debug part next to the packages.
fn strip(release: &Path, dist: &Path, arch: &str) -> Result<PathBuf> {
    let debug = dist.join(format!("aurora-{VERSION}-{arch}.debug"));
    let stripped = dist.join("aurora.stripped");
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(release)
        .arg(&debug))?;
    run(Command::new("objcopy")
        .args(["--strip-all", "--remove-section=.comment"])
        .arg(format!("--add-gnu-debuglink={}", debug.display()))
        .arg(release)
        .arg(&stripped))?;
    Ok(stripped)
}

pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let data = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("gzip feeder"))??;
    Ok(out.stdout)
}

fn read(rel: &str) -> Result<Vec<u8>> {
    let p = root().join(rel);
    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
}

/// Stage the installed tree under `dir` for `layout`. Returns the conffiles (absolute paths).
pub fn stage(dir: &Path, inputs: &Inputs, layout: &Layout) -> Result<Vec<String>> {
    let _ = std::fs::remove_dir_all(dir);
    let at = |rel: &str| dir.join(rel);
    write(
        &at("usr/bin/aurora"),
        &std::fs::read(&inputs.binary)?,
        0o755,
    )?;
    let unit = String::from_utf8(read("deploy/aurora.service")?)?
        .replace("/usr/local/bin/aurora", "/usr/bin/aurora")
        .replace("/etc/default/aurora", &format!("/{}", layout.env_file));
    write(
        &at(&format!("{}/aurora.service", layout.unit_dir)),
        unit.as_bytes(),
        0o644,
    )?;
    let env = String::from_utf8(read("deploy/aurora.env")?)?
        .replace("/etc/default/aurora", &format!("/{}", layout.env_file));
    write(&at(layout.env_file), env.as_bytes(), 0o644)?;
    write(
        &at("etc/logrotate.d/aurora"),
        &read("deploy/aurora.logrotate")?,
        0o644,
    )?;
    let mut conffiles = vec![
        format!("/{}", layout.env_file),
        "/etc/logrotate.d/aurora".into(),
    ];
    for f in rule_files(&root().join("rules"))? {
        let rel = f.strip_prefix(root().join("rules"))?;
        let dest = format!("etc/aurora/rules/{}", rel.display());
        write(&at(&dest), &std::fs::read(&f)?, 0o644)?;
        conffiles.push(format!("/{dest}"));
    }
    let doc = "usr/share/doc/aurora";
    write(
        &at(&format!("{doc}/README.md.gz")),
        &gzip(&read("README.md")?)?,
        0o644,
    )?;
    for (name, from) in [
        ("rsyslog-aurora.conf", "deploy/rsyslog-aurora.conf"),
        ("aurora-response.conf", "deploy/aurora-response.conf"),
        ("nats-server.conf", "deploy/nats/nats-server.conf"),
    ] {
        write(&at(&format!("{doc}/{name}")), &read(from)?, 0o644)?;
    }
    if layout.debian_docs {
        write(
            &at(&format!("{doc}/copyright")),
            &read("deploy/debian/copyright")?,
            0o644,
        )?;
        write(
            &at(&format!("{doc}/changelog.gz")),
            &gzip(&read("deploy/debian/changelog")?)?,
            0o644,
        )?;
    } else {
        let lic = "usr/share/licenses/aurora";
        write(
            &at(&format!("{lic}/LICENSE-MIT")),
            &read("LICENSE-MIT")?,
            0o644,
        )?;
        write(
            &at(&format!("{lic}/LICENSE-APACHE")),
            &read("LICENSE-APACHE")?,
            0o644,
        )?;
    }
    write(
        &at("usr/share/aurora/auditd/aurora.rules"),
        &read("deploy/auditd/aurora.rules")?,
        0o644,
    )?;
    for page in sorted_dir(&inputs.assets.join("man"))? {
        let name = page
            .file_name()
            .context("page name")?
            .to_string_lossy()
            .into_owned();
        write(
            &at(&format!("usr/share/man/man8/{name}.gz")),
            &gzip(&std::fs::read(&page)?)?,
            0o644,
        )?;
    }
    let comp = inputs.assets.join("completions");
    write(
        &at("usr/share/bash-completion/completions/aurora"),
        &std::fs::read(comp.join("aurora.bash"))?,
        0o644,
    )?;
    write(
        &at(&format!("{}/_aurora", layout.zsh_dir)),
        &std::fs::read(comp.join("_aurora"))?,
        0o644,
    )?;
    write(
        &at("usr/share/fish/vendor_completions.d/aurora.fish"),
        &std::fs::read(comp.join("aurora.fish"))?,
        0o644,
    )?;
    normalize(dir, inputs.epoch)?;
    Ok(conffiles)
}

fn sorted_dir(d: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .with_context(|| format!("reading {}", d.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn rule_files(d: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in sorted_dir(d)? {
        if p.is_dir() {
            out.extend(rule_files(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Directories 0755 and every mtime at the epoch: the same tree whatever umask and clock.
fn normalize(dir: &Path, epoch: u64) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in sorted_dir(&d)? {
            if p.is_dir() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
                stack.push(p);
            } else {
                std::fs::File::options()
                    .write(true)
                    .open(&p)?
                    .set_modified(t)?;
            }
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        std::fs::File::open(&d)?.set_modified(t).ok();
    }
    Ok(())
}

/// A sorted, owner-neutral, dated tar.gz of `dir` (named `name` inside).
fn tarball(parent: &Path, name: &str, out: &Path, epoch: u64) -> Result<()> {
    let tar = Command::new("tar")
        .arg("-C")
        .arg(parent)
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
        .arg(format!("--mtime=@{epoch}"))
        .args(["--format=gnu", "-cf", "-", name])
        .output()
        .context("tar")?;
    anyhow::ensure!(tar.status.success(), "tar failed");
    write(out, &gzip(&tar.stdout)?, 0o644)
}

/// Build every artifact; returns their paths.
pub fn build() -> Result<Vec<PathBuf>> {
    let release = crate::build_release()?;
    let dist = root().join("dist");
    std::fs::create_dir_all(&dist)?;
    let arch = arch();
    let epoch = source_date_epoch()?;
    step(&format!(
        "packaging aurora {VERSION} ({arch}), SOURCE_DATE_EPOCH={epoch}"
    ));
    let assets = dist.join("assets");
    let _ = std::fs::remove_dir_all(&assets);
    run(Command::new(&release).arg("generate-assets").arg(&assets))?;
    let binary = strip(&release, &dist, &arch)?;
    let inputs = Inputs {
        binary,
        assets,
        epoch,
        arch: arch.clone(),
    };

    let name = format!("aurora-{VERSION}-{arch}");
    let tree = dist.join(&name);
    let _ = std::fs::remove_dir_all(&tree);
    write(
        &tree.join("target/release/aurora"),
        &std::fs::read(&inputs.binary)?,
        0o755,
    )?;
    for f in [
        "aurora.service",
        "aurora.env",
        "install.sh",
        "rsyslog-aurora.conf",
        "aurora.logrotate",
        "auditd/aurora.rules",
        "aurora-response.conf",
        "nats/nats-server.conf",
    ] {
        let mode = if f.ends_with(".sh") { 0o755 } else { 0o644 };
        write(
            &tree.join("deploy").join(f),
            &read(&format!("deploy/{f}"))?,
            mode,
        )?;
    }
    for f in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        write(&tree.join(f), &read(f)?, 0o644)?;
    }
    for f in rule_files(&root().join("rules"))? {
        let rel = f.strip_prefix(root())?;
        write(&tree.join(rel), &std::fs::read(&f)?, 0o644)?;
    }
    for sub in ["man", "completions"] {
        for f in sorted_dir(&inputs.assets.join(sub))? {
            write(
                &tree.join(sub).join(f.file_name().context("name")?),
                &std::fs::read(&f)?,
                0o644,
            )?;
        }
    }
    normalize(&tree, epoch)?;
    let tgz = dist.join(format!("{name}.tar.gz"));
    tarball(&dist, &name, &tgz, epoch)?;
    step(&format!("wrote {}", tgz.display()));
    let deb = deb::build(&dist, &inputs)?;
    step(&format!("wrote {}", deb.display()));
    let rpm = rpm::build(&dist, &inputs)?;
    step(&format!("wrote {}", rpm.display()));
    Ok(vec![tgz, deb, rpm])
}

pub fn run_dist(check: bool) -> Result<()> {
    let artifacts = build()?;
    if check {
        check::run(&artifacts)?;
    }
    Ok(())
}
