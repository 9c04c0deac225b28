//! Builds the SEND_BATCH_MESSAGE (320) body: messages packed back to back in RocketMQ's
//! `MessageDecoder.encodeMessages` layout (big-endian), the layout the broker's batch decoder reads.
//!
//! | offset | size | field | value written |
//! |---:|---:|---|---|
//! | 0 | 4 | TOTALSIZE | `22 + b + p` |
//! | 4 | 4 | MAGICCODE | 0 |
//! | 8 | 4 | BODYCRC | 0 |
//! | 12 | 4 | FLAG | the message's flag |
//! | 16 | 4 | BODYLEN | `b` |
//! | 20 | b | BODY | |
//! | 20+b | 2 | PROPERTIESLEN | `p` |
//! | 22+b | p | PROPERTIES | `name 0x01 value 0x02` pairs |

/// Fixed bytes of one packed message.
pub const FIXED_LEN: usize = 22;

/// A message too large for the layout's length fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchEncodeError {
    /// Properties longer than the 16-bit PROPERTIESLEN allows.
    #[error("properties of {0} bytes exceed 65535")]
    PropertiesTooLong(usize),
    /// A message longer than the 32-bit TOTALSIZE allows.
    #[error("message of {0} bytes exceeds i32::MAX")]
    MessageTooLong(usize),
}

/// Appends one packed message (`flag`, `body`, encoded `properties`) to `out`.
pub fn append_message(
    out: &mut Vec<u8>,
    flag: i32,
    body: &[u8],
    properties: &[u8],
) -> Result<(), BatchEncodeError> {
    let props_len = u16::try_from(properties.len())
        .map_err(|_| BatchEncodeError::PropertiesTooLong(properties.len()))?;
    let total = FIXED_LEN + body.len() + properties.len();
    let total_i32 = i32::try_from(total).map_err(|_| BatchEncodeError::MessageTooLong(total))?;
    // body.len() < total <= i32::MAX, so the cast is lossless.
    let body_len = body.len() as i32;
    out.reserve(total);
    out.extend_from_slice(&total_i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&flag.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&props_len.to_be_bytes());
    out.extend_from_slice(properties);
    Ok(())
}

/// Encodes message properties as RocketMQ does: `name 0x01 value 0x02` per pair.
pub fn encode_properties(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        s.push_str(k);
        s.push('\u{1}');
        s.push_str(v);
        s.push('\u{2}');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_one_message_byte_exact() {
        let mut out = Vec::new();
        append_message(&mut out, 7, b"abc", b"TAGS\x01t\x02").unwrap();
        let expected: Vec<u8> = [
            &[0, 0, 0, 32][..], // 22 + 3 + 7
            &[0, 0, 0, 0],
            &[0, 0, 0, 0],
            &[0, 0, 0, 7],
            &[0, 0, 0, 3],
            b"abc",
            &[0, 7],
            b"TAGS\x01t\x02",
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn messages_are_appended_back_to_back() {
        let mut out = Vec::new();
        append_message(&mut out, 0, b"x", b"").unwrap();
        append_message(&mut out, 0, b"", b"k\x01v\x02").unwrap();
        assert_eq!(out.len(), (FIXED_LEN + 1) + (FIXED_LEN + 4));
        assert_eq!(&out[..4], &[0, 0, 0, 23]);
        assert_eq!(&out[23..27], &[0, 0, 0, 26]);
    }

    #[test]
    fn oversized_properties_are_refused() {
        let props = vec![b'a'; 70_000];
        assert_eq!(
            append_message(&mut Vec::new(), 0, b"", &props),
            Err(BatchEncodeError::PropertiesTooLong(70_000))
        );
    }

    #[test]
    fn properties_use_rocketmq_separators() {
        assert_eq!(
            encode_properties(&[("TAGS", "a"), ("KEYS", "k")]),
            "TAGS\u{1}a\u{2}KEYS\u{1}k\u{2}"
        );
    }
}
