//! The ROCKETMQ binary header (RocketMQ's `RocketMQSerializable`).
//!
//! All integers big-endian:
//!
//! | size | field |
//! |---|---|
//! | 2 | `code` (i16; codes above 32767 do not fit, as in RocketMQ) |
//! | 1 | `language` byte code |
//! | 2 | `version` (i16) |
//! | 4 | `opaque` (i32) |
//! | 4 | `flag` (i32) |
//! | 4 | `remark_len` (i32; 0 = no remark) |
//! | `remark_len` | remark, UTF-8 |
//! | 4 | `ext_len` (i32): bytes of the entries that follow |
//! | `ext_len` | entries: `key_len` (i16), key, `val_len` (i32), value |
//!
//! Encoding writes the entries sorted by key, so output is deterministic. Decoding is lenient where
//! RocketMQ is: invalid UTF-8 is replaced, an unknown language byte is `OTHER`; a zero-length string
//! is an empty key/value (RocketMQ reads it as null) and a zero-length remark is no remark.

use super::frame::HeaderError;
use std::borrow::Cow;

use super::ext_fields::intern;
use super::{with_sorted_fields, ExtFields, LanguageCode, RemotingCommand, SerializeType};

/// Bytes of the fixed part (code .. flag).
const FIXED_LEN: usize = 2 + 1 + 2 + 4 + 4;

/// Appends `cmd`'s binary header to `out`.
pub(crate) fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    debug_assert!(
        i16::try_from(cmd.code).is_ok(),
        "code {} exceeds i16",
        cmd.code
    );
    out.extend_from_slice(&(cmd.code as i16).to_be_bytes());
    out.push(cmd.language.code());
    out.extend_from_slice(&(cmd.version as i16).to_be_bytes());
    out.extend_from_slice(&cmd.opaque.to_be_bytes());
    out.extend_from_slice(&cmd.flag.to_be_bytes());
    match cmd.remark.as_deref() {
        Some(remark) if !remark.is_empty() => {
            out.extend_from_slice(&(remark.len() as u32).to_be_bytes());
            out.extend_from_slice(remark.as_bytes());
        }
        _ => out.extend_from_slice(&0u32.to_be_bytes()),
    }
    let len_at = out.len();
    out.extend_from_slice(&0u32.to_be_bytes());
    with_sorted_fields(&cmd.ext_fields, |entries| {
        for (key, value) in entries {
            let Ok(key_len) = i16::try_from(key.len()) else {
                debug_assert!(false, "ext key of {} bytes", key.len());
                continue;
            };
            out.extend_from_slice(&key_len.to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    });
    let ext_len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&ext_len.to_be_bytes());
}

/// Reads big-endian values from a header, failing instead of reading past its end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Some(a)
    }

    fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    /// A length-prefixed string whose length was already read.
    fn string(&mut self, len: i64, what: &str) -> Result<String, String> {
        self.str_lossy(len, what).map(Cow::into_owned)
    }

    /// The next `len` bytes as text (invalid UTF-8 replaced), borrowed when valid.
    fn str_lossy(&mut self, len: i64, what: &str) -> Result<Cow<'a, str>, String> {
        let len = usize::try_from(len).map_err(|_| format!("negative {what} length {len}"))?;
        let bytes = self
            .take(len)
            .ok_or_else(|| format!("{what} of {len} bytes overruns the header"))?;
        Ok(String::from_utf8_lossy(bytes))
    }
}

/// Fields the vector is sized for up front: SEND_MESSAGE_V2's fourteen, the largest header on the
/// produce path, so decoding it allocates once instead of regrowing.
const EXPECTED_EXT_FIELDS: usize = 14;

/// Decodes a binary header (the frame's header bytes only). The body and serialize type are left
/// for the caller to set.
pub(crate) fn decode(header: &[u8]) -> Result<RemotingCommand, HeaderError> {
    let mut r = Reader { buf: header };
    let (Some(code), Some(language), Some(version), Some(opaque), Some(flag)) =
        (r.i16(), r.u8(), r.i16(), r.i32(), r.i32())
    else {
        let opaque = header
            .get(5..9)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes);
        return Err(error(
            opaque,
            format!(
                "header of {} bytes is shorter than {FIXED_LEN}",
                header.len()
            ),
        ));
    };
    let fail = |reason: String| error(Some(opaque), reason);
    let remark_len = r
        .i32()
        .ok_or_else(|| fail("missing remark length".into()))?;
    let remark = match remark_len {
        0 => None,
        n => Some(r.string(i64::from(n), "remark").map_err(fail)?),
    };
    let ext_len = r
        .i32()
        .ok_or_else(|| fail("missing extFields length".into()))?;
    let ext_len = usize::try_from(ext_len)
        .map_err(|_| fail(format!("negative extFields length {ext_len}")))?;
    let ext_bytes = r
        .take(ext_len)
        .ok_or_else(|| fail(format!("extFields of {ext_len} bytes overrun the header")))?;
    let mut ext_fields = ExtFields::with_capacity(EXPECTED_EXT_FIELDS);
    let mut entries = Reader { buf: ext_bytes };
    while !entries.buf.is_empty() {
        let key_len = entries
            .i16()
            .ok_or_else(|| fail("truncated extFields key length".into()))?;
        let key = entries.str_lossy(i64::from(key_len), "key").map_err(fail)?;
        let key = intern(&key);
        let value_len = entries
            .i32()
            .ok_or_else(|| fail(format!("truncated value length of {key}")))?;
        let value = entries
            .string(i64::from(value_len), "value")
            .map_err(fail)?;
        ext_fields.push_decoded(key, value);
    }
    ext_fields.finish_decoding();
    Ok(RemotingCommand {
        code: i32::from(code),
        language: LanguageCode::from_code(language),
        version: i32::from(version),
        opaque,
        flag,
        remark,
        ext_fields,
        serialize_type: SerializeType::RocketMq,
        body: Vec::new(),
    })
}

fn error(opaque: Option<i32>, reason: String) -> HeaderError {
    HeaderError {
        opaque,
        serialize_type: SerializeType::RocketMq,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RemotingCommand {
        let mut cmd = RemotingCommand::request(105).with_ext("topic", "T");
        cmd.opaque = 7;
        cmd.serialize_type = SerializeType::RocketMq;
        cmd
    }

    #[test]
    fn encodes_byte_exact() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        let expected: &[u8] = &[
            0x00, 0x69, // code 105
            0x00, // JAVA
            0x00, 0x00, // version
            0x00, 0x00, 0x00, 0x07, // opaque
            0x00, 0x00, 0x00, 0x00, // flag
            0x00, 0x00, 0x00, 0x00, // no remark
            0x00, 0x00, 0x00, 0x0c, // ext_len 12
            0x00, 0x05, b't', b'o', b'p', b'i', b'c', 0x00, 0x00, 0x00, 0x01, b'T',
        ];
        assert_eq!(out, expected);
        assert_eq!(decode(&out).unwrap(), sample());
    }

    #[test]
    fn truncated_header_reports_opaque() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        let err = decode(&out[..out.len() - 1]).unwrap_err();
        assert_eq!(err.opaque, Some(7));
        let err = decode(&out[..4]).unwrap_err();
        assert_eq!(err.opaque, None);
    }

    #[test]
    fn negative_lengths_are_errors() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        out[13..17].copy_from_slice(&(-1i32).to_be_bytes());
        let err = decode(&out).unwrap_err();
        assert_eq!(err.opaque, Some(7));
        assert!(err.reason.contains("negative"), "{}", err.reason);
    }
}
