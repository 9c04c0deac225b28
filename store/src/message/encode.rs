//! Encoding of stored records: [`MessageDraft`] and the blank end-of-segment record.

use std::net::{IpAddr, SocketAddr};

use super::{
    body_crc, fixed_len, host_len, sys_flag, EncodeError, BLANK_MAGIC_CODE, BLANK_RECORD_LEN,
    MAX_PROPERTIES_LEN, MAX_TOPIC_LEN, MESSAGE_MAGIC_CODE,
};

/// Fields a producer supplies; encoding writes straight into the destination (no intermediate buffer).
///
/// The SYSFLAG host bits ([`sys_flag::BORNHOST_V6`], [`sys_flag::STOREHOSTADDRESS_V6`]) are derived from
/// the address families of `born_host` and `store_host`; whatever `sys_flag` says about them is ignored.
#[derive(Debug, Clone, Copy)]
pub struct MessageDraft<'a> {
    /// Topic (1..=127 bytes of UTF-8).
    pub topic: &'a str,
    /// Queue id within the topic.
    pub queue_id: i32,
    /// Producer's opaque flag.
    pub flag: i32,
    /// Body bytes.
    pub body: &'a [u8],
    /// Already-encoded property bytes (see [`crate::properties`]).
    pub properties: &'a [u8],
    /// [`sys_flag`] bits.
    pub sys_flag: i32,
    /// Producer's send time, ms since the epoch.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Delivery attempts so far.
    pub reconsume_times: i32,
    /// CommitLog offset of the prepared half message (transaction commit/rollback), else 0.
    pub prepared_transaction_offset: i64,
}

impl MessageDraft<'_> {
    /// Total stored size (the TOTALSIZE field), or an error if a field is too long for the layout.
    pub fn stored_len(&self) -> Result<usize, EncodeError> {
        let topic_len = self.topic.len();
        if topic_len == 0 || topic_len > MAX_TOPIC_LEN {
            return Err(EncodeError::TopicLength(topic_len));
        }
        if self.properties.len() > MAX_PROPERTIES_LEN {
            return Err(EncodeError::PropertiesTooLong(self.properties.len()));
        }
        let len = fixed_len(host_len(&self.born_host), host_len(&self.store_host))
            .saturating_add(self.body.len())
            .saturating_add(topic_len)
            .saturating_add(self.properties.len());
        if len > i32::MAX as usize {
            return Err(EncodeError::RecordTooLong(len));
        }
        Ok(len)
    }

    /// The SYSFLAG value written for this draft: `sys_flag` with the host bits set from the addresses.
    pub fn stored_sys_flag(&self) -> i32 {
        let mut flag = self.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOSTADDRESS_V6);
        if self.born_host.is_ipv6() {
            flag |= sys_flag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            flag |= sys_flag::STOREHOSTADDRESS_V6;
        }
        flag
    }

    /// Writes the stored record into `out[..stored_len]`; `out.len() >= stored_len` is required.
    /// Returns the record length. Bytes of `out` past the record are left untouched.
    pub fn encode_into(
        &self,
        queue_offset: i64,
        physical_offset: i64,
        store_timestamp: i64,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let len = self.stored_len()?;
        let have = out.len();
        let dst = out
            .get_mut(..len)
            .ok_or(EncodeError::BufferTooSmall { need: len, have })?;
        let mut w = Writer { buf: dst, pos: 0 };
        // Lengths were checked by stored_len, so the narrowing casts below are lossless.
        w.put(&(len as i32).to_be_bytes());
        w.put(&MESSAGE_MAGIC_CODE.to_be_bytes());
        w.put(&body_crc(self.body).to_be_bytes());
        w.put(&self.queue_id.to_be_bytes());
        w.put(&self.flag.to_be_bytes());
        w.put(&queue_offset.to_be_bytes());
        w.put(&physical_offset.to_be_bytes());
        w.put(&self.stored_sys_flag().to_be_bytes());
        w.put(&self.born_timestamp.to_be_bytes());
        w.host(&self.born_host);
        w.put(&store_timestamp.to_be_bytes());
        w.host(&self.store_host);
        w.put(&self.reconsume_times.to_be_bytes());
        w.put(&self.prepared_transaction_offset.to_be_bytes());
        w.put(&(self.body.len() as i32).to_be_bytes());
        w.put(self.body);
        w.put(&[self.topic.len() as u8]);
        w.put(self.topic.as_bytes());
        w.put(&(self.properties.len() as i16).to_be_bytes());
        w.put(self.properties);
        debug_assert_eq!(w.pos, len, "encoded length disagrees with stored_len");
        Ok(len)
    }
}

/// Sequential writer over a buffer whose length was checked up front.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
    }

    fn host(&mut self, addr: &SocketAddr) {
        match addr.ip() {
            IpAddr::V4(ip) => self.put(&ip.octets()),
            IpAddr::V6(ip) => self.put(&ip.octets()),
        }
        self.put(&i32::from(addr.port()).to_be_bytes());
    }
}

/// Writes a blank end-of-segment record (`len` = bytes left in the segment) into `out[..8]`.
/// Returns [`BLANK_RECORD_LEN`], or `None` if `out` is shorter than that or `len` does not fit an i32.
pub fn encode_blank(len: usize, out: &mut [u8]) -> Option<usize> {
    let total = i32::try_from(len).ok()?;
    let dst = out.get_mut(..BLANK_RECORD_LEN)?;
    dst[..4].copy_from_slice(&total.to_be_bytes());
    dst[4..].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
    Some(BLANK_RECORD_LEN)
}
