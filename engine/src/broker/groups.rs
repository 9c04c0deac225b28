//! Subscription group configurations (RocketMQ `SubscriptionGroupConfig`) and the
//! `subscriptionGroup.json` file: `{"dataVersion":{...},"subscriptionGroupTable":{"group":{...}}}`.
//!
//! Fields Tern does not use (retry policy, subscription data set, …) are kept as read and written
//! back unchanged.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tern_net::body::DataVersion;

/// One consumer group's settings, with RocketMQ's field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    /// The group.
    pub group_name: String,
    /// Whether the group may consume.
    pub consume_enable: bool,
    /// Whether a new consumer starts from the queue's minimum offset.
    pub consume_from_min_enable: bool,
    /// Whether broadcasting consumption is allowed.
    pub consume_broadcast_enable: bool,
    /// Queues of the group's retry topic.
    pub retry_queue_nums: i32,
    /// Deliveries before a message goes to the DLQ.
    pub retry_max_times: i32,
    /// Broker the group consumes from (0: master).
    pub broker_id: i64,
    /// Broker suggested when the consumer falls behind.
    pub which_broker_when_consume_slowly: i64,
    /// Whether members are told when membership changes.
    pub notify_consumer_ids_changed_enable: bool,
    /// Group system flags.
    pub group_sys_flag: i32,
    /// Consume timeout in minutes.
    pub consume_timeout_minute: i32,
    /// Fields Tern keeps but does not interpret.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
            other: BTreeMap::new(),
        }
    }
}

impl SubscriptionGroupConfig {
    /// Default settings for `group`.
    pub fn named(group: &str) -> Self {
        SubscriptionGroupConfig {
            group_name: group.to_string(),
            ..Self::default()
        }
    }
}

/// The parts of a group's config the request paths check (copied without allocating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Whether the group may consume.
    pub consume_enable: bool,
    /// Group system flags.
    pub group_sys_flag: i32,
    /// Queues of the group's retry topic.
    pub retry_queue_nums: i32,
    /// Deliveries before a message goes to the DLQ (`retryMaxTimes`).
    pub retry_max_times: i32,
    /// Broker the group reads from while it keeps up (`brokerId`; with `slaveReadEnable`).
    pub broker_id: i64,
    /// Broker suggested once the group falls behind (`whichBrokerWhenConsumeSlowly`).
    pub which_broker_when_consume_slowly: i64,
}

impl GroupLimits {
    /// The limits of `cfg`.
    pub fn of(cfg: &SubscriptionGroupConfig) -> Self {
        GroupLimits {
            consume_enable: cfg.consume_enable,
            group_sys_flag: cfg.group_sys_flag,
            retry_queue_nums: cfg.retry_queue_nums,
            retry_max_times: cfg.retry_max_times,
            broker_id: cfg.broker_id,
            which_broker_when_consume_slowly: cfg.which_broker_when_consume_slowly,
        }
    }
}

/// The persisted shape of the group table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupWrapper {
    /// Version of the table.
    pub data_version: DataVersion,
    /// Groups by name.
    pub subscription_group_table: HashMap<String, SubscriptionGroupConfig>,
    /// Fields Tern keeps but does not interpret (`forbiddenTable`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One core's copy of the group table.
#[derive(Debug, Clone, Default)]
pub struct GroupTable {
    wrapper: SubscriptionGroupWrapper,
}

impl GroupTable {
    /// A table holding what was persisted.
    pub fn from_persisted(wrapper: SubscriptionGroupWrapper) -> Self {
        GroupTable { wrapper }
    }

    /// The group's config.
    pub fn get(&self, group: &str) -> Option<&SubscriptionGroupConfig> {
        self.wrapper.subscription_group_table.get(group)
    }

    /// Inserts or replaces a group and bumps the data version.
    pub fn upsert(&mut self, cfg: SubscriptionGroupConfig) {
        self.wrapper
            .subscription_group_table
            .insert(cfg.group_name.clone(), cfg);
        self.wrapper.data_version.counter += 1;
        self.wrapper.data_version.timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
    }

    /// Removes a group and bumps the data version; false when there was no such group.
    pub fn remove(&mut self, group: &str) -> bool {
        if self
            .wrapper
            .subscription_group_table
            .remove(group)
            .is_none()
        {
            return false;
        }
        self.wrapper.data_version.counter += 1;
        true
    }

    /// The persisted form.
    pub fn wrapper(&self) -> &SubscriptionGroupWrapper {
        &self.wrapper
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocketmq_file_round_trips_unknown_fields() {
        let json = r#"{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":7},
          "forbiddenTable":{},
          "subscriptionGroupTable":{"g1":{"groupName":"g1","consumeEnable":false,
            "groupRetryPolicy":{"type":"CUSTOMIZED"},"retryMaxTimes":3}}}"#;
        let w: SubscriptionGroupWrapper = serde_json::from_str(json).unwrap();
        let g = &w.subscription_group_table["g1"];
        assert!(!g.consume_enable);
        assert_eq!(g.retry_max_times, 3);
        assert_eq!(g.retry_queue_nums, 1);
        assert!(g.other.contains_key("groupRetryPolicy"));
        let back: serde_json::Value = serde_json::to_value(&w).unwrap();
        assert_eq!(back["forbiddenTable"], serde_json::json!({}));
        assert_eq!(
            back["subscriptionGroupTable"]["g1"]["groupRetryPolicy"]["type"],
            "CUSTOMIZED"
        );
        let mut t = GroupTable::from_persisted(w);
        t.upsert(SubscriptionGroupConfig::named("g2"));
        assert_eq!(t.wrapper().data_version.counter, 4);
        assert!(t.get("g2").unwrap().consume_enable);
    }
}
