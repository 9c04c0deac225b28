//! Consumer requests served by the state core: QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET
//! (15), GET_CONSUMER_LIST_BY_GROUP (38), GET_CONSUMER_CONNECTION_LIST (203), HEART_BEAT (34) and
//! UNREGISTER_CLIENT (35).
//!
//! Membership changes fan out from here: subscriptions are broadcast to every core and
//! NOTIFY_CONSUMER_IDS_CHANGED goes out from the cores holding the members' connections.
//!
//! HEART_BEAT and UNREGISTER_CLIENT arriving on another core are forwarded with the connection's
//! place ([`ORIGIN_CORE`], [`ORIGIN_CONN`]); the receiving core remembers the connection so the state
//! core can have it send NOTIFY_CONSUMER_IDS_CHANGED (40) when the group's membership changes.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use serde::Serialize;
use tern_net::code::{request, response};
use tern_net::header::{
    GetConsumerListByGroupRequestHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, UnregisterClientRequestHeader,
    UpdateConsumerOffsetRequestHeader,
};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::clients::{ClientInfo, ConnectionRef, HeartbeatData};
use super::core::{reply, success, Core, MeshMsg, Origin, ORIGIN_ADDR, ORIGIN_CONN, ORIGIN_CORE};
use super::routing::{owner_core, STATE_CORE};
use super::topics::{self, perm};

/// GET_CONSUMER_LIST_BY_GROUP's body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerIdList {
    consumer_id_list: Vec<String>,
}

impl Core {
    /// The consumer offset and membership requests; on the state core, where [`Core::handle`]
    /// forwards them.
    pub(crate) async fn on_state_core_request(
        self: &Rc<Self>,
        req: RemotingCommand,
    ) -> Option<Reply> {
        Some(match req.code {
            request::QUERY_CONSUMER_OFFSET => self.query_offset(&req).await,
            request::UPDATE_CONSUMER_OFFSET => self.update_offset(&req),
            request::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(&req),
            _ => self.consumer_list(&req),
        })
    }

    /// RocketMQ's answer for a group without a committed offset: 0 when the queue still holds its
    /// first message (so a new group starts from the beginning), else QUERY_NOT_FOUND; and always
    /// QUERY_NOT_FOUND when the request says `setZeroIfNotFound=false`.
    async fn query_offset(self: &Rc<Self>, req: &RemotingCommand) -> Reply {
        let h: QueryConsumerOffsetRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let committed = self
            .offsets
            .borrow()
            .query(&h.consumer_group, &h.topic, h.queue_id);
        let offset = match committed {
            Some(offset) => Some(offset),
            None if h.set_zero_if_not_found == Some(false) => {
                return reply(
                    req,
                    response::QUERY_NOT_FOUND,
                    "Not found, do not set to zero, maybe this group boot first",
                )
            }
            None => {
                let (min, max) = self.queue_bounds(&h.topic, h.queue_id).await;
                (min <= 0 && max > 0).then_some(0)
            }
        };
        match offset {
            Some(offset) => {
                Reply::new(success(req).with_header(&QueryConsumerOffsetResponseHeader { offset }))
            }
            None => reply(
                req,
                response::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            ),
        }
    }

    /// (min, max) offsets of a queue, asked of its owner core.
    async fn queue_bounds(self: &Rc<Self>, topic: &str, queue_id: i32) -> (i64, i64) {
        let owner = owner_core(topic, queue_id, self.cores);
        if owner == self.index {
            return (
                self.store.min_offset(topic, queue_id),
                self.store.max_offset(topic, queue_id),
            );
        }
        let ask = |code| async move {
            let cmd = RemotingCommand::request(code)
                .with_ext("topic", topic)
                .with_ext("queueId", queue_id.to_string());
            self.call(owner, cmd)
                .await
                .and_then(|r| r.ext("offset").and_then(|v| v.parse::<i64>().ok()))
                .unwrap_or(0)
        };
        let min = ask(request::GET_MIN_OFFSET).await;
        let max = ask(request::GET_MAX_OFFSET).await;
        (min, max)
    }

    fn update_offset(&self, req: &RemotingCommand) -> Reply {
        let h: UpdateConsumerOffsetRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        if self.topics.borrow().get(&h.topic).is_none() {
            return reply(
                req,
                response::TOPIC_NOT_EXIST,
                format!("Topic {} not exist!", h.topic),
            );
        }
        self.offsets
            .borrow_mut()
            .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
        Reply::new(success(req))
    }

    fn consumer_list(&self, req: &RemotingCommand) -> Reply {
        let h: GetConsumerListByGroupRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let ids = self.members.borrow().members(&h.consumer_group);
        if ids.is_empty() {
            return reply(
                req,
                response::SYSTEM_ERROR,
                format!("no consumer for this group, {}", h.consumer_group),
            );
        }
        let body = serde_json::to_vec(&ConsumerIdList {
            consumer_id_list: ids,
        })
        .unwrap_or_default();
        Reply::new(success(req).with_body(body))
    }

    fn consumer_connections(&self, req: &RemotingCommand) -> Reply {
        let Some(group) = req.ext("consumerGroup") else {
            return reply(
                req,
                response::SYSTEM_ERROR,
                "the field consumerGroup is null",
            );
        };
        match self.members.borrow().connection_list(group) {
            Some(list) => Reply::new(success(req).with_body(tern_net::body::encode(&list))),
            None => reply(
                req,
                response::CONSUMER_NOT_ONLINE,
                format!("the consumer group[{group}] not online"),
            ),
        }
    }

    pub(crate) async fn on_client_request(
        self: &Rc<Self>,
        mut req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let conn = match origin {
            Origin::Local(info) => {
                self.client_conns
                    .borrow_mut()
                    .entry(info.id)
                    .or_insert_with(|| info.outbound());
                req.ext_fields.insert(ORIGIN_ADDR, info.peer.to_string());
                ConnectionRef {
                    core: self.index,
                    conn_id: info.id,
                }
            }
            Origin::Forwarded => {
                let core = req.ext(ORIGIN_CORE).and_then(|v| v.parse().ok());
                let conn_id = req.ext(ORIGIN_CONN).and_then(|v| v.parse().ok());
                match (core, conn_id) {
                    (Some(core), Some(conn_id)) => ConnectionRef { core, conn_id },
                    _ => {
                        return Some(reply(
                            &req,
                            response::SYSTEM_ERROR,
                            "forwarded client request without origin",
                        ))
                    }
                }
            }
        };
        if self.index != STATE_CORE {
            req.ext_fields.insert(ORIGIN_CORE, conn.core.to_string());
            req.ext_fields.insert(ORIGIN_CONN, conn.conn_id.to_string());
            return self.run_on(STATE_CORE, req, origin).await;
        }
        Some(if req.code == request::HEART_BEAT {
            self.heartbeat(&req, conn).await
        } else {
            self.unregister_client(&req)
        })
    }

    async fn heartbeat(self: &Rc<Self>, req: &RemotingCommand, conn: ConnectionRef) -> Reply {
        let data: HeartbeatData = match serde_json::from_slice(&req.body) {
            Ok(d) => d,
            Err(e) => {
                return reply(
                    req,
                    response::SYSTEM_ERROR,
                    format!("malformed heartbeat body: {e}"),
                )
            }
        };
        let info = ClientInfo {
            addr: req.ext(ORIGIN_ADDR).unwrap_or_default().to_string(),
            language: req.language.name().to_string(),
            version: req.version,
        };
        let mut known = Vec::with_capacity(data.consumer_data_set.len());
        let topics_before = self.topics_changed.generation();
        for consumer in &data.consumer_data_set {
            let Some(group) = self.group_or_create(&consumer.group_name) else {
                continue;
            };
            let retry = format!("{}{}", topics::RETRY_PREFIX, consumer.group_name);
            if topics::validate_topic(&retry).is_ok() && self.topics.borrow().get(&retry).is_none()
            {
                self.upsert_topic(topics::topic_config(
                    &retry,
                    group.retry_queue_nums,
                    perm::READ | perm::WRITE,
                ));
            }
            known.push(consumer);
        }
        // A new retry topic has its route before the group hears of the member (see `register.rs`).
        self.await_registered_since(topics_before).await;
        let now = Instant::now();
        for consumer in known {
            let change =
                self.members
                    .borrow_mut()
                    .heartbeat(&data.client_id, conn, &info, consumer, now);
            self.apply_membership_change(change);
        }
        for producer in &data.producer_data_set {
            self.producers
                .borrow_mut()
                .heartbeat(&producer.group_name, &data.client_id, conn);
        }
        let mut rsp = success(req);
        rsp.ext_fields
            .insert("IS_SUPPORT_HEART_BEAT_V2", "true".into());
        Reply::new(rsp)
    }

    fn unregister_client(&self, req: &RemotingCommand) -> Reply {
        let h: UnregisterClientRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        if let Some(group) = h.producer_group.as_deref() {
            self.producers.borrow_mut().unregister(group, &h.client_id);
        }
        if let Some(group) = h.consumer_group.as_deref() {
            let change = self.members.borrow_mut().unregister(group, &h.client_id);
            self.apply_membership_change(change);
        }
        Reply::new(success(req))
    }
}

impl Core {
    /// Broadcasts subscription changes and sends NOTIFY_CONSUMER_IDS_CHANGED as `change` says.
    pub(crate) fn apply_membership_change(&self, change: super::clients::Change) {
        for (group, topic, data) in change.subscriptions {
            self.broadcast(|| MeshMsg::Subscription {
                group: group.clone(),
                topic: topic.clone(),
                data: data.clone(),
            });
            self.apply_subscription(&group, &topic, data.as_ref());
        }
        for (group, conns) in change.notify {
            let notify_enabled = self
                .groups
                .borrow()
                .get(&group)
                .is_none_or(|g| g.notify_consumer_ids_changed_enable);
            if !notify_enabled {
                continue;
            }
            let mut by_core: HashMap<usize, Vec<u64>> = HashMap::new();
            for c in conns {
                by_core.entry(c.core).or_default().push(c.conn_id);
            }
            for (core, conn_ids) in by_core {
                if core == self.index {
                    self.notify_local_consumers(&group, &conn_ids);
                } else {
                    self.send_mesh(
                        core,
                        MeshMsg::NotifyConsumers {
                            group: group.clone(),
                            conn_ids,
                        },
                    );
                }
            }
        }
    }

    pub(crate) fn notify_local_consumers(&self, group: &str, conn_ids: &[u64]) {
        let conns = self.client_conns.borrow();
        for id in conn_ids {
            if let Some(out) = conns.get(id) {
                let cmd = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED)
                    .with_ext("consumerGroup", group);
                if let Err(e) = out.invoke_oneway(cmd) {
                    tracing::debug!(group, "cannot notify consumer: {e}");
                }
            }
        }
    }

    /// A connection of this core closed.
    pub(crate) fn on_connection_closed(self: &Rc<Self>, conn_id: u64) {
        if self.client_conns.borrow_mut().remove(&conn_id).is_none() {
            return;
        }
        if self.index == STATE_CORE {
            let conn = ConnectionRef {
                core: self.index,
                conn_id,
            };
            self.producers.borrow_mut().connection_closed(conn);
            let change = self.members.borrow_mut().connection_closed(conn);
            self.apply_membership_change(change);
        } else {
            self.send_mesh(STATE_CORE, MeshMsg::ConnectionClosed { conn_id });
        }
    }
}
