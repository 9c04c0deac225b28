//! Typed command headers: RocketMQ's `CommandCustomHeader` classes, converted to and from a
//! command's `ext_fields` with RocketMQ's field names.
//!
//! Conversion rules (as a Java broker applies them):
//! - a required field (RocketMQ's `@CFNotNull`) that is missing gives [`HeaderFieldError::Missing`];
//!   optional fields are `Option`s;
//! - numbers are parsed leniently (surrounding whitespace ignored); a value that is not a number
//!   gives [`HeaderFieldError::Invalid`];
//! - booleans: `true` in any case is true, anything else false (Java's `Boolean.parseBoolean`).

use crate::codec::ExtFields;
use crate::RemotingCommand;

/// A header field could not be read from `ext_fields`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFieldError {
    /// A required field is absent.
    #[error("the custom field {field} is null")]
    Missing {
        /// RocketMQ's name of the field.
        field: &'static str,
    },
    /// A field's value does not parse as its type.
    #[error("the custom field {field} has invalid value {value:?} (expected {expected})")]
    Invalid {
        /// RocketMQ's name of the field.
        field: &'static str,
        /// The value received.
        value: String,
        /// The type expected.
        expected: &'static str,
    },
}

/// A typed header: converts to and from a command's `ext_fields`.
pub trait CommandHeader: Sized {
    /// Reads the header from `ext`; fails naming the first missing or invalid field.
    fn from_ext_fields(ext: &ExtFields) -> Result<Self, HeaderFieldError>;
    /// Reads the header like [`CommandHeader::from_ext_fields`], moving string values out of `ext`
    /// instead of copying them: on success the header's string fields are no longer in `ext`. On
    /// an error `ext` may have lost some of them.
    fn take_from_ext_fields(ext: &mut ExtFields) -> Result<Self, HeaderFieldError> {
        Self::from_ext_fields(ext)
    }
    /// Writes every present field into `ext` (absent optional fields are not written).
    fn write_ext_fields(&self, ext: &mut ExtFields);
}

impl RemotingCommand {
    /// Reads a typed header from this command's `ext_fields`.
    pub fn decode_header<H: CommandHeader>(&self) -> Result<H, HeaderFieldError> {
        H::from_ext_fields(&self.ext_fields)
    }

    /// Reads a typed header, moving its string fields out of `ext_fields` rather than copying them
    /// (they are absent afterwards; numeric and boolean fields stay). For handlers that own the
    /// request and read its header once.
    pub fn take_header<H: CommandHeader>(&mut self) -> Result<H, HeaderFieldError> {
        H::take_from_ext_fields(&mut self.ext_fields)
    }

    /// Writes a typed header into this command's `ext_fields` (builder style).
    pub fn with_header<H: CommandHeader>(mut self, header: &H) -> Self {
        header.write_ext_fields(&mut self.ext_fields);
        self
    }
}

mod field;
mod namesrv;

pub use namesrv::*;
mod admin;
mod consume;
mod offset;
mod send;

pub use admin::*;
pub use consume::*;
pub use offset::*;
pub use send::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn register() -> RegisterBrokerRequestHeader {
        RegisterBrokerRequestHeader {
            broker_name: "broker-a".into(),
            broker_addr: "127.0.0.1:10911".into(),
            cluster_name: "DefaultCluster".into(),
            ha_server_addr: "127.0.0.1:10912".into(),
            broker_id: 0,
            heartbeat_timeout_millis: Some(30_000),
            enable_acting_master: None,
            compressed: Some(false),
            body_crc32: None,
        }
    }

    #[test]
    fn writes_rocketmq_field_names_and_reads_them_back() {
        let mut ext = ExtFields::new();
        register().write_ext_fields(&mut ext);
        let mut names: Vec<&str> = ext.keys().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "brokerAddr",
                "brokerId",
                "brokerName",
                "clusterName",
                "compressed",
                "haServerAddr",
                "heartbeatTimeoutMillis"
            ]
        );
        assert_eq!(ext.get("brokerId").map(String::as_str), Some("0"));
        assert_eq!(
            RegisterBrokerRequestHeader::from_ext_fields(&ext),
            Ok(register())
        );
    }

    #[test]
    fn numbers_are_lenient_but_typed() {
        let cmd = RemotingCommand::request(crate::code::request::QUERY_DATA_VERSION)
            .with_ext("brokerName", "b")
            .with_ext("brokerAddr", "a")
            .with_ext("clusterName", "c")
            .with_ext("brokerId", " 2 ");
        let h: QueryDataVersionRequestHeader = cmd.decode_header().unwrap();
        assert_eq!(h.broker_id, 2);
        let cmd = cmd.with_ext("brokerId", "two");
        assert_eq!(
            cmd.decode_header::<QueryDataVersionRequestHeader>(),
            Err(HeaderFieldError::Invalid {
                field: "brokerId",
                value: "two".into(),
                expected: "a long",
            })
        );
    }

    #[test]
    fn missing_required_field_is_named() {
        let cmd = RemotingCommand::request(crate::code::request::PUT_KV_CONFIG)
            .with_ext("namespace", "n")
            .with_ext("key", "k");
        let err = cmd.decode_header::<PutKVConfigRequestHeader>().unwrap_err();
        assert_eq!(err, HeaderFieldError::Missing { field: "value" });
        assert_eq!(err.to_string(), "the custom field value is null");
    }

    #[test]
    fn optional_fields_absent_are_not_written() {
        let rsp =
            RemotingCommand::request(0).with_header(&GetKVConfigResponseHeader { value: None });
        assert!(rsp.ext_fields.is_empty());
        let rsp = rsp.with_header(&QueryDataVersionResponseHeader { changed: true });
        assert_eq!(rsp.ext("changed"), Some("true"));
    }

    #[test]
    fn take_header_moves_strings_and_matches_decode_header() {
        let sent = SendMessageRequestHeaderV2 {
            a: "group".into(),
            b: "Topic".into(),
            c: "TBW102".into(),
            d: 4,
            e: 3,
            f: 0,
            g: 1_700_000_000_000,
            h: 0,
            i: Some("UNIQ_KEY\u{1}abc\u{2}".into()),
            j: Some(0),
            k: Some(false),
            l: None,
            m: Some(false),
            n: None,
        };
        let mut cmd =
            RemotingCommand::request(crate::code::request::SEND_MESSAGE_V2).with_header(&sent);
        let decoded = cmd.decode_header::<SendMessageRequestHeaderV2>();
        let taken = cmd.take_header::<SendMessageRequestHeaderV2>();
        assert_eq!(taken, Ok(sent.clone()));
        assert_eq!(taken, decoded);
        // The strings moved out; the numbers and booleans stay readable.
        for moved in ["a", "b", "c", "i"] {
            assert_eq!(cmd.ext(moved), None, "{moved}");
        }
        assert_eq!(cmd.ext("e"), Some("3"));
        assert_eq!(cmd.ext("k"), Some("false"));
    }

    #[test]
    fn take_header_reports_missing_and_invalid_fields() {
        let mut cmd = RemotingCommand::request(crate::code::request::PUT_KV_CONFIG)
            .with_ext("namespace", "n")
            .with_ext("key", "k");
        assert_eq!(
            cmd.take_header::<PutKVConfigRequestHeader>(),
            Err(HeaderFieldError::Missing { field: "value" })
        );
        let mut cmd = RemotingCommand::request(crate::code::request::QUERY_DATA_VERSION)
            .with_ext("brokerName", "b")
            .with_ext("brokerAddr", "a")
            .with_ext("clusterName", "c")
            .with_ext("brokerId", "two");
        assert_eq!(
            cmd.take_header::<QueryDataVersionRequestHeader>(),
            Err(HeaderFieldError::Invalid {
                field: "brokerId",
                value: "two".into(),
                expected: "a long",
            })
        );
    }
}
