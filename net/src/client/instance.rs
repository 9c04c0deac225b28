//! What producers and consumers share (RocketMQ's `MQClientInstance`, one per producer or
//! consumer here): the client id, the remoting client, the nameserver list, the cache of topic
//! routes and the broker requests every role makes (heartbeat, unregister, offsets, pulls).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::body::{self, TopicRouteData};
use crate::code::{request, response};
use crate::header::{
    GetConsumerListByGroupRequestHeader, GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader,
    GetRouteInfoRequestHeader, PullMessageRequestHeader, PullMessageResponseHeader,
    QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use crate::transport::{ClientConfig, RemotingClient, RequestHandler};
use crate::RemotingCommand;

use super::message::decode_pulled;
use super::pull::{PullResult, PullStatus};
use super::route::MessageQueue;
use super::wire::{ConsumerIdList, HeartbeatData, LockBatchRequest, LockBatchResponse};
use super::MqError;

/// Timeout of nameserver and broker administration requests.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The shared client machinery of one producer or consumer.
pub(crate) struct Instance {
    /// `ip@instanceName`, unique per producer or consumer of this process.
    pub client_id: String,
    remoting: RemotingClient,
    namesrv: Vec<String>,
    next_namesrv: Cell<usize>,
    routes: RefCell<HashMap<String, TopicRouteData>>,
}

impl Instance {
    /// An instance for the `;`-separated `namesrv_addr`; `instance_name` defaults, like Java's, to
    /// `pid#nanos` (made unique per instance) so that two consumers of one process differ.
    pub(crate) fn new(
        namesrv_addr: &str,
        instance_name: Option<&str>,
        handler: Option<Rc<dyn RequestHandler>>,
    ) -> Result<Self, MqError> {
        let namesrv: Vec<String> = namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if namesrv.is_empty() {
            return Err(MqError::NoNamesrv);
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = match instance_name {
            Some(n) => n.to_string(),
            None => format!(
                "{}#{}",
                std::process::id(),
                super::uniq_id::now_millis() as u64 * 1000 + SEQ.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let remoting = match handler {
            Some(h) => RemotingClient::with_handler(ClientConfig::default(), h),
            None => RemotingClient::new(ClientConfig::default()),
        };
        Ok(Instance {
            client_id: format!("{}@{name}", super::uniq_id::local_ipv4()),
            remoting,
            namesrv,
            next_namesrv: Cell::new(0),
            routes: RefCell::new(HashMap::new()),
        })
    }

    /// Sends `cmd` to `addr`, mapping transport failures to [`MqError::Transport`].
    pub(crate) async fn invoke(
        &self,
        addr: &str,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, MqError> {
        Ok(self.remoting.invoke(addr, cmd, timeout).await?)
    }

    /// Sends `cmd` to the master of `mq`'s broker (found as [`Instance::find_master`] does) and
    /// returns that master's address with its answer.
    pub(crate) async fn invoke_master(
        &self,
        mq: &MessageQueue,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<(String, RemotingCommand), MqError> {
        let addr = self.find_master(&mq.broker_name, &mq.topic).await?;
        let rsp = self.invoke(&addr, cmd, timeout).await?;
        Ok((addr, rsp))
    }

    /// Sends `cmd` one-way to `addr`.
    pub(crate) async fn invoke_oneway(
        &self,
        addr: &str,
        cmd: RemotingCommand,
    ) -> Result<(), MqError> {
        Ok(self.remoting.invoke_oneway(addr, cmd).await?)
    }

    /// Asks the nameservers (starting with the one that answered last, then each in turn) for
    /// `topic`'s route; `Ok(None)` when the topic has none. A found route replaces the cached one.
    pub(crate) async fn fetch_route(&self, topic: &str) -> Result<Option<TopicRouteData>, MqError> {
        let header = GetRouteInfoRequestHeader {
            topic: topic.to_string(),
            accept_standard_json_only: Some(true),
        };
        let mut last_err = MqError::NoNamesrv;
        for i in 0..self.namesrv.len() {
            let idx = (self.next_namesrv.get() + i) % self.namesrv.len();
            let Some(addr) = self.namesrv.get(idx) else {
                continue;
            };
            let cmd =
                RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
            let rsp = match self.invoke(addr, cmd, ADMIN_TIMEOUT).await {
                Ok(rsp) => rsp,
                Err(e) => {
                    last_err = e;
                    continue;
                }
            };
            self.next_namesrv.set(idx);
            return match rsp.code {
                response::SUCCESS => {
                    let route: TopicRouteData =
                        body::decode(&rsp.body).map_err(|e| MqError::malformed(addr, e))?;
                    self.routes
                        .borrow_mut()
                        .insert(topic.to_string(), route.clone());
                    Ok(Some(route))
                }
                response::TOPIC_NOT_EXIST => Ok(None),
                _ => Err(MqError::broker(addr, &rsp)),
            };
        }
        Err(last_err)
    }

    /// The cached route of `topic`.
    pub(crate) fn cached_route(&self, topic: &str) -> Option<TopicRouteData> {
        self.routes.borrow().get(topic).cloned()
    }

    /// The master address of `broker_name`, from any cached route.
    pub(crate) fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.routes
            .borrow()
            .values()
            .find_map(|r| r.master_addr(broker_name).map(str::to_string))
    }

    /// The master address of `broker_name`, refreshing `topic`'s route once if it is unknown.
    pub(crate) async fn find_master(
        &self,
        broker_name: &str,
        topic: &str,
    ) -> Result<String, MqError> {
        if let Some(addr) = self.master_addr(broker_name) {
            return Ok(addr);
        }
        self.fetch_route(topic).await?;
        self.master_addr(broker_name)
            .ok_or_else(|| MqError::NoBroker(broker_name.to_string()))
    }

    /// Every master address in the cached routes.
    pub(crate) fn master_addrs(&self) -> BTreeSet<String> {
        self.routes
            .borrow()
            .values()
            .flat_map(|r| r.broker_datas.iter())
            .filter_map(|b| b.broker_addrs.get(&body::MASTER_ID).cloned())
            .collect()
    }

    /// Sends `data` to every known master; failures are logged (the next round retries).
    pub(crate) async fn heartbeat(&self, data: &HeartbeatData) {
        let body = body::encode(data);
        for addr in self.master_addrs() {
            let cmd = RemotingCommand::request(request::HEART_BEAT).with_body(body.clone());
            match self.invoke(&addr, cmd, ADMIN_TIMEOUT).await {
                Ok(rsp) if rsp.code == response::SUCCESS => {}
                Ok(rsp) => {
                    tracing::warn!(addr, code = rsp.code, remark = ?rsp.remark, "heartbeat refused")
                }
                Err(e) => tracing::warn!(addr, error = %e, "heartbeat failed"),
            }
        }
    }

    /// Tells every known master that this client's `producer_group` or `consumer_group` is gone.
    pub(crate) async fn unregister(
        &self,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) {
        let header = UnregisterClientRequestHeader {
            client_id: self.client_id.clone(),
            producer_group: producer_group.map(str::to_string),
            consumer_group: consumer_group.map(str::to_string),
        };
        for addr in self.master_addrs() {
            let cmd = RemotingCommand::request(request::UNREGISTER_CLIENT).with_header(&header);
            if let Err(e) = self.invoke(&addr, cmd, ADMIN_TIMEOUT).await {
                tracing::debug!(addr, error = %e, "unregister failed");
            }
        }
    }

    /// The client ids of `group` as the broker at `addr` knows them.
    pub(crate) async fn consumer_ids(
        &self,
        addr: &str,
        group: &str,
    ) -> Result<Vec<String>, MqError> {
        let header = GetConsumerListByGroupRequestHeader {
            consumer_group: group.to_string(),
        };
        let cmd =
            RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP).with_header(&header);
        let rsp = self.invoke(addr, cmd, ADMIN_TIMEOUT).await?;
        if rsp.code != response::SUCCESS {
            return Err(MqError::broker(addr, &rsp));
        }
        let list: ConsumerIdList =
            body::decode(&rsp.body).map_err(|e| MqError::malformed(addr, e))?;
        Ok(list.consumer_id_list)
    }

    /// The group's committed offset of `mq` on its broker; `None` when the broker has none.
    pub(crate) async fn query_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
    ) -> Result<Option<i64>, MqError> {
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: group.to_string(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            set_zero_if_not_found: None,
            broker_name: Some(mq.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&header);
        let (addr, rsp) = self.invoke_master(mq, cmd, ADMIN_TIMEOUT).await?;
        match rsp.code {
            response::SUCCESS => {
                let h: QueryConsumerOffsetResponseHeader = rsp
                    .decode_header()
                    .map_err(|e| MqError::malformed(&addr, e))?;
                Ok(Some(h.offset))
            }
            response::QUERY_NOT_FOUND => Ok(None),
            _ => Err(MqError::broker(&addr, &rsp)),
        }
    }

    /// Stores the group's offset of `mq` on its broker (and waits for the answer).
    pub(crate) async fn update_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
    ) -> Result<(), MqError> {
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.to_string(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            commit_offset: offset,
            broker_name: Some(mq.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&header);
        let (addr, rsp) = self.invoke_master(mq, cmd, ADMIN_TIMEOUT).await?;
        if rsp.code != response::SUCCESS {
            return Err(MqError::broker(&addr, &rsp));
        }
        Ok(())
    }

    /// The next offset to be written in `mq` (its message count, for a queue never truncated).
    pub(crate) async fn max_offset(&self, mq: &MessageQueue) -> Result<i64, MqError> {
        let header = GetMaxOffsetRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            committed: None,
            broker_name: Some(mq.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request::GET_MAX_OFFSET).with_header(&header);
        let (addr, rsp) = self.invoke_master(mq, cmd, ADMIN_TIMEOUT).await?;
        if rsp.code != response::SUCCESS {
            return Err(MqError::broker(&addr, &rsp));
        }
        let h: GetMaxOffsetResponseHeader = rsp
            .decode_header()
            .map_err(|e| MqError::malformed(&addr, e))?;
        Ok(h.offset)
    }

    /// Pulls from `mq` with `header` (its topic, queue and broker fields are set here) and waits up
    /// to `timeout`; maps the response to a [`PullResult`].
    pub(crate) async fn pull(
        &self,
        mq: &MessageQueue,
        mut header: PullMessageRequestHeader,
        timeout: Duration,
    ) -> Result<PullResult, MqError> {
        header.topic = mq.topic.clone();
        header.queue_id = mq.queue_id;
        header.broker_name = Some(mq.broker_name.clone());
        let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&header);
        let (addr, rsp) = self.invoke_master(mq, cmd, timeout).await?;
        let status = match rsp.code {
            response::SUCCESS => PullStatus::Found,
            response::PULL_NOT_FOUND => PullStatus::NoNewMsg,
            response::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMsg,
            response::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
            _ => return Err(MqError::broker(&addr, &rsp)),
        };
        let h: PullMessageResponseHeader = rsp
            .decode_header()
            .map_err(|e| MqError::malformed(&addr, e))?;
        let messages = if status == PullStatus::Found {
            decode_pulled(&rsp.body, mq).map_err(|reason| MqError::malformed(&addr, reason))?
        } else {
            Vec::new()
        };
        Ok(PullResult {
            status,
            next_begin_offset: h.next_begin_offset,
            min_offset: h.min_offset,
            max_offset: h.max_offset,
            messages,
        })
    }

    /// Asks `broker_name`'s master to lock `queues` for this client in `group` (or, with `unlock`,
    /// to release them); returns the queues locked (empty for an unlock).
    pub(crate) async fn lock_batch(
        &self,
        group: &str,
        broker_name: &str,
        queues: Vec<MessageQueue>,
        unlock: bool,
    ) -> Result<Vec<MessageQueue>, MqError> {
        let topic = queues.first().map(|q| q.topic.clone()).unwrap_or_default();
        let addr = self.find_master(broker_name, &topic).await?;
        let body = body::encode(&LockBatchRequest {
            client_id: self.client_id.clone(),
            consumer_group: group.to_string(),
            mq_set: queues,
            only_this_broker: false,
        });
        let code = if unlock {
            request::UNLOCK_BATCH_MQ
        } else {
            request::LOCK_BATCH_MQ
        };
        let rsp = self
            .invoke(
                &addr,
                RemotingCommand::request(code).with_body(body),
                ADMIN_TIMEOUT,
            )
            .await?;
        if rsp.code != response::SUCCESS {
            return Err(MqError::broker(&addr, &rsp));
        }
        if unlock || rsp.body.is_empty() {
            return Ok(Vec::new());
        }
        let locked: LockBatchResponse =
            body::decode(&rsp.body).map_err(|e| MqError::malformed(&addr, e))?;
        Ok(locked.lock_ok)
    }

    /// Closes every connection (pending requests, long polls included, fail at once).
    pub(crate) fn close(&self) {
        for addr in self.master_addrs().iter().chain(self.namesrv.iter()) {
            self.remoting.close(addr);
        }
    }
}
