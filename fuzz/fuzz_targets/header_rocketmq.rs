//! Fuzz target `header_rocketmq`: the property is [`tern_fuzz::header_rocketmq`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzz::header_rocketmq(data));
