//! Compiles the CO-RE C helpers (`co_re/helpers.c`) to LLVM bitcode with clang-22 and hands the
//! bitcode to bpf-linker, which links it with the Rust programs. Only runs for the BPF target.
//! The sizes and layouts the C code shares with Rust come from aurora-common as `-D` defines;
//! helpers.c checks its own structs against them with `_Static_assert`.
use std::mem::{offset_of, size_of};
use std::{env, path::PathBuf, process::Command};

use aurora_common::SockState;

/// `-DNAME=VALUE` for every layout fact helpers.c relies on.
fn abi_defines() -> Vec<String> {
    [
        ("AURORA_PATH_LEN", aurora_common::PATH_LEN),
        ("AURORA_PATH_SCRATCH_LEN", aurora_common::PATH_SCRATCH_LEN),
        ("AURORA_DNS_PAYLOAD_LEN", aurora_common::DNS_PAYLOAD_LEN),
        ("AURORA_SOCK_STATE_SIZE", size_of::<SockState>()),
        (
            "AURORA_SOCK_STATE_OLDSTATE",
            offset_of!(SockState, oldstate),
        ),
        (
            "AURORA_SOCK_STATE_NEWSTATE",
            offset_of!(SockState, newstate),
        ),
        ("AURORA_SOCK_STATE_SPORT", offset_of!(SockState, sport)),
        ("AURORA_SOCK_STATE_DPORT", offset_of!(SockState, dport)),
        ("AURORA_SOCK_STATE_FAMILY", offset_of!(SockState, family)),
        (
            "AURORA_SOCK_STATE_PROTOCOL",
            offset_of!(SockState, protocol),
        ),
        ("AURORA_SOCK_STATE_SADDR", offset_of!(SockState, saddr)),
        ("AURORA_SOCK_STATE_DADDR", offset_of!(SockState, daddr)),
    ]
    .iter()
    .map(|(k, v)| format!("-D{k}={v}"))
    .collect()
}

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
        .args(abi_defines())
        .status()
        .unwrap_or_else(|e| panic!("failed to run {clang} ({e}): run `cargo xtask setup`"));
    assert!(
        status.success(),
        "{clang} failed to compile co_re/helpers.c"
    );
    println!("cargo:rustc-link-arg-bins={}", out.display());
}
