//! Topic and consumer-group administration beyond create/delete: GET_TOPIC_CONFIG (351),
//! DELETE_SUBSCRIPTIONGROUP (207), QUERY_TOPIC_CONSUME_BY_WHO (300), CLONE_GROUP_OFFSET (314) and
//! INVOKE_BROKER_TO_RESET_OFFSET (222).
//!
//! | request | header fields | answered by | effect / body |
//! |---|---|---|---|
//! | GET_TOPIC_CONFIG | `topic` | the receiving core | the TopicConfig JSON; TOPIC_NOT_EXIST when unknown |
//! | DELETE_SUBSCRIPTIONGROUP | `groupName`, `cleanOffset` | every core ([`super::fan_out`]) | the group leaves every copy of the table; with `cleanOffset` its committed offsets go too |
//! | QUERY_TOPIC_CONSUME_BY_WHO | `topic` | the state core | `{"groupList":[…]}`: groups subscribed by heartbeat or holding offsets of the topic |
//! | CLONE_GROUP_OFFSET | `srcGroup`, `destGroup`, `topic` (blank: all of the source's), `offline` | the state core | the source's committed offsets copied to the destination |
//! | INVOKE_BROKER_TO_RESET_OFFSET | `topic`, `group`, `timestamp`, `isForce`, `queueId`, `offset` | the state core | each queue's committed offset set to the first message stored at or after `timestamp` (`-1`: the queue's end), or to `offset` for one queue; body ResetOffsetBody |
//!
//! The reset follows RocketMQ 5's server-side reset (`useServerSideResetOffset`, its default): the
//! broker commits the new offsets itself. Tern does not yet make an online push consumer drop its
//! in-memory position, so the reset is meant for a stopped group or a consumer that re-reads its
//! committed offset (see `docs/admin-cli.md`).

use std::collections::BTreeMap;
use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::header::{
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::admin_body::{encode_reset_offset, MessageQueue};
use super::core::{reply, success, Core, Origin};
use super::fan_out::is_core_part;
use super::routing::{owner_core, STATE_CORE};

/// A required header field, or the error reply RocketMQ gives for a missing one.
fn field<'r>(req: &'r RemotingCommand, name: &str) -> Result<&'r str, Box<Reply>> {
    req.ext(name).map(str::trim).ok_or_else(|| {
        Box::new(reply(
            req,
            response::SYSTEM_ERROR,
            format!("the custom field <{name}> is null"),
        ))
    })
}

/// An optional numeric header field; absent, blank or `null` is `None`.
fn number<T: std::str::FromStr>(
    req: &RemotingCommand,
    name: &str,
) -> Result<Option<T>, Box<Reply>> {
    match req.ext(name).map(str::trim) {
        None | Some("") | Some("null") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            Box::new(reply(
                req,
                response::SYSTEM_ERROR,
                format!("the custom field <{name}> is not a number: {v}"),
            ))
        }),
    }
}

fn flag(req: &RemotingCommand, name: &str) -> bool {
    req.ext(name)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

impl Core {
    /// GET_TOPIC_CONFIG.
    pub(crate) fn on_get_topic_config(&self, req: &RemotingCommand) -> Reply {
        let topic = match field(req, "topic") {
            Ok(t) => t,
            Err(r) => return *r,
        };
        match self.topics.borrow().get(topic) {
            Some(cfg) => Reply::new(success(req).with_body(tern_net::body::encode(cfg))),
            None => reply(
                req,
                response::TOPIC_NOT_EXIST,
                format!("No topic in this broker. topic: {topic}"),
            ),
        }
    }

    /// DELETE_SUBSCRIPTIONGROUP: applied here, then on every other core.
    pub(crate) async fn on_delete_group(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let group = match field(&req, "groupName") {
            Ok(g) => g.to_string(),
            Err(r) => return Some(*r),
        };
        if self.groups.borrow_mut().remove(&group) {
            self.groups_changed.fire();
        }
        if self.index == STATE_CORE && flag(&req, "cleanOffset") {
            self.offsets.borrow_mut().remove_group(&group);
        }
        if !is_core_part(&req) {
            tracing::info!(group = %group, "subscription group deleted");
            if let Err(r) = self.ask_other_cores(&req, origin).await {
                return Some(r);
            }
        }
        Some(Reply::new(success(&req)))
    }

    /// The offset administration answered by the state core (which holds the committed offsets):
    /// QUERY_TOPIC_CONSUME_BY_WHO, CLONE_GROUP_OFFSET, INVOKE_BROKER_TO_RESET_OFFSET and
    /// GET_ALL_CONSUMER_OFFSET (`admin_sync.rs`); [`Core::handle`] forwards them there.
    pub(crate) async fn on_offset_admin(self: &Rc<Self>, req: RemotingCommand) -> Option<Reply> {
        let answer = match req.code {
            request::QUERY_TOPIC_CONSUME_BY_WHO => self.topic_consumed_by(&req),
            request::CLONE_GROUP_OFFSET => self.clone_group_offset(&req),
            request::GET_ALL_CONSUMER_OFFSET => Ok(self.all_consumer_offsets(&req)),
            _ => self.reset_offset(&req).await,
        };
        Some(answer.unwrap_or_else(|r| *r))
    }

    /// QUERY_TOPIC_CONSUME_BY_WHO: groups subscribed by heartbeat or holding offsets of the topic.
    fn topic_consumed_by(&self, req: &RemotingCommand) -> Result<Reply, Box<Reply>> {
        let topic = field(req, "topic")?;
        let mut groups = self.offsets.borrow().groups_of_topic(topic);
        groups.extend(
            self.subscriptions
                .borrow()
                .iter()
                .filter(|(_, topics)| topics.contains_key(topic))
                .map(|(g, _)| g.clone()),
        );
        groups.sort();
        groups.dedup();
        let body = serde_json::json!({ "groupList": groups });
        Ok(Reply::new(
            success(req).with_body(body.to_string().into_bytes()),
        ))
    }

    /// CLONE_GROUP_OFFSET.
    fn clone_group_offset(&self, req: &RemotingCommand) -> Result<Reply, Box<Reply>> {
        let src = field(req, "srcGroup")?;
        let dest = field(req, "destGroup")?;
        let topics = match req.ext("topic").map(str::trim) {
            Some(t) if !t.is_empty() => vec![t.to_string()],
            _ => self.offsets.borrow().topics_of_group(src),
        };
        // An online source group only lends the offsets of topics it subscribes to.
        let subscribed: Option<Vec<String>> = match flag(req, "offline") {
            true => None,
            false => self
                .subscriptions
                .borrow()
                .get(src)
                .map(|t| t.keys().cloned().collect()),
        };
        for topic in topics {
            if self.topics.borrow().get(&topic).is_none() {
                tracing::warn!(topic = %topic, "clone group offset: no such topic");
                continue;
            }
            if subscribed.as_ref().is_some_and(|s| !s.contains(&topic)) {
                continue;
            }
            self.offsets.borrow_mut().clone_offsets(src, dest, &topic);
        }
        Ok(Reply::new(success(req)))
    }

    async fn reset_offset(self: &Rc<Self>, req: &RemotingCommand) -> Result<Reply, Box<Reply>> {
        let topic = field(req, "topic")?.to_string();
        let group = field(req, "group")?.to_string();
        let timestamp: i64 = number(req, "timestamp")?.unwrap_or(-1);
        let queue_id: Option<i32> = number::<i32>(req, "queueId")?.filter(|q| *q >= 0);
        let offset: Option<i64> = number::<i64>(req, "offset")?.filter(|o| *o != -1);
        let read_queues = match self.topics.borrow().get(&topic) {
            Some(cfg) => cfg.read_queue_nums,
            None => {
                return Err(Box::new(reply(
                    req,
                    response::TOPIC_NOT_EXIST,
                    format!("Topic {topic} does not exist"),
                )))
            }
        };
        if self.groups.borrow().get(&group).is_none() {
            return Err(Box::new(reply(
                req,
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("Group {group} does not exist"),
            )));
        }
        let queues: Vec<i32> = match queue_id {
            Some(q) => vec![q],
            None => (0..read_queues).collect(),
        };
        let mut table = BTreeMap::new();
        for q in queues {
            let target = match (queue_id, offset) {
                (Some(_), Some(o)) => {
                    let min = self.queue_bound(&topic, q, request::GET_MIN_OFFSET).await;
                    let max = self.queue_bound(&topic, q, request::GET_MAX_OFFSET).await;
                    if o < min || o > max {
                        return Err(Box::new(reply(
                            req,
                            response::SYSTEM_ERROR,
                            format!("Target offset {o} not in consume queue range [{min}-{max}]"),
                        )));
                    }
                    o
                }
                _ if timestamp < 0 => self.queue_bound(&topic, q, request::GET_MAX_OFFSET).await,
                _ => self.queue_offset_at(&topic, q, timestamp).await,
            };
            table.insert(
                MessageQueue {
                    broker_name: self.config.broker_name.clone(),
                    queue_id: q,
                    topic: topic.clone(),
                },
                target,
            );
        }
        let mut offsets = self.offsets.borrow_mut();
        for (mq, target) in &table {
            offsets.commit(&group, &topic, mq.queue_id, *target);
        }
        tracing::info!(topic = %topic, group = %group, timestamp, "consumer offsets reset");
        Ok(Reply::new(
            success(req).with_body(encode_reset_offset(&table)),
        ))
    }

    /// The queue's min or max offset (`code` GET_MIN_OFFSET or GET_MAX_OFFSET), asked of its owner.
    async fn queue_bound(self: &Rc<Self>, topic: &str, queue_id: i32, code: i32) -> i64 {
        let cmd = RemotingCommand::request(code);
        let cmd = if code == request::GET_MIN_OFFSET {
            cmd.with_header(&GetMinOffsetRequestHeader {
                topic: topic.to_string(),
                queue_id,
                ..Default::default()
            })
        } else {
            cmd.with_header(&GetMaxOffsetRequestHeader {
                topic: topic.to_string(),
                queue_id,
                ..Default::default()
            })
        };
        let owner = owner_core(topic, queue_id, self.cores);
        let Some(r) = self.run_on(owner, cmd, Origin::Forwarded).await else {
            return 0;
        };
        if code == request::GET_MIN_OFFSET {
            r.command
                .decode_header::<GetMinOffsetResponseHeader>()
                .map_or(0, |h| h.offset)
        } else {
            r.command
                .decode_header::<GetMaxOffsetResponseHeader>()
                .map_or(0, |h| h.offset)
        }
    }

    /// The offset of the queue's first message stored at or after `timestamp`, asked of its owner.
    async fn queue_offset_at(self: &Rc<Self>, topic: &str, queue_id: i32, timestamp: i64) -> i64 {
        let cmd = RemotingCommand::request(request::SEARCH_OFFSET_BY_TIMESTAMP).with_header(
            &SearchOffsetRequestHeader {
                topic: topic.to_string(),
                queue_id,
                timestamp,
                ..Default::default()
            },
        );
        let owner = owner_core(topic, queue_id, self.cores);
        match self.run_on(owner, cmd, Origin::Forwarded).await {
            Some(r) => r
                .command
                .decode_header::<SearchOffsetResponseHeader>()
                .map_or(0, |h| h.offset.max(0)),
            None => 0,
        }
    }
}
