//! Fuzz target `broker_properties`: the property is [`tern_fuzz::broker_properties`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzz::broker_properties(data));
