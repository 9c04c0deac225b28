//! One core of the broker: its store shard, its copies of the replicated tables, and the routing of
//! each request to the core that owns what it touches (see the module docs of [`super`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tern_net::body::TopicConfig;
use tern_net::code::{request, response};
use tern_net::transport::{ConnectionInfo, Outbound, Reply};
use tern_net::RemotingCommand;
use tern_runtime::mesh::MeshPort;

use super::clients::{ConnectionRef, ConsumerGroups, SubscriptionData};
use super::config::BrokerConfig;
use super::config_update::LiveConfig;
use super::filter::TagFilter;
use super::groups::{GroupLimits, GroupTable, SubscriptionGroupConfig};
use super::local_sync::{ArrivalSignals, Signal, Slot, Watermark};
use super::locks::{LockChange, LockTable};
use super::offsets::OffsetTable;
use super::routing::{answered_on_state_core, STATE_CORE};
use super::shard_store::ShardStore;
use super::topics::TopicTable;
use super::transaction::producers::ProducerGroups;
use super::transaction::state::Resolutions;

/// How long a core waits for another core's answer to a forwarded request. Long enough for any
/// long-polling pull (clients suspend 15–30 s); an answer only fails to come if a core died.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Extension fields a core adds to a forwarded HEART_BEAT / UNREGISTER_CLIENT so the state core
/// knows where the client's connection is.
pub(crate) const ORIGIN_CORE: &str = "ternOriginCore";
/// See [`ORIGIN_CORE`].
pub(crate) const ORIGIN_CONN: &str = "ternOriginConn";
/// See [`ORIGIN_CORE`]: the client's `ip:port`.
pub(crate) const ORIGIN_ADDR: &str = "ternOriginAddr";

/// What cores send each other over the mesh. Everything is owned data (`Send`).
#[derive(Debug)]
pub enum MeshMsg {
    /// A request forwarded to the core that owns its shard; answered with [`MeshMsg::Answer`].
    Call {
        /// Caller-chosen id echoed in the answer.
        id: u64,
        /// The request.
        cmd: RemotingCommand,
    },
    /// The response to a [`MeshMsg::Call`]; `None` when the request is one-way.
    Answer {
        /// The call's id.
        id: u64,
        /// The response.
        cmd: Option<RemotingCommand>,
    },
    /// A topic was created or changed.
    TopicUpsert(TopicConfig),
    /// A topic was deleted.
    TopicDelete(String),
    /// A subscription group was created or changed.
    GroupUpsert(SubscriptionGroupConfig),
    /// A group's subscription to a topic changed (`None`: gone). Sent by the state core.
    Subscription {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The new subscription.
        data: Option<SubscriptionData>,
    },
    /// A consumer offset to record (to the state core; no answer).
    CommitOffset {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The queue.
        queue_id: i32,
        /// The offset.
        offset: i64,
    },
    /// Send NOTIFY_CONSUMER_IDS_CHANGED for `group` on these connections of the receiving core.
    NotifyConsumers {
        /// The group.
        group: String,
        /// Connection ids on the receiving core.
        conn_ids: Vec<u64>,
    },
    /// A client connection closed on the sending core (to the state core).
    ConnectionClosed {
        /// The connection's id.
        conn_id: u64,
    },
    /// Queue lock changes decided by the state core.
    Locks(Vec<LockChange>),
    /// The sending core is shutting down and will send no more offset commits (to the state core,
    /// which persists offsets only once every other core has sent this).
    Drained,
}

/// Where a request came from.
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// A connection of this core: pull bodies may be sent zero-copy.
    Local(&'a ConnectionInfo),
    /// Another core forwarded it: bodies must be bytes.
    Forwarded,
}

/// Counters shown by GET_BROKER_RUNTIME_INFO.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) puts: Cell<u64>,
    pub(crate) put_bytes: Cell<u64>,
    pub(crate) pulled_msgs: Cell<u64>,
    pub(crate) zero_copy_bytes: Cell<u64>,
    pub(crate) copied_bytes: Cell<u64>,
    pub(crate) forwarded: Cell<u64>,
}

/// The broker state of one core.
pub(crate) struct Core {
    pub(crate) index: usize,
    pub(crate) cores: usize,
    pub(crate) config: Arc<BrokerConfig>,
    /// The settings UPDATE_BROKER_CONFIG changes at run time (read these, not `config`'s copies).
    pub(crate) live: LiveConfig,
    pub(crate) store_host: SocketAddr,
    mesh: MeshPort<MeshMsg>,
    pub(crate) store: ShardStore,
    pub(crate) topics: RefCell<TopicTable>,
    pub(crate) groups: RefCell<GroupTable>,
    /// group → topic → filter, from heartbeats (broadcast by the state core).
    pub(crate) subscriptions: RefCell<HashMap<String, HashMap<String, Rc<TagFilter>>>>,
    /// Meaningful on the state core only.
    pub(crate) offsets: RefCell<OffsetTable>,
    /// Meaningful on the state core only.
    pub(crate) members: RefCell<ConsumerGroups>,
    /// Meaningful on the state core only: producer groups, for transaction checks.
    pub(crate) producers: RefCell<ProducerGroups>,
    /// Meaningful on the half queue's owner only (see [`super::transaction`]).
    pub(crate) transactions: RefCell<Resolutions>,
    /// Queue locks: decided on the state core, copied everywhere (see [`super::locks`]).
    pub(crate) locks: RefCell<LockTable>,
    /// Connections of this core that sent heartbeats, for NOTIFY_CONSUMER_IDS_CHANGED.
    pub(crate) client_conns: RefCell<HashMap<u64, Outbound>>,
    calls: RefCell<HashMap<u64, Rc<Slot<Option<RemotingCommand>>>>>,
    next_call: Cell<u64>,
    pub(crate) arrivals: ArrivalSignals,
    /// Fired when the topic table changed (the state core re-registers and persists).
    pub(crate) topics_changed: Signal,
    /// State core: the [`topics_changed`](Core::topics_changed) generation the nameservers were
    /// last sent (a registration attempt finished, accepted or not).
    pub(crate) topics_registered: Watermark,
    /// Fired when the group table changed (the state core persists).
    pub(crate) groups_changed: Signal,
    pub(crate) stats: Stats,
    next_queue: Cell<u32>,
    /// Set at shutdown: requests from this core's connections are refused from then on.
    closing: Cell<bool>,
    /// Other cores that sent [`MeshMsg::Drained`] (state core), fired on each.
    drained: Signal,
    /// Replication state of this core's shard (master side).
    pub(crate) ha: super::ha::master::HaShard,
}

impl Core {
    /// Assembles a core from its parts; tables are loaded by the caller.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Arc<BrokerConfig>,
        mesh: MeshPort<MeshMsg>,
        store: ShardStore,
        topics: TopicTable,
        groups: GroupTable,
        offsets: OffsetTable,
    ) -> Rc<Core> {
        let store_host = SocketAddr::new(config.broker_ip, config.listen_port);
        Rc::new(Core {
            index: mesh.index(),
            cores: mesh.peers(),
            live: LiveConfig::new(&config),
            config,
            store_host,
            mesh,
            store,
            topics: RefCell::new(topics),
            groups: RefCell::new(groups),
            subscriptions: RefCell::new(HashMap::new()),
            offsets: RefCell::new(offsets),
            members: RefCell::new(ConsumerGroups::default()),
            producers: RefCell::new(ProducerGroups::default()),
            transactions: RefCell::new(Resolutions::default()),
            locks: RefCell::new(LockTable::default()),
            client_conns: RefCell::new(HashMap::new()),
            calls: RefCell::new(HashMap::new()),
            next_call: Cell::new(1),
            arrivals: ArrivalSignals::default(),
            topics_changed: Signal::default(),
            topics_registered: Watermark::default(),
            groups_changed: Signal::default(),
            stats: Stats::default(),
            next_queue: Cell::new(0),
            closing: Cell::new(false),
            drained: Signal::default(),
            ha: Default::default(),
        })
    }

    /// Starts receiving mesh messages.
    pub(crate) fn serve_mesh(self: &Rc<Self>) {
        let me = Rc::downgrade(self);
        self.mesh.serve(move |from, msg| {
            if let Some(core) = me.upgrade() {
                core.on_mesh(from, msg);
            }
        });
    }

    /// Starts shutting down: from now on requests arriving on this core's connections are answered
    /// SYSTEM_BUSY (forwarded requests and mesh messages are still served), so no new offset
    /// commit starts here.
    pub(crate) fn begin_closing(&self) {
        self.closing.set(true);
    }

    /// True once shutdown has begun.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Tells the state core this core sends no more commits (call after [`Self::begin_closing`]
    /// and once requests in flight have finished). Mesh order delivers earlier commits first.
    pub(crate) fn announce_drained(&self) {
        if self.index != STATE_CORE {
            self.send_mesh(STATE_CORE, MeshMsg::Drained);
        }
    }

    /// On the state core: waits until every other core has announced it is drained, or `limit`
    /// passed. Returns whether all did.
    pub(crate) async fn wait_drained(&self, limit: Duration) -> bool {
        let others = self.cores as u64 - 1;
        tern_runtime::timeout(limit, async {
            while self.drained.generation() < others {
                self.drained.changed_since(self.drained.generation()).await;
            }
        })
        .await
        .is_some()
    }

    /// Stops sending over the mesh (shutdown).
    pub(crate) fn close_mesh(&self) {
        self.mesh.close();
    }

    /// A rotating queue choice for sends with a negative queue id.
    pub(crate) fn next_queue(&self, queues: i32) -> i32 {
        let n = self.next_queue.get();
        self.next_queue.set(n.wrapping_add(1));
        (n % queues.max(1) as u32) as i32
    }

    fn on_mesh(self: &Rc<Self>, from: usize, msg: MeshMsg) {
        match msg {
            MeshMsg::Call { id, cmd } => {
                let core = Rc::clone(self);
                tern_runtime::spawn_local(async move {
                    let oneway = cmd.is_oneway();
                    let reply = core.handle(cmd, Origin::Forwarded).await;
                    let cmd = if oneway {
                        None
                    } else {
                        reply.map(|r| r.command)
                    };
                    core.send_mesh(from, MeshMsg::Answer { id, cmd });
                })
                .detach();
            }
            MeshMsg::Answer { id, cmd } => {
                if let Some(slot) = self.calls.borrow_mut().remove(&id) {
                    slot.put(cmd);
                }
            }
            MeshMsg::TopicUpsert(cfg) => self.apply_topic_upsert(cfg),
            MeshMsg::TopicDelete(topic) => self.apply_topic_delete(&topic),
            MeshMsg::GroupUpsert(cfg) => self.apply_group_upsert(cfg),
            MeshMsg::Subscription { group, topic, data } => {
                self.apply_subscription(&group, &topic, data.as_ref())
            }
            MeshMsg::CommitOffset {
                group,
                topic,
                queue_id,
                offset,
            } => self
                .offsets
                .borrow_mut()
                .commit(&group, &topic, queue_id, offset),
            MeshMsg::NotifyConsumers { group, conn_ids } => {
                self.notify_local_consumers(&group, &conn_ids)
            }
            MeshMsg::Drained => self.drained.fire(),
            MeshMsg::Locks(changes) => self.apply_lock_changes(changes),
            MeshMsg::ConnectionClosed { conn_id } => {
                self.producers
                    .borrow_mut()
                    .connection_closed(ConnectionRef {
                        core: from,
                        conn_id,
                    });
                let change = self.members.borrow_mut().connection_closed(ConnectionRef {
                    core: from,
                    conn_id,
                });
                self.apply_membership_change(change);
            }
        }
    }

    /// Sends `msg` to core `to` (which must not be this core).
    pub(crate) fn send_mesh(&self, to: usize, msg: MeshMsg) {
        debug_assert_ne!(to, self.index);
        if self.mesh.send(to, msg).is_err() {
            tracing::warn!(core = self.index, to, "mesh closed; message dropped");
        }
    }

    /// Sends `msg` (built per destination) to every other core.
    pub(crate) fn broadcast(&self, make: impl Fn() -> MeshMsg) {
        for to in (0..self.cores).filter(|&c| c != self.index) {
            self.send_mesh(to, make());
        }
    }

    /// Forwards `cmd` to core `to` and waits for its response (`None` for one-way requests or when
    /// the core does not answer in time).
    pub(crate) async fn call(&self, to: usize, cmd: RemotingCommand) -> Option<RemotingCommand> {
        self.stats.forwarded.set(self.stats.forwarded.get() + 1);
        let id = self.next_call.get();
        self.next_call.set(id + 1);
        let slot = Rc::new(Slot::default());
        self.calls.borrow_mut().insert(id, Rc::clone(&slot));
        self.send_mesh(to, MeshMsg::Call { id, cmd });
        match tern_runtime::timeout(CALL_TIMEOUT, slot.take()).await {
            Some(answer) => answer,
            None => {
                self.calls.borrow_mut().remove(&id);
                tracing::warn!(core = self.index, to, "no answer from core");
                None
            }
        }
    }

    /// Runs `cmd` on core `to` (here when `to` is this core) and returns its reply.
    pub(crate) async fn run_on(
        self: &Rc<Self>,
        to: usize,
        cmd: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if to == self.index {
            return Box::pin(self.handle(cmd, origin)).await;
        }
        let oneway = cmd.is_oneway();
        let req_opaque = cmd.opaque;
        match self.call(to, cmd).await {
            Some(mut rsp) => {
                rsp.opaque = req_opaque;
                Some(Reply::new(rsp))
            }
            None if oneway => None,
            None => {
                let mut rsp = RemotingCommand::request(response::SYSTEM_ERROR);
                rsp.remark = Some(format!("core {to} did not answer"));
                Some(Reply::new(rsp))
            }
        }
    }

    /// Handles one request (see the routing table in the module docs of [`super`]).
    pub(crate) async fn handle(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if self.closing.get() && matches!(origin, Origin::Local(_)) {
            return Some(reply(
                &req,
                response::SYSTEM_BUSY,
                "broker is shutting down",
            ));
        }
        match req.code {
            code if self.index != STATE_CORE && answered_on_state_core(code) => {
                self.run_on(STATE_CORE, req, origin).await
            }
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                self.on_send(req, origin).await
            }
            request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => self.on_pull(req, origin).await,
            request::CONSUMER_SEND_MSG_BACK => self.on_send_back(req).await,
            request::QUERY_CONSUMER_OFFSET
            | request::UPDATE_CONSUMER_OFFSET
            | request::GET_CONSUMER_LIST_BY_GROUP
            | request::GET_CONSUMER_CONNECTION_LIST => self.on_state_core_request(req).await,
            request::HEART_BEAT | request::UNREGISTER_CLIENT => {
                self.on_client_request(req, origin).await
            }
            request::GET_MAX_OFFSET
            | request::GET_MIN_OFFSET
            | request::SEARCH_OFFSET_BY_TIMESTAMP
            | request::GET_EARLIEST_MSG_STORETIME => self.on_queue_query(req, origin).await,
            request::VIEW_MESSAGE_BY_ID => self.on_view_message(req, origin).await,
            request::QUERY_MESSAGE => self.on_query_message(req, origin).await,
            request::GET_TOPIC_STATS_INFO => self.on_topic_stats(req, origin).await,
            request::GET_CONSUME_STATS => self.on_consume_stats(req, origin).await,
            request::UPDATE_AND_CREATE_TOPIC | request::DELETE_TOPIC_IN_BROKER => {
                let before = self.topics_changed.generation();
                let reply = if req.code == request::UPDATE_AND_CREATE_TOPIC {
                    self.on_create_topic(&req)
                } else {
                    self.on_delete_topic(&req)
                };
                self.await_registered_since(before).await;
                Some(reply)
            }
            request::GET_ALL_TOPIC_CONFIG => Some(self.on_get_all_topic_config(&req)),
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => Some(self.on_create_group(&req)),
            request::GET_BROKER_RUNTIME_INFO => self.on_runtime_info(req, origin).await,
            request::GET_BROKER_CONFIG => Some(self.on_get_broker_config(&req)),
            request::END_TRANSACTION => self.on_end_transaction(req, origin).await,
            request::LOCK_BATCH_MQ | request::UNLOCK_BATCH_MQ => {
                self.on_lock_request(req, origin).await
            }
            code if super::transaction::internal::is_internal(code) => {
                self.on_internal(req, origin).await
            }
            super::ha::fetch::HA_FETCH => self.on_ha_fetch(req, origin).await,
            request::GET_ALL_DELAY_OFFSET | request::GET_TIMER_CHECK_POINT => {
                self.on_table_dump(req).await
            }
            request::UPDATE_BROKER_CONFIG => self.on_update_broker_config(req, origin).await,
            request::GET_TOPIC_CONFIG => Some(self.on_get_topic_config(&req)),
            request::DELETE_SUBSCRIPTIONGROUP => self.on_delete_group(req, origin).await,
            request::QUERY_TOPIC_CONSUME_BY_WHO
            | request::CLONE_GROUP_OFFSET
            | request::INVOKE_BROKER_TO_RESET_OFFSET
            | request::GET_ALL_CONSUMER_OFFSET => self.on_offset_admin(req).await,
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
                Some(self.on_get_all_subscription_groups(&req))
            }
            _ => Some(tern_net::transport::not_supported(&req)),
        }
    }

    // ---- replicated tables -------------------------------------------------------------------

    /// Adds or replaces a topic here and on every other core.
    pub(crate) fn upsert_topic(&self, cfg: TopicConfig) {
        self.broadcast(|| MeshMsg::TopicUpsert(cfg.clone()));
        self.apply_topic_upsert(cfg);
    }

    fn apply_topic_upsert(&self, cfg: TopicConfig) {
        self.topics.borrow_mut().upsert(cfg);
        self.topics_changed.fire();
    }

    /// Deletes a topic here and on every other core.
    pub(crate) fn delete_topic(&self, topic: &str) {
        self.broadcast(|| MeshMsg::TopicDelete(topic.to_string()));
        self.apply_topic_delete(topic);
    }

    fn apply_topic_delete(&self, topic: &str) {
        if self.topics.borrow_mut().remove(topic) {
            self.topics_changed.fire();
        }
        if let Err(e) = self.store.delete_topic(topic) {
            tracing::warn!(core = self.index, topic, "cannot delete topic files: {e}");
        }
        if self.index == STATE_CORE {
            self.offsets.borrow_mut().remove_topic(topic);
        }
    }

    /// Adds or replaces a subscription group here and on every other core.
    pub(crate) fn upsert_group(&self, cfg: SubscriptionGroupConfig) {
        self.broadcast(|| MeshMsg::GroupUpsert(cfg.clone()));
        self.apply_group_upsert(cfg);
    }

    fn apply_group_upsert(&self, cfg: SubscriptionGroupConfig) {
        self.groups.borrow_mut().upsert(cfg);
        self.groups_changed.fire();
    }

    /// The checked settings of the group, creating it (everywhere) when auto-creation is on.
    /// `None` when the group does not exist and may not be created.
    pub(crate) fn group_or_create(&self, group: &str) -> Option<GroupLimits> {
        if let Some(g) = self.groups.borrow().get(group) {
            return Some(GroupLimits::of(g));
        }
        if !self.live.auto_create_subscription_group() {
            return None;
        }
        let cfg = SubscriptionGroupConfig::named(group);
        let limits = GroupLimits::of(&cfg);
        self.upsert_group(cfg);
        Some(limits)
    }

    pub(crate) fn apply_subscription(
        &self,
        group: &str,
        topic: &str,
        data: Option<&SubscriptionData>,
    ) {
        let mut subs = self.subscriptions.borrow_mut();
        match data {
            Some(d) => {
                subs.entry(group.to_string())
                    .or_default()
                    .insert(topic.to_string(), Rc::new(TagFilter::parse(&d.sub_string)));
            }
            None => {
                if let Some(g) = subs.get_mut(group) {
                    g.remove(topic);
                    if g.is_empty() {
                        subs.remove(group);
                    }
                }
            }
        }
    }
}

/// A response with `code` and `remark`, no header fields.
pub(crate) fn reply(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> Reply {
    Reply::new(RemotingCommand::response_to(
        req,
        code,
        Some(remark.into()).filter(|r: &String| !r.is_empty()),
    ))
}

/// A SUCCESS response without header fields or remark.
pub(crate) fn success(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}
