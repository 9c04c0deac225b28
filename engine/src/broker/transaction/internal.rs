//! Requests cores send each other for the transaction service, queue locks and registration;
//! never accepted from a client connection (answered REQUEST_CODE_NOT_SUPPORTED there).
//!
//! | code | sent to | carries | does |
//! |---|---|---|---|
//! | [`INTERNAL_PUT`] | the owner of the record's `(topic, queueId)` | body: one stored record (its offsets and store time are ignored) | stores it as given (sys flag, prepared offset, properties kept); answers `phys`, `queueOffset` |
//! | [`INTERNAL_READ`] | the queue's owner | `topic`, `queueId`, `offset`, `max` | answers the records from `offset` back to back, and `next` |
//! | [`INTERNAL_CHECK_PRODUCER`] | the state core | a CHECK_TRANSACTION_STATE command plus [`PRODUCER_GROUP_EXT`] | picks a live connection of the group and forwards as [`INTERNAL_DELIVER`] |
//! | [`INTERNAL_DELIVER`] | the core holding the connection | the command plus [`CONN_EXT`] | sends it one-way as CHECK_TRANSACTION_STATE |
//! | [`INTERNAL_AWAIT_REGISTERED`] | the state core | nothing | answers once the nameservers were sent its topic table (at most 1 s) |
//!
//! The codes lie far outside RocketMQ's request codes.

use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::transport::{not_supported, Reply};
use tern_net::RemotingCommand;
use tern_store::message::{MessageDraft, StoredMessage};
use tern_store::message_store::PutStatus;

use crate::broker::core::{reply, success, Core, Origin};
use crate::broker::filter::TagFilter;
use crate::broker::routing::{owner_core, STATE_CORE};

/// Store a record on this core (see the module table).
pub(crate) const INTERNAL_PUT: i32 = 0x7e00_0001;
/// Read records of a queue owned by this core.
pub(crate) const INTERNAL_READ: i32 = 0x7e00_0002;
/// Find a live producer of a group (state core).
pub(crate) const INTERNAL_CHECK_PRODUCER: i32 = 0x7e00_0003;
/// Send a check request on one of this core's connections.
pub(crate) const INTERNAL_DELIVER: i32 = 0x7e00_0004;
/// Wait until the state core's topic table reached the nameservers (see
/// [`Core::await_topics_registered`]).
pub(crate) const INTERNAL_AWAIT_REGISTERED: i32 = 0x7e00_0005;

/// Extension field naming the producer group of an [`INTERNAL_CHECK_PRODUCER`].
pub(crate) const PRODUCER_GROUP_EXT: &str = "ternProducerGroup";
/// Extension field naming the connection of an [`INTERNAL_DELIVER`].
pub(crate) const CONN_EXT: &str = "ternConn";

/// Most bytes one [`INTERNAL_READ`] returns.
const READ_MAX_BYTES: i32 = 4 << 20;

/// True for the codes of this module.
pub(crate) fn is_internal(code: i32) -> bool {
    (INTERNAL_PUT..=INTERNAL_AWAIT_REGISTERED).contains(&code)
}

/// Where a record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// CommitLog offset.
    pub(crate) phys: i64,
    /// ConsumeQueue offset.
    pub(crate) queue_offset: i64,
}

/// Encodes `draft` as a stored record (offsets and store time zero).
pub(crate) fn encode_record(draft: &MessageDraft<'_>) -> Result<Vec<u8>, String> {
    let len = draft.stored_len().map_err(|e| e.to_string())?;
    let mut out = vec![0u8; len];
    draft
        .encode_into(0, 0, 0, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// A draft with the fields of a stored record, `topic`, `queue_id` and `properties` replaced.
pub(crate) fn draft_of<'a>(
    m: &StoredMessage<'a>,
    topic: &'a str,
    queue_id: i32,
    properties: &'a [u8],
) -> MessageDraft<'a> {
    MessageDraft {
        topic,
        queue_id,
        flag: m.flag,
        body: m.body,
        properties,
        sys_flag: m.sys_flag,
        born_timestamp: m.born_timestamp,
        born_host: m.born_host,
        store_host: m.store_host,
        reconsume_times: m.reconsume_times,
        prepared_transaction_offset: m.prepared_transaction_offset,
    }
}

impl Core {
    /// Serves the codes of this module (forwarded requests only).
    pub(crate) async fn on_internal(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if matches!(origin, Origin::Local(_)) {
            return Some(not_supported(&req));
        }
        Some(match req.code {
            INTERNAL_PUT => self.internal_put(&req).await,
            INTERNAL_READ => self.internal_read(&req).await,
            INTERNAL_CHECK_PRODUCER => return self.internal_check_producer(req).await,
            INTERNAL_AWAIT_REGISTERED => {
                self.await_topics_registered().await;
                Reply::new(success(&req))
            }
            _ => self.internal_deliver(req),
        })
    }

    /// Runs the internal `cmd` on the core owning `(topic, queue_id)` and returns its successful
    /// answer; else the answer's remark, or `<what> failed (<code>)` without one.
    async fn run_on_owner(
        self: &Rc<Self>,
        topic: &str,
        queue_id: i32,
        cmd: RemotingCommand,
        what: &str,
    ) -> Result<RemotingCommand, String> {
        let owner = owner_core(topic, queue_id, self.cores);
        let rsp = self
            .run_on(owner, cmd, Origin::Forwarded)
            .await
            .ok_or("no answer from the queue's owner")?
            .command;
        if rsp.code != response::SUCCESS {
            return Err(rsp
                .remark
                .unwrap_or_else(|| format!("{what} failed ({})", rsp.code)));
        }
        Ok(rsp)
    }

    /// Stores `draft` on the core owning its queue and says where.
    pub(crate) async fn put_owned(
        self: &Rc<Self>,
        draft: &MessageDraft<'_>,
    ) -> Result<Placed, String> {
        let cmd = RemotingCommand::request(INTERNAL_PUT).with_body(encode_record(draft)?);
        let rsp = self
            .run_on_owner(draft.topic, draft.queue_id, cmd, "put")
            .await?;
        let field = |k| rsp.ext(k).and_then(|v| v.parse::<i64>().ok());
        match (field("phys"), field("queueOffset")) {
            (Some(phys), Some(queue_offset)) => Ok(Placed { phys, queue_offset }),
            _ => Err("put answer without offsets".into()),
        }
    }

    /// Records of `(topic, queue_id)` from `offset` (at most `max`), back to back, and the offset
    /// to read next; read on the queue's owner.
    pub(crate) async fn read_owned(
        self: &Rc<Self>,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max: i32,
    ) -> Result<(Vec<u8>, i64), String> {
        let cmd = RemotingCommand::request(INTERNAL_READ)
            .with_ext("topic", topic)
            .with_ext("queueId", queue_id.to_string())
            .with_ext("offset", offset.to_string())
            .with_ext("max", max.to_string());
        let rsp = self.run_on_owner(topic, queue_id, cmd, "read").await?;
        let next = rsp
            .ext("next")
            .and_then(|v| v.parse().ok())
            .unwrap_or(offset);
        Ok((rsp.body, next))
    }

    async fn internal_put(&self, req: &RemotingCommand) -> Reply {
        let m = match StoredMessage::decode(&req.body) {
            Ok(m) => m,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        debug_assert_eq!(owner_core(m.topic, m.queue_id, self.cores), self.index);
        let draft = MessageDraft {
            store_host: self.store_host,
            ..draft_of(&m, m.topic, m.queue_id, m.properties)
        };
        let stored = match self.store.put(&draft).await {
            Ok(s) => s,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        if !matches!(
            stored.status,
            PutStatus::PutOk | PutStatus::FlushDiskTimeout
        ) {
            return reply(
                req,
                response::SYSTEM_ERROR,
                format!("put failed: {:?}", stored.status),
            );
        }
        self.arrivals.arrived(m.topic, m.queue_id);
        let mut rsp = success(req);
        rsp.ext_fields
            .insert("phys", stored.phys_offset.to_string());
        rsp.ext_fields
            .insert("queueOffset", stored.queue_offset.to_string());
        Reply::new(rsp)
    }

    async fn internal_read(&self, req: &RemotingCommand) -> Reply {
        let int = |k| req.ext(k).and_then(|v| v.parse::<i64>().ok());
        let (Some(topic), Some(queue_id), Some(offset), Some(max)) =
            (req.ext("topic"), int("queueId"), int("offset"), int("max"))
        else {
            return reply(req, response::SYSTEM_ERROR, "malformed internal read");
        };
        let all = TagFilter::parse("*");
        let max = max.clamp(1, 1024) as i32;
        let fetched = match self
            .store
            .get(topic, queue_id as i32, offset, max, READ_MAX_BYTES, &all)
            .await
        {
            Ok(f) => f,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let mut body = Vec::new();
        for r in &fetched.ranges {
            if let Err(e) = self.store.append_range(r, &mut body).await {
                return reply(req, response::SYSTEM_ERROR, e.to_string());
            }
        }
        let next = fetched.next_begin.max(offset);
        let mut rsp = success(req).with_body(body);
        rsp.ext_fields.insert("next", next.to_string());
        Reply::new(rsp)
    }

    /// On the state core: forwards a check to a live producer of the group.
    async fn internal_check_producer(self: &Rc<Self>, mut req: RemotingCommand) -> Option<Reply> {
        if self.index != STATE_CORE {
            return self.run_on(STATE_CORE, req, Origin::Forwarded).await;
        }
        let group = req.ext(PRODUCER_GROUP_EXT).unwrap_or_default().to_string();
        let Some(conn) = self.producers.borrow().pick(&group) else {
            return Some(reply(
                &req,
                response::SYSTEM_ERROR,
                format!("no producer of group {group} is online"),
            ));
        };
        req.code = INTERNAL_DELIVER;
        req.ext_fields.insert(CONN_EXT, conn.conn_id.to_string());
        self.run_on(conn.core, req, Origin::Forwarded).await
    }

    /// Sends the check on one of this core's client connections.
    fn internal_deliver(&self, req: RemotingCommand) -> Reply {
        let conn_id = req.ext(CONN_EXT).and_then(|v| v.parse::<u64>().ok());
        let out = conn_id.and_then(|id| self.client_conns.borrow().get(&id).cloned());
        let Some(out) = out else {
            return reply(&req, response::SYSTEM_ERROR, "producer connection closed");
        };
        let mut cmd = RemotingCommand::request(request::CHECK_TRANSACTION_STATE);
        cmd.ext_fields = req.ext_fields.clone();
        cmd.ext_fields.remove(CONN_EXT);
        cmd.ext_fields.remove(PRODUCER_GROUP_EXT);
        cmd.body = req.body.clone();
        match out.invoke_oneway(cmd) {
            Ok(()) => Reply::new(success(&req)),
            Err(e) => reply(&req, response::SYSTEM_ERROR, e.to_string()),
        }
    }
}
