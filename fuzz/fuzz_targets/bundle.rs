#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mes_protocol::fuzzing::bundle(data));
