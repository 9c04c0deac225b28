//! [`RemotingCommand`]: one request or response of the RocketMQ remoting protocol, and
//! [`SerializeType`], the way its header is serialized.

use std::sync::atomic::{AtomicI32, Ordering};

use super::ext_fields::FieldName;
use super::{ExtFields, LanguageCode};

/// How a command's header is serialized on the wire: the high byte of the header-length word.
///
/// | variant | byte |
/// |---|---|
/// | Json | 0 |
/// | RocketMq | 1 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// A JSON object (fastjson's field names). What Java clients send unless configured otherwise.
    #[default]
    Json,
    /// RocketMQ's compact big-endian binary header (`RocketMQSerializable`).
    RocketMq,
}

impl SerializeType {
    /// The byte stored in the high byte of the header-length word.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// The serialize type for a wire byte; `None` for bytes RocketMQ does not define.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(SerializeType::Json),
            1 => Some(SerializeType::RocketMq),
            _ => None,
        }
    }

    /// RocketMQ's name for it (`JSON`, `ROCKETMQ`), as written in JSON headers.
    pub fn name(self) -> &'static str {
        match self {
            SerializeType::Json => "JSON",
            SerializeType::RocketMq => "ROCKETMQ",
        }
    }
}

/// Bit 0 of [`RemotingCommand::flag`]: set on responses.
pub const FLAG_RESPONSE: i32 = 1;
/// Bit 1 of [`RemotingCommand::flag`]: set on one-way requests (no response is sent).
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// Source of request opaques: unique per process until it wraps (as RocketMQ's own counter does).
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

/// One remoting command: a request (code is a request code) or a response (code is a response code,
/// [`FLAG_RESPONSE`] set, `opaque` echoing the request's).
///
/// `ext_fields` carries the typed header (see [`crate::header`]); `body` is opaque bytes, empty
/// meaning no body. `serialize_type` is how the header was (or will be) serialized; responses use the
/// request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code (requests) or response code (responses); see [`crate::code`].
    pub code: i32,
    /// The sender's implementation language.
    pub language: LanguageCode,
    /// The sender's protocol/client version (RocketMQ's `MQVersion` ordinal; 0 when unset).
    pub version: i32,
    /// Request id; a response carries its request's opaque.
    pub opaque: i32,
    /// Bit set: [`FLAG_RESPONSE`], [`FLAG_ONEWAY`].
    pub flag: i32,
    /// Free text, mostly the reason of an error response.
    pub remark: Option<String>,
    /// The header's named fields (all values as strings, as RocketMQ transmits them).
    pub ext_fields: ExtFields,
    /// How the header is serialized on the wire.
    pub serialize_type: SerializeType,
    /// The body; empty means none.
    pub body: Vec<u8>,
}

impl RemotingCommand {
    /// A new request with `code`, a fresh opaque from a process-wide counter, language
    /// [`LanguageCode::Java`] (older clients' language tables lack newer codes), version 0, JSON
    /// header, no fields and no body.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Java,
            version: 0,
            opaque: NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed),
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            serialize_type: SerializeType::Json,
            body: Vec::new(),
        }
    }

    /// The response to `req`: same opaque and serialize type, [`FLAG_RESPONSE`] set, the given code
    /// and remark, no fields and no body.
    pub fn response_to(req: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Java,
            version: 0,
            opaque: req.opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext_fields: ExtFields::new(),
            serialize_type: req.serialize_type,
            body: Vec::new(),
        }
    }

    /// True when [`FLAG_RESPONSE`] is set.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// True when [`FLAG_ONEWAY`] is set (the sender expects no response).
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks this command one-way.
    pub fn set_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// The value of extension field `key`, if present.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key).map(String::as_str)
    }

    /// Sets extension field `key` to `value` (builder style).
    pub fn with_ext(mut self, key: impl Into<FieldName>, value: impl Into<String>) -> Self {
        self.ext_fields.insert(key, value.into());
        self
    }

    /// Replaces the body (builder style).
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_distinct_opaques() {
        let a = RemotingCommand::request(10);
        let b = RemotingCommand::request(10);
        assert_ne!(a.opaque, b.opaque);
        assert!(!a.is_response());
        assert!(!a.is_oneway());
    }

    #[test]
    fn response_echoes_opaque_and_serialize_type() {
        let mut req = RemotingCommand::request(105);
        req.serialize_type = SerializeType::RocketMq;
        let rsp = RemotingCommand::response_to(&req, 17, Some("no route".into()));
        assert_eq!(rsp.opaque, req.opaque);
        assert_eq!(rsp.serialize_type, SerializeType::RocketMq);
        assert!(rsp.is_response());
        assert_eq!(rsp.code, 17);
        assert_eq!(rsp.remark.as_deref(), Some("no route"));
    }

    #[test]
    fn oneway_flag() {
        let mut req = RemotingCommand::request(40).with_ext("consumerGroup", "g");
        req.set_oneway();
        assert!(req.is_oneway());
        assert_eq!(req.flag, 2);
        assert_eq!(req.ext("consumerGroup"), Some("g"));
        assert_eq!(req.ext("missing"), None);
    }
}
