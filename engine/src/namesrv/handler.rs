//! The nameserver's request handler: decodes each request's header and body, applies it to the
//! shared state and builds RocketMQ's response (codes and remarks as `DefaultRequestProcessor` and
//! `ClientRequestProcessor` give them).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tern_net::body::{
    self, DataVersion, RegisterBrokerBody, TopicConfigSerializeWrapper, TopicRouteData,
};
use tern_net::code::{request, response};
use tern_net::header::{
    DeleteKVConfigRequestHeader, DeleteTopicFromNamesrvRequestHeader, GetKVConfigRequestHeader,
    GetKVConfigResponseHeader, GetKVListByNamespaceRequestHeader, GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader, PutKVConfigRequestHeader, QueryDataVersionRequestHeader,
    QueryDataVersionResponseHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
    UnRegisterBrokerRequestHeader,
};
use tern_net::transport::{not_supported, ConnectionInfo, HandlerFuture, Reply, RequestHandler};
use tern_net::RemotingCommand;

use super::config::NamesrvConfig;
use super::kv::{self, KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
use super::route::{BrokerRegistration, RouteTable};

/// RocketMQ's FAQ pointer appended to "no route" remarks (`FAQUrl.suggestTodo`).
const FAQ_SUFFIX: &str =
    "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";

/// The nameserver's state, shared by every core behind one mutex (it is small, and nothing on the
/// produce path waits for it).
#[derive(Debug)]
pub(crate) struct NamesrvState {
    /// Brokers and topic routes.
    pub(crate) routes: RouteTable,
    /// KV configuration.
    pub(crate) kv: KvConfig,
}

/// State plus settings, shared by the handlers of all cores.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<NamesrvState>,
    config: NamesrvConfig,
    /// Bumped on every KV change; the KV file is written only by a newer snapshot.
    kv_generation: Mutex<(u64, u64)>,
}

impl Shared {
    pub(crate) fn new(config: NamesrvConfig, kv: KvConfig) -> Self {
        Shared {
            state: Mutex::new(NamesrvState {
                routes: RouteTable::new(config.broker_expiry),
                kv,
            }),
            config,
            kv_generation: Mutex::new((0, 0)),
        }
    }

    /// Locks the state (a panic elsewhere does not make it unusable: every mutation is one call).
    pub(crate) fn lock(&self) -> MutexGuard<'_, NamesrvState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn config(&self) -> &NamesrvConfig {
        &self.config
    }

    /// Removes brokers silent for longer than their timeout.
    pub(crate) fn expire(&self, now: Instant) {
        let removed = self.lock().routes.expire(now);
        for b in removed {
            tracing::info!(cluster = %b.cluster, broker = %b.broker_name, id = b.broker_id,
                addr = %b.broker_addr, "broker expired: not heard from in time");
        }
    }
}

/// Serves nameserver requests on one core.
pub(crate) struct NamesrvHandler {
    shared: Arc<Shared>,
}

impl NamesrvHandler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        NamesrvHandler { shared }
    }
}

impl RequestHandler for NamesrvHandler {
    fn handle<'a>(&'a self, req: RemotingCommand, conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            let resp = match self.dispatch(&req, conn) {
                Ok(Action::Reply(resp)) => resp,
                Ok(Action::ReplyAfterKvWrite(resp, job)) => {
                    job.run().await;
                    resp
                }
                Err(remark) => {
                    RemotingCommand::response_to(&req, response::SYSTEM_ERROR, Some(remark))
                }
            };
            Some(Reply::new(resp))
        })
    }

    fn on_close(&self, conn: &ConnectionInfo) {
        let removed = self.shared.lock().routes.connection_closed(conn.id);
        for b in removed {
            tracing::info!(cluster = %b.cluster, broker = %b.broker_name, id = b.broker_id,
                addr = %b.broker_addr, peer = %conn.peer, "broker removed: its connection closed");
        }
    }
}

/// What a request results in.
enum Action {
    Reply(RemotingCommand),
    /// Reply once the KV file is written.
    ReplyAfterKvWrite(RemotingCommand, KvWrite),
}

/// A snapshot of the KV file to write off the executor.
struct KvWrite {
    shared: Arc<Shared>,
    path: Option<PathBuf>,
    bytes: Vec<u8>,
    generation: u64,
}

impl KvWrite {
    async fn run(self) {
        let Some(path) = self.path else {
            return;
        };
        let shared = self.shared;
        let generation = self.generation;
        let bytes = self.bytes;
        tern_runtime::spawn_blocking(move || {
            let mut gens = shared
                .kv_generation
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if gens.1 >= generation {
                return; // a newer snapshot is already on disk
            }
            match kv::write_file(&path, &bytes) {
                Ok(()) => gens.1 = generation,
                Err(e) => tracing::error!("cannot persist the KV config: {e}"),
            }
        })
        .await;
    }
}

fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

impl NamesrvHandler {
    fn dispatch(&self, req: &RemotingCommand, conn: &ConnectionInfo) -> Result<Action, String> {
        let resp = match req.code {
            request::REGISTER_BROKER => self.register_broker(req, conn)?,
            request::UNREGISTER_BROKER => {
                let h: UnRegisterBrokerRequestHeader = header(req)?;
                self.shared.lock().routes.unregister_broker(
                    &h.cluster_name,
                    &h.broker_addr,
                    &h.broker_name,
                );
                tracing::info!(cluster = %h.cluster_name, broker = %h.broker_name, id = h.broker_id,
                    addr = %h.broker_addr, "broker unregistered");
                ok(req)
            }
            request::BROKER_HEARTBEAT => {
                let (cluster, addr) = (required(req, "clusterName")?, required(req, "brokerAddr")?);
                self.shared
                    .lock()
                    .routes
                    .touch(cluster, addr, Instant::now());
                ok(req)
            }
            request::QUERY_DATA_VERSION => self.query_data_version(req)?,
            request::GET_ROUTEINFO_BY_TOPIC => self.route_of_topic(req)?,
            request::GET_BROKER_CLUSTER_INFO => {
                ok(req).with_body(body::encode(&self.shared.lock().routes.cluster_info()))
            }
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                if !self.shared.config().enable_all_topic_list {
                    return Err("disable".into());
                }
                ok(req).with_body(body::encode(&self.shared.lock().routes.all_topics()))
            }
            request::GET_TOPICS_BY_CLUSTER => {
                if !self.shared.config().enable_topic_list {
                    return Err("disable".into());
                }
                let h: GetTopicsByClusterRequestHeader = header(req)?;
                ok(req).with_body(body::encode(
                    &self.shared.lock().routes.topics_by_cluster(&h.cluster),
                ))
            }
            request::GET_SYSTEM_TOPIC_LIST_FROM_NS => {
                ok(req).with_body(body::encode(&self.shared.lock().routes.system_topics()))
            }
            request::DELETE_TOPIC_IN_NAMESRV => {
                let h: DeleteTopicFromNamesrvRequestHeader = header(req)?;
                let cluster = h.cluster_name.as_deref().filter(|c| !c.is_empty());
                self.shared.lock().routes.delete_topic(&h.topic, cluster);
                ok(req)
            }
            request::REGISTER_TOPIC_IN_NAMESRV => {
                let topic = required(req, "topic")?;
                if !req.body.is_empty() {
                    let route: TopicRouteData =
                        body::decode(&req.body).map_err(|e| e.to_string())?;
                    self.shared
                        .lock()
                        .routes
                        .register_topic(topic, route.queue_datas);
                }
                ok(req)
            }
            request::WIPE_WRITE_PERM_OF_BROKER | request::ADD_WRITE_PERM_OF_BROKER => {
                let name = required(req, "brokerName")?;
                let wipe = req.code == request::WIPE_WRITE_PERM_OF_BROKER;
                let count = self.shared.lock().routes.set_write_perm(name, wipe);
                tracing::info!(broker = name, topics = count, wipe, peer = %conn.peer, "write permission changed");
                let field = if wipe {
                    "wipeTopicCount"
                } else {
                    "addTopicCount"
                };
                ok(req).with_ext(field, count.to_string())
            }
            request::PUT_KV_CONFIG => {
                let h: PutKVConfigRequestHeader = header(req)?;
                let job = self.kv_change(|kv| kv.put(&h.namespace, &h.key, &h.value));
                return Ok(Action::ReplyAfterKvWrite(ok(req), job));
            }
            request::DELETE_KV_CONFIG => {
                let h: DeleteKVConfigRequestHeader = header(req)?;
                let job = self.kv_change(|kv| kv.delete(&h.namespace, &h.key));
                return Ok(Action::ReplyAfterKvWrite(ok(req), job));
            }
            request::GET_KV_CONFIG => {
                let h: GetKVConfigRequestHeader = header(req)?;
                match self.shared.lock().kv.get(&h.namespace, &h.key) {
                    Some(v) => ok(req).with_header(&GetKVConfigResponseHeader {
                        value: Some(v.to_string()),
                    }),
                    None => RemotingCommand::response_to(
                        req,
                        response::QUERY_NOT_FOUND,
                        Some(format!(
                            "No config item, Namespace: {} Key: {}",
                            h.namespace, h.key
                        )),
                    ),
                }
            }
            request::GET_KVLIST_BY_NAMESPACE => {
                let h: GetKVListByNamespaceRequestHeader = header(req)?;
                match self.shared.lock().kv.namespace(&h.namespace) {
                    Some(table) => ok(req).with_body(body::encode(&table)),
                    None => RemotingCommand::response_to(
                        req,
                        response::QUERY_NOT_FOUND,
                        Some(format!("No config item, Namespace: {}", h.namespace)),
                    ),
                }
            }
            _ => return Ok(Action::Reply(not_supported(req).command)),
        };
        Ok(Action::Reply(resp))
    }

    fn kv_change(&self, change: impl FnOnce(&mut KvConfig)) -> KvWrite {
        let mut state = self.shared.lock();
        change(&mut state.kv);
        let bytes = state.kv.to_file_bytes();
        let generation = {
            let mut gens = self
                .shared
                .kv_generation
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            gens.0 += 1;
            gens.0
        };
        KvWrite {
            shared: Arc::clone(&self.shared),
            path: self.shared.config().kv_config_path.clone(),
            bytes,
            generation,
        }
    }

    fn register_broker(
        &self,
        req: &RemotingCommand,
        conn: &ConnectionInfo,
    ) -> Result<RemotingCommand, String> {
        let h: RegisterBrokerRequestHeader = header(req)?;
        if let Some(expected) = h.body_crc32.filter(|&c| c != 0) {
            let actual = (crc32fast::hash(&req.body) & 0x7FFF_FFFF) as i32;
            if actual != expected {
                tracing::warn!(peer = %conn.peer, "register broker: crc32 not match");
                return Err("crc32 not match".into());
            }
        }
        if h.compressed == Some(true) {
            return Err("compressed RegisterBrokerBody is not supported by Tern; \
                        register with compressed=false"
                .into());
        }
        let (topics, filter_servers) = decode_register_body(&req.body)?;
        let registration = BrokerRegistration {
            cluster: h.cluster_name,
            broker_addr: h.broker_addr,
            broker_name: h.broker_name,
            broker_id: h.broker_id,
            ha_server_addr: h.ha_server_addr,
            zone_name: req.ext("zoneName").map(str::to_string),
            heartbeat_timeout: h
                .heartbeat_timeout_millis
                .and_then(|ms| u64::try_from(ms).ok())
                .map(Duration::from_millis),
            enable_acting_master: h.enable_acting_master,
            topics,
            filter_servers,
            connection: Some(conn.id),
        };
        let mut state = self.shared.lock();
        let outcome = state
            .routes
            .register_broker(registration, Instant::now())
            .map_err(|e| e.to_string())?;
        let mut resp = ok(req).with_header(&RegisterBrokerResponseHeader {
            ha_server_addr: outcome.ha_server_addr,
            master_addr: outcome.master_addr,
        });
        if self.shared.config().return_order_topic_config_to_broker {
            if let Some(table) = state.kv.namespace(NAMESPACE_ORDER_TOPIC_CONFIG) {
                resp.body = body::encode(&table);
            }
        }
        Ok(resp)
    }

    fn query_data_version(&self, req: &RemotingCommand) -> Result<RemotingCommand, String> {
        let h: QueryDataVersionRequestHeader = header(req)?;
        let given: DataVersion = body::decode(&req.body).map_err(|e| e.to_string())?;
        let mut state = self.shared.lock();
        let known = state.routes.data_version(&h.cluster_name, &h.broker_addr);
        state
            .routes
            .touch(&h.cluster_name, &h.broker_addr, Instant::now());
        let mut resp = ok(req).with_header(&QueryDataVersionResponseHeader {
            changed: known != Some(given),
        });
        if let Some(v) = known {
            resp.body = body::encode(&v);
        }
        Ok(resp)
    }

    fn route_of_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, String> {
        let h: GetRouteInfoRequestHeader = header(req)?;
        let state = self.shared.lock();
        let Some(mut route) = state.routes.topic_route(&h.topic) else {
            return Ok(RemotingCommand::response_to(
                req,
                response::TOPIC_NOT_EXIST,
                Some(format!(
                    "No topic route info in name server for the topic: {}{FAQ_SUFFIX}",
                    h.topic
                )),
            ));
        };
        if self.shared.config().order_message_enable {
            route.order_topic_conf = state
                .kv
                .get(NAMESPACE_ORDER_TOPIC_CONFIG, &h.topic)
                .map(str::to_string);
        }
        Ok(ok(req).with_body(body::encode(&route)))
    }
}

/// Decodes a typed header; the error text is the response remark.
fn header<H: tern_net::header::CommandHeader>(req: &RemotingCommand) -> Result<H, String> {
    req.decode_header().map_err(|e| e.to_string())
}

fn required<'a>(req: &'a RemotingCommand, field: &str) -> Result<&'a str, String> {
    req.ext(field)
        .ok_or_else(|| format!("the custom field {field} is null"))
}

/// REGISTER_BROKER's body: RocketMQ ≥ 3.0.11 sends a `RegisterBrokerBody`, older brokers a bare
/// `TopicConfigSerializeWrapper`; the shape tells which. No body means no topics, version zero.
fn decode_register_body(
    bytes: &[u8],
) -> Result<(TopicConfigSerializeWrapper, Vec<String>), String> {
    if bytes.is_empty() {
        return Ok((TopicConfigSerializeWrapper::default(), Vec::new()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed RegisterBrokerBody: {e}"))?;
    if value.get("topicConfigSerializeWrapper").is_some() {
        let b: RegisterBrokerBody = serde_json::from_value(value)
            .map_err(|e| format!("malformed RegisterBrokerBody: {e}"))?;
        Ok((b.topic_config_serialize_wrapper, b.filter_server_list))
    } else {
        let w: TopicConfigSerializeWrapper = serde_json::from_value(value)
            .map_err(|e| format!("malformed TopicConfigSerializeWrapper: {e}"))?;
        Ok((w, Vec::new()))
    }
}
