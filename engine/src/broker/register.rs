//! Registration with the nameservers (RocketMQ `BrokerOuterAPI.registerBrokerAll` /
//! `unregisterBrokerAll`): REGISTER_BROKER (103) with a `RegisterBrokerBody` carrying the topic
//! configs, UNREGISTER_BROKER (104) at shutdown. Runs on the state core.
//!
//! ## Registered before answered
//! RocketMQ registers a topic it creates inside the request that created it
//! (`TopicConfigManager.createTopicInSendMessageMethod`, `createTopicInSendMessageBackMethod`,
//! `AdminBrokerProcessor.updateAndCreateTopic`), so once a client has the answer the nameservers
//! have the route, and clients rely on it: a consumer group's retry topic without a route at its
//! first rebalance is not pulled until the next one, 20 s later. Tern registers from one loop on
//! the state core (debounced by 20 ms), so a request that created or deleted a topic waits for
//! [`Core::await_registered_since`] before it answers.

use std::rc::Rc;
use std::time::Duration;

use tern_net::body::{RegisterBrokerBody, TopicConfigSerializeWrapper};
use tern_net::code::{request, response};
use tern_net::header::{
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, UnRegisterBrokerRequestHeader,
};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

use super::config::BrokerConfig;
use super::core::Core;
use super::routing::STATE_CORE;
use super::transaction::internal::INTERNAL_AWAIT_REGISTERED;

/// Longest wait of [`Core::await_topics_registered`]: a nameserver that is down must not hold
/// the request up for long (the periodic registration catches up later).
const REGISTER_WAIT: Duration = Duration::from_secs(1);

/// RocketMQ's `registerBrokerTimeoutMills` default is 24 s; Tern's nameservers answer at once.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);
/// `MQVersion.Version.V5_3_1.ordinal()`: what the request's version field claims.
pub const PROTOCOL_VERSION: i32 = 487;
/// How long a broker stays registered without re-registering (RocketMQ's default).
const HEARTBEAT_TIMEOUT_MS: i64 = 120_000;

/// Registers one broker with a list of nameservers.
pub struct Registrar {
    client: RemotingClient,
    addrs: Vec<String>,
    broker_name: String,
    broker_addr: String,
    cluster_name: String,
    broker_id: i64,
    ha_addr: String,
    /// Where a slave's master is, learned from the nameservers' answers.
    master: std::sync::Arc<super::ha::MasterLink>,
}

impl Registrar {
    /// A registrar for `config` (whose `listen_port` is the port actually bound).
    pub fn new(config: &BrokerConfig, master: std::sync::Arc<super::ha::MasterLink>) -> Self {
        Registrar {
            client: RemotingClient::new(ClientConfig::default()),
            addrs: config.namesrv_addrs.clone(),
            broker_name: config.broker_name.clone(),
            broker_addr: config.broker_addr(),
            cluster_name: config.cluster_name.clone(),
            broker_id: config.broker_id,
            ha_addr: std::net::SocketAddr::new(
                config.broker_ip,
                config.ha.port(config.listen_port),
            )
            .to_string(),
            master,
        }
    }

    /// Registers with every nameserver; returns how many accepted. Failures are logged.
    pub async fn register(&self, topics: TopicConfigSerializeWrapper) -> usize {
        let body = tern_net::body::encode(&RegisterBrokerBody {
            filter_server_list: Vec::new(),
            topic_config_serialize_wrapper: topics,
        });
        let header = RegisterBrokerRequestHeader {
            broker_name: self.broker_name.clone(),
            broker_addr: self.broker_addr.clone(),
            cluster_name: self.cluster_name.clone(),
            ha_server_addr: self.ha_addr.clone(),
            broker_id: self.broker_id,
            heartbeat_timeout_millis: Some(HEARTBEAT_TIMEOUT_MS),
            enable_acting_master: Some(false),
            compressed: Some(false),
            body_crc32: Some(0),
        };
        let mut ok = 0;
        for addr in &self.addrs {
            let mut cmd = RemotingCommand::request(request::REGISTER_BROKER)
                .with_header(&header)
                .with_body(body.clone());
            cmd.version = PROTOCOL_VERSION;
            match self.client.invoke(addr, cmd, REGISTER_TIMEOUT).await {
                Ok(rsp) if rsp.code == response::SUCCESS => {
                    ok += 1;
                    if let Ok(h) = rsp.decode_header::<RegisterBrokerResponseHeader>() {
                        self.master
                            .learn(h.master_addr.as_deref(), h.ha_server_addr.as_deref());
                    }
                }
                Ok(rsp) => tracing::warn!(namesrv = %addr, code = rsp.code,
                    remark = rsp.remark.as_deref().unwrap_or(""), "registration refused"),
                Err(e) => tracing::warn!(namesrv = %addr, "registration failed: {e}"),
            }
        }
        ok
    }

    /// Unregisters from every nameserver (best effort).
    pub async fn unregister(&self) {
        let header = UnRegisterBrokerRequestHeader {
            broker_name: self.broker_name.clone(),
            broker_addr: self.broker_addr.clone(),
            cluster_name: self.cluster_name.clone(),
            broker_id: self.broker_id,
        };
        for addr in &self.addrs {
            let mut cmd = RemotingCommand::request(request::UNREGISTER_BROKER).with_header(&header);
            cmd.version = PROTOCOL_VERSION;
            match self.client.invoke(addr, cmd, REGISTER_TIMEOUT).await {
                Ok(_) => tracing::info!(namesrv = %addr, "unregistered"),
                Err(e) => tracing::warn!(namesrv = %addr, "unregistration failed: {e}"),
            }
        }
    }
}

impl Core {
    /// Waits for [`await_topics_registered`](Core::await_topics_registered) when this core's topic
    /// table changed since generation `before` (`topics_changed`); returns at once otherwise. The
    /// callers take `before` and make their changes without an `await` in between, so only their
    /// own changes count.
    pub(crate) async fn await_registered_since(self: &Rc<Self>, before: u64) {
        if self.topics_changed.generation() != before {
            self.await_topics_registered().await;
        }
    }

    /// Completes once the nameservers were sent this broker's topic table as it is now (every
    /// change this core made before the call included), or after [`REGISTER_WAIT`] with a
    /// warning. On another core it asks the state core, whose mesh channel from here delivers the
    /// topic change before the question.
    pub(crate) async fn await_topics_registered(self: &Rc<Self>) {
        if self.index != STATE_CORE {
            let ask = RemotingCommand::request(INTERNAL_AWAIT_REGISTERED);
            if self.call(STATE_CORE, ask).await.is_none() {
                tracing::warn!(
                    core = self.index,
                    "the state core did not confirm registration"
                );
            }
            return;
        }
        let now = self.topics_changed.generation();
        let known = self.topics_registered.reached(now);
        if tern_runtime::timeout(REGISTER_WAIT, known).await.is_none() {
            tracing::warn!("topics not registered with the nameservers within {REGISTER_WAIT:?}");
        }
    }
}
