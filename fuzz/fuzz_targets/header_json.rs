//! Fuzz target `header_json`: the property is [`tern_fuzz::header_json`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzz::header_json(data));
