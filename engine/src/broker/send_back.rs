//! CONSUMER_SEND_MSG_BACK (36): a consumer hands back a message it failed to consume.
//!
//! As RocketMQ does: the message is read at its CommitLog offset (on the core that stores it) and
//! stored again, with `reconsumeTimes + 1`, in the group's retry topic `%RETRY%<group>` (created with
//! the group's `retryQueueNums`), or in its dead-letter topic `%DLQ%<group>` (1 queue) once the
//! reconsume count reaches the group's (or the request's) maximum or the delay level is negative.
//! The copy keeps the original's properties and adds `RETRY_TOPIC` (the original topic) and
//! `ORIGIN_MESSAGE_ID`. A retry copy carries `DELAY = 3 + reconsumeTimes` (or the request's
//! `delayLevel`), so the send path holds it in `SCHEDULE_TOPIC_XXXX` until due ([`super::scheduled`]).

use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::header::{ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;
use tern_store::message_id::MessageId;
use tern_store::properties;

use super::core::{reply, success, Core, Origin};
use super::routing::owner_core;
use super::scheduled::divert::DLQ_QUEUES;
use super::send::BORN_HOST;
use super::topics::{self, perm};

impl Core {
    pub(crate) async fn on_send_back(self: &Rc<Self>, req: RemotingCommand) -> Option<Reply> {
        let h: ConsumerSendMsgBackRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        Some(self.send_back(&req, &h).await)
    }

    async fn send_back(
        self: &Rc<Self>,
        req: &RemotingCommand,
        h: &ConsumerSendMsgBackRequestHeader,
    ) -> Reply {
        let Some(group) = self.group_or_create(&h.group) else {
            return reply(
                req,
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group not exist, {}", h.group),
            );
        };
        if !perm::is_writeable(self.live.broker_permission()) {
            return reply(
                req,
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.config.broker_ip
                ),
            );
        }
        if group.retry_queue_nums <= 0 {
            return Reply::new(success(req));
        }
        // Read the original where it is stored.
        let view = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID)
            .with_ext("offset", h.offset.to_string());
        let shard = ((h.offset as u64) >> tern_store::message_id::SHARD_SHIFT) as usize;
        if h.offset < 0 || shard >= self.cores {
            return reply(
                req,
                response::SYSTEM_ERROR,
                format!("look message by offset failed, {}", h.offset),
            );
        }
        let original = match self.run_on(shard, view, Origin::Forwarded).await {
            Some(r) if r.command.code == response::SUCCESS => r.command.body,
            _ => {
                return reply(
                    req,
                    response::SYSTEM_ERROR,
                    format!("look message by offset failed, {}", h.offset),
                )
            }
        };
        let Ok(msg) = StoredMessage::decode(&original) else {
            return reply(
                req,
                response::SYSTEM_ERROR,
                format!("look message by offset failed, {}", h.offset),
            );
        };
        let max_reconsume = h.max_reconsume_times.unwrap_or(group.retry_max_times);
        let to_dlq = msg.reconsume_times >= max_reconsume || h.delay_level < 0;
        let (topic, queues) = if to_dlq {
            (format!("{}{}", topics::DLQ_PREFIX, h.group), DLQ_QUEUES)
        } else {
            (
                format!("{}{}", topics::RETRY_PREFIX, h.group),
                group.retry_queue_nums,
            )
        };
        if let Err(why) = topics::validate_topic(&topic) {
            return reply(req, response::SYSTEM_ERROR, why);
        }
        if self.topics.borrow().limits(&topic).is_none() {
            self.upsert_topic(topics::topic_config(
                &topic,
                queues,
                perm::READ | perm::WRITE,
            ));
        }
        let mut props: Vec<u8> = msg.properties.to_vec();
        if msg.property(properties::RETRY_TOPIC).is_none() {
            properties::encode([(properties::RETRY_TOPIC, msg.topic)], &mut props);
        }
        if msg.property(properties::ORIGIN_MESSAGE_ID).is_none() {
            let id = MessageId::new(msg.store_host, msg.physical_offset).to_string();
            properties::encode([(properties::ORIGIN_MESSAGE_ID, id.as_str())], &mut props);
        }
        if !to_dlq {
            let level = if h.delay_level == 0 {
                3 + msg.reconsume_times
            } else {
                h.delay_level
            };
            properties::encode(
                [(properties::DELAY, level.to_string().as_str())],
                &mut props,
            );
        }
        let queue_id = self.next_queue(queues);
        let header = SendMessageRequestHeader {
            producer_group: h.group.clone(),
            topic: topic.clone(),
            default_topic: topics::AUTO_CREATE_TOPIC.into(),
            default_topic_queue_nums: queues,
            queue_id,
            sys_flag: msg.sys_flag,
            born_timestamp: msg.born_timestamp,
            flag: msg.flag,
            properties: Some(String::from_utf8_lossy(&props).into_owned()),
            reconsume_times: Some(msg.reconsume_times + 1),
            // The owner's retry/DLQ check then uses the same limit as this decision.
            max_reconsume_times: Some(max_reconsume),
            ..SendMessageRequestHeader::default()
        };
        let mut put = RemotingCommand::request(request::SEND_MESSAGE)
            .with_header(&header)
            .with_body(msg.body.to_vec());
        put.ext_fields.insert(BORN_HOST, msg.born_host.to_string());
        let owner = owner_core(&topic, queue_id, self.cores);
        match self.run_on(owner, put, Origin::Forwarded).await {
            Some(r) if r.command.code == response::SUCCESS => Reply::new(success(req)),
            Some(r) => reply(req, r.command.code, r.command.remark.unwrap_or_default()),
            None => reply(req, response::SYSTEM_ERROR, "send back failed"),
        }
    }
}
