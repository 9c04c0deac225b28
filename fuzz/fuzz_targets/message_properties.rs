//! Fuzz target `message_properties`: the property is [`tern_fuzz::message_properties`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzz::message_properties(data));
