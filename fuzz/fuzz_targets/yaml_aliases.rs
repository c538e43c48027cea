#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ksec::fuzzing::yaml_aliases(data));
