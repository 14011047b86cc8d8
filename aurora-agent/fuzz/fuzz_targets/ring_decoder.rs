//! Ring records as the kernel hands them over: every decoder takes arbitrary bytes and
//! returns a record or an error (short, or a kind the ring does not carry), never panics.
#![no_main]
use aurora_agent::sources::ebpf::decode;
use aurora_common::Ring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for ring in Ring::ALL {
        let _ = decode::decode(ring, data);
    }
    let _ = decode::exec(data);
    let _ = decode::exit(data);
    let _ = decode::file(data);
    let _ = decode::net(data);
    let _ = decode::dns(data);
});
