//! The pull consumer (RocketMQ's `DefaultMQPullConsumer`): the application chooses queues and
//! offsets and pulls; the consumer keeps the offsets it is given in memory and commits them to
//! the brokers (UPDATE_CONSUMER_OFFSET) every `persistConsumerOffsetInterval` (5 s), on
//! [`PullConsumer::persist_consume_offsets`] and on [`PullConsumer::shutdown`].

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

use tern_runtime::Task;

use crate::header::PullMessageRequestHeader;

use super::instance::Instance;
use super::periodic::spawn_periodic;
use super::pull::{PullResult, PullStatus, FLAG_SUBSCRIPTION, FLAG_SUSPEND};
use super::route::{subscribe_queues, MessageQueue};
use super::settings::{client_settings_setters, require_group, ClientSettings};
use super::uniq_id::now_millis;
use super::wire::{ConsumerData, HeartbeatData, Subscription};
use super::MqError;

/// Pull consumer settings, with RocketMQ's names; build with [`PullConsumer::builder`].
#[derive(Debug, Clone)]
pub struct PullConsumerBuilder {
    consumer_group: String,
    client: ClientSettings,
    consumer_pull_timeout: Duration,
    persist_consumer_offset_interval: Duration,
}

impl PullConsumerBuilder {
    client_settings_setters!(client; namesrv_addr, instance_name);
    /// `consumerPullTimeoutMillis` (10 s): the limit of a pull without long polling.
    pub fn consumer_pull_timeout(mut self, t: Duration) -> Self {
        self.consumer_pull_timeout = t;
        self
    }
    /// `persistConsumerOffsetInterval` (5 s).
    pub fn persist_consumer_offset_interval(mut self, t: Duration) -> Self {
        self.persist_consumer_offset_interval = t;
        self
    }
    client_settings_setters!(client; heartbeat_broker_interval);

    /// Starts the consumer on the current executor (offset-commit and heartbeat tasks).
    pub async fn start(self) -> Result<PullConsumer, MqError> {
        require_group("consumerGroup", &self.consumer_group)?;
        let instance = self.client.instance(None)?;
        let inner = Rc::new(Inner {
            cfg: self,
            instance,
            offsets: RefCell::new(HashMap::new()),
            topics: RefCell::new(BTreeSet::new()),
        });
        let persist = spawn_periodic(
            &inner,
            inner.cfg.persist_consumer_offset_interval,
            |i| async move {
                if let Err(e) = i.persist().await {
                    tracing::warn!(error = %e, "offset commit failed");
                }
            },
        );
        let heartbeat = spawn_periodic(
            &inner,
            inner.cfg.client.heartbeat_broker_interval,
            |i| async move { i.heartbeat().await },
        );
        Ok(PullConsumer {
            inner,
            _tasks: vec![persist, heartbeat],
        })
    }
}

/// A started pull consumer. Dropping it stops its tasks without committing; prefer
/// [`PullConsumer::shutdown`].
pub struct PullConsumer {
    inner: Rc<Inner>,
    _tasks: Vec<Task<()>>,
}

struct Inner {
    cfg: PullConsumerBuilder,
    instance: Instance,
    offsets: RefCell<HashMap<MessageQueue, i64>>,
    topics: RefCell<BTreeSet<String>>,
}

impl PullConsumer {
    /// Settings for a pull consumer of `consumer_group`.
    pub fn builder(consumer_group: impl Into<String>) -> PullConsumerBuilder {
        PullConsumerBuilder {
            consumer_group: consumer_group.into(),
            client: ClientSettings::default(),
            consumer_pull_timeout: Duration::from_secs(10),
            persist_consumer_offset_interval: Duration::from_secs(5),
        }
    }

    /// The readable queues of `topic`, sorted (fetches its route from the nameservers).
    pub async fn fetch_subscribe_message_queues(
        &self,
        topic: &str,
    ) -> Result<Vec<MessageQueue>, MqError> {
        let route = self
            .inner
            .instance
            .fetch_route(topic)
            .await?
            .ok_or_else(|| MqError::NoRoute(topic.to_string()))?;
        let first = self.inner.topics.borrow_mut().insert(topic.to_string());
        if first {
            self.inner.heartbeat().await;
        }
        Ok(subscribe_queues(topic, &route))
    }

    /// The group's offset of `mq`: the one given to [`PullConsumer::update_consume_offset`] unless
    /// `from_store`, else the broker's committed one; -1 when there is none.
    pub async fn fetch_consume_offset(
        &self,
        mq: &MessageQueue,
        from_store: bool,
    ) -> Result<i64, MqError> {
        if !from_store {
            if let Some(o) = self.inner.offsets.borrow().get(mq) {
                return Ok(*o);
            }
        }
        let stored = self
            .inner
            .instance
            .query_offset(&self.inner.cfg.consumer_group, mq)
            .await?;
        Ok(stored.unwrap_or(-1))
    }

    /// Pulls up to `max_nums` messages of `mq` matching `expression` (`*` or `TagA || TagB`)
    /// from `offset`, without waiting for new ones.
    pub async fn pull(
        &self,
        mq: &MessageQueue,
        expression: &str,
        offset: i64,
        max_nums: i32,
    ) -> Result<PullResult, MqError> {
        self.inner
            .pull(mq, expression, offset, max_nums, None)
            .await
    }

    /// Like [`PullConsumer::pull`], but when nothing is there yet the broker holds the request up
    /// to `suspend` for messages to arrive (long polling).
    pub async fn pull_block_if_not_found(
        &self,
        mq: &MessageQueue,
        expression: &str,
        offset: i64,
        max_nums: i32,
        suspend: Duration,
    ) -> Result<PullResult, MqError> {
        self.inner
            .pull(mq, expression, offset, max_nums, Some(suspend))
            .await
    }

    /// Records `offset` as the group's progress in `mq` (committed by the periodic task).
    pub fn update_consume_offset(&self, mq: &MessageQueue, offset: i64) {
        self.inner.offsets.borrow_mut().insert(mq.clone(), offset);
    }

    /// Commits every recorded offset to its broker now.
    pub async fn persist_consume_offsets(&self) -> Result<(), MqError> {
        self.inner.persist().await
    }

    /// Commits the offsets, unregisters from the brokers and closes the connections.
    pub async fn shutdown(self) -> Result<(), MqError> {
        let PullConsumer { inner, _tasks } = self;
        drop(_tasks);
        let committed = inner.persist().await;
        inner
            .instance
            .unregister(None, Some(&inner.cfg.consumer_group))
            .await;
        inner.instance.close();
        committed
    }
}

impl Inner {
    async fn pull(
        &self,
        mq: &MessageQueue,
        expression: &str,
        offset: i64,
        max_nums: i32,
        suspend: Option<Duration>,
    ) -> Result<PullResult, MqError> {
        let sub = Subscription::parse(&mq.topic, expression, now_millis());
        let mut sys_flag = FLAG_SUBSCRIPTION;
        let mut timeout = self.cfg.consumer_pull_timeout;
        if let Some(s) = suspend {
            sys_flag |= FLAG_SUSPEND;
            timeout = s + self.cfg.consumer_pull_timeout;
        }
        let header = PullMessageRequestHeader {
            consumer_group: self.cfg.consumer_group.clone(),
            queue_offset: offset,
            max_msg_nums: max_nums,
            sys_flag,
            commit_offset: 0,
            suspend_timeout_millis: suspend.map_or(0, |s| s.as_millis() as i64),
            subscription: Some(sub.sub_string.clone()),
            sub_version: sub.sub_version,
            expression_type: Some("TAG".into()),
            ..PullMessageRequestHeader::default()
        };
        let mut result = self.instance.pull(mq, header, timeout).await?;
        if result.status == PullStatus::Found {
            result.messages.retain(|m| sub.matches(m.tags()));
        }
        Ok(result)
    }

    async fn persist(&self) -> Result<(), MqError> {
        // A copy: the commits await, and the table may change meanwhile.
        let table = self.offsets.borrow().clone();
        let mut first_err = None;
        for (mq, offset) in table {
            if let Err(e) = self
                .instance
                .update_offset(&self.cfg.consumer_group, &mq, offset)
                .await
            {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn heartbeat(&self) {
        let subs = self
            .topics
            .borrow()
            .iter()
            .map(|t| Subscription::parse(t, "*", 0))
            .collect();
        let data = HeartbeatData {
            client_id: self.instance.client_id.clone(),
            consumers: vec![ConsumerData {
                consume_from_where: "CONSUME_FROM_LAST_OFFSET",
                consume_type: "CONSUME_ACTIVELY",
                group_name: self.cfg.consumer_group.clone(),
                message_model: "CLUSTERING",
                subscription_data_set: subs,
                unit_mode: false,
            }],
            producers: Vec::new(),
        };
        self.instance.heartbeat(&data).await;
    }
}
