//! DNS answers copied from the receive path: hostile packets are errors, never panics.
#![no_main]
use aurora_agent::enrich::dns::parse_answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_answer(data);
});
