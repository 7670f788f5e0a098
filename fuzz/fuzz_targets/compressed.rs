#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| backproof::fuzzing::compressed(data));
