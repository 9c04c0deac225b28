//! Arbitrary bytes into the frame codec: framing and decoding must never panic, and whatever
//! decodes must survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_net::frame;

fuzz_target!(|data: &[u8]| {
    let _ = frame::next_frame_len(data, frame::DEFAULT_MAX_FRAME_LEN);
    let _ = frame::next_frame_len(data, 64);
    if let Ok(cmd) = frame::decode(data) {
        let mut out = Vec::new();
        frame::encode(&cmd, &mut out);
        assert_eq!(
            frame::next_frame_len(&out, usize::MAX),
            Ok(Some(out.len()))
        );
        let again = frame::decode(&out).expect("a re-encoded frame decodes");
        assert_eq!(again, cmd);
    }
});
