//! The push consumer (RocketMQ's `DefaultMQPushConsumer`): subscribes to topics, is assigned
//! queues, long-polls them and hands the messages to a listener.
//!
//! - **Assignment**: in clustering mode every `rebalanceInterval` (20 s), at start and when a
//!   broker sends NOTIFY_CONSUMER_IDS_CHANGED, each subscribed topic's readable queues are split
//!   among the group's clients (GET_CONSUMER_LIST_BY_GROUP) with [`super::allocate_averagely`];
//!   `%RETRY%<group>` is subscribed automatically. In broadcasting mode every consumer takes
//!   every queue.
//! - **Start offset** of a newly assigned queue: the committed one (broker, or the local offset
//!   file in broadcasting mode); without one, `CONSUME_FROM_FIRST_OFFSET` starts at 0 and
//!   `CONSUME_FROM_LAST_OFFSET` at the queue's end (0 for a retry topic), as in Java.
//! - **Pulling**: one task per assigned queue sends PULL_MESSAGE with long polling
//!   (`brokerSuspendMaxTimeMillis`, 15 s), the subscription expression and, in clustering mode,
//!   the consumed offset for the broker to store (commitOffset). The broker filters by tag hash;
//!   the client rechecks the tag.
//! - **Concurrent listener**: messages are handed over in chunks of `consumeMessageBatchMaxSize`.
//!   `ReconsumeLater` (or a panic) sends each message of the chunk back with
//!   CONSUMER_SEND_MSG_BACK (delay level 0: the broker picks `3 + reconsumeTimes`), falling back
//!   to re-sending it to `%RETRY%<group>`; in broadcasting mode failed messages are dropped, as in
//!   Java. The queue's offset advances once the pulled batch is handled.
//! - **Orderly listener** (clustering): queues are locked on their broker (LOCK_BATCH_MQ) before
//!   they are consumed and re-locked every rebalance interval; messages of a queue are handed over
//!   in order, one chunk at a time. `SuspendCurrentQueueAMoment` waits
//!   `suspendCurrentQueueTimeMillis` (1 s) and hands the same messages again with
//!   `reconsumeTimes + 1`; past `maxReconsumeTimes` they are sent back (to the dead-letter queue).
//! - **Offsets** are committed (UPDATE_CONSUMER_OFFSET, or the offset file) every
//!   `persistConsumerOffsetInterval` (5 s), when a queue is taken away and on shutdown.
//! - **Shutdown** stops the tasks, commits, unlocks, unregisters and closes the connections
//!   (held long polls end at once).
//!
//! Listeners are synchronous closures run on the consumer's executor: keep them short, or hand
//! the work to other tasks and return.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use tern_runtime::Task;
use tern_store::properties;

use crate::code::{request, response};
use crate::header::{
    ConsumerSendMsgBackRequestHeader, PullMessageRequestHeader, SendMessageRequestHeader,
    SendMessageRequestHeaderV2,
};
use crate::transport::{not_supported, ConnectionInfo, HandlerFuture, Reply, RequestHandler};
use crate::RemotingCommand;

use super::allocate::allocate_averagely;
use super::instance::{Instance, ADMIN_TIMEOUT};
use super::message::MessageExt;
use super::offset_store;
use super::periodic::spawn_periodic;
use super::pull::{PullStatus, FLAG_COMMIT_OFFSET, FLAG_SUBSCRIPTION, FLAG_SUSPEND};
use super::route::{subscribe_queues, MessageQueue};
use super::settings::{client_settings_setters, require_group, ClientSettings};
use super::uniq_id::now_millis;
use super::wire::{ConsumerData, HeartbeatData, Subscription};
use super::MqError;

mod broker_requests;

/// Prefix of a group's retry topic.
const RETRY_PREFIX: &str = "%RETRY%";

/// How a group's consumers share messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageModel {
    /// Each message goes to one consumer of the group (queues are split among them).
    Clustering,
    /// Each consumer gets every message (offsets kept locally).
    Broadcasting,
}

/// Where a consumer without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFromWhere {
    /// At the end of the queue: only new messages.
    LastOffset,
    /// At the start of the queue.
    FirstOffset,
}

/// A concurrent listener's verdict on a chunk of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeStatus {
    /// Consumed.
    ConsumeSuccess,
    /// Deliver again later (through the group's retry topic).
    ReconsumeLater,
}

/// An orderly listener's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderlyStatus {
    /// Consumed.
    Success,
    /// Hand the same messages again after a pause; the queue waits meanwhile.
    SuspendCurrentQueueAMoment,
}

type ConcurrentFn = Box<dyn Fn(&[MessageExt]) -> ConsumeStatus>;
type OrderlyFn = Box<dyn Fn(&[MessageExt]) -> OrderlyStatus>;

enum Listener {
    Concurrently(ConcurrentFn),
    Orderly(OrderlyFn),
}

/// Push consumer settings, with RocketMQ's names and defaults; build with
/// [`PushConsumer::builder`], add subscriptions and a listener, then [`PushConsumerBuilder::start`].
pub struct PushConsumerBuilder {
    cfg: Config,
    subscriptions: Vec<(String, String)>,
    listener: Option<Listener>,
}

#[derive(Debug, Clone)]
struct Config {
    consumer_group: String,
    client: ClientSettings,
    message_model: MessageModel,
    consume_from_where: ConsumeFromWhere,
    consume_message_batch_max_size: usize,
    pull_batch_size: i32,
    broker_suspend_max_time: Duration,
    consumer_timeout_when_suspend: Duration,
    pull_time_delay_when_exception: Duration,
    rebalance_interval: Duration,
    persist_consumer_offset_interval: Duration,
    max_reconsume_times: i32,
    suspend_current_queue_time: Duration,
    offset_store_dir: Option<PathBuf>,
}

impl PushConsumerBuilder {
    client_settings_setters!(cfg.client; namesrv_addr, instance_name);
    /// `messageModel` (clustering).
    pub fn message_model(mut self, model: MessageModel) -> Self {
        self.cfg.message_model = model;
        self
    }
    /// `consumeFromWhere` (last offset).
    pub fn consume_from_where(mut self, from: ConsumeFromWhere) -> Self {
        self.cfg.consume_from_where = from;
        self
    }
    /// `consumeMessageBatchMaxSize` (1): most messages per listener call.
    pub fn consume_message_batch_max_size(mut self, n: usize) -> Self {
        self.cfg.consume_message_batch_max_size = n.max(1);
        self
    }
    /// `pullBatchSize` (32): most messages per pull.
    pub fn pull_batch_size(mut self, n: i32) -> Self {
        self.cfg.pull_batch_size = n.max(1);
        self
    }
    /// `brokerSuspendMaxTimeMillis` (15 s): how long a broker holds an empty pull.
    pub fn broker_suspend_max_time(mut self, t: Duration) -> Self {
        self.cfg.broker_suspend_max_time = t;
        self
    }
    /// `pullTimeDelayMillsWhenException` (3 s): pause after a failed pull.
    pub fn pull_time_delay_when_exception(mut self, t: Duration) -> Self {
        self.cfg.pull_time_delay_when_exception = t;
        self
    }
    /// Rebalance (and orderly re-lock) period (20 s, RocketMQ's `rocketmq.client.rebalance.waitInterval`).
    pub fn rebalance_interval(mut self, t: Duration) -> Self {
        self.cfg.rebalance_interval = t;
        self
    }
    /// `persistConsumerOffsetInterval` (5 s).
    pub fn persist_consumer_offset_interval(mut self, t: Duration) -> Self {
        self.cfg.persist_consumer_offset_interval = t;
        self
    }
    client_settings_setters!(cfg.client; heartbeat_broker_interval, poll_name_server_interval);
    /// `maxReconsumeTimes` (16): deliveries before the dead-letter queue.
    pub fn max_reconsume_times(mut self, n: i32) -> Self {
        self.cfg.max_reconsume_times = n;
        self
    }
    /// `suspendCurrentQueueTimeMillis` (1 s): the orderly listener's pause.
    pub fn suspend_current_queue_time(mut self, t: Duration) -> Self {
        self.cfg.suspend_current_queue_time = t;
        self
    }
    /// Directory of the broadcasting offset file (`<dir>/<group>/offsets.json`; default
    /// `$HOME/.rocketmq_offsets/<clientId>`, as Java's `rocketmq.client.localOffsetStoreDir`).
    pub fn offset_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cfg.offset_store_dir = Some(dir.into());
        self
    }
    /// Subscribes to `topic` with `expression` (`*`, or tags as `TagA || TagB`).
    pub fn subscribe(mut self, topic: impl Into<String>, expression: impl Into<String>) -> Self {
        self.subscriptions.push((topic.into(), expression.into()));
        self
    }
    /// Consumes with a concurrent listener (replaces any listener set before).
    pub fn register_message_listener_concurrently(
        mut self,
        f: impl Fn(&[MessageExt]) -> ConsumeStatus + 'static,
    ) -> Self {
        self.listener = Some(Listener::Concurrently(Box::new(f)));
        self
    }
    /// Consumes with an orderly listener (replaces any listener set before).
    pub fn register_message_listener_orderly(
        mut self,
        f: impl Fn(&[MessageExt]) -> OrderlyStatus + 'static,
    ) -> Self {
        self.listener = Some(Listener::Orderly(Box::new(f)));
        self
    }

    /// Starts consuming on the current executor: fetches the routes, sends a heartbeat and
    /// rebalances at once, then runs its tasks until [`PushConsumer::shutdown`] or drop.
    pub async fn start(self) -> Result<PushConsumer, MqError> {
        let PushConsumerBuilder {
            cfg,
            subscriptions,
            listener,
        } = self;
        require_group("consumerGroup", &cfg.consumer_group)?;
        let listener =
            listener.ok_or_else(|| MqError::Config("no message listener registered".into()))?;
        if subscriptions.is_empty() {
            return Err(MqError::Config("no subscription".into()));
        }
        let version = now_millis();
        let mut subs: BTreeMap<String, Subscription> = subscriptions
            .iter()
            .map(|(t, e)| (t.clone(), Subscription::parse(t, e, version)))
            .collect();
        if cfg.message_model == MessageModel::Clustering {
            let retry = format!("{RETRY_PREFIX}{}", cfg.consumer_group);
            subs.insert(retry.clone(), Subscription::parse(&retry, "*", version));
        }
        let (signal, wakeups) = local_channel::new_bounded(1);
        let consumer: Rc<OnceCell<Weak<Inner>>> = Rc::default();
        let handler = Rc::new(NotifyHandler {
            group: cfg.consumer_group.clone(),
            signal,
            consumer: Rc::clone(&consumer),
        });
        let instance = cfg.client.instance(Some(handler))?;
        let offset_file = (cfg.message_model == MessageModel::Broadcasting).then(|| {
            let dir = cfg.offset_store_dir.clone().unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
                PathBuf::from(home)
                    .join(".rocketmq_offsets")
                    .join(&instance.client_id)
            });
            dir.join(&cfg.consumer_group).join("offsets.json")
        });
        let local_offsets = match &offset_file {
            Some(path) => offset_store::load(path)?,
            None => HashMap::new(),
        };
        let inner = Rc::new(Inner {
            cfg,
            listener,
            instance,
            subs,
            offsets: RefCell::new(HashMap::new()),
            local_offsets,
            queues: RefCell::new(BTreeMap::new()),
            offset_file,
            started_at: now_millis(),
        });
        let _ = consumer.set(Rc::downgrade(&inner));
        for topic in inner.subs.keys() {
            if let Err(e) = inner.instance.fetch_route(topic).await {
                tracing::warn!(topic, error = %e, "no route yet");
            }
        }
        inner.heartbeat().await;
        let tasks = vec![
            spawn_rebalancer(&inner, wakeups),
            spawn_periodic(
                &inner,
                inner.cfg.client.poll_name_server_interval,
                |i| async move { i.refresh_routes().await },
            ),
            spawn_periodic(
                &inner,
                inner.cfg.client.heartbeat_broker_interval,
                |i| async move { i.heartbeat().await },
            ),
            spawn_periodic(
                &inner,
                inner.cfg.persist_consumer_offset_interval,
                |i| async move { i.persist_all().await },
            ),
        ];
        Ok(PushConsumer {
            inner,
            tasks: RefCell::new(tasks),
        })
    }
}

/// A started push consumer. Dropping it stops consuming without committing; prefer
/// [`PushConsumer::shutdown`].
pub struct PushConsumer {
    inner: Rc<Inner>,
    tasks: RefCell<Vec<Task<()>>>,
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        // The queue tasks hold the inner state; cancelling them breaks the cycle.
        self.tasks.borrow_mut().clear();
        self.inner.queues.borrow_mut().clear();
    }
}

impl PushConsumer {
    /// Settings for a push consumer of `consumer_group`, with RocketMQ's defaults.
    pub fn builder(consumer_group: impl Into<String>) -> PushConsumerBuilder {
        PushConsumerBuilder {
            cfg: Config {
                consumer_group: consumer_group.into(),
                client: ClientSettings::default(),
                message_model: MessageModel::Clustering,
                consume_from_where: ConsumeFromWhere::LastOffset,
                consume_message_batch_max_size: 1,
                pull_batch_size: 32,
                broker_suspend_max_time: Duration::from_secs(15),
                consumer_timeout_when_suspend: Duration::from_secs(30),
                pull_time_delay_when_exception: Duration::from_secs(3),
                rebalance_interval: Duration::from_secs(20),
                persist_consumer_offset_interval: Duration::from_secs(5),
                max_reconsume_times: 16,
                suspend_current_queue_time: Duration::from_secs(1),
                offset_store_dir: None,
            },
            subscriptions: Vec::new(),
            listener: None,
        }
    }

    /// This consumer's client id (`ip@instanceName`).
    pub fn client_id(&self) -> &str {
        &self.inner.instance.client_id
    }

    /// The queues this consumer currently pulls, sorted.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        self.inner.queues.borrow().keys().cloned().collect()
    }

    /// Stops consuming, commits the offsets, releases orderly locks, unregisters from the brokers
    /// and closes the connections. Does not wait for held long polls.
    pub async fn shutdown(self) {
        self.tasks.borrow_mut().clear();
        let queues: Vec<MessageQueue> = {
            let mut table = self.inner.queues.borrow_mut();
            let keys = table.keys().cloned().collect();
            table.clear();
            keys
        };
        Rc::clone(&self.inner).persist_all().await;
        if self.inner.is_orderly_clustering() {
            self.inner.unlock(queues).await;
        }
        self.inner
            .instance
            .unregister(None, Some(&self.inner.cfg.consumer_group))
            .await;
        self.inner.instance.close();
    }
}

/// Per assigned queue: its pull task and flags it shares with the rest of the consumer.
struct QueueSlot {
    flags: Rc<QueueFlags>,
    _task: Task<()>,
}

#[derive(Default)]
struct QueueFlags {
    /// Set when the queue is taken away; the task stops at its next step.
    dropped: Cell<bool>,
    /// Orderly: the broker lock is held.
    locked: Cell<bool>,
}

struct Inner {
    cfg: Config,
    listener: Listener,
    instance: Instance,
    /// Topic → subscription (the retry topic included in clustering mode).
    subs: BTreeMap<String, Subscription>,
    /// Next offset to consume, per assigned queue.
    offsets: RefCell<HashMap<MessageQueue, i64>>,
    /// When the consumer started, ms since the epoch.
    started_at: i64,
    /// Broadcasting: the offsets read from the file at start.
    local_offsets: HashMap<MessageQueue, i64>,
    queues: RefCell<BTreeMap<MessageQueue, QueueSlot>>,
    offset_file: Option<PathBuf>,
}

/// Turns NOTIFY_CONSUMER_IDS_CHANGED into a rebalance wake-up and answers
/// GET_CONSUMER_RUNNING_INFO and CONSUME_MESSAGE_DIRECTLY ([`broker_requests`]); other broker
/// requests are not supported.
struct NotifyHandler {
    group: String,
    signal: LocalSender<()>,
    /// The consumer, once started (requests before that, or after it is gone, are refused).
    consumer: Rc<OnceCell<Weak<Inner>>>,
}

impl RequestHandler for NotifyHandler {
    fn handle<'a>(&'a self, req: RemotingCommand, _conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            if req.code == request::NOTIFY_CONSUMER_IDS_CHANGED {
                tracing::debug!(group = self.group, "consumer ids changed");
                // A full channel means a rebalance is already pending.
                let _ = self.signal.try_send(());
                return None;
            }
            let inner = self.consumer.get().and_then(Weak::upgrade);
            let rsp = match (req.code, inner) {
                (request::GET_CONSUMER_RUNNING_INFO, Some(inner)) => {
                    broker_requests::running_info(&inner, &req)
                }
                (request::CONSUME_MESSAGE_DIRECTLY, Some(inner)) => {
                    broker_requests::consume_directly(&inner, &req)
                }
                _ => return Some(not_supported(&req)),
            };
            Some(Reply::new(rsp))
        })
    }
}

fn spawn_rebalancer(inner: &Rc<Inner>, wakeups: LocalReceiver<()>) -> Task<()> {
    let inner = Rc::clone(inner);
    tern_runtime::spawn_local(async move {
        loop {
            inner.rebalance().await;
            if inner.is_orderly_clustering() {
                inner.lock_all().await;
            }
            let wait = inner.cfg.rebalance_interval;
            future::or(
                async {
                    if wakeups.recv().await.is_none() {
                        tern_runtime::sleep(wait).await;
                    }
                },
                tern_runtime::sleep(wait),
            )
            .await;
        }
    })
}

impl Inner {
    fn is_orderly_clustering(&self) -> bool {
        matches!(self.listener, Listener::Orderly(_))
            && self.cfg.message_model == MessageModel::Clustering
    }

    async fn refresh_routes(&self) {
        for topic in self.subs.keys() {
            if let Err(e) = self.instance.fetch_route(topic).await {
                tracing::debug!(topic, error = %e, "route refresh failed");
            }
        }
    }

    async fn heartbeat(&self) {
        let data = HeartbeatData {
            client_id: self.instance.client_id.clone(),
            consumers: vec![ConsumerData {
                consume_from_where: match self.cfg.consume_from_where {
                    ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET",
                    ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
                },
                consume_type: "CONSUME_PASSIVELY",
                group_name: self.cfg.consumer_group.clone(),
                message_model: match self.cfg.message_model {
                    MessageModel::Clustering => "CLUSTERING",
                    MessageModel::Broadcasting => "BROADCASTING",
                },
                subscription_data_set: self.subs.values().cloned().collect(),
                unit_mode: false,
            }],
            producers: Vec::new(),
        };
        self.instance.heartbeat(&data).await;
    }

    /// Recomputes this consumer's queues of every subscribed topic and applies the difference.
    async fn rebalance(self: &Rc<Self>) {
        for topic in self.subs.keys() {
            let Some(route) = self.instance.cached_route(topic) else {
                continue;
            };
            let all = subscribe_queues(topic, &route);
            let mine = match self.cfg.message_model {
                MessageModel::Broadcasting => all,
                MessageModel::Clustering => {
                    let Some(addr) = route
                        .broker_datas
                        .iter()
                        .find_map(|b| b.broker_addrs.get(&crate::body::MASTER_ID).cloned())
                    else {
                        continue;
                    };
                    match self
                        .instance
                        .consumer_ids(&addr, &self.cfg.consumer_group)
                        .await
                    {
                        Ok(ids) if !ids.is_empty() => {
                            allocate_averagely(&self.instance.client_id, &all, &ids)
                        }
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::debug!(topic, error = %e, "no consumer list");
                            continue;
                        }
                    }
                }
            };
            self.apply_assignment(topic, mine).await;
        }
    }

    async fn apply_assignment(self: &Rc<Self>, topic: &str, mine: Vec<MessageQueue>) {
        let removed: Vec<MessageQueue> = self
            .queues
            .borrow()
            .keys()
            .filter(|q| q.topic == topic && !mine.contains(q))
            .cloned()
            .collect();
        for mq in &removed {
            if let Some(slot) = self.queues.borrow_mut().remove(mq) {
                slot.flags.dropped.set(true);
            }
            let offset = self.offsets.borrow_mut().remove(mq);
            if let Some(offset) = offset {
                self.persist_one(mq, offset).await;
            }
            tracing::debug!(queue = %mq, "queue taken away");
        }
        if !removed.is_empty() && self.is_orderly_clustering() {
            self.unlock(removed).await;
        }
        for mq in mine {
            if self.queues.borrow().contains_key(&mq) {
                continue;
            }
            let start = match self.start_offset(&mq).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(queue = %mq, error = %e, "cannot compute the start offset");
                    continue;
                }
            };
            // The await above may have raced with another rebalance.
            if self.queues.borrow().contains_key(&mq) {
                continue;
            }
            self.offsets.borrow_mut().insert(mq.clone(), start);
            let flags = Rc::new(QueueFlags::default());
            let task = tern_runtime::spawn_local(run_queue(
                Rc::clone(self),
                mq.clone(),
                Rc::clone(&flags),
            ));
            tracing::debug!(queue = %mq, start, "queue assigned");
            self.queues
                .borrow_mut()
                .insert(mq, QueueSlot { flags, _task: task });
        }
    }

    async fn start_offset(&self, mq: &MessageQueue) -> Result<i64, MqError> {
        let stored = match self.cfg.message_model {
            MessageModel::Broadcasting => self.local_offsets.get(mq).copied(),
            MessageModel::Clustering => self
                .instance
                .query_offset(&self.cfg.consumer_group, mq)
                .await?
                .filter(|o| *o >= 0),
        };
        if let Some(o) = stored {
            return Ok(o);
        }
        match self.cfg.consume_from_where {
            ConsumeFromWhere::FirstOffset => Ok(0),
            ConsumeFromWhere::LastOffset if mq.topic.starts_with(RETRY_PREFIX) => Ok(0),
            ConsumeFromWhere::LastOffset => self.instance.max_offset(mq).await,
        }
    }

    async fn persist_one(&self, mq: &MessageQueue, offset: i64) {
        if self.cfg.message_model == MessageModel::Clustering {
            if let Err(e) = self
                .instance
                .update_offset(&self.cfg.consumer_group, mq, offset)
                .await
            {
                tracing::warn!(queue = %mq, error = %e, "offset commit failed");
            }
        } else {
            self.save_offset_file().await;
        }
    }

    async fn persist_all(self: Rc<Self>) {
        if self.cfg.message_model == MessageModel::Broadcasting {
            self.save_offset_file().await;
            return;
        }
        // A copy: the commits await, and the table may change meanwhile.
        let table = self.offsets.borrow().clone();
        for (mq, offset) in table {
            self.persist_one(&mq, offset).await;
        }
    }

    async fn save_offset_file(&self) {
        let Some(path) = self.offset_file.clone() else {
            return;
        };
        let mut table = self.local_offsets.clone();
        table.extend(self.offsets.borrow().iter().map(|(q, o)| (q.clone(), *o)));
        let saved = tern_runtime::spawn_blocking(move || offset_store::save(&path, &table)).await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "offset file not saved");
        }
    }

    /// Orderly: locks every assigned queue on its broker and records which locks are held.
    async fn lock_all(&self) {
        let mut by_broker: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
        for mq in self.queues.borrow().keys() {
            by_broker
                .entry(mq.broker_name.clone())
                .or_default()
                .push(mq.clone());
        }
        for (broker, queues) in by_broker {
            let locked = match self
                .instance
                .lock_batch(&self.cfg.consumer_group, &broker, queues.clone(), false)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(broker, error = %e, "lock failed");
                    Vec::new()
                }
            };
            let table = self.queues.borrow();
            for mq in &queues {
                if let Some(slot) = table.get(mq) {
                    slot.flags.locked.set(locked.contains(mq));
                }
            }
        }
    }

    async fn unlock(&self, queues: Vec<MessageQueue>) {
        let mut by_broker: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
        for mq in queues {
            by_broker
                .entry(mq.broker_name.clone())
                .or_default()
                .push(mq);
        }
        for (broker, queues) in by_broker {
            if let Err(e) = self
                .instance
                .lock_batch(&self.cfg.consumer_group, &broker, queues, true)
                .await
            {
                tracing::debug!(broker, error = %e, "unlock failed");
            }
        }
    }

    /// Hands `msgs` to the concurrent listener in chunks; failed chunks are sent back (retried
    /// locally while sending back fails). Returns false if the queue was dropped meanwhile.
    async fn consume_concurrently(
        &self,
        f: &ConcurrentFn,
        msgs: Vec<MessageExt>,
        flags: &QueueFlags,
    ) -> bool {
        for chunk in msgs.chunks(self.cfg.consume_message_batch_max_size) {
            let mut pending = chunk.to_vec();
            loop {
                if flags.dropped.get() {
                    return false;
                }
                let status = catch_unwind(AssertUnwindSafe(|| f(&pending)))
                    .unwrap_or(ConsumeStatus::ReconsumeLater);
                if status == ConsumeStatus::ConsumeSuccess
                    || self.cfg.message_model == MessageModel::Broadcasting
                {
                    break;
                }
                let mut failed = Vec::new();
                for msg in pending {
                    if let Err(e) = self.send_back(&msg, 0).await {
                        tracing::warn!(msg_id = msg.msg_id(), error = %e, "send back failed; consuming again later");
                        failed.push(msg);
                    }
                }
                if failed.is_empty() {
                    break;
                }
                tern_runtime::sleep(self.cfg.pull_time_delay_when_exception).await;
                pending = failed;
            }
        }
        true
    }

    /// Hands `msgs` to the orderly listener in order, waiting for the queue lock and repeating
    /// suspended chunks. Returns false if the queue was dropped meanwhile.
    async fn consume_orderly(
        &self,
        f: &OrderlyFn,
        msgs: Vec<MessageExt>,
        flags: &QueueFlags,
    ) -> bool {
        let clustering = self.cfg.message_model == MessageModel::Clustering;
        for chunk in msgs.chunks(self.cfg.consume_message_batch_max_size) {
            let mut pending = chunk.to_vec();
            loop {
                if flags.dropped.get() {
                    return false;
                }
                if clustering && !flags.locked.get() {
                    tern_runtime::sleep(self.cfg.suspend_current_queue_time).await;
                    continue;
                }
                let status = catch_unwind(AssertUnwindSafe(|| f(&pending)))
                    .unwrap_or(OrderlyStatus::SuspendCurrentQueueAMoment);
                if status == OrderlyStatus::Success {
                    break;
                }
                if pending
                    .iter()
                    .any(|m| m.reconsume_times >= self.cfg.max_reconsume_times)
                {
                    // Past the limit: to the dead-letter queue (the broker decides), and on.
                    for msg in &pending {
                        if let Err(e) = self.send_back(msg, -1).await {
                            tracing::warn!(msg_id = msg.msg_id(), error = %e, "send back failed");
                        }
                    }
                    break;
                }
                for msg in &mut pending {
                    msg.reconsume_times += 1;
                }
                tern_runtime::sleep(self.cfg.suspend_current_queue_time).await;
            }
        }
        true
    }

    /// Returns `msg` to the broker for redelivery (CONSUMER_SEND_MSG_BACK), or when the broker
    /// refuses, re-sends a copy to the group's retry topic.
    async fn send_back(&self, msg: &MessageExt, delay_level: i32) -> Result<(), MqError> {
        let addr = self
            .instance
            .find_master(&msg.broker_name, msg.stored_topic())
            .await?;
        let header = ConsumerSendMsgBackRequestHeader {
            offset: msg.commit_log_offset,
            group: self.cfg.consumer_group.clone(),
            delay_level,
            origin_msg_id: Some(msg.msg_id().to_string()),
            origin_topic: Some(msg.topic.clone()),
            unit_mode: Some(false),
            max_reconsume_times: Some(self.cfg.max_reconsume_times),
        };
        let cmd = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK).with_header(&header);
        match self.instance.invoke(&addr, cmd, ADMIN_TIMEOUT).await {
            Ok(rsp) if rsp.code == response::SUCCESS => return Ok(()),
            Ok(rsp) => {
                tracing::debug!(code = rsp.code, remark = ?rsp.remark, "send back refused, re-sending")
            }
            Err(e) => tracing::debug!(error = %e, "send back failed, re-sending"),
        }
        self.resend_to_retry_topic(&addr, msg).await
    }

    async fn resend_to_retry_topic(&self, addr: &str, msg: &MessageExt) -> Result<(), MqError> {
        let retry_topic = format!("{RETRY_PREFIX}{}", self.cfg.consumer_group);
        let mut copy = msg.to_message(&retry_topic);
        if copy.property(properties::RETRY_TOPIC).is_none() {
            copy.put_property(properties::RETRY_TOPIC, msg.topic.clone());
        }
        copy.put_property(properties::ORIGIN_MESSAGE_ID, msg.msg_id().to_string());
        copy.put_property(properties::DELAY, (3 + msg.reconsume_times).to_string());
        let header = SendMessageRequestHeader {
            producer_group: "CLIENT_INNER_PRODUCER".into(),
            topic: retry_topic,
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 0,
            sys_flag: 0,
            born_timestamp: now_millis(),
            flag: copy.flag,
            properties: Some(copy.encoded_properties()),
            reconsume_times: Some(msg.reconsume_times + 1),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: Some(self.cfg.max_reconsume_times),
            broker_name: Some(msg.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_header(&SendMessageRequestHeaderV2::from(header))
            .with_body(copy.body);
        let rsp = self.instance.invoke(addr, cmd, ADMIN_TIMEOUT).await?;
        if rsp.code != response::SUCCESS {
            return Err(MqError::broker(addr, &rsp));
        }
        Ok(())
    }
}

/// The pull loop of one assigned queue: long-poll, consume, advance, until the queue is dropped
/// or the consumer stops.
async fn run_queue(inner: Rc<Inner>, mq: MessageQueue, flags: Rc<QueueFlags>) {
    let Some(sub) = inner.subs.get(&mq.topic).cloned() else {
        return;
    };
    let clustering = inner.cfg.message_model == MessageModel::Clustering;
    let suspend = inner.cfg.broker_suspend_max_time;
    loop {
        if flags.dropped.get() {
            return;
        }
        if inner.is_orderly_clustering() && !flags.locked.get() {
            tern_runtime::sleep(
                inner
                    .cfg
                    .suspend_current_queue_time
                    .min(Duration::from_millis(200)),
            )
            .await;
            continue;
        }
        let Some(offset) = inner.offsets.borrow().get(&mq).copied() else {
            return;
        };
        let mut sys_flag = FLAG_SUSPEND | FLAG_SUBSCRIPTION;
        if clustering && offset > 0 {
            sys_flag |= FLAG_COMMIT_OFFSET;
        }
        let header = PullMessageRequestHeader {
            consumer_group: inner.cfg.consumer_group.clone(),
            queue_offset: offset,
            max_msg_nums: inner.cfg.pull_batch_size,
            sys_flag,
            commit_offset: if clustering { offset } else { 0 },
            suspend_timeout_millis: suspend.as_millis() as i64,
            subscription: Some(sub.sub_string.clone()),
            sub_version: sub.sub_version,
            expression_type: Some("TAG".into()),
            ..PullMessageRequestHeader::default()
        };
        let timeout = suspend.max(inner.cfg.consumer_timeout_when_suspend);
        let result = match inner.instance.pull(&mq, header, timeout).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(queue = %mq, error = %e, "pull failed");
                tern_runtime::sleep(inner.cfg.pull_time_delay_when_exception).await;
                continue;
            }
        };
        if flags.dropped.get() {
            return;
        }
        match result.status {
            PullStatus::Found => {
                let msgs: Vec<MessageExt> = result
                    .messages
                    .into_iter()
                    .filter(|m| sub.matches(m.tags()))
                    .collect();
                let kept = match &inner.listener {
                    Listener::Concurrently(f) => inner.consume_concurrently(f, msgs, &flags).await,
                    Listener::Orderly(f) => inner.consume_orderly(f, msgs, &flags).await,
                };
                if !kept {
                    return;
                }
            }
            PullStatus::NoNewMsg | PullStatus::NoMatchedMsg => {}
            PullStatus::OffsetIllegal => {
                tracing::warn!(queue = %mq, offset, next = result.next_begin_offset, "offset illegal, moving");
            }
        }
        if let Some(o) = inner.offsets.borrow_mut().get_mut(&mq) {
            *o = result.next_begin_offset;
        }
        if result.status == PullStatus::OffsetIllegal {
            inner.persist_one(&mq, result.next_begin_offset).await;
        }
    }
}
