//! Cluster-wide listings: `ClusterInfo`, `TopicList`, `KVTable`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::BrokerData;

/// The answer to GET_BROKER_CLUSTER_INFO.
///
/// ```text
/// {"brokerAddrTable":{"broker-a":{..BrokerData..}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    /// Broker group name → its addresses.
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// Cluster name → the broker group names in it.
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// A set of topic names (GET_ALL_TOPIC_LIST_FROM_NAMESERVER, GET_TOPICS_BY_CLUSTER, ...).
///
/// ```text
/// {"topicList":["TBW102","t1"]}          (plus "brokerAddr" when set)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    /// The broker the list came from, when it came from one broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    /// The topic names, sorted.
    pub topic_list: BTreeSet<String>,
}

/// One KV-config namespace (GET_KVLIST_BY_NAMESPACE, and REGISTER_BROKER's response body).
///
/// ```text
/// {"table":{"TopicA":"broker-a:4"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct KvTable {
    /// Key → value.
    pub table: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode, encode};

    #[test]
    fn cluster_info_layout() {
        let mut info = ClusterInfo::default();
        info.broker_addr_table.insert(
            "broker-a".into(),
            BrokerData {
                broker_addrs: BTreeMap::from([
                    (0, "10.0.0.1:10911".into()),
                    (1, "10.0.0.2:10911".into()),
                ]),
                broker_name: "broker-a".into(),
                cluster: "c1".into(),
                enable_acting_master: false,
                zone_name: None,
            },
        );
        info.cluster_addr_table
            .insert("c1".into(), BTreeSet::from(["broker-a".to_string()]));
        let json = String::from_utf8(encode(&info)).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"#,
                r#""brokerName":"broker-a","cluster":"c1","enableActingMaster":false}},"#,
                r#""clusterAddrTable":{"c1":["broker-a"]}}"#
            )
        );
        assert_eq!(decode::<ClusterInfo>(json.as_bytes()).unwrap(), info);
    }

    #[test]
    fn topic_list_and_kv_table_layout() {
        let list = TopicList {
            broker_addr: None,
            topic_list: BTreeSet::from(["b".to_string(), "a".to_string()]),
        };
        assert_eq!(encode(&list), br#"{"topicList":["a","b"]}"#);
        let kv = KvTable {
            table: BTreeMap::from([("TopicA".to_string(), "broker-a:4".to_string())]),
        };
        assert_eq!(encode(&kv), br#"{"table":{"TopicA":"broker-a:4"}}"#);
        assert_eq!(
            decode::<KvTable>(br#"{"table":{"TopicA":"broker-a:4"}}"#).unwrap(),
            kv
        );
    }
}
