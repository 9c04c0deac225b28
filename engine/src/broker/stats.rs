//! GET_TOPIC_STATS_INFO (202) and GET_CONSUME_STATS (208): per-queue offsets gathered from every
//! core that owns one of the queues.
//!
//! A topic's queues are spread over the cores ([`owner_core`]), so the receiving core asks each
//! other core for its part: the same request with [`SHARD_PART`] set, answered with the same body
//! shape ([`super::admin_body`]) holding only the queues that core owns; the parts are merged.
//!
//! GET_CONSUME_STATS runs on the state core (which holds the committed offsets): it fills in each
//! queue's consumer offset and sends each owner its queues in the part request's body; the owner
//! adds the queue's max offset and the store time of the last consumed message.

use std::collections::BTreeMap;
use std::rc::Rc;

use tern_net::code::response;
use tern_net::header::{GetConsumeStatsRequestHeader, GetTopicStatsInfoRequestHeader};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::admin_body::{
    decode_consume_stats, decode_topic_stats, encode_consume_stats, encode_topic_stats,
    ConsumeStats, MessageQueue, OffsetWrapper, TopicOffset, TopicStatsTable,
};
use super::core::{reply, success, Core, Origin};
use super::routing::{owner_core, STATE_CORE};

/// Extension field marking a request one core sends another for the queues that core owns.
const SHARD_PART: &str = "ternShardPart";

impl Core {
    pub(crate) async fn on_topic_stats(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let h: GetTopicStatsInfoRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        let queues = match self.topics.borrow().get(&h.topic) {
            Some(cfg) => cfg.read_queue_nums.max(cfg.write_queue_nums),
            None => {
                return Some(reply(
                    &req,
                    response::TOPIC_NOT_EXIST,
                    format!("topic[{}] not exist", h.topic),
                ))
            }
        };
        let mut table = self.topic_stats_here(&h.topic, queues).await;
        if req.ext(SHARD_PART).is_none() {
            for other in (0..self.cores).filter(|&c| c != self.index) {
                let part = req.clone().with_ext(SHARD_PART, "true");
                match self.run_on(other, part, origin).await {
                    Some(r) if r.command.code == response::SUCCESS => {
                        match decode_topic_stats(&r.command.body) {
                            Ok(part) => table.offset_table.extend(part.offset_table),
                            Err(e) => {
                                return Some(reply(&req, response::SYSTEM_ERROR, e.to_string()))
                            }
                        }
                    }
                    Some(r) => return Some(r),
                    None => return Some(reply(&req, response::SYSTEM_ERROR, "no answer")),
                }
            }
        }
        Some(Reply::new(
            success(&req).with_body(encode_topic_stats(&table)),
        ))
    }

    /// The stats of the topic's queues this core owns.
    async fn topic_stats_here(&self, topic: &str, queues: i32) -> TopicStatsTable {
        let mut table = TopicStatsTable::default();
        for queue_id in (0..queues).filter(|&q| owner_core(topic, q, self.cores) == self.index) {
            let min = self.store.min_offset(topic, queue_id).max(0);
            let max = self.store.max_offset(topic, queue_id).max(0);
            let last = if max > 0 {
                self.store.store_time_at(topic, queue_id, max - 1).await
            } else {
                None
            };
            table.offset_table.insert(
                self.message_queue(topic, queue_id),
                TopicOffset {
                    last_update_timestamp: last.unwrap_or(0),
                    max_offset: max,
                    min_offset: min,
                },
            );
        }
        table
    }

    fn message_queue(&self, topic: &str, queue_id: i32) -> MessageQueue {
        MessageQueue {
            broker_name: self.config.broker_name.clone(),
            queue_id,
            topic: topic.to_string(),
        }
    }

    pub(crate) async fn on_consume_stats(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if req.ext(SHARD_PART).is_some() {
            return Some(self.consume_stats_part(&req).await);
        }
        if self.index != STATE_CORE {
            return self.run_on(STATE_CORE, req, origin).await;
        }
        let h: GetConsumeStatsRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        // Per owner core, the queues with the group's committed offsets filled in.
        let mut parts: BTreeMap<usize, ConsumeStats> = BTreeMap::new();
        for topic in self.consume_stats_topics(&h) {
            let Some(queues) = self.topics.borrow().get(&topic).map(|c| c.read_queue_nums) else {
                continue;
            };
            let offsets = self.offsets.borrow();
            for queue_id in 0..queues {
                let consumer_offset = offsets
                    .query(&h.consumer_group, &topic, queue_id)
                    .unwrap_or(0)
                    .max(0);
                parts
                    .entry(owner_core(&topic, queue_id, self.cores))
                    .or_default()
                    .offset_table
                    .insert(
                        self.message_queue(&topic, queue_id),
                        OffsetWrapper {
                            consumer_offset,
                            pull_offset: consumer_offset,
                            ..OffsetWrapper::default()
                        },
                    );
            }
        }
        let mut stats = ConsumeStats::default();
        for (core, part) in parts {
            let filled = if core == self.index {
                self.fill_consume_stats(part).await
            } else {
                let ask = req
                    .clone()
                    .with_ext(SHARD_PART, "true")
                    .with_body(encode_consume_stats(&part));
                match self.run_on(core, ask, origin).await {
                    Some(r) if r.command.code == response::SUCCESS => {
                        match decode_consume_stats(&r.command.body) {
                            Ok(s) => s,
                            Err(e) => {
                                return Some(reply(&req, response::SYSTEM_ERROR, e.to_string()))
                            }
                        }
                    }
                    Some(r) => return Some(r),
                    None => return Some(reply(&req, response::SYSTEM_ERROR, "no answer")),
                }
            };
            stats.offset_table.extend(filled.offset_table);
        }
        Some(Reply::new(
            success(&req).with_body(encode_consume_stats(&stats)),
        ))
    }

    /// RocketMQ's choice of topics: the listed ones; else the named topic or every topic the group
    /// committed offsets for, minus those the group's online consumers do not subscribe to.
    fn consume_stats_topics(&self, h: &GetConsumeStatsRequestHeader) -> Vec<String> {
        let listed: Vec<String> = h
            .topic_list
            .as_deref()
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if !listed.is_empty() {
            return listed;
        }
        let mut topics = match h.topic.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => vec![t.to_string()],
            _ => self.offsets.borrow().topics_of_group(&h.consumer_group),
        };
        if let Some(subscribed) = self.subscriptions.borrow().get(&h.consumer_group) {
            if !subscribed.is_empty() {
                topics.retain(|t| subscribed.contains_key(t));
            }
        }
        topics
    }

    /// Answers a part request: the body's queues (all owned here) with max offsets and times.
    async fn consume_stats_part(&self, req: &RemotingCommand) -> Reply {
        match decode_consume_stats(&req.body) {
            Ok(part) => {
                let filled = self.fill_consume_stats(part).await;
                Reply::new(success(req).with_body(encode_consume_stats(&filled)))
            }
            Err(e) => reply(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    async fn fill_consume_stats(&self, mut part: ConsumeStats) -> ConsumeStats {
        for (mq, w) in part.offset_table.iter_mut() {
            w.broker_offset = self.store.max_offset(&mq.topic, mq.queue_id).max(0);
            if w.consumer_offset > 0 {
                let last = self
                    .store
                    .store_time_at(&mq.topic, mq.queue_id, w.consumer_offset - 1)
                    .await;
                w.last_timestamp = last.filter(|&t| t > 0).unwrap_or(0);
            }
        }
        part
    }
}
