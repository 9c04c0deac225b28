//! Queue queries and administration: GET_MAX_OFFSET (30), GET_MIN_OFFSET (31),
//! SEARCH_OFFSET_BY_TIMESTAMP (29), GET_EARLIEST_MSG_STORETIME (32) and VIEW_MESSAGE_BY_ID (33),
//! answered by the core owning the queue or the CommitLog; UPDATE_AND_CREATE_TOPIC (17),
//! DELETE_TOPIC_IN_BROKER (215), UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) applied on every core;
//! GET_ALL_TOPIC_CONFIG (21) and GET_BROKER_CONFIG (26) answered from the local copy
//! (GET_BROKER_RUNTIME_INFO is in `runtime_info.rs`).

use std::rc::Rc;

use tern_net::body::TopicConfig;
use tern_net::code::{request, response};
use tern_net::header::{
    CreateTopicRequestHeader, DeleteTopicRequestHeader, GetEarliestMsgStoretimeRequestHeader,
    GetEarliestMsgStoretimeResponseHeader, GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader,
    GetMinOffsetRequestHeader, GetMinOffsetResponseHeader, SearchOffsetRequestHeader,
    SearchOffsetResponseHeader, ViewMessageRequestHeader,
};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::message_id::SHARD_SHIFT;

use super::core::{reply, success, Core, Origin};
use super::groups::SubscriptionGroupConfig;
use super::routing::owner_core;
use super::topics::{self, AUTO_CREATE_TOPIC};

impl Core {
    pub(crate) async fn on_queue_query(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let (topic, queue_id) = match (req.ext("topic"), req.ext("queueId")) {
            (Some(t), Some(q)) => match q.trim().parse::<i32>() {
                Ok(q) => (t.to_string(), q),
                Err(_) => return Some(reply(&req, response::SYSTEM_ERROR, "invalid queueId")),
            },
            _ => {
                return Some(reply(
                    &req,
                    response::SYSTEM_ERROR,
                    "the custom field topic or queueId is null",
                ))
            }
        };
        let owner = owner_core(&topic, queue_id, self.cores);
        if owner != self.index {
            return self.run_on(owner, req, origin).await;
        }
        Some(self.queue_query_here(&req).await)
    }

    async fn queue_query_here(&self, req: &RemotingCommand) -> Reply {
        let rsp = match req.code {
            request::GET_MAX_OFFSET => req.decode_header::<GetMaxOffsetRequestHeader>().map(|h| {
                let offset = self.store.max_offset(&h.topic, h.queue_id);
                success(req).with_header(&GetMaxOffsetResponseHeader { offset })
            }),
            request::GET_MIN_OFFSET => req.decode_header::<GetMinOffsetRequestHeader>().map(|h| {
                let offset = self.store.min_offset(&h.topic, h.queue_id);
                success(req).with_header(&GetMinOffsetResponseHeader { offset })
            }),
            request::SEARCH_OFFSET_BY_TIMESTAMP => {
                match req.decode_header::<SearchOffsetRequestHeader>() {
                    Ok(h) => {
                        let offset = self
                            .store
                            .search_offset(&h.topic, h.queue_id, h.timestamp)
                            .await;
                        Ok(success(req).with_header(&SearchOffsetResponseHeader { offset }))
                    }
                    Err(e) => Err(e),
                }
            }
            _ => match req.decode_header::<GetEarliestMsgStoretimeRequestHeader>() {
                Ok(h) => {
                    let timestamp = self.store.earliest_store_time(&h.topic, h.queue_id).await;
                    Ok(success(req)
                        .with_header(&GetEarliestMsgStoretimeResponseHeader { timestamp }))
                }
                Err(e) => Err(e),
            },
        };
        match rsp {
            Ok(rsp) => Reply::new(rsp),
            Err(e) => reply(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    pub(crate) async fn on_view_message(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let h: ViewMessageRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        let shard = ((h.offset as u64) >> SHARD_SHIFT) as usize;
        if h.offset < 0 || shard >= self.cores {
            return Some(reply(
                &req,
                response::SYSTEM_ERROR,
                format!("can not find message by the offset, {}", h.offset),
            ));
        }
        if shard != self.index {
            return self.run_on(shard, req, origin).await;
        }
        Some(match self.store.read_message(h.offset).await {
            Ok(Some(bytes)) => Reply::new(success(&req).with_body(bytes)),
            Ok(None) => reply(
                &req,
                response::SYSTEM_ERROR,
                format!("can not find message by the offset, {}", h.offset),
            ),
            Err(e) => reply(&req, response::SYSTEM_ERROR, e.to_string()),
        })
    }

    pub(crate) fn on_create_topic(&self, req: &RemotingCommand) -> Reply {
        let h: CreateTopicRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        if let Err(why) = topics::validate_topic(&h.topic) {
            return reply(req, response::SYSTEM_ERROR, why);
        }
        if h.topic == AUTO_CREATE_TOPIC
            || h.topic == self.config.cluster_name
            || h.topic == self.config.broker_name
        {
            return reply(
                req,
                response::SYSTEM_ERROR,
                format!("The topic[{}] is conflict with system topic.", h.topic),
            );
        }
        if !(0..=1024).contains(&h.read_queue_nums) || !(0..=1024).contains(&h.write_queue_nums) {
            return reply(
                req,
                response::SYSTEM_ERROR,
                "queue nums must be in 0..=1024",
            );
        }
        let cfg = TopicConfig {
            topic_name: h.topic.clone(),
            read_queue_nums: h.read_queue_nums,
            write_queue_nums: h.write_queue_nums,
            perm: h.perm,
            topic_filter_type: h.topic_filter_type.clone(),
            topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
            order: h.order,
            ..TopicConfig::default()
        };
        tracing::info!(topic = %h.topic, queues = h.write_queue_nums, "topic created or updated");
        self.upsert_topic(cfg);
        Reply::new(success(req))
    }

    pub(crate) fn on_delete_topic(&self, req: &RemotingCommand) -> Reply {
        let h: DeleteTopicRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        if let Err(why) = topics::validate_topic(&h.topic) {
            return reply(req, response::SYSTEM_ERROR, why);
        }
        tracing::info!(topic = %h.topic, "deleting topic");
        self.delete_topic(&h.topic);
        Reply::new(success(req))
    }

    pub(crate) fn on_get_all_topic_config(&self, req: &RemotingCommand) -> Reply {
        let body = tern_net::body::encode(&self.topics.borrow().wrapper());
        Reply::new(success(req).with_body(body))
    }

    pub(crate) fn on_create_group(&self, req: &RemotingCommand) -> Reply {
        let cfg: SubscriptionGroupConfig = match serde_json::from_slice(&req.body) {
            Ok(c) => c,
            Err(e) => {
                return reply(
                    req,
                    response::SYSTEM_ERROR,
                    format!("malformed subscription group body: {e}"),
                )
            }
        };
        if cfg.group_name.is_empty() || !topics::has_legal_chars(&cfg.group_name) {
            return reply(
                req,
                response::SYSTEM_ERROR,
                format!("the group name [{}] is illegal", cfg.group_name),
            );
        }
        self.upsert_group(cfg);
        Reply::new(success(req))
    }

    /// The effective settings as `key=value` lines in the body (RocketMQ's format) and the
    /// configuration's DataVersion JSON (bumped by each UPDATE_BROKER_CONFIG) in the `version`
    /// header field.
    pub(crate) fn on_get_broker_config(&self, req: &RemotingCommand) -> Reply {
        let version = tern_net::body::encode(&self.live.data_version());
        let rsp = success(req)
            .with_ext("version", String::from_utf8_lossy(&version))
            .with_body(self.live.to_properties().into_bytes());
        Reply::new(rsp)
    }
}
