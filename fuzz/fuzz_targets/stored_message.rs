//! Fuzz target `stored_message`: the property is [`tern_fuzz::stored_message`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzz::stored_message(data));
