//! Fuzz target `frame_decode`: the property is [`tern_fuzz::frame_decode`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzz::frame_decode(data));
