//! Idempotent installation of what Aurora's build and tests need on Debian 12 (as root).
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::{run, step};

/// Debian packages for the eBPF build: clang-22 (CO-RE helpers) and LLVM 22 for bpf-linker.
const BUILD_PKGS: &[&str] = &[
    "clang-22",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
];
/// What the tests use: a real rsyslog (UDP/TCP/TLS), openssl for test certificates,
/// systemd-analyze for the unit checks; QEMU, busybox, cpio and liburing (the io_uring
/// file-creation helper) for the kernel matrix and the live file tests; promtool (prometheus); dnsmasq for
/// the DNS correlation test; auditd (a private instance) for the audit-log source test;
/// nats-server (JetStream) for the fleet transport tests; zip, one of the archivers the
/// auditd-rules test runs; chromium, its WebDriver and python3-selenium for the console's
/// browser test; podman with runc, and docker.io, for the container tests (each test starts
/// its own Podman API service and dockerd, without networking of their own).
const TEST_PKGS: &[&str] = &[
    "auditd",
    "rsyslog",
    "rsyslog-gnutls",
    "openssl",
    "systemd",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "liburing-dev",
    "prometheus",
    "dnsmasq-base",
    "nats-server",
    "nftables",
    "iproute2",
    "zip",
    "chromium",
    "chromium-driver",
    "python3-selenium",
    "podman",
    "runc",
    "docker.io",
];

/// What `cargo xtask dist` needs (rpmbuild; objcopy comes with the toolchain's binutils) and
/// what its `--check` uses (lintian, rpmlint, man).
const DIST_PKGS: &[&str] = &["rpm", "binutils", "lintian", "rpmlint", "man-db"];

/// Install the packaging tools (idempotent).
pub fn ensure_dist() -> Result<()> {
    apt_install(DIST_PKGS)
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn has_nightly_rust_src() -> Result<bool> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()?;
    if !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("nightly"))
    {
        bail!(
            "no nightly Rust toolchain: the eBPF programs need nightly (-Z build-std). \
             Install it with `rustup toolchain install nightly` on a machine with access to \
             static.rust-lang.org"
        );
    }
    let out = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src")))
}

fn cargo_bin(name: &str) -> bool {
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    home.join("bin").join(name).exists()
        || Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success())
}

fn ensure_tracefs() -> Result<()> {
    if Path::new("/sys/kernel/tracing/events").exists()
        || Path::new("/sys/kernel/debug/tracing/events").exists()
    {
        return Ok(());
    }
    step("mounting tracefs at /sys/kernel/tracing");
    run(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))
}

/// securityfs, where the kernel lists its active LSMs (the agent reads it to choose BPF LSM
/// or the fallback).
fn ensure_securityfs() -> Result<()> {
    if Path::new("/sys/kernel/security/lsm").exists() {
        return Ok(());
    }
    step("mounting securityfs at /sys/kernel/security");
    run(Command::new("mount").args(["-t", "securityfs", "securityfs", "/sys/kernel/security"]))
}

pub fn ensure(test_deps: bool) -> Result<()> {
    if !nix_is_root() {
        bail!("run as root: installing packages and loading eBPF programs need it");
    }
    apt_install(BUILD_PKGS)?;
    if test_deps {
        apt_install(TEST_PKGS)?;
    }
    if !has_nightly_rust_src()? {
        step("adding rust-src to the nightly toolchain");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if !cargo_bin("bpf-linker") {
        step("installing bpf-linker (LLVM 22; about a minute)");
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))?;
    }
    ensure_securityfs()?;
    ensure_tracefs()
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
