//! `cargo xtask kernels`: the kernel matrix. Boots each kernel of a pinned list under QEMU
//! with the static agent as part of the VM's init, loads and attaches every program, triggers
//! an exec, a file creation and a TCP connect, and checks the recorded events; then does the
//! same on the host kernel. One line per kernel, then `N passed, N failed`.
mod check;
mod fetch;
mod vm;

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::{root, run, step};
use fetch::{Archive, Pinned};
pub use vm::uring_helper;

/// The kernels servers run, as Debian builds them with BTF: 5.10 (Debian 11, like Amazon
/// Linux 2's 5.10), 6.1 (Debian 12), 6.12 (Debian 12's security kernel). Bump the pins when
/// the archive drops them (the matrix then falls back to the newest build of the series).
pub const KERNELS: &[Pinned] = &[
    Pinned {
        package: "linux-image-5.10.0-46-cloud-amd64",
        series: "linux-image-5.10.0-",
        archive: Archive::Security("bullseye-security"),
    },
    Pinned {
        package: "linux-image-6.1.0-57-cloud-amd64",
        series: "linux-image-6.1.0-",
        archive: Archive::Main("bookworm"),
    },
    Pinned {
        package: "linux-image-6.12.117+deb12-cloud-amd64",
        series: "linux-image-6.12.",
        archive: Archive::Security("bookworm-security"),
    },
];

const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The agent as one static binary (static-pie glibc): it runs in the VMs' bare initramfs, and
/// on old distributions whose glibc is older than the build machine's.
pub fn build_static() -> Result<PathBuf> {
    step("building a static aurora (release, +crt-static)");
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "aurora-agent",
            "--target",
            TRIPLE,
        ])
        // Target-scoped, so neither build scripts nor the nested BPF build see it.
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        );
    run(&mut c)?;
    Ok(root().join(format!("target/{TRIPLE}/release/aurora")))
}

fn report(name: &str, result: &Result<check::Outcome>) -> bool {
    match result {
        Ok(o) => {
            let largest = o
                .largest
                .as_ref()
                .map(|(p, n)| format!("{p} {n} insns"))
                .unwrap_or_else(|| "verifier count not reported by this kernel".into());
            println!(
                "kernel {name} ({}): ok — programs {}/{} attached, file sensor {}, denies {}, events checked {}, largest program {largest}",
                o.kernel, o.programs_attached, o.programs_loaded, o.file_sensor, o.enforcement, o.events_checked
            );
            true
        }
        Err(e) => {
            println!("kernel {name}: FAILED — {e:#}");
            false
        }
    }
}

/// Run the matrix; prints a line per kernel and `kernels: N passed, N failed`.
pub fn run_matrix(host: bool) -> Result<(u64, u64)> {
    let kernels = fetch::kernels(KERNELS)?;
    let aurora = build_static()?;
    let helpers = vm::helpers()?;
    let initramfs = vm::initramfs(&aurora, &helpers)?;
    let (mut passed, mut failed) = (0, 0);
    for k in &kernels {
        step(&format!("booting {} under QEMU (TCG)", k.package));
        let mut out = vm::boot(&k.vmlinuz, &initramfs);
        if out.as_ref().is_ok_and(|o| !check::started(o)) {
            // The VM itself did not come up (nothing of ours ran yet): boot once more, and
            // show what the first boot printed.
            let first = out.as_ref().map(|o| check::tail(o, 20)).unwrap_or_default();
            step(&format!(
                "{}: the scenario did not start; booting again. First console:\n{first}",
                k.package
            ));
            out = vm::boot(&k.vmlinuz, &initramfs);
        }
        let result = out.and_then(|o| check::check(&o, true));
        if report(&k.package, &result) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    if host {
        let result = vm::on_host(&aurora, &helpers).and_then(|out| check::check(&out, false));
        if report("host", &result) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("kernels: {passed} passed, {failed} failed");
    Ok((passed, failed))
}
