//! Fuzz target `batch_decode`: the property is [`tern_fuzz::batch_decode`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzz::batch_decode(data));
