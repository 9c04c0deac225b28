//! The producer (RocketMQ's `DefaultMQProducer`): sync, async, one-way, batch and ordered
//! (selector) sends over SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE.
//!
//! - **Routes** come from the nameservers on first use of a topic and are refreshed every
//!   `pollNameServerInterval` (30 s). A topic the nameservers do not know is sent with the route
//!   of the template topic `TBW102` (at most `defaultTopicQueueNums` queues per broker): a broker
//!   with `autoCreateTopicEnable` creates the topic on that first send.
//! - **Queue choice**: round robin over the writable queues; a retry avoids the broker that just
//!   failed. With `sendLatencyFaultEnable`, brokers whose recent sends were slow or failed are
//!   avoided for the window of [`super::fault`]'s table.
//! - **Retries**: a sync send is tried `1 + retryTimesWhenSendFailed` times, an async one
//!   `1 + retryTimesWhenSendAsyncFailed` times, on transport errors and on the broker answers the
//!   Java client retries (SYSTEM_ERROR, SERVICE_NOT_AVAILABLE, NO_PERMISSION, TOPIC_NOT_EXIST,
//!   NO_BUYER_ID, NOT_IN_CURRENT_UNIT); a stored-but-not-OK status (flush or slave timeout) is
//!   retried only with `retryAnotherBrokerWhenNotStoreOK`. One-way, batch-to-queue and selector
//!   sends are tried once.
//! - **Message ids**: every message gets a `UNIQ_KEY` ([`super::new_uniq_id`]) unless it has one;
//!   retries keep it.
//! - **Heartbeat** with the producer group to every known master every `heartbeatBrokerInterval`
//!   (30 s); [`Producer::shutdown`] unregisters the group and closes the connections.
//! - **Compression**: a single message's body of `compressMsgBodyOverHowmuch` (4 KiB) or more is
//!   sent zlib-deflated with the COMPRESSED sys flag ([`super::compress`]); consumers inflate it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_runtime::Task;
use tern_store::properties;

use crate::code::{request, response};
use crate::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use crate::RemotingCommand;

use super::batch::encode_batch;
use super::compress::compress_if_large;
use super::fault::{FaultTable, ISOLATION_LATENCY};
use super::instance::Instance;
use super::message::Message;
use super::periodic::spawn_periodic;
use super::route::{publish_queues, MessageQueue};
use super::selector::QueueSelector;
use super::settings::{client_settings_setters, require_group, ClientSettings};
use super::uniq_id::{new_uniq_id, now_millis};
use super::wire::{HeartbeatData, ProducerData};
use super::MqError;

/// The template topic for auto-creation (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
const TBW102: &str = "TBW102";
/// Response codes a Java producer retries on another queue (RocketMQ 4.x/5.x).
const RETRY_CODES: [i32; 6] = [
    response::TOPIC_NOT_EXIST,
    response::SERVICE_NOT_AVAILABLE,
    response::SYSTEM_ERROR,
    response::NO_PERMISSION,
    204, // NO_BUYER_ID
    205, // NOT_IN_CURRENT_UNIT
];

/// How a send was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored (and flushed/replicated as the broker is configured to wait for).
    SendOk,
    /// Stored, but the synchronous flush did not finish in time.
    FlushDiskTimeout,
    /// Stored, but the slave did not confirm in time.
    FlushSlaveTimeout,
    /// Stored, but no slave is available for synchronous replication.
    SlaveNotAvailable,
}

/// The outcome of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// How the message was stored.
    pub status: SendStatus,
    /// The client's unique id (`UNIQ_KEY`); for a batch, the ids joined by `,`.
    pub msg_id: String,
    /// The broker's offset message id.
    pub offset_msg_id: String,
    /// The queue the message went to.
    pub queue: MessageQueue,
    /// The message's offset in that queue (the first one's, for a batch).
    pub queue_offset: i64,
}

/// Producer settings, with RocketMQ's names and defaults; build with [`Producer::builder`].
#[derive(Debug, Clone)]
pub struct ProducerBuilder {
    producer_group: String,
    client: ClientSettings,
    send_msg_timeout: Duration,
    retry_times_when_send_failed: u32,
    retry_times_when_send_async_failed: u32,
    retry_another_broker_when_not_store_ok: bool,
    max_message_size: usize,
    compress_msg_body_over_howmuch: usize,
    default_topic_queue_nums: i32,
    send_latency_fault_enable: bool,
}

impl ProducerBuilder {
    client_settings_setters!(client; namesrv_addr, instance_name);
    /// `sendMsgTimeout` (3 s): the limit of one attempt.
    pub fn send_msg_timeout(mut self, t: Duration) -> Self {
        self.send_msg_timeout = t;
        self
    }
    /// `retryTimesWhenSendFailed` (2).
    pub fn retry_times_when_send_failed(mut self, n: u32) -> Self {
        self.retry_times_when_send_failed = n;
        self
    }
    /// `retryTimesWhenSendAsyncFailed` (2).
    pub fn retry_times_when_send_async_failed(mut self, n: u32) -> Self {
        self.retry_times_when_send_async_failed = n;
        self
    }
    /// `retryAnotherBrokerWhenNotStoreOK` (false).
    pub fn retry_another_broker_when_not_store_ok(mut self, on: bool) -> Self {
        self.retry_another_broker_when_not_store_ok = on;
        self
    }
    /// `maxMessageSize` (4 MiB): larger bodies are refused before sending.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
    /// `compressMsgBodyOverHowmuch` (4 KiB): a single message's body of at least this many
    /// bytes is sent zlib-compressed (`usize::MAX` turns compression off).
    pub fn compress_msg_body_over_howmuch(mut self, bytes: usize) -> Self {
        self.compress_msg_body_over_howmuch = bytes;
        self
    }
    /// `defaultTopicQueueNums` (4): queues per broker of an auto-created topic.
    pub fn default_topic_queue_nums(mut self, n: i32) -> Self {
        self.default_topic_queue_nums = n;
        self
    }
    /// `sendLatencyFaultEnable` (false, as in Java): avoid slow or failing brokers.
    pub fn send_latency_fault_enable(mut self, on: bool) -> Self {
        self.send_latency_fault_enable = on;
        self
    }
    client_settings_setters!(client; poll_name_server_interval, heartbeat_broker_interval);

    /// Starts the producer on the current executor: its route-refresh and heartbeat tasks run
    /// until [`Producer::shutdown`] or drop.
    pub async fn start(self) -> Result<Producer, MqError> {
        require_group("producerGroup", &self.producer_group)?;
        let instance = self.client.instance(None)?;
        let inner = Rc::new(Inner {
            cfg: self,
            instance,
            publish: RefCell::new(HashMap::new()),
            faults: RefCell::new(FaultTable::default()),
            next_queue: Cell::new(0),
        });
        let refresh = spawn_periodic(
            &inner,
            inner.cfg.client.poll_name_server_interval,
            |i| async move { i.refresh_routes().await },
        );
        let heartbeat = {
            let inner = Rc::clone(&inner);
            tern_runtime::spawn_local(async move {
                loop {
                    inner.heartbeat().await;
                    tern_runtime::sleep(inner.cfg.client.heartbeat_broker_interval).await;
                }
            })
        };
        Ok(Producer {
            inner,
            _tasks: vec![refresh, heartbeat],
        })
    }
}

/// A started producer. Dropping it stops its background tasks; [`Producer::shutdown`] also
/// unregisters it from the brokers.
pub struct Producer {
    inner: Rc<Inner>,
    _tasks: Vec<Task<()>>,
}

struct Inner {
    cfg: ProducerBuilder,
    instance: Instance,
    /// Topic → its writable queues.
    publish: RefCell<HashMap<String, Rc<Vec<MessageQueue>>>>,
    faults: RefCell<FaultTable>,
    next_queue: Cell<usize>,
}

/// A message ready to go: encoded once, sent on each attempt.
struct Prepared {
    topic: String,
    body: Vec<u8>,
    /// The request's `sysFlag` (the COMPRESSED bits when the body is deflated).
    sys_flag: i32,
    flag: i32,
    properties: String,
    msg_id: String,
    batch: bool,
}

impl Producer {
    /// Settings for a producer of `producer_group`, with RocketMQ's defaults.
    pub fn builder(producer_group: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder {
            producer_group: producer_group.into(),
            client: ClientSettings::default(),
            send_msg_timeout: Duration::from_secs(3),
            retry_times_when_send_failed: 2,
            retry_times_when_send_async_failed: 2,
            retry_another_broker_when_not_store_ok: false,
            max_message_size: 4 * 1024 * 1024,
            compress_msg_body_over_howmuch: 4 * 1024,
            default_topic_queue_nums: 4,
            send_latency_fault_enable: false,
        }
    }

    /// This producer's client id (`ip@instanceName`).
    pub fn client_id(&self) -> &str {
        &self.inner.instance.client_id
    }

    /// Sends `msg` and waits for the broker's answer, retrying as the module docs say.
    pub async fn send(&self, msg: Message) -> Result<SendResult, MqError> {
        let prepared = self.inner.prepare(msg)?;
        let tries = 1 + self.inner.cfg.retry_times_when_send_failed;
        self.inner.send_with_retries(&prepared, tries).await
    }

    /// Sends `msg` in the background: the returned future owns what it needs (`'static`), so it
    /// can be spawned with [`tern_runtime::spawn_local`] and awaited (or not) later. Retries
    /// `retryTimesWhenSendAsyncFailed` times.
    pub fn send_async(
        &self,
        msg: Message,
    ) -> impl Future<Output = Result<SendResult, MqError>> + 'static {
        let inner = Rc::clone(&self.inner);
        async move {
            let prepared = inner.prepare(msg)?;
            let tries = 1 + inner.cfg.retry_times_when_send_async_failed;
            inner.send_with_retries(&prepared, tries).await
        }
    }

    /// Sends `msg` without waiting for an answer (and without retries); returns once it is queued
    /// on the connection.
    pub async fn send_oneway(&self, msg: Message) -> Result<(), MqError> {
        let prepared = self.inner.prepare(msg)?;
        let queues = self.inner.publish_queues(&prepared.topic).await?;
        let mq = self.inner.choose_queue(&queues, None);
        let addr = self
            .inner
            .instance
            .find_master(&mq.broker_name, &mq.topic)
            .await?;
        let cmd = self.inner.command(&prepared, &mq);
        self.inner.instance.invoke_oneway(&addr, cmd).await
    }

    /// Sends `messages` (all of one topic, none delayed) as one batch to one queue; the broker
    /// stores them consecutively. Retries like [`Producer::send`].
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<SendResult, MqError> {
        let prepared = self.inner.prepare_batch(messages)?;
        let tries = 1 + self.inner.cfg.retry_times_when_send_failed;
        self.inner.send_with_retries(&prepared, tries).await
    }

    /// Sends `msg` to the queue `mq` (tried once).
    pub async fn send_to_queue(
        &self,
        msg: Message,
        mq: &MessageQueue,
    ) -> Result<SendResult, MqError> {
        if msg.topic != mq.topic {
            return Err(MqError::InvalidMessage(format!(
                "message topic {} differs from queue topic {}",
                msg.topic, mq.topic
            )));
        }
        let prepared = self.inner.prepare(msg)?;
        self.inner.send_once(&prepared, mq).await
    }

    /// Sends `msg` to the queue `selector` picks among the topic's writable queues given `arg`
    /// (ordered messages: the same `arg` always picks the same queue while the route is stable).
    /// Tried once, like the Java client's selector sends.
    pub async fn send_select<A: ?Sized, S: QueueSelector<A>>(
        &self,
        msg: Message,
        selector: &S,
        arg: &A,
    ) -> Result<SendResult, MqError> {
        let queues = self.inner.publish_queues(&msg.topic).await?;
        let index = selector.select(&queues, &msg, arg) % queues.len().max(1);
        let mq = queues
            .get(index)
            .cloned()
            .ok_or_else(|| MqError::NoRoute(msg.topic.clone()))?;
        self.send_to_queue(msg, &mq).await
    }

    /// The writable queues of `topic` (fetching its route if needed).
    pub async fn fetch_publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>, MqError> {
        Ok(self.inner.publish_queues(topic).await?.to_vec())
    }

    /// Stops the background tasks, unregisters the producer group from the brokers and closes
    /// the connections.
    pub async fn shutdown(self) {
        let Producer { inner, _tasks } = self;
        drop(_tasks);
        inner
            .instance
            .unregister(Some(&inner.cfg.producer_group), None)
            .await;
        inner.instance.close();
    }
}

impl Inner {
    fn prepare(&self, mut msg: Message) -> Result<Prepared, MqError> {
        msg.validate(self.cfg.max_message_size)?;
        if msg.uniq_key().is_none() {
            msg.put_property(properties::UNIQ_KEY, new_uniq_id());
        }
        let msg_id = msg.uniq_key().unwrap_or_default().to_string();
        let properties = msg.encoded_properties();
        let (body, sys_flag) = compress_if_large(msg.body, self.cfg.compress_msg_body_over_howmuch);
        Ok(Prepared {
            properties,
            topic: msg.topic,
            body,
            sys_flag,
            flag: msg.flag,
            msg_id,
            batch: false,
        })
    }

    fn prepare_batch(&self, mut messages: Vec<Message>) -> Result<Prepared, MqError> {
        let topic = match messages.first() {
            Some(m) => m.topic.clone(),
            None => return Err(MqError::InvalidMessage("the batch is empty".into())),
        };
        let mut ids = Vec::with_capacity(messages.len());
        for msg in &mut messages {
            if msg.topic != topic {
                return Err(MqError::InvalidMessage(
                    "the messages of a batch must share one topic".into(),
                ));
            }
            if msg.property(properties::DELAY).is_some() {
                return Err(MqError::InvalidMessage(
                    "a batch cannot hold delayed messages".into(),
                ));
            }
            msg.validate(self.cfg.max_message_size)?;
            if msg.uniq_key().is_none() {
                msg.put_property(properties::UNIQ_KEY, new_uniq_id());
            }
            ids.push(msg.uniq_key().unwrap_or_default().to_string());
        }
        let body = encode_batch(&messages)?;
        if body.len() > self.cfg.max_message_size {
            return Err(MqError::InvalidMessage(format!(
                "the batch has {} bytes, more than maxMessageSize {}",
                body.len(),
                self.cfg.max_message_size
            )));
        }
        Ok(Prepared {
            topic,
            body,
            sys_flag: 0,
            flag: 0,
            properties: String::new(),
            msg_id: ids.join(","),
            batch: true,
        })
    }

    async fn send_with_retries(&self, p: &Prepared, tries: u32) -> Result<SendResult, MqError> {
        let mut last_broker: Option<String> = None;
        let mut last_err = MqError::NoRoute(p.topic.clone());
        for attempt in 0..tries {
            let queues = self.publish_queues(&p.topic).await?;
            let mq = self.choose_queue(&queues, last_broker.as_deref());
            let started = Instant::now();
            match self.send_once(p, &mq).await {
                Ok(result) => {
                    self.record_latency(&mq.broker_name, started.elapsed());
                    let retry = result.status != SendStatus::SendOk
                        && self.cfg.retry_another_broker_when_not_store_ok
                        && attempt + 1 < tries;
                    if !retry {
                        return Ok(result);
                    }
                    last_broker = Some(mq.broker_name.clone());
                }
                Err(e) => {
                    self.record_latency(&mq.broker_name, ISOLATION_LATENCY);
                    let retryable = match &e {
                        MqError::Transport(_) | MqError::NoBroker(_) => true,
                        MqError::Broker { code, .. } => RETRY_CODES.contains(code),
                        _ => false,
                    };
                    if !retryable {
                        return Err(e);
                    }
                    tracing::debug!(queue = %mq, attempt, error = %e, "send failed, retrying");
                    last_broker = Some(mq.broker_name.clone());
                    last_err = e;
                }
            }
        }
        Err(last_err)
    }

    fn record_latency(&self, broker: &str, latency: Duration) {
        if self.cfg.send_latency_fault_enable {
            self.faults
                .borrow_mut()
                .record(broker, latency, Instant::now());
        }
    }

    /// The next queue in round robin, preferring available brokers other than `avoid`.
    fn choose_queue(&self, queues: &[MessageQueue], avoid: Option<&str>) -> MessageQueue {
        debug_assert!(
            !queues.is_empty(),
            "publish_queues never returns an empty list"
        );
        let n = queues.len().max(1);
        let start = self.next_queue.get();
        self.next_queue.set(start.wrapping_add(1));
        let now = Instant::now();
        let faults = self.faults.borrow();
        let ok_fault = |q: &MessageQueue| {
            !self.cfg.send_latency_fault_enable || faults.is_available(&q.broker_name, now)
        };
        let ok_avoid = |q: &MessageQueue| avoid != Some(q.broker_name.as_str());
        let pick = |accept: &dyn Fn(&MessageQueue) -> bool| {
            (0..n)
                .filter_map(|i| queues.get((start + i) % n))
                .find(|q| accept(q))
                .cloned()
        };
        pick(&|q| ok_fault(q) && ok_avoid(q))
            .or_else(|| pick(&ok_avoid))
            .or_else(|| pick(&|_| true))
            .unwrap_or_else(|| MessageQueue::new("", "", 0))
    }

    /// The writable queues of `topic`, from the cache or the nameservers (TBW102 when the topic
    /// is unknown). Never empty.
    async fn publish_queues(&self, topic: &str) -> Result<Rc<Vec<MessageQueue>>, MqError> {
        if let Some(q) = self.publish.borrow().get(topic) {
            return Ok(Rc::clone(q));
        }
        let mut queues = match self.instance.fetch_route(topic).await? {
            Some(route) => publish_queues(topic, &route, None),
            None => Vec::new(),
        };
        if queues.is_empty() {
            if let Some(template) = self.instance.fetch_route(TBW102).await? {
                queues = publish_queues(topic, &template, Some(self.cfg.default_topic_queue_nums));
            }
        }
        if queues.is_empty() {
            return Err(MqError::NoRoute(topic.to_string()));
        }
        let queues = Rc::new(queues);
        self.publish
            .borrow_mut()
            .insert(topic.to_string(), Rc::clone(&queues));
        Ok(queues)
    }

    async fn refresh_routes(&self) {
        let topics: Vec<String> = self.publish.borrow().keys().cloned().collect();
        for topic in topics {
            match self.instance.fetch_route(&topic).await {
                Ok(Some(route)) => {
                    let queues = publish_queues(&topic, &route, None);
                    if !queues.is_empty() {
                        self.publish.borrow_mut().insert(topic, Rc::new(queues));
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(topic, error = %e, "route refresh failed"),
            }
        }
    }

    async fn heartbeat(&self) {
        let data = HeartbeatData {
            client_id: self.instance.client_id.clone(),
            consumers: Vec::new(),
            producers: vec![ProducerData {
                group_name: self.cfg.producer_group.clone(),
            }],
        };
        self.instance.heartbeat(&data).await;
    }

    fn command(&self, p: &Prepared, mq: &MessageQueue) -> RemotingCommand {
        let header = SendMessageRequestHeader {
            producer_group: self.cfg.producer_group.clone(),
            topic: p.topic.clone(),
            default_topic: TBW102.into(),
            default_topic_queue_nums: self.cfg.default_topic_queue_nums,
            queue_id: mq.queue_id,
            sys_flag: p.sys_flag,
            born_timestamp: now_millis(),
            flag: p.flag,
            properties: (!p.properties.is_empty()).then(|| p.properties.clone()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(p.batch),
            max_reconsume_times: None,
            broker_name: Some(mq.broker_name.clone()),
        };
        let code = if p.batch {
            request::SEND_BATCH_MESSAGE
        } else {
            request::SEND_MESSAGE_V2
        };
        RemotingCommand::request(code)
            .with_header(&SendMessageRequestHeaderV2::from(header))
            .with_body(p.body.clone())
    }

    async fn send_once(&self, p: &Prepared, mq: &MessageQueue) -> Result<SendResult, MqError> {
        let cmd = self.command(p, mq);
        let (addr, rsp) = self
            .instance
            .invoke_master(mq, cmd, self.cfg.send_msg_timeout)
            .await?;
        let status = match rsp.code {
            response::SUCCESS => SendStatus::SendOk,
            response::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
            response::FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
            response::SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
            _ => return Err(MqError::broker(&addr, &rsp)),
        };
        let h: SendMessageResponseHeader = rsp
            .decode_header()
            .map_err(|e| MqError::malformed(&addr, e))?;
        Ok(SendResult {
            status,
            msg_id: p.msg_id.clone(),
            offset_msg_id: h.msg_id,
            queue: MessageQueue::new(&mq.topic, &mq.broker_name, h.queue_id),
            queue_offset: h.queue_offset,
        })
    }
}
