//! Framing: splitting a byte stream into remoting frames and converting frames to and from
//! [`RemotingCommand`]s.
//!
//! ## Frame layout (all integers big-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `total`: length of everything after this word (`4 + header_len + body_len`) |
//! | 4 | 1 | serialize type of the header ([`SerializeType`]: 0 JSON, 1 ROCKETMQ) |
//! | 5 | 3 | `header_len` (24-bit) |
//! | 8 | `header_len` | header (JSON object or ROCKETMQ binary header) |
//! | 8 + `header_len` | `total - 4 - header_len` | body |
//!
//! A whole frame (`4 + total` bytes) may be at most `max` bytes, [`DEFAULT_MAX_FRAME_LEN`] by default
//! (RocketMQ's `com.rocketmq.remoting.frameMaxLength`).
//!
//! ## Errors
//! [`FrameError`]s mean the byte stream can no longer be trusted: the connection must be closed.
//! [`HeaderError`]s concern one frame whose boundaries are sound: the connection may continue, and
//! when the opaque could be read the peer can be told with a `SYSTEM_ERROR` response.

use super::{binary_header, json_header, RemotingCommand, SerializeType};

/// RocketMQ's default maximum frame length (length prefix included): 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest header the 24-bit header-length field can describe.
pub const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// Bytes before the header: the length prefix and the header-length word.
const PREAMBLE_LEN: usize = 8;

/// Fatal framing problems: the connection must be closed. Never implies an allocation of the
/// claimed size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame (length prefix included) is longer than allowed.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The claimed frame length, length prefix included.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The frame's lengths contradict each other.
    #[error("inconsistent frame: {reason} (frame {frame_len} bytes, header {header_len} bytes)")]
    Inconsistent {
        /// The frame length, length prefix included (claimed by the prefix, or the slice given).
        frame_len: usize,
        /// The header length claimed by the header-length word (0 when not yet read).
        header_len: usize,
        /// Which rule was broken.
        reason: &'static str,
    },
    /// The header-length word names a serialization RocketMQ does not define.
    #[error("unknown header serialize type {0}")]
    UnknownSerializeType(u8),
}

/// A problem with one frame's header where the connection may continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {serialize_type:?} header (opaque {opaque:?}): {reason}")]
pub struct HeaderError {
    /// The request's opaque when it could be read, so a `SYSTEM_ERROR` response can be sent.
    pub opaque: Option<i32>,
    /// The header's serialization: the one to answer in.
    pub serialize_type: SerializeType,
    /// What was wrong, for logs and the response's remark.
    pub reason: String,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fatal: close the connection.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Recoverable: answer `SYSTEM_ERROR` if the opaque is known, then go on.
    #[error(transparent)]
    Header(#[from] HeaderError),
}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at + 4)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    Some(u32::from_be_bytes(word))
}

/// Splits the header-length word into serialize type and header length.
fn split_header_word(word: u32) -> Result<(SerializeType, usize), FrameError> {
    let type_byte = (word >> 24) as u8;
    let serialize_type =
        SerializeType::from_code(type_byte).ok_or(FrameError::UnknownSerializeType(type_byte))?;
    Ok((serialize_type, (word & 0x00FF_FFFF) as usize))
}

/// Given the bytes received so far (starting at a frame boundary), the length of the next whole frame
/// (length prefix included) once all of it is in `buf`; `Ok(None)` while more bytes are needed.
///
/// Checks what it can as soon as the bytes arrive: the claimed length against `max` (so nothing is
/// ever allocated for an oversized claim), the minimum length, the serialize type and that the header
/// fits in the frame.
pub fn next_frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(total) = be_u32(buf, 0) else {
        return Ok(None);
    };
    let frame_len = total as usize + 4;
    if frame_len > max {
        return Err(FrameError::TooLarge {
            len: frame_len,
            max,
        });
    }
    if frame_len < PREAMBLE_LEN {
        return Err(FrameError::Inconsistent {
            frame_len,
            header_len: 0,
            reason: "frame too short for the header-length word",
        });
    }
    if let Some(word) = be_u32(buf, 4) {
        let (_, header_len) = split_header_word(word)?;
        if header_len > frame_len - PREAMBLE_LEN {
            return Err(FrameError::Inconsistent {
                frame_len,
                header_len,
                reason: "header longer than the frame",
            });
        }
    }
    Ok((buf.len() >= frame_len).then_some(frame_len))
}

/// Decodes one whole frame (length prefix included, exactly as delimited by [`next_frame_len`]).
///
/// The header is decoded leniently (see the JSON and ROCKETMQ header rules in docs/protocol.md); the
/// body is copied out.
pub fn decode(frame: &[u8]) -> Result<RemotingCommand, DecodeError> {
    let (Some(total), Some(word)) = (be_u32(frame, 0), be_u32(frame, 4)) else {
        return Err(FrameError::Inconsistent {
            frame_len: frame.len(),
            header_len: 0,
            reason: "frame shorter than 8 bytes",
        }
        .into());
    };
    if total as usize + 4 != frame.len() {
        return Err(FrameError::Inconsistent {
            frame_len: frame.len(),
            header_len: 0,
            reason: "length prefix does not match the frame",
        }
        .into());
    }
    let (serialize_type, header_len) = split_header_word(word)?;
    let Some(header) = frame.get(PREAMBLE_LEN..PREAMBLE_LEN + header_len) else {
        return Err(FrameError::Inconsistent {
            frame_len: frame.len(),
            header_len,
            reason: "header longer than the frame",
        }
        .into());
    };
    let body = frame.get(PREAMBLE_LEN + header_len..).unwrap_or_default();
    let mut cmd = match serialize_type {
        SerializeType::Json => json_header::decode(header)?,
        SerializeType::RocketMq => binary_header::decode(header)?,
    };
    cmd.serialize_type = serialize_type;
    cmd.body = body.to_vec();
    Ok(cmd)
}

/// Appends the whole frame for `cmd` (body included) to `out`, the header serialized as
/// `cmd.serialize_type` says.
///
/// Precondition: the serialized header fits in 24 bits ([`MAX_HEADER_LEN`]) and the frame in an
/// `i32`; both hold for any command a [`DEFAULT_MAX_FRAME_LEN`] peer can receive.
pub fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    encode_head(cmd, cmd.body.len(), out);
    out.extend_from_slice(&cmd.body);
}

/// Appends the length prefix and header of `cmd`'s frame to `out`, for a body of `body_len` bytes the
/// caller sends itself right after (zero-copy pulls). `cmd.body` is ignored.
///
/// Same precondition as [`encode`].
pub fn encode_head(cmd: &RemotingCommand, body_len: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; PREAMBLE_LEN]);
    match cmd.serialize_type {
        SerializeType::Json => json_header::encode(cmd, out),
        SerializeType::RocketMq => binary_header::encode(cmd, out),
    }
    let header_len = out.len() - start - PREAMBLE_LEN;
    debug_assert!(header_len <= MAX_HEADER_LEN, "header of {header_len} bytes");
    let total = 4 + header_len + body_len;
    debug_assert!(i32::try_from(total).is_ok(), "frame of {total} bytes");
    let word = (u32::from(cmd.serialize_type.code()) << 24) | (header_len as u32 & 0x00FF_FFFF);
    out[start..start + 4].copy_from_slice(&(total as u32).to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
}
