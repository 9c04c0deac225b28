//! The admin bodies keyed by message queue: RocketMQ's `TopicStatsTable` (GET_TOPIC_STATS_INFO) and
//! `ConsumeStats` (GET_CONSUME_STATS), as fastjson writes them.
//!
//! fastjson writes a map whose keys are objects with the key object itself in key position, which
//! is not standard JSON; serde cannot express it, so [`encode_topic_stats`] / [`encode_consume_stats`]
//! write it and [`decode_topic_stats`] / [`decode_consume_stats`] read it back.
//!
//! | body | shape (fields alphabetical, as fastjson sorts them) |
//! |---|---|
//! | TopicStatsTable | `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"lastUpdateTimestamp":1,"maxOffset":2,"minOffset":0}},"topicPutTps":0.0}` |
//! | ResetOffsetBody | `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:5}}` |
//! | ConsumeStats | `{"consumeTps":0.0,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"brokerOffset":2,"consumerOffset":1,"lastTimestamp":1,"pullOffset":1}}}` |
//!
//! Entries are written in (topic, queueId) order.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A queue as RocketMQ names it in admin bodies (`MessageQueue`); the client's type, one shape for
/// both sides. Orders by topic, then broker, then queue id.
pub use tern_net::client::MessageQueue;

/// One queue's offsets in a TopicStatsTable (`TopicOffset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    /// Store time of the queue's last message; 0 when empty.
    pub last_update_timestamp: i64,
    /// The queue's next offset.
    pub max_offset: i64,
    /// The queue's first retained offset.
    pub min_offset: i64,
}

/// One queue's progress in a ConsumeStats (`OffsetWrapper`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    /// The queue's next offset.
    pub broker_offset: i64,
    /// The group's committed offset (0 when none).
    pub consumer_offset: i64,
    /// Store time of the last consumed message; 0 when unknown.
    pub last_timestamp: i64,
    /// The group's pull position (at least the committed offset).
    pub pull_offset: i64,
}

/// GET_TOPIC_STATS_INFO's body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicStatsTable {
    /// Offsets by queue.
    pub offset_table: BTreeMap<MessageQueue, TopicOffset>,
    /// Messages put per second (Tern reports 0).
    pub topic_put_tps: f64,
}

/// GET_CONSUME_STATS's body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumeStats {
    /// Progress by queue.
    pub offset_table: BTreeMap<MessageQueue, OffsetWrapper>,
    /// Messages consumed per second (Tern reports 0).
    pub consume_tps: f64,
}

/// A body that is not the fastjson shape its command expects.
#[derive(Debug, thiserror::Error)]
#[error("malformed admin body at byte {at}: {reason}")]
pub struct AdminBodyError {
    /// Byte offset of the problem.
    pub at: usize,
    /// What was wrong.
    pub reason: String,
}

/// Encodes a TopicStatsTable as fastjson does.
pub fn encode_topic_stats(t: &TopicStatsTable) -> Vec<u8> {
    let mut out = b"{\"offsetTable\":".to_vec();
    write_map(&mut out, &t.offset_table);
    out.extend_from_slice(b",\"topicPutTps\":");
    write_f64(&mut out, t.topic_put_tps);
    out.push(b'}');
    out
}

/// Encodes a ConsumeStats as fastjson does.
pub fn encode_consume_stats(s: &ConsumeStats) -> Vec<u8> {
    let mut out = b"{\"consumeTps\":".to_vec();
    write_f64(&mut out, s.consume_tps);
    out.extend_from_slice(b",\"offsetTable\":");
    write_map(&mut out, &s.offset_table);
    out.push(b'}');
    out
}

/// Encodes a ResetOffsetBody (INVOKE_BROKER_TO_RESET_OFFSET's answer) as fastjson does.
pub fn encode_reset_offset(offsets: &BTreeMap<MessageQueue, i64>) -> Vec<u8> {
    let mut out = b"{\"offsetTable\":".to_vec();
    write_map(&mut out, offsets);
    out.push(b'}');
    out
}

/// Decodes a ResetOffsetBody (unknown fields ignored).
pub fn decode_reset_offset(body: &[u8]) -> Result<BTreeMap<MessageQueue, i64>, AdminBodyError> {
    let mut offsets = BTreeMap::new();
    read_object(body, |field, r| {
        match field.as_str() {
            "offsetTable" => offsets = r.map()?,
            _ => r.value::<serde::de::IgnoredAny>().map(|_| ())?,
        }
        Ok(())
    })?;
    Ok(offsets)
}

/// Decodes a TopicStatsTable (unknown fields ignored).
pub fn decode_topic_stats(body: &[u8]) -> Result<TopicStatsTable, AdminBodyError> {
    let mut t = TopicStatsTable::default();
    read_object(body, |field, r| {
        match field.as_str() {
            "offsetTable" => t.offset_table = r.map()?,
            "topicPutTps" => t.topic_put_tps = r.value()?,
            _ => r.value::<serde::de::IgnoredAny>().map(|_| ())?,
        }
        Ok(())
    })?;
    Ok(t)
}

/// Decodes a ConsumeStats (unknown fields ignored).
pub fn decode_consume_stats(body: &[u8]) -> Result<ConsumeStats, AdminBodyError> {
    let mut s = ConsumeStats::default();
    read_object(body, |field, r| {
        match field.as_str() {
            "offsetTable" => s.offset_table = r.map()?,
            "consumeTps" => s.consume_tps = r.value()?,
            _ => r.value::<serde::de::IgnoredAny>().map(|_| ())?,
        }
        Ok(())
    })?;
    Ok(s)
}

fn write_map<V: Serialize>(out: &mut Vec<u8>, map: &BTreeMap<MessageQueue, V>) {
    out.push(b'{');
    for (i, (mq, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Plain structs of strings and integers always serialize.
        let _ = serde_json::to_writer(&mut *out, mq);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, v);
    }
    out.push(b'}');
}

/// Doubles as Java prints them: always with a fraction (`0.0`, `12.5`).
fn write_f64(out: &mut Vec<u8>, v: f64) {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    };
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over a body, reading standard JSON values with serde between the punctuation it checks.
struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, reason: impl Into<String>) -> AdminBodyError {
        AdminBodyError {
            at: self.pos,
            reason: reason.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self
            .body
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    /// Consumes `byte` (after whitespace) if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.body.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), AdminBodyError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{}'", byte as char)))
        }
    }

    fn value<T: DeserializeOwned>(&mut self) -> Result<T, AdminBodyError> {
        self.skip_ws();
        let rest = self.body.get(self.pos..).unwrap_or_default();
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
        match stream.next() {
            Some(Ok(v)) => {
                self.pos += stream.byte_offset();
                Ok(v)
            }
            Some(Err(e)) => Err(self.error(e.to_string())),
            None => Err(self.error("unexpected end")),
        }
    }

    /// `{key:value,...}` where keys are objects.
    fn map<K: DeserializeOwned + Ord, V: DeserializeOwned>(
        &mut self,
    ) -> Result<BTreeMap<K, V>, AdminBodyError> {
        let mut map = BTreeMap::new();
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(map);
        }
        loop {
            let k = self.value()?;
            self.expect(b':')?;
            map.insert(k, self.value()?);
            if self.eat(b'}') {
                return Ok(map);
            }
            self.expect(b',')?;
        }
    }
}

/// Reads a top-level object, handing each field name and the reader (positioned at its value) to
/// `field`, which must consume the value.
fn read_object(
    body: &[u8],
    mut field: impl FnMut(String, &mut Reader<'_>) -> Result<(), AdminBodyError>,
) -> Result<(), AdminBodyError> {
    let mut r = Reader { body, pos: 0 };
    r.expect(b'{')?;
    if !r.eat(b'}') {
        loop {
            let name: String = r.value()?;
            r.expect(b':')?;
            field(name, &mut r)?;
            if r.eat(b'}') {
                break;
            }
            r.expect(b',')?;
        }
    }
    r.skip_ws();
    if r.pos != body.len() {
        return Err(r.error("trailing bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(topic: &str, q: i32) -> MessageQueue {
        MessageQueue {
            broker_name: "broker-a".into(),
            queue_id: q,
            topic: topic.into(),
        }
    }

    #[test]
    fn topic_stats_bytes_match_fastjson() {
        let mut t = TopicStatsTable::default();
        t.offset_table.insert(
            mq("T", 1),
            TopicOffset {
                last_update_timestamp: 1700000000123,
                max_offset: 5,
                min_offset: 0,
            },
        );
        t.offset_table.insert(mq("T", 0), TopicOffset::default());
        let bytes = encode_topic_stats(&t);
        let want = concat!(
            r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:"#,
            r#"{"lastUpdateTimestamp":0,"maxOffset":0,"minOffset":0},"#,
            r#"{"brokerName":"broker-a","queueId":1,"topic":"T"}:"#,
            r#"{"lastUpdateTimestamp":1700000000123,"maxOffset":5,"minOffset":0}},"topicPutTps":0.0}"#
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);
        assert_eq!(decode_topic_stats(&bytes).unwrap(), t);
    }

    #[test]
    fn consume_stats_bytes_match_fastjson() {
        let mut s = ConsumeStats {
            consume_tps: 12.5,
            ..ConsumeStats::default()
        };
        s.offset_table.insert(
            mq("T", 0),
            OffsetWrapper {
                broker_offset: 9,
                consumer_offset: 4,
                last_timestamp: 77,
                pull_offset: 4,
            },
        );
        let bytes = encode_consume_stats(&s);
        let want = concat!(
            r#"{"consumeTps":12.5,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:"#,
            r#"{"brokerOffset":9,"consumerOffset":4,"lastTimestamp":77,"pullOffset":4}}}"#
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);
        assert_eq!(decode_consume_stats(&bytes).unwrap(), s);
        assert_eq!(
            encode_consume_stats(&ConsumeStats::default()),
            br#"{"consumeTps":0.0,"offsetTable":{}}"#
        );
    }

    #[test]
    fn decodes_java_whitespace_and_unknown_fields() {
        let body = br#" { "offsetTable" : { { "topic":"T","queueId":2,"brokerName":"b" } : { "maxOffset":3 } } , "extra":[1,{"a":2}] } "#;
        let t = decode_topic_stats(body).unwrap();
        let (k, v) = t.offset_table.iter().next().unwrap();
        assert_eq!((k.topic.as_str(), k.queue_id, v.max_offset), ("T", 2, 3));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"offsetTable":{{"topic":1}:{}}}"#,
            br#"{"offsetTable":{}} x"#,
            br#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}}}"#,
        ] {
            assert!(decode_topic_stats(bad).is_err(), "{bad:?}");
            assert!(decode_consume_stats(bad).is_err(), "{bad:?}");
        }
    }
}
