//! The stored-message record: RocketMQ's CommitLog message layout (magic v1), its encoder and decoder.
//!
//! All integers are big-endian. `H` is a host field: 8 bytes (IPv4 address 4 + port 4) or, when the
//! matching sys-flag bit is set, 20 bytes (IPv6 address 16 + port 4). Offsets below assume IPv4 hosts.
//!
//! | offset | size | field                        | meaning                                          |
//! |-------:|-----:|------------------------------|--------------------------------------------------|
//! | 0      | 4    | TOTALSIZE                    | length of the whole record, this field included  |
//! | 4      | 4    | MAGICCODE                    | [`MESSAGE_MAGIC_CODE`] (`0xdaa320a7`)            |
//! | 8      | 4    | BODYCRC                      | CRC32 of the body, masked with `0x7fffffff`      |
//! | 12     | 4    | QUEUEID                      | queue id within the topic                        |
//! | 16     | 4    | FLAG                         | producer's opaque flag                           |
//! | 20     | 8    | QUEUEOFFSET                  | index of the message in its ConsumeQueue         |
//! | 28     | 8    | PHYSICALOFFSET               | position of this record in the CommitLog         |
//! | 36     | 4    | SYSFLAG                      | [`sys_flag`] bits                                |
//! | 40     | 8    | BORNTIMESTAMP                | producer's send time, ms since the epoch         |
//! | 48     | H    | BORNHOST                     | producer address and port                        |
//! | 56     | 8    | STORETIMESTAMP               | broker's store time, ms since the epoch          |
//! | 64     | H    | STOREHOST                    | broker address and port                          |
//! | 72     | 4    | RECONSUMETIMES               | delivery attempts so far                         |
//! | 76     | 8    | PREPAREDTRANSACTIONOFFSET    | CommitLog offset of the prepared half message    |
//! | 84     | 4    | BODYLEN                      | body length `b`                                  |
//! | 88     | b    | BODY                         | body bytes                                       |
//! | 88+b   | 1    | TOPICLEN                     | topic length `t` (at most 127)                   |
//! | 89+b   | t    | TOPIC                        | topic, UTF-8                                     |
//! | 89+b+t | 2    | PROPERTIESLEN                | properties length `p` (at most 32767)            |
//! | 91+b+t | p    | PROPERTIES                   | [`crate::properties`] encoding                   |
//!
//! Total: `91 + b + t + p` with two IPv4 hosts, 12 more per IPv6 host.
//!
//! A CommitLog segment whose tail cannot hold the next record ends with a blank record: TOTALSIZE (the
//! number of bytes left in the segment) followed by [`BLANK_MAGIC_CODE`]; the rest is unspecified.

use std::net::SocketAddr;

mod decode;
mod encode;

pub use decode::{check_record, RecordCheck, StoredMessage};
pub use encode::{encode_blank, MessageDraft};

/// Magic code of a v1 stored message (`0xdaa320a7`; RocketMQ's `MESSAGE_MAGIC_CODE`, 1-byte topic length).
pub const MESSAGE_MAGIC_CODE: i32 = 0xdaa3_20a7_u32 as i32;
/// Magic code of the blank record that fills the end of a CommitLog segment (`0xcbd43194`).
pub const BLANK_MAGIC_CODE: i32 = 0xcbd4_3194_u32 as i32;
/// Bytes a blank record occupies on disk (TOTALSIZE + MAGICCODE); a segment always keeps room for it.
pub const BLANK_RECORD_LEN: usize = 8;
/// Longest topic the v1 layout holds, in bytes.
pub const MAX_TOPIC_LEN: usize = i8::MAX as usize;
/// Longest property string the layout holds, in bytes.
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;
/// Position of the PHYSICALOFFSET field within a record (for patching in place).
pub const PHYSICAL_OFFSET_POS: usize = 28;
/// Position of the QUEUEOFFSET field within a record.
pub const QUEUE_OFFSET_POS: usize = 20;
/// Position of the STORETIMESTAMP field when the born host is IPv4; see [`store_timestamp_pos`].
const STORE_TIMESTAMP_POS_V4: usize = 56;

/// Bits of the SYSFLAG field (RocketMQ's `MessageSysFlag`).
pub mod sys_flag {
    /// The body is compressed (zlib unless a compression type below says otherwise).
    pub const COMPRESSED: i32 = 0x1;
    /// The TAGS property holds several tags.
    pub const MULTI_TAGS: i32 = 0x1 << 1;
    /// Mask of the two transaction-type bits.
    pub const TRANSACTION_MASK: i32 = 0x3 << 2;
    /// Not a transactional message.
    pub const TRANSACTION_NOT_TYPE: i32 = 0;
    /// Prepared (half) transactional message: not dispatched to its ConsumeQueue.
    pub const TRANSACTION_PREPARED_TYPE: i32 = 0x1 << 2;
    /// Commit of a transactional message.
    pub const TRANSACTION_COMMIT_TYPE: i32 = 0x2 << 2;
    /// Rollback of a transactional message: not dispatched to its ConsumeQueue.
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0x3 << 2;
    /// BORNHOST is IPv6 (20 bytes).
    pub const BORNHOST_V6: i32 = 0x1 << 4;
    /// STOREHOST is IPv6 (20 bytes).
    pub const STOREHOSTADDRESS_V6: i32 = 0x1 << 5;
    /// The body must be unwrapped before delivery.
    pub const NEED_UNWRAP: i32 = 0x1 << 6;
    /// The record is an inner batch (several messages, one ConsumeQueue entry range).
    pub const INNER_BATCH: i32 = 0x1 << 7;
    /// Compression type LZ4.
    pub const COMPRESSION_LZ4_TYPE: i32 = 0x1 << 8;
    /// Compression type ZSTD.
    pub const COMPRESSION_ZSTD_TYPE: i32 = 0x2 << 8;
    /// Compression type ZLIB.
    pub const COMPRESSION_ZLIB_TYPE: i32 = 0x3 << 8;
    /// Mask of the compression-type bits.
    pub const COMPRESSION_TYPE_MASK: i32 = 0x7 << 8;

    /// The transaction-type bits of `flag` (one of the `TRANSACTION_*_TYPE` values).
    pub const fn transaction_type(flag: i32) -> i32 {
        flag & TRANSACTION_MASK
    }
}

/// Why a [`MessageDraft`] cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The topic is empty or longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("topic length {0} is outside 1..={MAX_TOPIC_LEN}")]
    TopicLength(usize),
    /// The properties are longer than [`MAX_PROPERTIES_LEN`] bytes.
    #[error("properties length {0} exceeds {MAX_PROPERTIES_LEN}")]
    PropertiesTooLong(usize),
    /// The whole record would not fit the 32-bit TOTALSIZE field.
    #[error("record length {0} exceeds i32::MAX")]
    RecordTooLong(usize),
    /// The destination buffer is shorter than the record.
    #[error("destination holds {have} bytes, record needs {need}")]
    BufferTooSmall {
        /// Record length.
        need: usize,
        /// Destination length.
        have: usize,
    },
}

/// Why bytes are not a valid stored message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends before the record (or its fixed header) does.
    #[error("record truncated: needs {need} bytes, {have} available")]
    Truncated {
        /// Bytes the record needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// TOTALSIZE and MAGICCODE are both zero: nothing was written here (end of data in a preallocated file).
    #[error("no record written here (zero bytes)")]
    Unwritten,
    /// MAGICCODE is neither the message nor the blank magic.
    #[error("unknown magic code {0:#010x}")]
    BadMagic(i32),
    /// TOTALSIZE is negative or smaller than the smallest possible record.
    #[error("invalid total size {0}")]
    BadTotalSize(i32),
    /// A length field is negative or runs past TOTALSIZE.
    #[error("{field} length {len} is invalid for a record of {total} bytes")]
    BadFieldLength {
        /// Which length field.
        field: &'static str,
        /// The value read.
        len: i64,
        /// The record's TOTALSIZE.
        total: usize,
    },
    /// TOTALSIZE disagrees with the length computed from the variable fields.
    #[error("total size {declared} disagrees with computed {computed}")]
    LengthMismatch {
        /// TOTALSIZE.
        declared: usize,
        /// Length implied by the body, topic and properties lengths.
        computed: usize,
    },
    /// BODYCRC does not match the body.
    #[error("body CRC {stored:#x} does not match computed {computed:#x}")]
    BodyCrc {
        /// BODYCRC as stored.
        stored: i32,
        /// CRC of the stored body.
        computed: i32,
    },
    /// The topic is not UTF-8.
    #[error("topic is not UTF-8")]
    TopicNotUtf8,
    /// A host field's port is outside 0..=65535.
    #[error("host port {0} is out of range")]
    BadPort(i32),
}

/// RocketMQ's body checksum: CRC32 (IEEE) masked to 31 bits, as stored in BODYCRC.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7fff_ffff) as i32
}

/// Encoded length of a host field for `addr`.
const fn host_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// Length of the fixed part of a record (everything but body, topic and properties) for the given
/// host widths.
const fn fixed_len(born_host_len: usize, store_host_len: usize) -> usize {
    4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + born_host_len + 8 + store_host_len + 4 + 8 + 4 + 1 + 2
}

/// Smallest possible record: IPv4 hosts, empty body, one-byte topic, no properties.
pub const MIN_RECORD_LEN: usize = fixed_len(8, 8) + 1;

/// Position of STORETIMESTAMP in a record with sys flags `sys_flag` (it moves when the born host is IPv6).
pub const fn store_timestamp_pos(sys_flag: i32) -> usize {
    if sys_flag & sys_flag::BORNHOST_V6 != 0 {
        STORE_TIMESTAMP_POS_V4 + 12
    } else {
        STORE_TIMESTAMP_POS_V4
    }
}
