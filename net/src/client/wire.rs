//! The JSON bodies the client exchanges with brokers, with fastjson's (alphabetical) field order:
//! HEART_BEAT's `HeartbeatData`, GET_CONSUMER_LIST_BY_GROUP's answer, LOCK_BATCH_MQ /
//! UNLOCK_BATCH_MQ, and the parsed form of a subscription expression.
//!
//! ```text
//! {"clientID":"10.0.0.5@123#456","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
//!  "consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"CLUSTERING",
//!  "subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG",
//!  "subString":"TagA","subVersion":1700000000000,"tagsSet":["TagA"],"topic":"T"}],"unitMode":false}],
//!  "producerDataSet":[{"groupName":"p"}]}
//! ```

use serde::{Deserialize, Serialize};

use super::route::MessageQueue;
use super::selector::java_string_hash;

/// HEART_BEAT (34) body.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "consumerDataSet")]
    pub consumers: Vec<ConsumerData>,
    #[serde(rename = "producerDataSet")]
    pub producers: Vec<ProducerData>,
}

/// One producer group of a heartbeat.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProducerData {
    pub group_name: String,
}

/// One consumer group of a heartbeat.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsumerData {
    pub consume_from_where: &'static str,
    pub consume_type: &'static str,
    pub group_name: String,
    pub message_model: &'static str,
    pub subscription_data_set: Vec<Subscription>,
    pub unit_mode: bool,
}

/// A parsed subscription: topic and tag expression (`*` or `TagA || TagB`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subscription {
    pub class_filter_mode: bool,
    pub code_set: Vec<i32>,
    pub expression_type: &'static str,
    pub sub_string: String,
    pub sub_version: i64,
    pub tags_set: Vec<String>,
    pub topic: String,
}

impl Subscription {
    /// Parses `expression`: empty or `*` subscribes to every tag; otherwise tags separated by `||`
    /// (blank parts ignored). `version` is the subscription's timestamp.
    pub(crate) fn parse(topic: &str, expression: &str, version: i64) -> Self {
        let trimmed = expression.trim();
        let all = trimmed.is_empty() || trimmed == "*";
        let tags_set: Vec<String> = if all {
            Vec::new()
        } else {
            trimmed
                .split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        };
        Subscription {
            class_filter_mode: false,
            code_set: tags_set.iter().map(|t| java_string_hash(t)).collect(),
            expression_type: "TAG",
            sub_string: if all { "*".into() } else { trimmed.into() },
            sub_version: version,
            tags_set,
            topic: topic.to_string(),
        }
    }

    /// True when a message with `tags` passes this subscription (the client-side recheck the Java
    /// client does after the broker's hash-based filter).
    pub(crate) fn matches(&self, tags: Option<&str>) -> bool {
        self.tags_set.is_empty() || tags.is_some_and(|t| self.tags_set.iter().any(|s| s == t))
    }
}

/// GET_CONSUMER_LIST_BY_GROUP (38) response body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ConsumerIdList {
    pub consumer_id_list: Vec<String>,
}

/// LOCK_BATCH_MQ (41) / UNLOCK_BATCH_MQ (42) request body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockBatchRequest {
    pub client_id: String,
    pub consumer_group: String,
    pub mq_set: Vec<MessageQueue>,
    pub only_this_broker: bool,
}

/// LOCK_BATCH_MQ response body: the queues now locked by the requester.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LockBatchResponse {
    #[serde(rename = "lockOKMQSet")]
    pub lock_ok: Vec<MessageQueue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_byte_exact() {
        let hb = HeartbeatData {
            client_id: "10.0.0.5@123#456".into(),
            consumers: vec![ConsumerData {
                consume_from_where: "CONSUME_FROM_LAST_OFFSET",
                consume_type: "CONSUME_PASSIVELY",
                group_name: "g".into(),
                message_model: "CLUSTERING",
                subscription_data_set: vec![Subscription::parse("T", "TagA", 1_700_000_000_000)],
                unit_mode: false,
            }],
            producers: vec![ProducerData {
                group_name: "p".into(),
            }],
        };
        let want = concat!(
            r#"{"clientID":"10.0.0.5@123#456","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","#,
            r#""consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"CLUSTERING","#,
            r#""subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","#,
            r#""subString":"TagA","subVersion":1700000000000,"tagsSet":["TagA"],"topic":"T"}],"unitMode":false}],"#,
            r#""producerDataSet":[{"groupName":"p"}]}"#
        );
        assert_eq!(serde_json::to_string(&hb).unwrap(), want);
    }

    #[test]
    fn expressions() {
        let all = Subscription::parse("T", " * ", 1);
        assert_eq!(all.sub_string, "*");
        assert!(all.matches(None) && all.matches(Some("x")));
        let two = Subscription::parse("T", "TagA || TagB ||", 1);
        assert_eq!(two.tags_set, ["TagA", "TagB"]);
        assert!(two.matches(Some("TagB")));
        assert!(!two.matches(Some("TagC")) && !two.matches(None));
    }

    #[test]
    fn lock_bodies() {
        let req = LockBatchRequest {
            client_id: "c".into(),
            consumer_group: "g".into(),
            mq_set: vec![MessageQueue::new("T", "b", 1)],
            only_this_broker: false,
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"clientId":"c","consumerGroup":"g","mqSet":[{"brokerName":"b","queueId":1,"topic":"T"}],"onlyThisBroker":false}"#
        );
        let rsp: LockBatchResponse =
            serde_json::from_str(r#"{"lockOKMQSet":[{"topic":"T","brokerName":"b","queueId":1}]}"#)
                .unwrap();
        assert_eq!(rsp.lock_ok, [MessageQueue::new("T", "b", 1)]);
        let ids: ConsumerIdList = serde_json::from_str(r#"{"consumerIdList":["a","b"]}"#).unwrap();
        assert_eq!(ids.consumer_id_list, ["a", "b"]);
    }
}
