//! Ring records as the kernel hands them over: every decoder takes arbitrary bytes and
//! returns a record or a ShortRecord error, never panics.
#![no_main]
use aurora_agent::sources::ebpf::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::exec(data);
    let _ = decode::exit(data);
    let _ = decode::file(data);
    let _ = decode::net(data);
    let _ = decode::net_or_dns(data);
});
