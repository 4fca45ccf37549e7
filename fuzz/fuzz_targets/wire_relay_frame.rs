#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mes_protocol::fuzzing::wire_relay_frame(data));
