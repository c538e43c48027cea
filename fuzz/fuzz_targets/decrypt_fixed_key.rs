#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ksec::fuzzing::decrypt_fixed_key(data));
