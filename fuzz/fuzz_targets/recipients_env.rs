#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ksec::fuzzing::recipients_env(data));
