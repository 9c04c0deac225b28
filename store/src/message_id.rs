//! Offset message ids: the broker-assigned id that names a stored message by where it lives.
//!
//! The id is the upper-case hex of these big-endian bytes (RocketMQ's `MessageDecoder.createMessageId`):
//!
//! | bytes (IPv4) | bytes (IPv6) | field                                  |
//! |-------------:|-------------:|----------------------------------------|
//! | 0..4         | 0..16        | store host address                     |
//! | 4..8         | 16..20       | store host port (as a 32-bit integer)  |
//! | 8..16        | 20..28       | CommitLog physical offset of the record |
//!
//! so an IPv4 id is 32 hex characters and an IPv6 id 56. In Tern the top byte of the physical offset is
//! the shard (core) that owns the CommitLog holding the record: see [`MessageId::shard`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Hex length of an id with an IPv4 store host.
pub const IPV4_ID_LEN: usize = 32;
/// Hex length of an id with an IPv6 store host.
pub const IPV6_ID_LEN: usize = 56;
/// Bit position of the shard number in a Tern physical offset.
pub const SHARD_SHIFT: u32 = 56;

/// Why a string is not an offset message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageIdError {
    /// The id is neither 32 nor 56 characters long.
    #[error("message id has length {0}, expected 32 or 56")]
    Length(usize),
    /// The id contains a character that is not a hex digit.
    #[error("message id contains a non-hex character")]
    NotHex,
    /// The port field does not hold a TCP port.
    #[error("message id port {0} is out of range")]
    Port(i32),
}

/// A decoded offset message id: the store host and the CommitLog position of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    /// Address of the broker that stored the message.
    pub store_host: SocketAddr,
    /// CommitLog physical offset of the record.
    pub physical_offset: i64,
}

impl MessageId {
    /// The id of the message at `physical_offset` stored by `store_host`.
    pub fn new(store_host: SocketAddr, physical_offset: i64) -> Self {
        Self {
            store_host,
            physical_offset,
        }
    }

    /// The shard (core index) whose CommitLog holds the record: the top byte of the physical offset.
    pub fn shard(&self) -> u8 {
        ((self.physical_offset as u64) >> SHARD_SHIFT) as u8
    }

    /// Parses an id (hex digits of either case).
    pub fn parse(id: &str) -> Result<Self, MessageIdError> {
        let mut raw = [0u8; IPV6_ID_LEN / 2];
        let bytes = match id.len() {
            IPV4_ID_LEN | IPV6_ID_LEN => &mut raw[..id.len() / 2],
            other => return Err(MessageIdError::Length(other)),
        };
        for (dst, pair) in bytes.iter_mut().zip(id.as_bytes().chunks_exact(2)) {
            *dst = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        let (ip, rest) = if bytes.len() == IPV4_ID_LEN / 2 {
            let (ip, rest) = bytes.split_at(4);
            let ip: [u8; 4] = ip
                .try_into()
                .map_err(|_| MessageIdError::Length(id.len()))?;
            (IpAddr::V4(Ipv4Addr::from(ip)), rest)
        } else {
            let (ip, rest) = bytes.split_at(16);
            let ip: [u8; 16] = ip
                .try_into()
                .map_err(|_| MessageIdError::Length(id.len()))?;
            (IpAddr::V6(Ipv6Addr::from(ip)), rest)
        };
        let (port, offset) = rest.split_at(4);
        let port = i32::from_be_bytes(
            port.try_into()
                .map_err(|_| MessageIdError::Length(id.len()))?,
        );
        let port = u16::try_from(port).map_err(|_| MessageIdError::Port(port))?;
        let offset = i64::from_be_bytes(
            offset
                .try_into()
                .map_err(|_| MessageIdError::Length(id.len()))?,
        );
        Ok(Self::new(SocketAddr::new(ip, port), offset))
    }
}

/// Formats the id as upper-case hex (32 or 56 characters); write it into a reused `String` with
/// `write!` to avoid allocating.
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.store_host.ip() {
            IpAddr::V4(ip) => write_hex(f, &ip.octets())?,
            IpAddr::V6(ip) => write_hex(f, &ip.octets())?,
        }
        write_hex(f, &i32::from(self.store_host.port()).to_be_bytes())?;
        write_hex(f, &self.physical_offset.to_be_bytes())
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02X}"))
}

fn hex_value(c: u8) -> Result<u8, MessageIdError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(MessageIdError::NotHex),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_vector_from_capture() {
        // A broker at 127.0.0.1:10911 answering SEND_MESSAGE for the record at offset 0x11B.
        let id = MessageId::new("127.0.0.1:10911".parse().unwrap(), 0x11B);
        assert_eq!(id.to_string(), "7F00000100002A9F000000000000011B");
        assert_eq!(MessageId::parse("7F00000100002A9F000000000000011B"), Ok(id));
        assert_eq!(MessageId::parse("7f00000100002a9f000000000000011b"), Ok(id));
    }

    #[test]
    fn ipv6_round_trip_and_shard() {
        let offset = (3i64 << SHARD_SHIFT) | 0x1234;
        let id = MessageId::new("[2001:db8::1]:10911".parse().unwrap(), offset);
        let text = id.to_string();
        assert_eq!(text.len(), IPV6_ID_LEN);
        assert_eq!(
            text,
            "20010DB800000000000000000000000100002A9F0300000000001234"
        );
        assert_eq!(MessageId::parse(&text), Ok(id));
        assert_eq!(id.shard(), 3);
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(MessageId::parse(""), Err(MessageIdError::Length(0)));
        assert_eq!(
            MessageId::parse("7F00000100002A9F000000000000011"),
            Err(MessageIdError::Length(31))
        );
        assert_eq!(
            MessageId::parse("7F00000100002A9F000000000000011G"),
            Err(MessageIdError::NotHex)
        );
        assert_eq!(
            MessageId::parse("7F00000100012A9F000000000000011B"),
            Err(MessageIdError::Port(0x12A9F))
        );
        // Multi-byte UTF-8 of the right byte length is not hex.
        assert_eq!(
            MessageId::parse("é7F00000100002A9F00000000000001"),
            Err(MessageIdError::NotHex)
        );
    }
}
