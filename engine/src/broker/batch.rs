//! The body of SEND_BATCH_MESSAGE (320): messages packed back to back as RocketMQ's
//! `MessageDecoder.encodeMessages` writes them. All integers big-endian.
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 4 | TOTALSIZE | `22 + b + p` |
//! | 4 | 4 | MAGICCODE | 0 (not checked) |
//! | 8 | 4 | BODYCRC | 0 (not checked) |
//! | 12 | 4 | FLAG | the message's flag |
//! | 16 | 4 | BODYLEN | `b` |
//! | 20 | b | BODY | |
//! | 20+b | 2 | PROPERTIESLEN | `p` |
//! | 22+b | p | PROPERTIES | `name 0x01 value 0x02` pairs |

/// Fixed bytes of one packed message.
pub const FIXED_LEN: usize = 22;

/// One message of a batch, borrowing from the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchItem<'a> {
    /// The message's flag.
    pub flag: i32,
    /// The body.
    pub body: &'a [u8],
    /// The encoded properties.
    pub properties: &'a [u8],
}

/// A batch body that does not follow the layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed batch body at byte {at}: {reason}")]
pub struct BatchError {
    /// Offset of the message that is malformed.
    pub at: usize,
    /// What is wrong.
    pub reason: &'static str,
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Splits a batch body into its messages; an empty body is an error (a batch has at least one).
pub fn decode_batch(body: &[u8]) -> Result<Vec<BatchItem<'_>>, BatchError> {
    let mut items = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let err = |reason| BatchError { at, reason };
        let msg = body.get(at..).ok_or(err("truncated"))?;
        let total = be_i32(msg, 0).ok_or(err("truncated header"))?;
        let total = usize::try_from(total).map_err(|_| err("negative TOTALSIZE"))?;
        if total < FIXED_LEN || total > msg.len() {
            return Err(err("TOTALSIZE out of range"));
        }
        let flag = be_i32(msg, 12).ok_or(err("truncated header"))?;
        let body_len = be_i32(msg, 16).ok_or(err("truncated header"))?;
        let body_len = usize::try_from(body_len).map_err(|_| err("negative BODYLEN"))?;
        let body_end = 20usize
            .checked_add(body_len)
            .ok_or(err("BODYLEN too large"))?;
        let props_len = msg
            .get(body_end..body_end + 2)
            .and_then(|p| <[u8; 2]>::try_from(p).ok())
            .map(|p| u16::from_be_bytes(p) as usize)
            .ok_or(err("BODYLEN beyond TOTALSIZE"))?;
        if body_end + 2 + props_len != total {
            return Err(err("lengths do not add up to TOTALSIZE"));
        }
        let (Some(body), Some(properties)) = (msg.get(20..body_end), msg.get(body_end + 2..total))
        else {
            return Err(err("lengths do not add up to TOTALSIZE"));
        };
        items.push(BatchItem {
            flag,
            body,
            properties,
        });
        at += total;
    }
    if items.is_empty() {
        return Err(BatchError {
            at: 0,
            reason: "empty batch",
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two messages as `MessageDecoder.encodeMessages` writes them: flag 0, body "ab",
    /// properties "K\x01v\x02"; flag 7, empty body, no properties.
    const TWO: &[u8] = &[
        0, 0, 0, 28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b', 0, 4, b'K', 1,
        b'v', 2, //
        0, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn decodes_rocketmq_layout() {
        let items = decode_batch(TWO).unwrap();
        assert_eq!(
            items,
            vec![
                BatchItem {
                    flag: 0,
                    body: b"ab",
                    properties: b"K\x01v\x02"
                },
                BatchItem {
                    flag: 7,
                    body: b"",
                    properties: b""
                },
            ]
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode_batch(&[]).is_err());
        assert!(decode_batch(&TWO[..27]).is_err());
        let mut bad = TWO.to_vec();
        bad[19] = 200; // body length beyond the message
        assert!(decode_batch(&bad).is_err());
        let mut bad = TWO.to_vec();
        bad[3] = 10; // TOTALSIZE below the fixed part
        assert_eq!(
            decode_batch(&bad).unwrap_err().reason,
            "TOTALSIZE out of range"
        );
        for cut in 0..TWO.len() {
            let _ = decode_batch(&TWO[..cut]); // never panics
        }
    }
}
