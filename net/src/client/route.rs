//! Message queues and what a topic route says about them: the queues a producer may write
//! ([`publish_queues`]) and the queues a consumer reads ([`subscribe_queues`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::body::TopicRouteData;

/// Permission bit: the queues can be written (RocketMQ's `PermName.PERM_WRITE`).
const PERM_WRITE: i32 = 0x2;
/// Permission bit: the queues can be read (`PermName.PERM_READ`).
const PERM_READ: i32 = 0x4;

/// One queue of a topic on one broker group. Ordered by topic, then broker name, then queue id,
/// as RocketMQ's `MessageQueue.compareTo`; serializes as `{"brokerName":..,"queueId":..,"topic":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    // Fields in fastjson's (alphabetical) order, so the JSON matches Java's byte for byte.
    /// The broker group.
    pub broker_name: String,
    /// The queue id within the topic on that broker.
    pub queue_id: i32,
    /// The topic.
    pub topic: String,
}

impl Ord for MessageQueue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.topic, &self.broker_name, self.queue_id).cmp(&(
            &other.topic,
            &other.broker_name,
            other.queue_id,
        ))
    }
}

impl PartialOrd for MessageQueue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl MessageQueue {
    /// The queue `queue_id` of `topic` on `broker_name`.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        MessageQueue {
            topic: topic.into(),
            broker_name: broker_name.into(),
            queue_id,
        }
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.topic, self.broker_name, self.queue_id)
    }
}

/// The writable queues of `topic` in `route`, brokers in name order, each broker's queues
/// `0..writeQueueNums`; brokers without a master address are skipped (a producer writes to
/// masters only). With `cap` (the TBW102 template route), each broker offers at most `cap` queues.
pub(crate) fn publish_queues(
    topic: &str,
    route: &TopicRouteData,
    cap: Option<i32>,
) -> Vec<MessageQueue> {
    let mut datas: Vec<_> = route
        .queue_datas
        .iter()
        .filter(|q| q.perm & PERM_WRITE != 0)
        .collect();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let mut out = Vec::new();
    for qd in datas {
        if route.master_addr(&qd.broker_name).is_none() {
            continue;
        }
        let n = match cap {
            Some(cap) => qd.write_queue_nums.min(cap).min(qd.read_queue_nums),
            None => qd.write_queue_nums,
        };
        out.extend((0..n.max(0)).map(|q| MessageQueue::new(topic, &qd.broker_name, q)));
    }
    out
}

/// The readable queues of `topic` in `route`, sorted.
pub(crate) fn subscribe_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    let mut out: Vec<MessageQueue> = route
        .queue_datas
        .iter()
        .filter(|q| q.perm & PERM_READ != 0)
        .flat_map(|qd| {
            (0..qd.read_queue_nums.max(0)).map(|q| MessageQueue::new(topic, &qd.broker_name, q))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::body::{BrokerData, QueueData};

    fn route() -> TopicRouteData {
        let broker = |name: &str, with_master: bool| BrokerData {
            broker_addrs: if with_master {
                BTreeMap::from([(0, format!("{name}:10911"))])
            } else {
                BTreeMap::from([(1, format!("{name}:10921"))])
            },
            broker_name: name.into(),
            ..BrokerData::default()
        };
        let queues = |name: &str, perm, r, w| QueueData {
            broker_name: name.into(),
            perm,
            read_queue_nums: r,
            write_queue_nums: w,
            topic_sys_flag: 0,
        };
        TopicRouteData {
            broker_datas: vec![broker("b", true), broker("a", true), broker("c", false)],
            queue_datas: vec![
                queues("b", 6, 3, 2),
                queues("a", 6, 2, 2),
                queues("c", 6, 1, 1),
            ],
            ..TopicRouteData::default()
        }
    }

    #[test]
    fn publish_queues_are_master_queues_in_broker_order() {
        let got: Vec<String> = publish_queues("T", &route(), None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["T@a#0", "T@a#1", "T@b#0", "T@b#1"]);
        assert_eq!(publish_queues("T", &route(), Some(1)).len(), 2);
    }

    #[test]
    fn subscribe_queues_are_sorted_read_queues() {
        let got = subscribe_queues("T", &route());
        assert_eq!(got.len(), 6);
        assert_eq!(got[0], MessageQueue::new("T", "a", 0));
        assert_eq!(got[5], MessageQueue::new("T", "c", 0));
    }

    #[test]
    fn queue_json_matches_java() {
        let json = serde_json::to_string(&MessageQueue::new("T", "a", 3)).unwrap();
        assert_eq!(json, r#"{"brokerName":"a","queueId":3,"topic":"T"}"#);
    }
}
