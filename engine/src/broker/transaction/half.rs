//! The SEND hook storing transactional messages as half messages (see [`super`], step 1).

use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::header::{SendMessageRequestHeader, SendMessageResponseHeader};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::message::{sys_flag, MessageDraft};
use tern_store::message_id::MessageId;
use tern_store::properties;

use super::HALF_TOPIC;
use crate::broker::core::{reply, Core, Origin};
use crate::broker::send::{born_host, make_uniq_id, send_response};
use crate::broker::topics::{self, perm};

/// True when a send's properties mark it as a transaction's half (`TRAN_MSG=true`, any case).
pub(crate) fn is_half(properties: Option<&str>) -> bool {
    properties
        .and_then(|p| properties::get(p.as_bytes(), properties::TRANSACTION_PREPARED))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

impl Core {
    /// Stores a checked SEND carrying `TRAN_MSG=true` as a half message and answers it; `None`
    /// for any other send (which then takes the normal path).
    pub(crate) async fn send_if_half(
        self: &Rc<Self>,
        req: &RemotingCommand,
        header: &SendMessageRequestHeader,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if req.code == request::SEND_BATCH_MESSAGE
            || header.topic == HALF_TOPIC
            || !is_half(header.properties.as_deref())
        {
            return None;
        }
        let born_host = born_host(req, origin);
        let given = header.properties.as_deref().unwrap_or("").as_bytes();
        let mut props = given.to_vec();
        let uniq = match properties::get(given, properties::UNIQ_KEY) {
            Some(u) => u.to_string(),
            None => {
                let u = make_uniq_id(self.store_host);
                properties::encode([(properties::UNIQ_KEY, u.as_str())], &mut props);
                u
            }
        };
        let queue = header.queue_id.to_string();
        properties::encode(
            [
                (properties::CLUSTER, self.config.cluster_name.as_str()),
                (properties::REAL_TOPIC, header.topic.as_str()),
                (properties::REAL_QUEUE_ID, queue.as_str()),
            ],
            &mut props,
        );
        self.ensure_system_topic(HALF_TOPIC);
        let draft = MessageDraft {
            topic: HALF_TOPIC,
            queue_id: 0,
            flag: header.flag,
            body: &req.body,
            properties: &props,
            sys_flag: header.sys_flag & !sys_flag::TRANSACTION_MASK,
            born_timestamp: header.born_timestamp,
            born_host,
            store_host: self.store_host,
            reconsume_times: header.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
        };
        let placed = match self.put_owned(&draft).await {
            Ok(p) => p,
            Err(e) => return Some(reply(req, response::SYSTEM_ERROR, e)),
        };
        let rsp_header = SendMessageResponseHeader {
            msg_id: MessageId::new(self.store_host, placed.phys).to_string(),
            queue_id: header.queue_id,
            queue_offset: placed.queue_offset,
            transaction_id: Some(uniq),
            ..SendMessageResponseHeader::default()
        };
        Some(send_response(req, response::SUCCESS, &rsp_header))
    }

    /// Creates a transaction system topic (1 queue, read-write, as RocketMQ does) when missing.
    pub(crate) fn ensure_system_topic(&self, topic: &str) {
        if self.topics.borrow().limits(topic).is_none() {
            self.upsert_topic(topics::topic_config(topic, 1, perm::READ | perm::WRITE));
        }
    }
}
