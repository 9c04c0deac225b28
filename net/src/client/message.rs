//! Messages: [`Message`] (what a producer sends) and [`MessageExt`] (what a consumer receives,
//! decoded from a pull response with the store's record decoder).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;

use tern_store::message::{sys_flag, StoredMessage};
use tern_store::message_id::MessageId;
use tern_store::properties;

use super::route::MessageQueue;
use super::MqError;

/// A message to send: topic, body, user flag and properties (tags, keys, user properties and the
/// client's system properties such as `UNIQ_KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The body bytes.
    pub body: Vec<u8>,
    /// The user's flag (stored as is, RocketMQ's `flag`).
    pub flag: i32,
    properties: BTreeMap<String, String>,
}

impl Message {
    /// A message for `topic` with `body` and no properties.
    pub fn new(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            flag: 0,
            properties: BTreeMap::new(),
        }
    }

    /// Sets the tag (the `TAGS` property) consumers filter on.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.put_property(properties::TAGS, tags);
        self
    }

    /// Sets the keys (the `KEYS` property, space separated); the broker indexes each.
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_string()).collect();
        self.put_property(properties::KEYS, joined.join(" "));
        self
    }

    /// Sets a user property (builder style).
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.put_property(name, value);
        self
    }

    /// Sets the delay level (`DELAY`, 1-based index into the broker's `messageDelayLevel`).
    pub fn with_delay_level(mut self, level: i32) -> Self {
        self.put_property(properties::DELAY, level.to_string());
        self
    }

    /// Sets property `name` (an empty name or value is not stored: RocketMQ drops such pairs).
    pub fn put_property(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if !name.is_empty() && !value.is_empty() {
            self.properties.insert(name, value);
        }
    }

    /// The value of property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// The tag, if set.
    pub fn tags(&self) -> Option<&str> {
        self.property(properties::TAGS)
    }

    /// The client-generated unique id (`UNIQ_KEY`), once the producer has set it.
    pub fn uniq_key(&self) -> Option<&str> {
        self.property(properties::UNIQ_KEY)
    }

    /// The properties in RocketMQ's `name\u{1}value\u{2}` encoding.
    pub(crate) fn encoded_properties(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.properties {
            out.push_str(name);
            out.push(char::from(properties::NAME_VALUE_SEPARATOR));
            out.push_str(value);
            out.push(char::from(properties::PROPERTY_SEPARATOR));
        }
        out
    }

    /// Checks what the broker would reject anyway, before sending.
    pub(crate) fn validate(&self, max_size: usize) -> Result<(), MqError> {
        if self.topic.is_empty() || self.topic.len() > 127 {
            return Err(MqError::InvalidMessage(format!(
                "topic {:?} must have 1 to 127 bytes",
                self.topic
            )));
        }
        if self.body.is_empty() {
            return Err(MqError::InvalidMessage("the body is empty".into()));
        }
        if self.body.len() > max_size {
            return Err(MqError::InvalidMessage(format!(
                "the body has {} bytes, more than maxMessageSize {max_size}",
                self.body.len()
            )));
        }
        Ok(())
    }
}

/// A message as a consumer receives it: the stored record's fields and properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// The topic (for a retried message, the original topic: `RETRY_TOPIC` is applied).
    pub topic: String,
    /// The body bytes. A body the producer compressed with zlib (Java does above 4 KiB) is
    /// inflated and its COMPRESSED bit cleared; LZ4 and ZSTD bodies (RocketMQ 5) are left as
    /// stored, the bit set.
    pub body: Vec<u8>,
    /// The producer's flag.
    pub flag: i32,
    /// The broker group the message was pulled from.
    pub broker_name: String,
    /// Queue id within the topic.
    pub queue_id: i32,
    /// Position in the queue.
    pub queue_offset: i64,
    /// Position in the broker's CommitLog.
    pub commit_log_offset: i64,
    /// Stored system flags.
    pub sys_flag: i32,
    /// Producer's send time, ms since the epoch.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker's store time, ms since the epoch.
    pub store_timestamp: i64,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Delivery attempts before this one (0 on first delivery).
    pub reconsume_times: i32,
    /// The broker's offset message id (store host + CommitLog offset).
    pub offset_msg_id: String,
    properties: BTreeMap<String, String>,
}

impl MessageExt {
    /// The message id the Java client reports: `UNIQ_KEY` when set, else the offset message id.
    pub fn msg_id(&self) -> &str {
        self.uniq_key().unwrap_or(&self.offset_msg_id)
    }

    /// The value of property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// Every property, by name.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The tag.
    pub fn tags(&self) -> Option<&str> {
        self.property(properties::TAGS)
    }

    /// The keys (space separated in `KEYS`).
    pub fn keys(&self) -> Vec<&str> {
        self.property(properties::KEYS)
            .unwrap_or("")
            .split(' ')
            .filter(|k| !k.is_empty())
            .collect()
    }

    /// The producer's unique id.
    pub fn uniq_key(&self) -> Option<&str> {
        self.property(properties::UNIQ_KEY)
    }

    /// The topic the message was stored in (`%RETRY%group` for a retry), before
    /// [`MessageExt::topic`] was set back to the original.
    pub(crate) fn stored_topic(&self) -> &str {
        self.property(STORED_TOPIC).unwrap_or(&self.topic)
    }

    /// Builds a message to re-send with this one's body, flag and properties.
    pub(crate) fn to_message(&self, topic: &str) -> Message {
        let mut msg = Message::new(topic, self.body.clone());
        msg.flag = self.flag;
        for (k, v) in &self.properties {
            if k != STORED_TOPIC {
                msg.put_property(k.clone(), v.clone());
            }
        }
        msg
    }
}

/// Client-side property recording the topic a message was pulled from when it differs from
/// [`MessageExt::topic`]; never sent.
const STORED_TOPIC: &str = "__TERN_STORED_TOPIC";

/// Decodes the records of a pull response body (stored messages back to back, as the broker keeps
/// them), attributing them to `queue`. A record that does not decode ends the list with an error.
pub(crate) fn decode_pulled(body: &[u8], queue: &MessageQueue) -> Result<Vec<MessageExt>, String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let rec = StoredMessage::decode_checked(rest, false).map_err(|e| e.to_string())?;
        let mut props: BTreeMap<String, String> = properties::parse(rec.properties)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut topic = rec.topic.to_string();
        // A retry copy carries its original topic; consumers see that one, as the Java client does.
        if let Some(original) = props.get(properties::RETRY_TOPIC).cloned() {
            if original != topic {
                props.insert(STORED_TOPIC.to_string(), topic);
                topic = original;
            }
        }
        let (body, flags) = inflate(rec.body, rec.sys_flag)?;
        out.push(MessageExt {
            topic,
            body,
            flag: rec.flag,
            broker_name: queue.broker_name.clone(),
            queue_id: rec.queue_id,
            queue_offset: rec.queue_offset,
            commit_log_offset: rec.physical_offset,
            sys_flag: flags,
            born_timestamp: rec.born_timestamp,
            born_host: rec.born_host,
            store_timestamp: rec.store_timestamp,
            store_host: rec.store_host,
            reconsume_times: rec.reconsume_times,
            offset_msg_id: MessageId::new(rec.store_host, rec.physical_offset).to_string(),
            properties: props,
        });
        rest = rest.get(rec.total_size..).unwrap_or_default();
    }
    Ok(out)
}

/// Sys-flag bits naming the compression of a COMPRESSED body (RocketMQ 5's
/// `MessageSysFlag.COMPRESSION_TYPE_COMPARATOR`); 0 and `0x3 << 8` mean zlib.
const COMPRESSION_TYPE_MASK: i32 = 0x7 << 8;
const COMPRESSION_ZLIB: i32 = 0x3 << 8;

/// The body as the application should see it, and the sys flag that goes with it.
fn inflate(body: &[u8], flags: i32) -> Result<(Vec<u8>, i32), String> {
    let kind = flags & COMPRESSION_TYPE_MASK;
    if flags & sys_flag::COMPRESSED == 0 || (kind != 0 && kind != COMPRESSION_ZLIB) {
        return Ok((body.to_vec(), flags));
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::ZlibDecoder::new(body)
        .read_to_end(&mut out)
        .map_err(|e| format!("compressed body does not inflate: {e}"))?;
    Ok((out, flags & !(sys_flag::COMPRESSED | COMPRESSION_TYPE_MASK)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_encode_in_rocketmq_format() {
        let msg = Message::new("T", "b")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_property("color", "red")
            .with_property("empty", "");
        assert_eq!(
            msg.encoded_properties(),
            "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA\u{2}color\u{1}red\u{2}"
        );
        assert_eq!(msg.tags(), Some("TagA"));
        assert_eq!(msg.property("empty"), None);
    }

    #[test]
    fn validation_rejects_what_the_broker_would() {
        assert!(Message::new("", "b").validate(10).is_err());
        assert!(Message::new("T", "").validate(10).is_err());
        assert!(Message::new("T", vec![0; 11]).validate(10).is_err());
        assert!(Message::new("T", vec![0; 10]).validate(10).is_ok());
    }

    #[test]
    fn zlib_bodies_are_inflated() {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(5));
        enc.write_all(b"hello hello hello").unwrap();
        let packed = enc.finish().unwrap();
        assert_eq!(
            inflate(&packed, sys_flag::COMPRESSED),
            Ok((b"hello hello hello".to_vec(), 0))
        );
        let lz4 = sys_flag::COMPRESSED | (0x1 << 8);
        assert_eq!(inflate(b"xx", lz4), Ok((b"xx".to_vec(), lz4)));
        assert!(inflate(b"not zlib", sys_flag::COMPRESSED).is_err());
        assert_eq!(inflate(b"plain", 0), Ok((b"plain".to_vec(), 0)));
    }

    #[test]
    fn garbage_pull_body_is_an_error_not_a_panic() {
        let q = MessageQueue::new("T", "b", 0);
        assert!(decode_pulled(&[0, 0, 0, 9, 1, 2], &q).is_err());
        assert_eq!(decode_pulled(&[], &q), Ok(vec![]));
    }
}
