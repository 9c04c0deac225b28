//! END_TRANSACTION (37): commit or roll back a half message (see [`super`], step 2), on the half
//! core.
//!
//! Checks, as RocketMQ's EndTransactionProcessor: the half is found at `commitLogOffset` (else
//! SYSTEM_ERROR "Find prepared transaction message failed"), its PGROUP is `producerGroup`, its
//! queue offset is `tranStateTableOffset` and its CommitLog offset `commitLogOffset` (else
//! SYSTEM_ERROR naming the field). A `commitOrRollback` other than commit (8) or rollback (12)
//! changes nothing. END is one-way for stock producers; the answer matters only to callers that
//! wait for it.

use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::header::EndTransactionRequestHeader;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::message::{sys_flag, MessageDraft, StoredMessage};
use tern_store::message_id::SHARD_SHIFT;
use tern_store::properties;

use super::internal::{draft_of, Placed};
use super::{half_core, without_properties, HALF_TOPIC, OP_TOPIC, REMOVE_TAG};
use crate::broker::core::{reply, success, Core, Origin};

impl Core {
    pub(crate) async fn on_end_transaction(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let owner = half_core(self.cores);
        if owner != self.index {
            return self.run_on(owner, req, origin).await;
        }
        let h: EndTransactionRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        Some(self.end_transaction(&req, &h).await)
    }

    async fn end_transaction(
        self: &Rc<Self>,
        req: &RemotingCommand,
        h: &EndTransactionRequestHeader,
    ) -> Reply {
        let commit = match h.commit_or_rollback {
            sys_flag::TRANSACTION_COMMIT_TYPE => true,
            sys_flag::TRANSACTION_ROLLBACK_TYPE => false,
            _ => return Reply::new(success(req)),
        };
        let Some(record) = self.read_record(h.commit_log_offset).await else {
            return reply(
                req,
                response::SYSTEM_ERROR,
                "Find prepared transaction message failed",
            );
        };
        let half = match StoredMessage::decode(&record) {
            Ok(m) if m.topic == HALF_TOPIC => m,
            _ => {
                return reply(
                    req,
                    response::SYSTEM_ERROR,
                    "Find prepared transaction message failed",
                )
            }
        };
        if half.property(properties::PRODUCER_GROUP) != Some(h.producer_group.as_str()) {
            return reply(req, response::SYSTEM_ERROR, "The producer group wrong");
        }
        if half.queue_offset != h.tran_state_table_offset {
            return reply(
                req,
                response::SYSTEM_ERROR,
                "The transaction state table offset wrong",
            );
        }
        if half.physical_offset != h.commit_log_offset {
            return reply(req, response::SYSTEM_ERROR, "The commit log offset wrong");
        }
        let txid = half.uniq_key();
        if !self
            .transactions
            .borrow_mut()
            .claim(half.queue_offset, txid)
        {
            tracing::debug!(offset = half.queue_offset, "half already resolved");
            return Reply::new(success(req));
        }
        if commit {
            if let Err(e) = self.commit_half(&half).await {
                self.transactions
                    .borrow_mut()
                    .release(half.queue_offset, txid);
                return reply(req, response::SYSTEM_ERROR, e);
            }
        }
        match self.append_op(half.queue_offset, txid).await {
            Ok(op) => {
                self.transactions
                    .borrow_mut()
                    .record_op(half.queue_offset, op.queue_offset, txid)
            }
            // The resolution holds in memory; after a restart the half is checked again.
            Err(e) => tracing::warn!(offset = half.queue_offset, "cannot append op: {e}"),
        }
        Reply::new(success(req))
    }

    /// The record at CommitLog offset `phys`, read on the core holding it.
    pub(crate) async fn read_record(self: &Rc<Self>, phys: i64) -> Option<Vec<u8>> {
        let shard = usize::try_from((phys as u64) >> SHARD_SHIFT).ok()?;
        if phys < 0 || shard >= self.cores {
            return None;
        }
        let view = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID)
            .with_ext("offset", phys.to_string());
        let rsp = self.run_on(shard, view, Origin::Forwarded).await?.command;
        (rsp.code == response::SUCCESS).then_some(rsp.body)
    }

    /// Stores the committed copy of `half` in its real topic and queue.
    async fn commit_half(self: &Rc<Self>, half: &StoredMessage<'_>) -> Result<Placed, String> {
        let topic = half
            .property(properties::REAL_TOPIC)
            .ok_or("half message without REAL_TOPIC")?;
        let queue_id: i32 = half
            .property(properties::REAL_QUEUE_ID)
            .and_then(|q| q.parse().ok())
            .ok_or("half message without REAL_QID")?;
        let props = without_properties(
            half.properties,
            &[
                properties::REAL_TOPIC,
                properties::REAL_QUEUE_ID,
                properties::TRANSACTION_PREPARED,
            ],
        );
        // A DELAY on the half makes the committed copy a delayed one (scheduled/divert.rs).
        let delayed = self.delay_committed(&props, topic, queue_id);
        let (topic, queue_id, props) = match &delayed {
            Some((t, q, p)) => (*t, *q, p.as_slice()),
            None => (topic, queue_id, props.as_slice()),
        };
        let draft = MessageDraft {
            sys_flag: (half.sys_flag & !sys_flag::TRANSACTION_MASK)
                | sys_flag::TRANSACTION_COMMIT_TYPE,
            prepared_transaction_offset: half.physical_offset,
            ..draft_of(half, topic, queue_id, props)
        };
        self.put_owned(&draft).await
    }

    /// Appends the op resolving the half at `half_offset`.
    pub(crate) async fn append_op(
        self: &Rc<Self>,
        half_offset: i64,
        txid: Option<&str>,
    ) -> Result<Placed, String> {
        self.ensure_system_topic(OP_TOPIC);
        let mut props = Vec::new();
        properties::encode([(properties::TAGS, REMOVE_TAG)], &mut props);
        if let Some(t) = txid {
            properties::encode([(properties::TRANSACTION_ID, t)], &mut props);
        }
        let body = half_offset.to_string();
        let draft = MessageDraft {
            topic: OP_TOPIC,
            queue_id: 0,
            flag: 0,
            body: body.as_bytes(),
            properties: &props,
            sys_flag: 0,
            born_timestamp: super::now_ms(),
            born_host: self.store_host,
            store_host: self.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        self.put_owned(&draft).await
    }
}
