//! Compiles the CO-RE C helpers (`co_re/helpers.c`) to LLVM bitcode with clang-22 and hands the
//! bitcode to bpf-linker, which links it with the Rust programs. Only runs for the BPF target.
use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=co_re/helpers.c");
    println!("cargo:rerun-if-env-changed=AURORA_CLANG");
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("bpf") {
        return;
    }
    // bpf-linker must exist for the link step; fail early with a clear message.
    if let Err(err) = which::which("bpf-linker") {
        panic!("bpf-linker not found ({err}): run `cargo xtask setup`");
    }
    let clang = env::var("AURORA_CLANG").unwrap_or_else(|_| "clang-22".into());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("co_re_helpers.bc");
    let status = Command::new(&clang)
        .args([
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-emit-llvm",
            "-c",
            "co_re/helpers.c",
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("failed to run {clang} ({e}): run `cargo xtask setup`"));
    assert!(
        status.success(),
        "{clang} failed to compile co_re/helpers.c"
    );
    println!("cargo:rustc-link-arg-bins={}", out.display());
}
