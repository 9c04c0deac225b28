//! Consumer group membership, fed by HEART_BEAT and UNREGISTER_CLIENT and by closing connections.
//!
//! Lives on the state core. A member is known by its client id and by where its connection is
//! (the serving core and the transport's connection id), so that NOTIFY_CONSUMER_IDS_CHANGED can be
//! sent by the core that holds the connection.
//!
//! The `HeartbeatData` body (RocketMQ's JSON; unknown fields ignored):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | clientID | string | the client instance |
//! | producerDataSet | `[{groupName}]` | producer groups (recorded nowhere yet) |
//! | consumerDataSet | `[ConsumerData]` | consumer groups with their subscriptions |
//! | ConsumerData.groupName | string | the group |
//! | ConsumerData.consumeType | string | CONSUME_ACTIVELY (pull) / CONSUME_PASSIVELY (push) |
//! | ConsumerData.messageModel | string | CLUSTERING / BROADCASTING |
//! | ConsumerData.subscriptionDataSet | `[{topic, subString, expressionType?, subVersion, ...}]` | a subscription without `expressionType` is TAG |

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A client's heartbeat body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    /// The client instance id.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// Producer groups of the client.
    pub producer_data_set: Vec<ProducerData>,
    /// Consumer groups of the client.
    pub consumer_data_set: Vec<ConsumerData>,
}

/// One producer group of a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    /// The group.
    pub group_name: String,
}

/// One consumer group of a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    /// The group.
    pub group_name: String,
    /// CONSUME_ACTIVELY or CONSUME_PASSIVELY.
    pub consume_type: Option<String>,
    /// CLUSTERING or BROADCASTING.
    pub message_model: Option<String>,
    /// Where a new consumer starts.
    pub consume_from_where: Option<String>,
    /// The group's subscriptions.
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit mode flag.
    pub unit_mode: bool,
}

/// One subscription of a consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    /// The topic.
    pub topic: String,
    /// The sub-expression (`*`, `TagA || TagB`).
    pub sub_string: String,
    /// TAG or SQL92; absent means TAG.
    pub expression_type: Option<String>,
    /// Version of the subscription (client's timestamp).
    pub sub_version: i64,
}

impl SubscriptionData {
    /// True for TAG subscriptions (including those without an expression type).
    pub fn is_tag(&self) -> bool {
        self.expression_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("TAG"))
    }
}

/// Where a member's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionRef {
    /// The core serving the connection.
    pub core: usize,
    /// The transport's connection id.
    pub conn_id: u64,
}

#[cfg(test)]
impl ConnectionRef {
    /// The connection `conn_id` of core `core` (for tests, which make many).
    pub(crate) fn new(core: usize, conn_id: u64) -> Self {
        ConnectionRef { core, conn_id }
    }
}

/// What a member's client said about itself (GET_CONSUMER_CONNECTION_LIST).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's `ip:port`.
    pub addr: String,
    /// The language name from the request (JAVA, RUST, ...).
    pub language: String,
    /// The client's version code.
    pub version: i32,
}

#[derive(Debug)]
struct Member {
    conn: ConnectionRef,
    info: ClientInfo,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Group {
    members: BTreeMap<String, Member>,
    /// Topic → the latest subscription seen for it.
    subscriptions: HashMap<String, SubscriptionData>,
    /// The latest heartbeat's group settings.
    settings: ConsumerData,
}

/// GET_CONSUMER_CONNECTION_LIST's body (`ConsumerConnection`), fields in fastjson order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerConnection {
    /// The group's online clients.
    pub connection_set: Vec<Connection>,
    /// Where a new consumer starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_from_where: Option<String>,
    /// CONSUME_ACTIVELY or CONSUME_PASSIVELY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_type: Option<String>,
    /// CLUSTERING or BROADCASTING.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_model: Option<String>,
    /// Topic → subscription.
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// One client of a [`ConsumerConnection`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The client's `ip:port`.
    pub client_addr: String,
    /// The client instance id.
    pub client_id: String,
    /// Its language name.
    pub language: String,
    /// Its version code.
    pub version: i32,
}

/// What a membership change requires.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Groups whose member list changed, with the connections to notify.
    pub notify: Vec<(String, Vec<ConnectionRef>)>,
    /// (group, topic, new subscription or None when gone) for every changed subscription.
    pub subscriptions: Vec<(String, String, Option<SubscriptionData>)>,
}

/// Members and subscriptions of every consumer group.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    groups: HashMap<String, Group>,
}

impl ConsumerGroups {
    /// Records `data` from client `client_id` on `conn`.
    pub fn heartbeat(
        &mut self,
        client_id: &str,
        conn: ConnectionRef,
        info: &ClientInfo,
        data: &ConsumerData,
        now: Instant,
    ) -> Change {
        let mut change = Change::default();
        let group = self.groups.entry(data.group_name.clone()).or_default();
        group.settings.consume_type.clone_from(&data.consume_type);
        group.settings.message_model.clone_from(&data.message_model);
        group
            .settings
            .consume_from_where
            .clone_from(&data.consume_from_where);
        let joined = match group.members.get_mut(client_id) {
            Some(m) => {
                let moved = m.conn != conn;
                m.conn = conn;
                m.info.clone_from(info);
                m.last_seen = now;
                moved
            }
            None => {
                group.members.insert(
                    client_id.to_string(),
                    Member {
                        conn,
                        info: info.clone(),
                        last_seen: now,
                    },
                );
                true
            }
        };
        for sub in &data.subscription_data_set {
            if group.subscriptions.get(&sub.topic) != Some(sub) {
                group.subscriptions.insert(sub.topic.clone(), sub.clone());
                change.subscriptions.push((
                    data.group_name.clone(),
                    sub.topic.clone(),
                    Some(sub.clone()),
                ));
            }
        }
        if joined {
            change
                .notify
                .push((data.group_name.clone(), connections(group)));
        }
        change
    }

    /// Removes `client_id` from `group`.
    pub fn unregister(&mut self, group_name: &str, client_id: &str) -> Change {
        let mut change = Change::default();
        if let Some(group) = self.groups.get_mut(group_name) {
            if group.members.remove(client_id).is_some() {
                change
                    .notify
                    .push((group_name.to_string(), connections(group)));
            }
        }
        self.drop_empty(&mut change);
        change
    }

    /// Removes every member whose connection closed.
    pub fn connection_closed(&mut self, conn: ConnectionRef) -> Change {
        let mut change = Change::default();
        for (name, group) in &mut self.groups {
            let before = group.members.len();
            group.members.retain(|_, m| m.conn != conn);
            if group.members.len() != before {
                change.notify.push((name.clone(), connections(group)));
            }
        }
        self.drop_empty(&mut change);
        change
    }

    fn drop_empty(&mut self, change: &mut Change) {
        self.groups.retain(|name, g| {
            if g.members.is_empty() {
                for topic in g.subscriptions.keys() {
                    change
                        .subscriptions
                        .push((name.clone(), topic.clone(), None));
                }
                false
            } else {
                true
            }
        });
    }

    /// The group's connections and settings; `None` when no member is online.
    pub fn connection_list(&self, group: &str) -> Option<ConsumerConnection> {
        let g = self.groups.get(group)?;
        Some(ConsumerConnection {
            connection_set: g
                .members
                .iter()
                .map(|(id, m)| Connection {
                    client_addr: m.info.addr.clone(),
                    client_id: id.clone(),
                    language: m.info.language.clone(),
                    version: m.info.version,
                })
                .collect(),
            consume_from_where: g.settings.consume_from_where.clone(),
            consume_type: g.settings.consume_type.clone(),
            message_model: g.settings.message_model.clone(),
            subscription_table: g
                .subscriptions
                .iter()
                .map(|(t, s)| (t.clone(), s.clone()))
                .collect(),
        })
    }

    /// Client ids of `group`'s members, sorted.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn connections(group: &Group) -> Vec<ConnectionRef> {
    group.members.values().map(|m| m.conn).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_STYLE: &str = r#"{"clientID":"c1","producerDataSet":[],"consumerDataSet":[
        {"groupName":"g","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",
         "subscriptionDataSet":[{"topic":"T","subString":"TagA || TagB","subVersion":1,
           "classFilterMode":false,"tagsSet":["TagA","TagB"],"codeSet":[1,2]}]}],
        "heartbeatFingerprint":0}"#;

    #[test]
    fn subscription_without_expression_type_is_tag() {
        let hb: HeartbeatData = serde_json::from_str(NODE_STYLE).unwrap();
        let sub = &hb.consumer_data_set[0].subscription_data_set[0];
        assert!(sub.is_tag());
        assert_eq!(sub.sub_string, "TagA || TagB");
    }

    #[test]
    fn membership_changes_report_whom_to_notify() {
        let hb: HeartbeatData = serde_json::from_str(NODE_STYLE).unwrap();
        let data = &hb.consumer_data_set[0];
        let mut groups = ConsumerGroups::default();
        let a = ConnectionRef::new(0, 1);
        let b = ConnectionRef::new(1, 2);
        let now = Instant::now();
        let info = ClientInfo {
            addr: "127.0.0.1:5000".into(),
            language: "RUST".into(),
            version: 7,
        };
        let c = groups.heartbeat("c1", a, &info, data, now);
        assert_eq!(c.notify, vec![("g".to_string(), vec![a])]);
        assert_eq!(c.subscriptions.len(), 1);
        // Same heartbeat again: nothing changes.
        assert_eq!(
            groups.heartbeat("c1", a, &info, data, now),
            Change::default()
        );
        let list = groups.connection_list("g").unwrap();
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            concat!(
                r#"{"connectionSet":[{"clientAddr":"127.0.0.1:5000","clientId":"c1","language":"RUST","version":7}],"#,
                r#""consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":{"T":"#,
                r#"{"topic":"T","subString":"TagA || TagB","expressionType":null,"subVersion":1}}}"#
            )
        );
        assert!(groups.connection_list("nobody").is_none());
        let c = groups.heartbeat("c2", b, &info, data, now);
        assert_eq!(c.notify, vec![("g".to_string(), vec![a, b])]);
        assert_eq!(groups.members("g"), vec!["c1", "c2"]);
        let c = groups.connection_closed(a);
        assert_eq!(c.notify, vec![("g".to_string(), vec![b])]);
        let c = groups.unregister("g", "c2");
        assert_eq!(c.notify, vec![("g".to_string(), vec![])]);
        assert_eq!(c.subscriptions, vec![("g".into(), "T".into(), None)]);
        assert!(groups.members("g").is_empty());
    }
}
