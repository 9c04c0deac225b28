//! The body of SEND_BATCH_MESSAGE (320), as RocketMQ's `MessageDecoder.encodeMessages` writes it:
//! messages back to back, integers big-endian.
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 4 | TOTALSIZE | `22 + b + p` |
//! | 4 | 4 | MAGICCODE | 0 |
//! | 8 | 4 | BODYCRC | 0 |
//! | 12 | 4 | FLAG | the message's flag |
//! | 16 | 4 | BODYLEN | `b` |
//! | 20 | b | BODY | |
//! | 20+b | 2 | PROPERTIESLEN | `p` |
//! | 22+b | p | PROPERTIES | `name 0x01 value 0x02` pairs |

use super::message::Message;
use super::MqError;

/// Encodes `messages` as a batch body. Fails when one message's properties exceed 32767 bytes.
pub(crate) fn encode_batch(messages: &[Message]) -> Result<Vec<u8>, MqError> {
    let mut out = Vec::new();
    for msg in messages {
        let props = msg.encoded_properties();
        let plen = i16::try_from(props.len())
            .map_err(|_| MqError::InvalidMessage("properties longer than 32767 bytes".into()))?;
        let total = 22 + msg.body.len() + props.len();
        let total = i32::try_from(total)
            .map_err(|_| MqError::InvalidMessage("message larger than 2 GiB".into()))?;
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&msg.flag.to_be_bytes());
        out.extend_from_slice(&(msg.body.len() as i32).to_be_bytes());
        out.extend_from_slice(&msg.body);
        out.extend_from_slice(&plen.to_be_bytes());
        out.extend_from_slice(props.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_exact() {
        let mut m = Message::new("T", "ab").with_tags("X");
        m.flag = 7;
        let got = encode_batch(&[m, Message::new("T", "c")]).unwrap();
        let mut want = vec![
            0, 0, 0, 31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, b'a', b'b', 0, 7,
        ];
        want.extend_from_slice(b"TAGS\x01X\x02");
        want.extend_from_slice(&[
            0, 0, 0, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'c', 0, 0,
        ]);
        assert_eq!(got, want);
    }
}
