//! What a broker registers: `RegisterBrokerBody`, `TopicConfigSerializeWrapper`, `TopicConfig`,
//! `DataVersion`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// A version stamp of a broker's topic configuration; two are equal when all three fields are.
///
/// ```text
/// {"counter":3,"stateVersion":0,"timestamp":1700000000000}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    /// Bumped on every change.
    pub counter: i64,
    /// Broker state version (used to order master/slave switch-overs).
    pub state_version: i64,
    /// When the version was made (ms since the epoch).
    pub timestamp: i64,
}

/// One topic's configuration on a broker.
///
/// ```text
/// {"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG",
///  "topicName":"TBW102","topicSysFlag":0,"writeQueueNums":4}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    /// Topic attributes (`+key` / `-key` style values as RocketMQ stores them).
    pub attributes: BTreeMap<String, String>,
    /// Whether the topic is ordered.
    pub order: bool,
    /// Permission bits (2 write, 4 read, 1 inherit).
    pub perm: i32,
    /// Number of readable queues.
    pub read_queue_nums: i32,
    /// `SINGLE_TAG` or `MULTI_TAG`.
    pub topic_filter_type: String,
    /// The topic's name.
    pub topic_name: String,
    /// Topic system flags.
    pub topic_sys_flag: i32,
    /// Number of writable queues.
    pub write_queue_nums: i32,
}

impl Default for TopicConfig {
    /// RocketMQ's defaults: 16 read and write queues, read+write permission, `SINGLE_TAG`.
    fn default() -> Self {
        TopicConfig {
            attributes: BTreeMap::new(),
            order: false,
            perm: 6,
            read_queue_nums: 16,
            topic_filter_type: "SINGLE_TAG".to_string(),
            topic_name: String::new(),
            topic_sys_flag: 0,
            write_queue_nums: 16,
        }
    }
}

/// A broker's topic table and its version.
///
/// ```text
/// {"dataVersion":{..DataVersion..},"topicConfigTable":{"TBW102":{..TopicConfig..}}}
/// ```
/// Brokers of RocketMQ 5 add static-topic mapping fields; they are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    /// The version of `topic_config_table`.
    pub data_version: DataVersion,
    /// Topic name → configuration.
    pub topic_config_table: HashMap<String, TopicConfig>,
}

/// REGISTER_BROKER's body in its plain JSON form (`compressed=false`).
///
/// ```text
/// {"filterServerList":[],"topicConfigSerializeWrapper":{..TopicConfigSerializeWrapper..}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    /// Filter server addresses attached to the broker.
    pub filter_server_list: Vec<String>,
    /// The broker's topics.
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode, encode};

    #[test]
    fn register_body_round_trip_and_layout() {
        let mut body = RegisterBrokerBody::default();
        body.topic_config_serialize_wrapper.data_version = DataVersion {
            counter: 2,
            state_version: 0,
            timestamp: 1_700_000_000_000,
        };
        body.topic_config_serialize_wrapper
            .topic_config_table
            .insert(
                "TBW102".into(),
                TopicConfig {
                    topic_name: "TBW102".into(),
                    read_queue_nums: 8,
                    write_queue_nums: 8,
                    perm: 7,
                    ..TopicConfig::default()
                },
            );
        let json = String::from_utf8(encode(&body)).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":2,"#,
                r#""stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TBW102":{"attributes":{},"#,
                r#""order":false,"perm":7,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TBW102","#,
                r#""topicSysFlag":0,"writeQueueNums":8}}}}"#
            )
        );
        assert_eq!(decode::<RegisterBrokerBody>(json.as_bytes()).unwrap(), body);
    }

    #[test]
    fn java_broker_body_with_mapping_fields_decodes() {
        // Shape of a RocketMQ 5 broker's body: extra mapping fields, fields in fastjson order.
        let json = concat!(
            r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"#,
            r#""stateVersion":0,"timestamp":1},"mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":1},"#,
            r#""topicConfigTable":{"t":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"#,
            r#""topicFilterType":"SINGLE_TAG","topicName":"t","topicSysFlag":0,"writeQueueNums":4}},"#,
            r#""topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}"#
        );
        let body: RegisterBrokerBody = decode(json.as_bytes()).unwrap();
        let t = &body.topic_config_serialize_wrapper.topic_config_table["t"];
        assert_eq!((t.read_queue_nums, t.write_queue_nums, t.perm), (4, 4, 6));
    }
}
