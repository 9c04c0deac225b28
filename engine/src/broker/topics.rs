//! Topic configurations: validation rules, permission bits, the system topics a broker starts with,
//! auto-creation from `TBW102`, and the `topics.json` file.
//!
//! Every core keeps its own [`TopicTable`]; changes made on one core are broadcast to the others
//! (see the broker module docs), and the state core persists the table.
//!
//! `topics.json` has RocketMQ's `TopicConfigSerializeWrapper` shape:
//! `{"dataVersion":{"counter":N,"stateVersion":0,"timestamp":MS},"topicConfigTable":{"name":{...}}}`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use tern_net::body::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};

use super::config::BrokerConfig;

/// Permission bits (RocketMQ `PermName`).
pub mod perm {
    /// Ordered/priority topic marker.
    pub const PRIORITY: i32 = 1 << 3;
    /// Consumers may read.
    pub const READ: i32 = 1 << 2;
    /// Producers may write.
    pub const WRITE: i32 = 1 << 1;
    /// Topics auto-created from this one inherit its permissions.
    pub const INHERIT: i32 = 1;

    /// True when `perm` allows reading.
    pub fn is_readable(perm: i32) -> bool {
        perm & READ != 0
    }
    /// True when `perm` allows writing.
    pub fn is_writeable(perm: i32) -> bool {
        perm & WRITE != 0
    }
    /// True when topics may be auto-created from this one.
    pub fn is_inherited(perm: i32) -> bool {
        perm & INHERIT != 0
    }
}

/// The topic sends to unknown topics are modelled on when auto-creation is on.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// Longest ordinary topic name.
pub const TOPIC_MAX_LEN: usize = 127;
/// Longest retry/DLQ topic name.
pub const RETRY_TOPIC_MAX_LEN: usize = 255;
/// Prefix of a consumer group's retry topic.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of a consumer group's dead-letter topic.
pub const DLQ_PREFIX: &str = "%DLQ%";

/// System topics producers may not send to (RocketMQ `TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
const NOT_ALLOWED_SEND: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// True when every character is in `[%|a-zA-Z0-9_-]` (RocketMQ's topic and group alphabet).
pub fn has_legal_chars(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
}

/// Checks a topic name as RocketMQ's `TopicValidator.validateTopic` does; the error is the remark
/// to send back.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    if topic.trim().is_empty() {
        return Err("The specified topic is blank.".into());
    }
    if !has_legal_chars(topic) {
        return Err(format!(
            "The specified topic: {topic}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    let retry_or_dlq = topic.starts_with(RETRY_PREFIX) || topic.starts_with(DLQ_PREFIX);
    let max = if retry_or_dlq {
        RETRY_TOPIC_MAX_LEN
    } else {
        TOPIC_MAX_LEN
    };
    // The store's record layout holds at most 127 bytes of topic, retry topics included.
    let max = max.min(tern_store::message::MAX_TOPIC_LEN);
    if topic.len() > max {
        return Err(format!(
            "The specified topic: {topic}, is longer than topic max length: {max}"
        ));
    }
    Ok(())
}

/// True for system topics producers may not send to.
pub fn is_send_forbidden(topic: &str) -> bool {
    NOT_ALLOWED_SEND.contains(&topic)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A topic config with `queues` read and write queues and permission `perm`.
pub fn topic_config(name: &str, queues: i32, perm: i32) -> TopicConfig {
    TopicConfig {
        topic_name: name.to_string(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm,
        ..TopicConfig::default()
    }
}

/// The parts of a topic config the send and pull paths check (copied without allocating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Permission bits.
    pub perm: i32,
    /// Queues consumers read.
    pub read_queue_nums: i32,
    /// Queues producers write.
    pub write_queue_nums: i32,
    /// Topic system flags.
    pub topic_sys_flag: i32,
}

impl TopicLimits {
    /// The limits of `cfg`.
    pub fn of(cfg: &TopicConfig) -> Self {
        TopicLimits {
            perm: cfg.perm,
            read_queue_nums: cfg.read_queue_nums,
            write_queue_nums: cfg.write_queue_nums,
            topic_sys_flag: cfg.topic_sys_flag,
        }
    }
}

/// One core's copy of the topic configurations and their data version.
#[derive(Debug, Clone)]
pub struct TopicTable {
    topics: HashMap<String, TopicConfig>,
    version: DataVersion,
}

impl TopicTable {
    /// The topics a fresh broker has (RocketMQ's `TopicConfigManager` defaults): `TBW102` (when
    /// auto-creation is on; perm RW + inherit, `defaultTopicQueueNums` queues), `SELF_TEST_TOPIC`,
    /// the cluster-name and broker-name topics, and `OFFSET_MOVED_EVENT`.
    pub fn with_defaults(config: &BrokerConfig) -> TopicTable {
        let mut t = TopicTable {
            topics: HashMap::new(),
            version: DataVersion {
                counter: 0,
                state_version: 0,
                timestamp: now_ms(),
            },
        };
        let rw = perm::READ | perm::WRITE;
        if config.auto_create_topic_enable {
            t.insert(topic_config(
                AUTO_CREATE_TOPIC,
                config.default_topic_queue_nums,
                rw | perm::INHERIT,
            ));
        }
        t.insert(topic_config("SELF_TEST_TOPIC", 1, rw));
        t.insert(topic_config(&config.cluster_name, 16, rw | perm::INHERIT));
        t.insert(topic_config(&config.broker_name, 1, rw | perm::INHERIT));
        t.insert(topic_config("OFFSET_MOVED_EVENT", 1, rw));
        t
    }

    /// Adds what `topics.json` holds over the defaults (entries with a bad name are skipped with a
    /// warning); keeps the file's data version.
    pub fn merge_persisted(&mut self, wrapper: TopicConfigSerializeWrapper) {
        for (name, mut cfg) in wrapper.topic_config_table {
            if let Err(why) = validate_topic(&name) {
                tracing::warn!(topic = %name, "skipping persisted topic: {why}");
                continue;
            }
            cfg.topic_name = name;
            self.insert(cfg);
        }
        self.version = wrapper.data_version;
    }

    fn insert(&mut self, cfg: TopicConfig) {
        self.topics.insert(cfg.topic_name.clone(), cfg);
    }

    /// The config of `topic`.
    pub fn get(&self, topic: &str) -> Option<&TopicConfig> {
        self.topics.get(topic)
    }

    /// The checked parts of `topic`'s config.
    pub fn limits(&self, topic: &str) -> Option<TopicLimits> {
        self.topics.get(topic).map(TopicLimits::of)
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// True when there are no topics.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Inserts or replaces a topic and bumps the data version.
    pub fn upsert(&mut self, cfg: TopicConfig) {
        self.insert(cfg);
        self.bump();
    }

    /// Removes a topic; true when it existed. Bumps the data version when it did.
    pub fn remove(&mut self, topic: &str) -> bool {
        let existed = self.topics.remove(topic).is_some();
        if existed {
            self.bump();
        }
        existed
    }

    fn bump(&mut self) {
        self.version.counter += 1;
        self.version.timestamp = now_ms();
    }

    /// The config a send to unknown `topic` would create from `default_topic` (RocketMQ's
    /// `createTopicInSendMessageMethod`): `min(client_queue_nums, default's write queues)` queues and
    /// the default's permissions without INHERIT. `None` when the default topic is missing or not
    /// inheritable. Does not insert it.
    pub fn derive_auto_created(
        &self,
        topic: &str,
        default_topic: &str,
        client_queue_nums: i32,
    ) -> Option<TopicConfig> {
        let default = self.topics.get(default_topic)?;
        if !perm::is_inherited(default.perm) {
            return None;
        }
        let queues = client_queue_nums.min(default.write_queue_nums).max(0);
        Some(TopicConfig {
            topic_name: topic.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: default.perm & !perm::INHERIT,
            topic_filter_type: default.topic_filter_type.clone(),
            ..TopicConfig::default()
        })
    }

    /// The table with its data version, as registered with nameservers and written to `topics.json`.
    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            data_version: self.version,
            topic_config_table: self.topics.clone(),
        }
    }

    /// All topic names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        assert!(validate_topic("TopicTest").is_ok());
        assert!(validate_topic("%RETRY%g-1|x_2").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a/b").is_err());
        assert!(validate_topic("a.b")
            .unwrap_err()
            .contains("illegal characters"));
        assert!(validate_topic(&"x".repeat(127)).is_ok());
        assert!(validate_topic(&"x".repeat(128))
            .unwrap_err()
            .contains("max length"));
        assert!(is_send_forbidden("SCHEDULE_TOPIC_XXXX"));
        assert!(!is_send_forbidden("TBW102"));
    }

    #[test]
    fn defaults_and_auto_creation() {
        let cfg = BrokerConfig {
            default_topic_queue_nums: 4,
            ..BrokerConfig::default()
        };
        let mut t = TopicTable::with_defaults(&cfg);
        let tbw = t.get(AUTO_CREATE_TOPIC).unwrap();
        assert_eq!((tbw.perm, tbw.write_queue_nums), (7, 4));
        assert!(t.get("DefaultCluster").is_some());
        let created = t.derive_auto_created("New", AUTO_CREATE_TOPIC, 8).unwrap();
        assert_eq!((created.read_queue_nums, created.perm), (4, 6));
        let created = t.derive_auto_created("New", AUTO_CREATE_TOPIC, 2).unwrap();
        assert_eq!(created.write_queue_nums, 2);
        assert!(t
            .derive_auto_created("New", "OFFSET_MOVED_EVENT", 2)
            .is_none());
        assert!(t.derive_auto_created("New", "Missing", 2).is_none());

        let before = t.wrapper().data_version.counter;
        t.upsert(created);
        assert_eq!(t.wrapper().data_version.counter, before + 1);
        assert!(t.remove("New"));
        assert!(!t.remove("New"));

        let off = TopicTable::with_defaults(&BrokerConfig {
            auto_create_topic_enable: false,
            ..BrokerConfig::default()
        });
        assert!(off.get(AUTO_CREATE_TOPIC).is_none());
    }

    #[test]
    fn persisted_topics_merge_over_defaults() {
        let mut t = TopicTable::with_defaults(&BrokerConfig::default());
        let json = r#"{"dataVersion":{"counter":9,"stateVersion":0,"timestamp":5},
            "topicConfigTable":{"Orders":{"topicName":"Orders","readQueueNums":3,"writeQueueNums":3,
            "perm":6,"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false,"attributes":{}},
            "bad/name":{"topicName":"bad/name"}}}"#;
        let w: TopicConfigSerializeWrapper = serde_json::from_str(json).unwrap();
        t.merge_persisted(w);
        assert_eq!(t.get("Orders").unwrap().read_queue_nums, 3);
        assert!(t.get("bad/name").is_none());
        assert_eq!(t.wrapper().data_version.counter, 9);
    }
}
