//! Decoding and classification of the bytes at a CommitLog position.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{
    body_crc, sys_flag, DecodeError, BLANK_MAGIC_CODE, BLANK_RECORD_LEN, MAX_TOPIC_LEN,
    MESSAGE_MAGIC_CODE, MIN_RECORD_LEN,
};
use crate::properties;

/// Borrowed view of one stored record: every field, with body, topic and properties as slices of the
/// source buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredMessage<'a> {
    /// TOTALSIZE: the record's length in bytes.
    pub total_size: usize,
    /// BODYCRC as stored.
    pub body_crc: i32,
    /// Queue id within the topic.
    pub queue_id: i32,
    /// Producer's opaque flag.
    pub flag: i32,
    /// Index of the message in its ConsumeQueue.
    pub queue_offset: i64,
    /// Position of the record in the CommitLog.
    pub physical_offset: i64,
    /// [`sys_flag`] bits.
    pub sys_flag: i32,
    /// Producer's send time, ms since the epoch.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker's store time, ms since the epoch.
    pub store_timestamp: i64,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Delivery attempts so far.
    pub reconsume_times: i32,
    /// CommitLog offset of the prepared half message, else 0.
    pub prepared_transaction_offset: i64,
    /// Body bytes.
    pub body: &'a [u8],
    /// Topic.
    pub topic: &'a str,
    /// Encoded properties (see [`crate::properties`]).
    pub properties: &'a [u8],
}

impl<'a> StoredMessage<'a> {
    /// Decodes the record at the start of `buf` (which may extend past it), checking the magic code,
    /// every length field against TOTALSIZE, and the body CRC.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_checked(buf, true)
    }

    /// Like [`decode`](Self::decode), verifying the body CRC only when `verify_crc` is set.
    pub fn decode_checked(buf: &'a [u8], verify_crc: bool) -> Result<Self, DecodeError> {
        match check_record(buf, verify_crc) {
            RecordCheck::Message(msg) => Ok(msg),
            RecordCheck::Blank { .. } => Err(DecodeError::BadMagic(BLANK_MAGIC_CODE)),
            RecordCheck::Invalid(err) => Err(err),
        }
    }

    /// The TAGS property.
    pub fn tags(&self) -> Option<&'a str> {
        self.property(properties::TAGS)
    }

    /// Each non-empty key of the KEYS property (split on `' '`).
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.property(properties::KEYS)
            .unwrap_or("")
            .split(properties::KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
    }

    /// The UNIQ_KEY property (client-generated message id).
    pub fn uniq_key(&self) -> Option<&'a str> {
        self.property(properties::UNIQ_KEY)
    }

    /// The value of property `name` (last occurrence wins).
    pub fn property(&self, name: &str) -> Option<&'a str> {
        properties::get(self.properties, name)
    }

    /// The ConsumeQueue tag hash of this message: hash of TAGS, or 0 without tags.
    pub fn tag_hash(&self) -> i64 {
        self.tags()
            .map(crate::consume_queue::tag_hash_code)
            .unwrap_or(0)
    }
}

/// What the bytes at a CommitLog position hold (used by recovery and dispatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCheck<'a> {
    /// A complete, valid message record.
    Message(StoredMessage<'a>),
    /// A blank end-of-segment record; `len` is its TOTALSIZE (the bytes left in the segment). Only the
    /// first [`BLANK_RECORD_LEN`] bytes need be present in the buffer.
    Blank {
        /// TOTALSIZE of the blank record.
        len: usize,
    },
    /// Not a valid record (end of data, torn write or corruption).
    Invalid(DecodeError),
}

/// Classifies the bytes at the start of `buf`: a message (validated; body CRC checked when
/// `verify_crc`), a blank end-of-segment record, or invalid data. Never panics.
pub fn check_record(buf: &[u8], verify_crc: bool) -> RecordCheck<'_> {
    let mut r = Reader { buf, pos: 0 };
    let (Some(total), Some(magic)) = (r.i32(), r.i32()) else {
        return RecordCheck::Invalid(DecodeError::Truncated {
            need: BLANK_RECORD_LEN,
            have: buf.len(),
        });
    };
    match magic {
        MESSAGE_MAGIC_CODE => {}
        BLANK_MAGIC_CODE => {
            return match usize::try_from(total) {
                Ok(len) if len >= BLANK_RECORD_LEN => RecordCheck::Blank { len },
                _ => RecordCheck::Invalid(DecodeError::BadTotalSize(total)),
            };
        }
        0 if total == 0 => return RecordCheck::Invalid(DecodeError::Unwritten),
        other => return RecordCheck::Invalid(DecodeError::BadMagic(other)),
    }
    match decode_message(buf, total, verify_crc) {
        Ok(msg) => RecordCheck::Message(msg),
        Err(err) => RecordCheck::Invalid(err),
    }
}

/// Decodes a record whose magic code has been checked.
fn decode_message(
    buf: &[u8],
    total: i32,
    verify_crc: bool,
) -> Result<StoredMessage<'_>, DecodeError> {
    let total_size = usize::try_from(total)
        .ok()
        .filter(|&t| t >= MIN_RECORD_LEN)
        .ok_or(DecodeError::BadTotalSize(total))?;
    let record = buf.get(..total_size).ok_or(DecodeError::Truncated {
        need: total_size,
        have: buf.len(),
    })?;
    // Every read below stays inside `record`. Running out in the fixed part means TOTALSIZE is too
    // small for the host widths the sys flags announce; later, that a length field lied.
    let too_small = || DecodeError::BadTotalSize(total);
    let short = |field: &'static str, len: i64| DecodeError::BadFieldLength {
        field,
        len,
        total: total_size,
    };
    let mut r = Reader {
        buf: record,
        pos: 8,
    };
    let stored_crc = r.i32().ok_or_else(too_small)?;
    let queue_id = r.i32().ok_or_else(too_small)?;
    let flag = r.i32().ok_or_else(too_small)?;
    let queue_offset = r.i64().ok_or_else(too_small)?;
    let physical_offset = r.i64().ok_or_else(too_small)?;
    let sys_flag = r.i32().ok_or_else(too_small)?;
    let born_timestamp = r.i64().ok_or_else(too_small)?;
    let born_host = r
        .host(sys_flag & sys_flag::BORNHOST_V6 != 0)
        .ok_or_else(too_small)??;
    let store_timestamp = r.i64().ok_or_else(too_small)?;
    let store_host = r
        .host(sys_flag & sys_flag::STOREHOSTADDRESS_V6 != 0)
        .ok_or_else(too_small)??;
    let reconsume_times = r.i32().ok_or_else(too_small)?;
    let prepared_transaction_offset = r.i64().ok_or_else(too_small)?;
    let body_len = r.i32().ok_or_else(too_small)?;
    let body = usize::try_from(body_len)
        .ok()
        .and_then(|n| r.bytes(n))
        .ok_or(short("body", body_len.into()))?;
    let topic_len = r.u8().ok_or(short("topic", 0))?;
    // The v1 layout reads the topic length as a signed byte: above 127 is invalid.
    if usize::from(topic_len) > MAX_TOPIC_LEN {
        return Err(short("topic", topic_len.into()));
    }
    let topic = r
        .bytes(usize::from(topic_len))
        .ok_or(short("topic", topic_len.into()))?;
    let props_len = r.i16().ok_or(short("properties", 0))?;
    let properties = usize::try_from(props_len)
        .ok()
        .and_then(|n| r.bytes(n))
        .ok_or(short("properties", props_len.into()))?;
    if r.pos != total_size {
        return Err(DecodeError::LengthMismatch {
            declared: total_size,
            computed: r.pos,
        });
    }
    if verify_crc {
        let computed = body_crc(body);
        if computed != stored_crc {
            return Err(DecodeError::BodyCrc {
                stored: stored_crc,
                computed,
            });
        }
    }
    let topic = std::str::from_utf8(topic).map_err(|_| DecodeError::TopicNotUtf8)?;
    Ok(StoredMessage {
        total_size,
        body_crc: stored_crc,
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic,
        properties,
    })
}

/// Bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }

    /// A host field: IPv4 (4 + port 4) or IPv6 (16 + port 4); `None` when the buffer ends first.
    /// The port is stored as an i32 and must fit 16 bits.
    fn host(&mut self, v6: bool) -> Option<Result<SocketAddr, DecodeError>> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))
        };
        let port = self.i32()?;
        Some(
            u16::try_from(port)
                .map(|port| SocketAddr::new(ip, port))
                .map_err(|_| DecodeError::BadPort(port)),
        )
    }
}
