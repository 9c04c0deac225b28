//! The transaction check service (see [`super`], step 3): one task on the half core.

use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::header::{
    CheckTransactionStateRequestHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader,
};
use tern_net::RemotingCommand;
use tern_store::message::{MessageDraft, StoredMessage};
use tern_store::message_id::MessageId;
use tern_store::properties;

use super::internal::{draft_of, PRODUCER_GROUP_EXT};
use super::{
    half_core, now_ms, with_property, CHECK_IMMUNITY_SECONDS, CHECK_MAX_TOPIC, CHECK_TIMES,
    HALF_TOPIC, OP_TOPIC, PROGRESS_GROUP, REMOVE_TAG,
};
use crate::broker::core::{Core, Origin};
use crate::broker::routing::STATE_CORE;

/// Records read per batch while walking a queue.
const BATCH: i32 = 64;

/// Starts the check service when this core owns the half queue.
pub(crate) fn start_check_service(core: &Rc<Core>) {
    if core.index == half_core(core.cores) {
        tern_runtime::spawn_local(check_loop(Rc::clone(core))).detach();
    }
}

async fn check_loop(core: Rc<Core>) {
    let half_done = core.progress_offset(HALF_TOPIC).await;
    let op_next = core.progress_offset(OP_TOPIC).await;
    core.transactions.borrow_mut().resume(half_done, op_next);
    tracing::debug!(half_done, op_next, "transaction check service resumed");
    loop {
        tern_runtime::sleep(core.config.transaction_check_interval).await;
        if core.is_closing() {
            return;
        }
        if let Err(e) = core.check_round().await {
            tracing::warn!("transaction check round: {e}");
        }
    }
}

/// The records of a read body, in order (a malformed tail ends the walk).
fn records(mut body: &[u8]) -> Vec<StoredMessage<'_>> {
    let mut out = Vec::new();
    while let Ok(m) = StoredMessage::decode(body) {
        let Some(rest) = body.get(m.total_size..) else {
            break;
        };
        out.push(m);
        body = rest;
    }
    out
}

impl Core {
    /// The persisted progress of the check service in `topic` queue 0 (0 when none).
    async fn progress_offset(self: &Rc<Self>, topic: &str) -> i64 {
        let h = QueryConsumerOffsetRequestHeader {
            consumer_group: PROGRESS_GROUP.into(),
            topic: topic.into(),
            queue_id: 0,
            set_zero_if_not_found: Some(false),
            ..Default::default()
        };
        let cmd = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&h);
        match self.run_on(STATE_CORE, cmd, Origin::Forwarded).await {
            Some(r) if r.command.code == response::SUCCESS => r
                .command
                .decode_header::<QueryConsumerOffsetResponseHeader>()
                .map_or(0, |h| h.offset),
            _ => 0,
        }
    }

    /// One round: read new ops, then settle the half queue as far as possible and persist.
    pub(crate) async fn check_round(self: &Rc<Self>) -> Result<(), String> {
        let start = now_ms();
        self.read_new_ops().await?;
        let timeout_ms = self.config.transaction_timeout.as_millis() as i64;
        let mut next = self.transactions.borrow().half_done();
        'walk: loop {
            let (body, after) = self.read_owned(HALF_TOPIC, 0, next, BATCH).await?;
            let batch = records(&body);
            if batch.is_empty() {
                if after > next {
                    next = after; // skipped a hole (retention)
                    continue;
                }
                break;
            }
            for m in batch {
                let q = m.queue_offset;
                if self.transactions.borrow().is_pending(q, m.uniq_key()) {
                    break 'walk; // settled once its END finishes
                }
                if self.transactions.borrow().is_resolved(q, m.uniq_key()) {
                    next = q + 1;
                    continue;
                }
                if m.store_timestamp >= start {
                    break 'walk; // put back during this round
                }
                let immunity = m
                    .property(CHECK_IMMUNITY_SECONDS)
                    .and_then(|s| s.parse::<i64>().ok())
                    .map_or(timeout_ms, |s| s.saturating_mul(1000));
                if now_ms() - m.born_timestamp < immunity {
                    break 'walk;
                }
                let checks: u32 = m
                    .property(CHECK_TIMES)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if checks >= self.config.transaction_check_max {
                    self.give_up(&m).await?;
                } else {
                    self.check_again(&m, checks + 1).await?;
                }
                next = q + 1;
            }
        }
        let (half_done, op_progress) = {
            let mut t = self.transactions.borrow_mut();
            t.advance(next);
            (t.half_done(), t.op_progress())
        };
        self.commit_offset(PROGRESS_GROUP, HALF_TOPIC, 0, half_done);
        self.commit_offset(PROGRESS_GROUP, OP_TOPIC, 0, op_progress);
        Ok(())
    }

    /// Reads the ops appended since the last round into the resolution table.
    async fn read_new_ops(self: &Rc<Self>) -> Result<(), String> {
        loop {
            let from = self.transactions.borrow().op_next();
            let (body, after) = self.read_owned(OP_TOPIC, 0, from, BATCH).await?;
            let mut t = self.transactions.borrow_mut();
            for op in records(&body) {
                if op.tags() != Some(REMOVE_TAG) {
                    continue;
                }
                let txid = op.property(properties::TRANSACTION_ID);
                let text = std::str::from_utf8(op.body).unwrap_or("");
                for half in text.split(',').filter_map(|s| s.trim().parse().ok()) {
                    t.record_op(half, op.queue_offset, txid);
                }
            }
            t.ops_read(after);
            if after <= from {
                return Ok(());
            }
        }
    }

    /// Appends `m` again with its check count `checks` and offers the copy to its producer.
    async fn check_again(
        self: &Rc<Self>,
        m: &StoredMessage<'_>,
        checks: u32,
    ) -> Result<(), String> {
        let props = with_property(m.properties, CHECK_TIMES, &checks.to_string());
        let copy = draft_of(m, HALF_TOPIC, 0, &props);
        let placed = self.put_owned(&copy).await?;
        let uniq = m.uniq_key().unwrap_or_default().to_string();
        let real_topic = m.property(properties::REAL_TOPIC).unwrap_or(HALF_TOPIC);
        let real_queue = m
            .property(properties::REAL_QUEUE_ID)
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        let shown = MessageDraft {
            store_host: self.store_host,
            ..draft_of(m, real_topic, real_queue, &props)
        };
        // The producer sees the copy's offsets and the original's store time.
        let mut body = vec![0u8; shown.stored_len().map_err(|e| e.to_string())?];
        shown
            .encode_into(
                placed.queue_offset,
                placed.phys,
                m.store_timestamp,
                &mut body,
            )
            .map_err(|e| e.to_string())?;
        let header = CheckTransactionStateRequestHeader {
            topic: Some(HALF_TOPIC.into()),
            tran_state_table_offset: placed.queue_offset,
            commit_log_offset: placed.phys,
            msg_id: Some(uniq.clone()),
            transaction_id: Some(uniq),
            offset_msg_id: Some(MessageId::new(self.store_host, placed.phys).to_string()),
        };
        let group = m.property(properties::PRODUCER_GROUP).unwrap_or_default();
        let cmd = RemotingCommand::request(super::internal::INTERNAL_CHECK_PRODUCER)
            .with_header(&header)
            .with_ext(PRODUCER_GROUP_EXT, group)
            .with_body(body);
        match self.run_on(STATE_CORE, cmd, Origin::Forwarded).await {
            Some(r) if r.command.code == response::SUCCESS => {}
            Some(r) => tracing::info!(group, "transaction not checked: {:?}", r.command.remark),
            None => tracing::info!(group, "transaction not checked: no answer"),
        }
        Ok(())
    }

    /// Moves `m` to the check-max topic: it was checked too often.
    async fn give_up(self: &Rc<Self>, m: &StoredMessage<'_>) -> Result<(), String> {
        self.ensure_system_topic(CHECK_MAX_TOPIC);
        let draft = draft_of(m, CHECK_MAX_TOPIC, 0, m.properties);
        self.put_owned(&draft).await?;
        tracing::info!(
            offset = m.queue_offset,
            "half message checked too often; moved to {CHECK_MAX_TOPIC}"
        );
        Ok(())
    }
}
