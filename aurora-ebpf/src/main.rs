//! Aurora's kernel programs: one file per program under `probes/`, each feeding its own ring.
//! Everything is gated on the BPF target so `cargo test/clippy --workspace` on the host builds
//! an empty binary instead of failing.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod co_re;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod probes;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path; this is never called.
    loop {}
}

/// Dual licence so GPL-only helpers (probe_read_user/_kernel, ringbuf) load.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Host builds (workspace-wide test/clippy): the programs only exist for the BPF target.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
