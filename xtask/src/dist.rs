//! `cargo xtask dist`: dist/aurora-VERSION-ARCH.tar.gz (install tree + install.sh) and
//! dist/aurora_VERSION_ARCH.deb (built with dpkg-deb from the same tree installed with
//! PREFIX=/usr). Both are staged by deploy/install.sh, so they hold exactly what it installs.
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::{root, run, step};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn arch() -> String {
    Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "amd64".into())
}

fn stage(dir: &Path, prefix: &str) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    run(Command::new("sh")
        .arg(root().join("deploy/install.sh"))
        .env("DESTDIR", dir)
        .env("PREFIX", prefix))
}

pub fn run_dist() -> Result<()> {
    let bin = crate::build_release()?;
    let dist = root().join("dist");
    std::fs::create_dir_all(&dist)?;
    let arch = arch();

    let name = format!("aurora-{VERSION}-{arch}");
    let tree = dist.join(&name);
    step(&format!("staging {}", tree.display()));
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("deploy"))?;
    std::fs::create_dir_all(tree.join("target/release"))?;
    std::fs::copy(&bin, tree.join("target/release/aurora"))?;
    for f in [
        "aurora.service",
        "aurora.env",
        "install.sh",
        "rsyslog-aurora.conf",
    ] {
        std::fs::copy(root().join("deploy").join(f), tree.join("deploy").join(f))?;
    }
    for f in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        std::fs::copy(root().join(f), tree.join(f))?;
    }
    run(Command::new("cp")
        .arg("-R")
        .arg(root().join("rules"))
        .arg(tree.join("rules")))?;
    let tarball = dist.join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&dist)
        .arg("-czf")
        .arg(&tarball)
        .arg(&name))?;
    step(&format!("wrote {}", tarball.display()));

    let deb_root = dist.join(format!("deb-{arch}"));
    stage(&deb_root, "/usr")?;
    let debian = deb_root.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    std::fs::write(
        debian.join("control"),
        format!(
            "Package: aurora\nVersion: {VERSION}\nSection: admin\nPriority: optional\n\
             Architecture: {arch}\nMaintainer: Aurora project <aurora@localhost>\n\
             Depends: libc6\n\
             Description: Linux host EDR agent\n \
             eBPF CO-RE telemetry (exec, exit, file creation, TCP) in the Sysmon for Linux\n \
             schema, Sigma detection routed by logsource, JSON and syslog alerts.\n"
        ),
    )?;
    std::fs::write(debian.join("conffiles"), "/etc/default/aurora\n")?;
    let postinst = "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload; \
                    echo 'aurora installed: edit /etc/default/aurora, then systemctl enable --now aurora'; fi\n";
    std::fs::write(debian.join("postinst"), postinst)?;
    run(Command::new("chmod")
        .arg("0755")
        .arg(debian.join("postinst")))?;
    let deb = dist.join(format!("aurora_{VERSION}_{arch}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&deb_root)
        .arg(&deb))?;
    step(&format!("wrote {}", deb.display()));
    Ok(())
}
