//! Topic routes: `TopicRouteData`, `QueueData`, `BrokerData` (RocketMQ's `protocol/route`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Broker id of a master (RocketMQ's `MixAll.MASTER_ID`).
pub const MASTER_ID: i64 = 0;

/// One broker group's queues of a topic.
///
/// ```text
/// {"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    /// The broker group (`brokerName`) holding the queues.
    pub broker_name: String,
    /// Permission bits (RocketMQ's `PermName`: 2 write, 4 read, 1 inherit).
    pub perm: i32,
    /// Number of readable queues.
    pub read_queue_nums: i32,
    /// Topic system flags.
    pub topic_sys_flag: i32,
    /// Number of writable queues.
    pub write_queue_nums: i32,
}

/// The addresses of one broker group, keyed by broker id (0 is the master).
///
/// ```text
/// {"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster",
///  "enableActingMaster":false}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    /// Broker id → `host:port`; written in id order.
    pub broker_addrs: BTreeMap<i64, String>,
    /// The group's name.
    pub broker_name: String,
    /// The cluster the group belongs to.
    pub cluster: String,
    /// Whether slave-acting-master mode is on.
    pub enable_acting_master: bool,
    /// The zone, when the broker reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

/// The answer to GET_ROUTEINFO_BY_TOPIC.
///
/// ```text
/// {"brokerDatas":[..BrokerData..],"filterServerTable":{},"queueDatas":[..QueueData..]}
/// ```
/// plus `orderTopicConf` (a string such as `broker-a:4;broker-b:4`) when the topic has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    /// The broker groups serving the topic.
    pub broker_datas: Vec<BrokerData>,
    /// Broker address → filter server addresses (empty unless filter servers registered).
    pub filter_server_table: HashMap<String, Vec<String>>,
    /// The ordered-topic configuration from the KV namespace `ORDER_TOPIC_CONFIG`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// The queues of each broker group.
    pub queue_datas: Vec<QueueData>,
}

impl TopicRouteData {
    /// The master address of `broker_name` in this route, if the route lists one.
    pub fn master_addr(&self, broker_name: &str) -> Option<&str> {
        self.broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
            .and_then(|b| b.broker_addrs.get(&MASTER_ID))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode, encode};

    fn sample() -> TopicRouteData {
        TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: BTreeMap::from([(0, "127.0.0.1:10911".to_string())]),
                broker_name: "broker-a".into(),
                cluster: "DefaultCluster".into(),
                enable_acting_master: false,
                zone_name: None,
            }],
            filter_server_table: HashMap::new(),
            order_topic_conf: None,
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                perm: 6,
                read_queue_nums: 4,
                topic_sys_flag: 0,
                write_queue_nums: 4,
            }],
        }
    }

    #[test]
    fn route_encodes_like_fastjson() {
        let expected = concat!(
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","#,
            r#""cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"#,
            r#""queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"#,
            r#""writeQueueNums":4}]}"#
        );
        assert_eq!(String::from_utf8(encode(&sample())).unwrap(), expected);
    }

    #[test]
    fn route_decodes_a_captured_response() {
        // The route body from /work/shared/captures/rust-produce-json (a non-Java server's field order).
        let captured = concat!(
            r#"{"orderTopicConf":null,"queueDatas":[{"brokerName":"broker-a","readQueueNums":8,"#,
            r#""writeQueueNums":8,"perm":7,"topicSysFlag":0}],"brokerDatas":[{"cluster":"DefaultCluster","#,
            r#""brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911"},"zoneName":null,"#,
            r#""enableActingMaster":false}],"filterServerTable":{},"topicQueueMappingInfo":null}"#
        );
        let route: TopicRouteData = decode(captured.as_bytes()).unwrap();
        assert_eq!(route.queue_datas[0].perm, 7);
        assert_eq!(route.queue_datas[0].read_queue_nums, 8);
        assert_eq!(route.broker_datas[0].broker_addrs[&0], "127.0.0.1:10911");
        assert_eq!(route.order_topic_conf, None);
    }

    #[test]
    fn malformed_route_is_a_typed_error() {
        let err = decode::<TopicRouteData>(br#"{"queueDatas":7"#).unwrap_err();
        assert_eq!(err.what, "TopicRouteData");
        assert!(decode::<BrokerData>(br#"{"brokerAddrs":{"x":"a"}}"#).is_err());
    }
}
