//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320; body layout in [`super::batch`]).
//!
//! A batch goes to one queue and is stored all or none; its response `msgId` is the comma-joined ids
//! of its messages and `queueOffset` the first one's, as RocketMQ answers.
//!
//! Checks, in RocketMQ's order: broker writable, topic name rules (INVALID_PARAMETER), system topics
//! producers may not use (NO_PERMISSION), the topic exists or is auto-created from the request's
//! default topic (TOPIC_NOT_EXIST), the topic is writable (NO_PERMISSION), the queue id is below
//! `max(readQueueNums, writeQueueNums)` (INVALID_PARAMETER; a negative id picks a queue), the body fits
//! `maxMessageSize` (MESSAGE_ILLEGAL). The message is then stored by the core owning the queue.
//!
//! The response carries `msgId` (the offset message id), `queueId`, `queueOffset`, `transactionId`
//! (the client's UNIQ_KEY) and the extension fields `MSG_REGION` and `TRACE_ON`, as RocketMQ's
//! broker sends them; the code is SUCCESS, or FLUSH_DISK_TIMEOUT when the store stored the message
//! but could not make it durable in time.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use tern_net::code::{request, response};
use tern_net::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::message::MessageDraft;
use tern_store::message_id::MessageId;
use tern_store::message_store::PutStatus;
use tern_store::properties;

use super::batch::decode_batch;
use super::core::{reply, Core, Origin};
use super::routing::owner_core;
use super::scheduled;
use super::topics::{self, perm, TopicLimits};

/// RocketMQ's default region id, sent back as MSG_REGION.
pub const DEFAULT_REGION: &str = "DefaultRegion";
/// Property the broker stamps with its cluster name.
const CLUSTER_PROPERTY: &str = "CLUSTER";

static UNIQ_COUNTER: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// Reused property buffers (one per message being stored concurrently on this core).
    static PROPERTY_BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The send header of either request version. Its string fields (topic, groups, properties) are
/// moved out of `req.ext_fields`, not copied: nothing after this reads them from the request.
fn send_header(req: &mut RemotingCommand) -> Result<SendMessageRequestHeader, String> {
    // SEND_BATCH_MESSAGE uses the V2 names from Java clients; forwarded batches use the V1 names.
    let v2 = req.code == request::SEND_MESSAGE_V2
        || (req.code == request::SEND_BATCH_MESSAGE && req.ext("b").is_some());
    let parsed = if v2 {
        req.take_header::<SendMessageRequestHeaderV2>()
            .map(SendMessageRequestHeader::from)
    } else {
        req.take_header::<SendMessageRequestHeader>()
    };
    parsed.map_err(|e| e.to_string())
}

/// A client-style unique id for messages sent without UNIQ_KEY: 32 hex digits of the broker's
/// address, process id and a counter.
pub(crate) fn make_uniq_id(host: SocketAddr) -> String {
    let ip = match host.ip() {
        IpAddr::V4(ip) => u32::from(ip),
        IpAddr::V6(ip) => ip.to_bits() as u32,
    };
    let n = UNIQ_COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut id = String::with_capacity(UNIQ_ID_LEN);
    // Writing into a String cannot fail.
    let _ = write!(
        id,
        "{ip:08X}{:04X}{:012X}{n:08X}",
        std::process::id() & 0xffff,
        now & 0xffff_ffff_ffff
    );
    debug_assert_eq!(id.len(), UNIQ_ID_LEN);
    id
}

/// Length of [`make_uniq_id`]'s ids: 8 + 4 + 12 + 8 hex digits.
const UNIQ_ID_LEN: usize = 32;

/// The offset message id of a stored message as text, in one allocation of its final size
/// (`to_string` would regrow its buffer while the id is written digit by digit).
fn offset_msg_id(store_host: SocketAddr, phys_offset: i64) -> String {
    // IPv6 host (16 bytes) + port (4) + offset (8), two hex digits a byte.
    let mut id = String::with_capacity(2 * (16 + 4 + 8));
    let _ = write!(id, "{}", MessageId::new(store_host, phys_offset));
    id
}

impl Core {
    pub(crate) async fn on_send(
        self: &Rc<Self>,
        mut req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let mut header = match send_header(&mut req) {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e)),
        };
        // Scheduled delivery (scheduled/): checked sends may be diverted to a schedule topic.
        let internal =
            matches!(origin, Origin::Forwarded) && req.ext(scheduled::INTERNAL_PUT).is_some();
        let mut diverted = false;
        if !internal {
            let topics_before = self.topics_changed.generation();
            if let Err(rsp) = self.check_send(&req, &mut header) {
                return Some(*rsp);
            }
            let from_client = matches!(origin, Origin::Local(_));
            if let Err(rsp) = self.retry_or_dead_letter(&req, &mut header, from_client) {
                return Some(*rsp);
            }
            // An auto-created topic (or DLQ) is registered before the answer (see `register.rs`).
            self.await_registered_since(topics_before).await;
            if req.code != request::SEND_BATCH_MESSAGE {
                match self.divert_scheduled(&req, &mut header) {
                    Ok(d) => diverted = d,
                    Err(rsp) => return Some(*rsp),
                }
            } else if let Some(rsp) = self.refuse_delayed_batch(&req, &header) {
                return Some(rsp);
            }
        }
        if let Some(rsp) = self.send_if_half(&req, &header, origin).await {
            return Some(rsp);
        }
        let owner = owner_core(&header.topic, header.queue_id, self.cores);
        if owner != self.index {
            // The owner repeats the checks against the same (replicated) tables; the topic, if it
            // was just created, reached it first because mesh messages keep their order.
            let code = if req.code == request::SEND_BATCH_MESSAGE {
                request::SEND_BATCH_MESSAGE
            } else {
                request::SEND_MESSAGE
            };
            let mut fwd = RemotingCommand::request(code);
            fwd.ext_fields.clear();
            let mut fwd = fwd.with_header(&header).with_body(req.body);
            fwd.opaque = req.opaque;
            fwd.flag = req.flag;
            fwd.serialize_type = req.serialize_type;
            fwd.language = req.language;
            fwd.version = req.version;
            let born = match origin {
                Origin::Local(conn) => conn.peer.to_string(),
                Origin::Forwarded => String::new(),
            };
            fwd.ext_fields.insert(BORN_HOST, born);
            if internal || diverted {
                fwd.ext_fields.insert(scheduled::INTERNAL_PUT, "1".into());
            }
            return self.run_on(owner, fwd, origin).await;
        }
        let born_host = born_host(&req, origin);
        if req.code == request::SEND_BATCH_MESSAGE {
            return Some(self.store_batch(&req, &header, born_host).await);
        }
        Some(self.store_message(&req, &header, born_host).await)
    }

    /// The msgCheck part: everything that can refuse the message before it is stored. Chooses the
    /// queue when the header's is negative.
    fn check_send(
        &self,
        req: &RemotingCommand,
        header: &mut SendMessageRequestHeader,
    ) -> Result<(), Box<Reply>> {
        if let Some(refusal) = self.refuse_if_slave(req) {
            return Err(Box::new(refusal));
        }
        if !perm::is_writeable(self.live.broker_permission()) {
            return Err(refuse(
                req,
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.config.broker_ip
                ),
            ));
        }
        if let Err(why) = topics::validate_topic(&header.topic) {
            return Err(refuse(req, response::INVALID_PARAMETER, why));
        }
        if topics::is_send_forbidden(&header.topic) {
            return Err(refuse(
                req,
                response::NO_PERMISSION,
                format!("Sending message to topic[{}] is forbidden.", header.topic),
            ));
        }
        let existing = self.topics.borrow().limits(&header.topic);
        let cfg = match existing {
            Some(limits) => limits,
            None => {
                let derived = self.topics.borrow().derive_auto_created(
                    &header.topic,
                    &header.default_topic,
                    header.default_topic_queue_nums,
                );
                let derived = derived.or_else(|| {
                    header
                        .topic
                        .starts_with(topics::RETRY_PREFIX)
                        .then(|| topics::topic_config(&header.topic, 1, perm::READ | perm::WRITE))
                });
                match derived {
                    Some(cfg) => {
                        tracing::info!(topic = %cfg.topic_name, queues = cfg.write_queue_nums,
                            "auto-created topic");
                        let limits = TopicLimits::of(&cfg);
                        self.upsert_topic(cfg);
                        limits
                    }
                    None => {
                        return Err(refuse(
                            req,
                            response::TOPIC_NOT_EXIST,
                            format!("topic[{}] not exist, apply first please!", header.topic),
                        ))
                    }
                }
            }
        };
        if !perm::is_writeable(cfg.perm) {
            return Err(refuse(
                req,
                response::NO_PERMISSION,
                format!("the topic[{}] sending message is forbidden", header.topic),
            ));
        }
        let valid = cfg.write_queue_nums.max(cfg.read_queue_nums);
        if header.queue_id >= valid {
            return Err(refuse(
                req,
                response::INVALID_PARAMETER,
                format!(
                    "request queueId[{}] is illegal, topic {} has {valid} queues",
                    header.queue_id, header.topic
                ),
            ));
        }
        if header.queue_id < 0 {
            header.queue_id = self.next_queue(cfg.write_queue_nums);
        }
        if req.body.len() > self.live.max_message_size() as usize {
            return Err(Box::new(self.illegal_message(req)));
        }
        Ok(())
    }

    fn illegal_message(&self, req: &RemotingCommand) -> Reply {
        reply(
            req,
            response::MESSAGE_ILLEGAL,
            format!(
                "the message is illegal, maybe msg body or properties length not matched. msg body length limit {}B, msg properties length limit 32KB.",
                self.config.store.max_message_size
            ),
        )
    }

    /// One message of a SEND as it is stored: `flag`, `body` and the encoded `properties` put to
    /// `header`'s topic and queue, with the header's sys flag, born time and reconsume count.
    fn send_draft<'a>(
        &self,
        header: &'a SendMessageRequestHeader,
        flag: i32,
        body: &'a [u8],
        properties: &'a [u8],
        born_host: SocketAddr,
    ) -> MessageDraft<'a> {
        MessageDraft {
            topic: &header.topic,
            queue_id: header.queue_id,
            flag,
            body,
            properties,
            sys_flag: header.sys_flag,
            born_timestamp: header.born_timestamp,
            born_host,
            store_host: self.store_host,
            reconsume_times: header.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
        }
    }

    /// Stores the message on this core (which owns the queue) and builds the response.
    async fn store_message(
        &self,
        req: &RemotingCommand,
        header: &SendMessageRequestHeader,
        born_host: SocketAddr,
    ) -> Reply {
        let mut props = PROPERTY_BUFFERS
            .with(|b| b.borrow_mut().pop())
            .unwrap_or_default();
        props.clear();
        let given = header.properties.as_deref().unwrap_or("").as_bytes();
        props.extend_from_slice(given);
        let uniq = match properties::get(given, properties::UNIQ_KEY) {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => {
                let u = make_uniq_id(self.store_host);
                properties::encode([(properties::UNIQ_KEY, u.as_str())], &mut props);
                u
            }
        };
        properties::encode(
            [(CLUSTER_PROPERTY, self.config.cluster_name.as_str())],
            &mut props,
        );
        let draft = self.send_draft(header, header.flag, &req.body, &props, born_host);
        let outcome = self.store.put(&draft).await;
        PROPERTY_BUFFERS.with(|b| b.borrow_mut().push(props));
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(topic = %header.topic, "put failed: {e}");
                return reply(req, response::SYSTEM_ERROR, e.to_string());
            }
        };
        let code = match self.put_code(req, outcome.status) {
            Ok(code) => code,
            Err(rsp) => return *rsp,
        };
        self.stats.puts.set(self.stats.puts.get() + 1);
        self.stats
            .put_bytes
            .set(self.stats.put_bytes.get() + req.body.len() as u64);
        self.arrivals.arrived(&header.topic, header.queue_id);
        let code = self.replicated_code(code).await;
        let rsp_header = SendMessageResponseHeader {
            msg_id: offset_msg_id(self.store_host, outcome.phys_offset),
            queue_id: scheduled::divert::reported_queue_id(header),
            queue_offset: outcome.queue_offset,
            transaction_id: Some(uniq),
            ..SendMessageResponseHeader::default()
        };
        send_response(req, code, &rsp_header)
    }
}

impl Core {
    /// Stores a SEND_BATCH_MESSAGE body as consecutive messages of one queue (all or none).
    async fn store_batch(
        &self,
        req: &RemotingCommand,
        header: &SendMessageRequestHeader,
        born_host: SocketAddr,
    ) -> Reply {
        if header.topic.starts_with(topics::RETRY_PREFIX) {
            return reply(
                req,
                response::MESSAGE_ILLEGAL,
                format!(
                    "batch request does not support retry group {}",
                    header.topic
                ),
            );
        }
        let items = match decode_batch(&req.body) {
            Ok(items) => items,
            Err(e) => return reply(req, response::MESSAGE_ILLEGAL, e.to_string()),
        };
        let props: Vec<Vec<u8>> = items
            .iter()
            .map(|item| {
                let mut p = Vec::with_capacity(item.properties.len() + 64);
                p.extend_from_slice(item.properties);
                if properties::get(item.properties, properties::UNIQ_KEY).is_none() {
                    let u = make_uniq_id(self.store_host);
                    properties::encode([(properties::UNIQ_KEY, u.as_str())], &mut p);
                }
                properties::encode(
                    [(CLUSTER_PROPERTY, self.config.cluster_name.as_str())],
                    &mut p,
                );
                p
            })
            .collect();
        let drafts: Vec<MessageDraft<'_>> = items
            .iter()
            .zip(&props)
            .map(|(item, p)| self.send_draft(header, item.flag, item.body, p, born_host))
            .collect();
        let stored = match self.store.put_batch(&drafts).await {
            Ok(s) => s,
            Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let code = match self.put_code(req, stored.status) {
            Ok(code) => code,
            Err(rsp) => return *rsp,
        };
        self.stats
            .puts
            .set(self.stats.puts.get() + stored.offsets.len() as u64);
        self.arrivals.arrived(&header.topic, header.queue_id);
        let code = self.replicated_code(code).await;
        let msg_ids: Vec<String> = stored
            .offsets
            .iter()
            .map(|&(phys, _)| offset_msg_id(self.store_host, phys))
            .collect();
        let rsp_header = SendMessageResponseHeader {
            msg_id: msg_ids.join(","),
            queue_id: header.queue_id,
            queue_offset: stored.offsets.first().map_or(-1, |&(_, q)| q),
            ..SendMessageResponseHeader::default()
        };
        send_response(req, code, &rsp_header)
    }

    /// The response code for a put status, or the whole refusal.
    fn put_code(&self, req: &RemotingCommand, status: PutStatus) -> Result<i32, Box<Reply>> {
        match status {
            PutStatus::PutOk => Ok(response::SUCCESS),
            PutStatus::FlushDiskTimeout => Ok(response::FLUSH_DISK_TIMEOUT),
            PutStatus::MessageIllegal | PutStatus::PropertiesSizeExceeded => {
                Err(Box::new(self.illegal_message(req)))
            }
            PutStatus::ServiceNotAvailable => Err(refuse(
                req,
                response::SERVICE_NOT_AVAILABLE,
                "service not available now. It may be caused by one of the following reasons: the broker's disk is full, messages are put to the slave, message store has been shut down, etc.",
            )),
            PutStatus::CreateMappedFileFailed => Err(refuse(
                req,
                response::SYSTEM_ERROR,
                "create mapped file failed, server is busy or broken.",
            )),
            _ => Err(refuse(req, response::SYSTEM_ERROR, "UNKNOWN_ERROR")),
        }
    }
}

/// A send response with RocketMQ's extension fields.
pub(crate) fn send_response(
    req: &RemotingCommand,
    code: i32,
    header: &SendMessageResponseHeader,
) -> Reply {
    let mut rsp = RemotingCommand::response_to(req, code, None);
    // Sized once for the header's four fields and the two below (no regrowth per response).
    rsp.ext_fields.reserve(SEND_RESPONSE_FIELDS);
    let mut rsp = rsp.with_header(header);
    rsp.ext_fields.insert("MSG_REGION", DEFAULT_REGION.into());
    rsp.ext_fields.insert("TRACE_ON", "true".into());
    Reply::new(rsp)
}

/// Fields of a SEND response: msgId, queueId, queueOffset, transactionId, MSG_REGION, TRACE_ON.
const SEND_RESPONSE_FIELDS: usize = 6;

/// A refusal from the send checks (boxed: replies are large).
fn refuse(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> Box<Reply> {
    Box::new(reply(req, code, remark))
}

/// Extension field carrying the producer's address on a forwarded send.
pub(crate) const BORN_HOST: &str = "ternBornHost";

/// The producer's address of a send: the connection's peer, or for a send forwarded from
/// another core the [`BORN_HOST`] that core recorded (`0.0.0.0:0` when it is missing).
pub(crate) fn born_host(req: &RemotingCommand, origin: Origin<'_>) -> SocketAddr {
    match origin {
        Origin::Local(conn) => conn.peer,
        Origin::Forwarded => req
            .ext(BORN_HOST)
            .and_then(|s| s.parse().ok())
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
    }
}
