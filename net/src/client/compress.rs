//! Send-side body compression (the Java producer's `compressMsgBodyOverHowmuch`).
//!
//! A single message whose body is at least the threshold (4 KiB by default) is sent deflated
//! with zlib at level 5, and its sys flag carries `COMPRESSED` (bit 0) together with RocketMQ 5's
//! zlib type bits (`0x3 << 8`), as `DefaultMQProducerImpl` sets them. 4.x consumers look at bit 0
//! only and inflate with zlib too, so both generations read the body back. Batches are never
//! compressed (nor are they by Java).
//!
//! | sys flag bits | meaning |
//! |---|---|
//! | `0x001` | body is compressed |
//! | `0x300` | compression type zlib (RocketMQ 5; 0 also means zlib) |

use std::io::Write;

use tern_store::message::sys_flag;

/// The zlib level the Java producer uses (`rocketmq.message.compressLevel`, default 5).
const LEVEL: u32 = 5;

/// The body to send and the sys flag that goes with it: `body` deflated when it is at least
/// `threshold` bytes long, otherwise `body` itself with flag 0.
pub(crate) fn compress_if_large(body: Vec<u8>, threshold: usize) -> (Vec<u8>, i32) {
    if body.len() < threshold {
        return (body, 0);
    }
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(body.len() / 2),
        flate2::Compression::new(LEVEL),
    );
    // Writing into a Vec cannot fail; should it ever, the body goes out uncompressed, as Java's
    // producer does when its compressor throws.
    match enc.write_all(&body).and_then(|()| enc.finish()) {
        Ok(packed) => (
            packed,
            sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB_TYPE,
        ),
        Err(_) => (body, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn small_bodies_go_as_they_are() {
        let (body, flag) = compress_if_large(vec![7; 4095], 4096);
        assert_eq!((body, flag), (vec![7; 4095], 0));
    }

    #[test]
    fn large_bodies_are_zlib_with_the_java_flags() {
        let original: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
        let (packed, flag) = compress_if_large(original.clone(), 4096);
        assert_eq!(flag, 0x301);
        // A zlib stream: CMF 0x78 (deflate, 32 KiB window), header checksum divisible by 31.
        assert_eq!(packed[0], 0x78);
        assert_eq!((u16::from(packed[0]) << 8 | u16::from(packed[1])) % 31, 0);
        assert!(packed.len() < original.len());
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, original);
    }
}
