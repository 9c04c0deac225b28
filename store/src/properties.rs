//! Message properties: RocketMQ's `name\u{1}value\u{2}` string encoding.
//!
//! A stored message carries its user and system properties as one byte string, the same one a producer
//! sends in the `properties` field of SEND_MESSAGE:
//!
//! | bytes            | meaning                                  |
//! |------------------|------------------------------------------|
//! | name (UTF-8)     | property name, non-empty                 |
//! | `0x01`           | [`NAME_VALUE_SEPARATOR`]                 |
//! | value (UTF-8)    | property value, non-empty                |
//! | `0x02`           | [`PROPERTY_SEPARATOR`], after every pair |
//!
//! Parsing follows RocketMQ's reader (`MessageDecoder.string2messageProperties`): a pair with an empty
//! name, an empty value, or no `0x01` is skipped; a missing final `0x02` is tolerated; when a name repeats,
//! the last value wins. Parsing never fails and never panics; pairs that are not UTF-8 are skipped.

/// Separates a property's name from its value (`0x01`).
pub const NAME_VALUE_SEPARATOR: u8 = 1;
/// Ends every name/value pair (`0x02`).
pub const PROPERTY_SEPARATOR: u8 = 2;
/// Separates the keys inside the [`KEYS`] value.
pub const KEY_SEPARATOR: char = ' ';

/// Message tags (one tag, or several joined by `||` for multi-tag messages).
pub const TAGS: &str = "TAGS";
/// Message keys, separated by [`KEY_SEPARATOR`]; each is indexed.
pub const KEYS: &str = "KEYS";
/// Client-generated unique message id; indexed.
pub const UNIQ_KEY: &str = "UNIQ_KEY";
/// `"true"`/`"false"`: whether the producer waits for the store to be durable.
pub const WAIT: &str = "WAIT";
/// Delay level of a scheduled message.
pub const DELAY: &str = "DELAY";
/// Original topic of a retried or scheduled message.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Original queue id of a retried or scheduled message.
pub const REAL_QUEUE_ID: &str = "REAL_QID";
/// Topic a retry message came from.
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// `"true"` on a prepared (half) transactional message.
pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
/// Producer group of a transactional message.
pub const PRODUCER_GROUP: &str = "PGROUP";
/// Message id of the original message (retry, DLQ).
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Times a message has been re-consumed (retry topic copy).
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
/// Maximum reconsume attempts before the dead-letter queue.
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
/// Region the message was produced in (set by the broker).
pub const MSG_REGION: &str = "MSG_REGION";
/// Whether message tracing is on (set by the broker).
pub const TRACE_SWITCH: &str = "TRACE_ON";
/// Cluster the message was stored in (set by the broker).
pub const CLUSTER: &str = "CLUSTER";
/// Transaction id.
pub const TRANSACTION_ID: &str = "__transactionId__";
/// Sharding key of an ordered message.
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
/// Consume start timestamp (consumer side).
pub const CONSUME_START_TIMESTAMP: &str = "CONSUME_START_TIME";
/// Queue offset of the prepared half message (transaction commit/rollback).
pub const TRANSACTION_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Minimum queue offset (set on pulled messages).
pub const MIN_OFFSET: &str = "MIN_OFFSET";
/// Maximum queue offset (set on pulled messages).
pub const MAX_OFFSET: &str = "MAX_OFFSET";

/// Appends `pairs` to `out` in the stored encoding: `name 0x01 value 0x02` for each pair, in order.
///
/// Names and values are written as given; a pair whose name or value contains a separator byte, or is
/// empty, would not survive [`parse`] (RocketMQ has the same restriction), so callers pass clean pairs.
pub fn encode<'p>(pairs: impl IntoIterator<Item = (&'p str, &'p str)>, out: &mut Vec<u8>) {
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(NAME_VALUE_SEPARATOR);
        out.extend_from_slice(value.as_bytes());
        out.push(PROPERTY_SEPARATOR);
    }
}

/// Iterates over the well-formed `(name, value)` pairs of an encoded property string, in stored order
/// (duplicates included; use [`get`] for last-wins lookup). Malformed pairs are skipped.
pub fn parse(encoded: &[u8]) -> Pairs<'_> {
    Pairs { rest: encoded }
}

/// The value of property `name`, or `None` when absent. When the name repeats, the last value wins.
pub fn get<'a>(encoded: &'a [u8], name: &str) -> Option<&'a str> {
    parse(encoded)
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .last()
}

/// Iterator returned by [`parse`].
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (pair, rest) = match self.rest.iter().position(|&b| b == PROPERTY_SEPARATOR) {
                Some(end) => (&self.rest[..end], &self.rest[end + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if let Some(parsed) = split_pair(pair) {
                return Some(parsed);
            }
        }
        None
    }
}

/// Splits one `name 0x01 value` pair; `None` if the name or value is empty, or either is not UTF-8.
fn split_pair(pair: &[u8]) -> Option<(&str, &str)> {
    let sep = pair.iter().position(|&b| b == NAME_VALUE_SEPARATOR)?;
    let (name, value) = (pair.get(..sep)?, pair.get(sep + 1..)?);
    if name.is_empty() || value.is_empty() {
        return None;
    }
    Some((
        std::str::from_utf8(name).ok()?,
        std::str::from_utf8(value).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_vector_uses_rocketmq_separators() {
        let mut out = Vec::new();
        encode([(TAGS, "TagA"), (KEYS, "k1 k2")], &mut out);
        assert_eq!(out, b"TAGS\x01TagA\x02KEYS\x01k1 k2\x02");
    }

    #[test]
    fn parse_round_trips_and_last_wins() {
        let encoded = b"TAGS\x01TagA\x02KEYS\x01k1\x02TAGS\x01TagB\x02";
        let pairs: Vec<_> = parse(encoded).collect();
        assert_eq!(
            pairs,
            vec![("TAGS", "TagA"), ("KEYS", "k1"), ("TAGS", "TagB")]
        );
        assert_eq!(get(encoded, TAGS), Some("TagB"));
        assert_eq!(get(encoded, KEYS), Some("k1"));
        assert_eq!(get(encoded, UNIQ_KEY), None);
    }

    #[test]
    fn parse_skips_malformed_pairs() {
        // empty name, empty value, no name/value separator, invalid UTF-8, missing final separator
        let encoded = b"\x01v\x02n\x01\x02junk\x02bad\x01\xff\x02A\x01\x01x\x02TAGS\x01t";
        let pairs: Vec<_> = parse(encoded).collect();
        assert_eq!(pairs, vec![("A", "\u{1}x"), ("TAGS", "t")]);
        assert_eq!(parse(b"").count(), 0);
        assert_eq!(parse(b"\x02\x02\x01").count(), 0);
    }
}
