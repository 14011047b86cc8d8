//! Aurora's kernel programs: one file per program under `probes/`, each feeding its own ring.
#![no_std]
#![no_main]

mod co_re;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path; this is never called.
    loop {}
}

/// Dual licence so GPL-only helpers (probe_read_user/_kernel, ringbuf) load.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
