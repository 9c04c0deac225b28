//! Starting and stopping a whole broker: the transport's cores, each core's store and tables, the
//! mesh between them, and the state core's registration and persistence loops.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tern_net::body::TopicConfigSerializeWrapper;
use tern_net::transport::{
    ConnectionInfo, HandlerFuture, RequestHandler, Server, ServerConfig, StopSignal,
};
use tern_net::RemotingCommand;
use tern_runtime::mesh::Mesh;

use super::config::BrokerConfig;
use super::core::{Core, MeshMsg, Origin};
use super::groups::{GroupTable, SubscriptionGroupWrapper};
use super::local_sync::Latch;
use super::offsets::{OffsetFile, OffsetTable};
use super::persist::{self, PersistError};
use super::register::Registrar;
use super::routing::STATE_CORE;
use super::scheduled::{ScheduleFiles, Scheduler};
use super::shard_store::ShardStore;
use super::topics::TopicTable;

/// File names under `<storePathRootDir>/config/`.
pub const TOPICS_FILE: &str = "topics.json";
/// See [`TOPICS_FILE`].
pub const GROUPS_FILE: &str = "subscriptionGroup.json";
/// See [`TOPICS_FILE`].
pub const OFFSETS_FILE: &str = "consumerOffset.json";

/// How long start-up waits for every core to open its store.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long shutdown waits for every core to flush.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the state core waits at shutdown for the other cores' last offset commits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Batches a mesh channel holds.
const MESH_CAPACITY: usize = 1024;
/// Delay between a topic change and the registration it triggers (lets bursts coalesce).
const REGISTER_DEBOUNCE: Duration = Duration::from_millis(20);

/// Why a broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A state file is unreadable.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// The transport could not start.
    #[error(transparent)]
    Transport(#[from] tern_net::transport::TransportError),
    /// A core failed to start (store recovery, mesh).
    #[error("core {core} failed to start: {reason}")]
    Core {
        /// The core.
        core: usize,
        /// What went wrong.
        reason: String,
    },
    /// Cores did not report in time.
    #[error("{0}")]
    Timeout(String),
    /// The metrics port could not be bound.
    #[error("cannot listen on metrics port {port}: {source}")]
    Metrics {
        /// The port (`metricsPort`).
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What every core starts from (built on the main thread).
struct Shared {
    config: BrokerConfig,
    /// The bound address, known once the transport is listening.
    bound: OnceLock<SocketAddr>,
    topics: Option<TopicConfigSerializeWrapper>,
    groups: Option<SubscriptionGroupWrapper>,
    offsets: Option<OffsetFile>,
    /// Scheduled delivery progress (`delayOffset.json`, `timerProgress.json`), shared by every core.
    schedule_files: ScheduleFiles,
    stop: StopSignal,
    events: Mutex<mpsc::Sender<CoreEvent>>,
    mesh: Mutex<Mesh<MeshMsg>>,
    /// A slave's master, as the nameservers answer (see [`super::ha`]).
    master_link: Arc<super::ha::MasterLink>,
    metrics: Arc<super::metrics::BrokerMetrics>,
    /// Bound at start (so a taken port fails the start); served by the state core.
    metrics_listener: Mutex<Option<std::net::TcpListener>>,
}

enum CoreEvent {
    Ready,
    Failed(usize, String),
    Stopped,
}

/// A running broker. Dropping it without [`Broker::shutdown`] leaves the cores running.
pub struct Broker {
    server: Server,
    shared: Arc<Shared>,
    events: mpsc::Receiver<CoreEvent>,
    cores: usize,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl Broker {
    /// Starts a broker with `cores` cores (at least 1) and returns once every core serves.
    pub fn start(config: BrokerConfig, cores: usize) -> Result<Broker, BrokerError> {
        let cores = cores.max(1);
        let dir = config.config_dir();
        let metrics_listener = bind_metrics(config.metrics_port)?;
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let shared = Arc::new(Shared {
            topics: persist::load_json(&dir.join(TOPICS_FILE))?,
            groups: persist::load_json(&dir.join(GROUPS_FILE))?,
            offsets: persist::load_json(&dir.join(OFFSETS_FILE))?,
            schedule_files: ScheduleFiles::load(&dir)?,
            bound: OnceLock::new(),
            stop: StopSignal::new(),
            events: Mutex::new(mpsc::channel().0),
            mesh: Mutex::new(Mesh::new(cores, MESH_CAPACITY)),
            master_link: Arc::default(),
            metrics: Arc::new(super::metrics::BrokerMetrics::new(cores)),
            metrics_listener: Mutex::new(metrics_listener),
            config,
        });
        let (tx, events) = mpsc::channel();
        if let Ok(mut e) = shared.events.lock() {
            *e = tx;
        }
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), shared.config.listen_port);
        let mut server_config = ServerConfig {
            cores,
            name: "tern-broker".into(),
            ..ServerConfig::new(listen)
        };
        let idle = shared.config.server_channel_max_idle;
        server_config.limits.idle_timeout = (!idle.is_zero()).then_some(idle);
        let factory_shared = Arc::clone(&shared);
        let server = Server::start(server_config, move |core| {
            let handler = Rc::new(BrokerHandler {
                recorder: Some(super::metrics::CoreRecorder::new(
                    Arc::clone(&factory_shared.metrics),
                    core,
                )),
                ..BrokerHandler::default()
            });
            tern_runtime::spawn_local(run_core(
                core,
                Arc::clone(&factory_shared),
                Rc::clone(&handler),
            ))
            .detach();
            handler as Rc<dyn RequestHandler>
        })?;
        let addr = server.local_addr();
        let _ = shared.bound.set(addr);
        let mut broker = Broker {
            server,
            shared,
            events,
            cores,
            addr,
            metrics_addr,
        };
        let mut ready = 0;
        while ready < cores {
            match broker.events.recv_timeout(START_TIMEOUT) {
                Ok(CoreEvent::Ready) => ready += 1,
                Ok(CoreEvent::Failed(core, reason)) => {
                    broker.abort();
                    return Err(BrokerError::Core { core, reason });
                }
                Ok(CoreEvent::Stopped) => {}
                Err(_) => {
                    broker.abort();
                    return Err(BrokerError::Timeout("cores did not start in time".into()));
                }
            }
        }
        tracing::info!(addr = %broker.addr, cores, "broker started");
        Ok(broker)
    }

    fn abort(&mut self) {
        self.shared.stop.stop();
        self.server.stop_signal().stop();
    }

    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the Prometheus `/metrics` endpoint, when `metricsPort` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// A signal that, raised (from any thread), makes [`Broker::run_until_stopped`] shut down.
    pub fn stop_signal(&self) -> StopSignal {
        self.shared.stop.clone()
    }

    /// Waits until the stop signal is raised, then shuts down.
    pub fn run_until_stopped(self) -> Result<(), BrokerError> {
        let mut stopped = 0;
        while stopped < self.cores {
            match self.events.recv() {
                Ok(CoreEvent::Stopped) => stopped += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.server.stop()?;
        Ok(())
    }

    /// Shuts down: the state core unregisters and persists, every core flushes its store, then the
    /// transport stops.
    pub fn shutdown(self) -> Result<(), BrokerError> {
        self.shared.stop.stop();
        let mut stopped = 0;
        while stopped < self.cores {
            match self.events.recv_timeout(STOP_TIMEOUT) {
                Ok(CoreEvent::Stopped) => stopped += 1,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.server.stop();
                    return Err(BrokerError::Timeout("cores did not stop in time".into()));
                }
            }
        }
        self.server.stop()?;
        tracing::info!("broker stopped");
        Ok(())
    }
}

/// The transport's handler of one core: waits for the core to be ready, then hands requests over.
#[derive(Default)]
struct BrokerHandler {
    core: RefCell<Option<Rc<Core>>>,
    ready: Latch,
    recorder: Option<super::metrics::CoreRecorder>,
}

impl RequestHandler for BrokerHandler {
    fn handle<'a>(&'a self, req: RemotingCommand, conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.ready.wait().await;
            let core = self.core.borrow().clone()?;
            let Some(rec) = &self.recorder else {
                return core.handle(req, Origin::Local(conn)).await;
            };
            rec.request_started(conn.id);
            let (code, started) = (req.code, std::time::Instant::now());
            let reply = core.handle(req, Origin::Local(conn)).await;
            rec.request_done(code, started.elapsed());
            reply
        })
    }

    fn on_close(&self, conn: &ConnectionInfo) {
        if let Some(rec) = &self.recorder {
            rec.connection_closed(conn.id);
        }
        let core = self.core.borrow().clone();
        if let Some(core) = core {
            core.on_connection_closed(conn.id);
        }
    }
}

fn report(shared: &Shared, event: CoreEvent) {
    if let Ok(tx) = shared.events.lock() {
        let _ = tx.send(event);
    }
}

/// Start-up, service and shutdown of one core.
async fn run_core(server_core: usize, shared: Arc<Shared>, handler: Rc<BrokerHandler>) {
    let core = match init_core(&shared).await {
        Ok(c) => c,
        Err(reason) => {
            tracing::error!(core = server_core, "{reason}");
            report(&shared, CoreEvent::Failed(server_core, reason));
            return;
        }
    };
    if core.index != server_core {
        tracing::debug!(
            server_core,
            mesh = core.index,
            "mesh index differs from server core"
        );
    }
    *handler.core.borrow_mut() = Some(Rc::clone(&core));
    handler.ready.open();
    let registrar = (core.index == STATE_CORE).then(|| {
        Rc::new(Registrar::new(
            &core.config,
            Arc::clone(&shared.master_link),
        ))
    });
    super::ha::start_core(
        &core,
        Arc::clone(&shared.master_link),
        Rc::clone(&handler) as Rc<dyn RequestHandler>,
        shared.stop.clone(),
    );
    if let Some(r) = &registrar {
        tern_runtime::spawn_local(register_loop(Rc::clone(&core), Rc::clone(r))).detach();
        tern_runtime::spawn_local(persist_loop(Rc::clone(&core))).detach();
        if let Some(listener) = shared
            .metrics_listener
            .lock()
            .ok()
            .and_then(|mut l| l.take())
        {
            spawn_metrics(Rc::clone(&core), &shared, listener);
        }
    }
    tern_runtime::spawn_local(maintenance_loop(Rc::clone(&core))).detach();
    super::transaction::start_check_service(&core);
    let scheduler = Scheduler::start(&core, &shared.schedule_files);
    report(&shared, CoreEvent::Ready);

    shared.stop.wait().await;
    tracing::info!(core = core.index, "stopping");
    // Every core stops taking client requests; the others shut their stores (which waits for
    // operations in flight) and then announce they are drained, so the state core's final persist
    // includes every offset commit they forwarded.
    core.begin_closing();
    scheduler.stop().await;
    if let Some(r) = &registrar {
        r.unregister().await;
        if !core.wait_drained(DRAIN_TIMEOUT).await {
            tracing::warn!("not every core drained in time; late offset commits may be lost");
        }
        if let Err(e) = persist_all(&core).await {
            tracing::error!("cannot persist broker state: {e}");
        }
    }
    if let Err(e) = core.store.shutdown().await {
        tracing::error!(core = core.index, "store shutdown: {e}");
    }
    core.announce_drained();
    core.close_mesh();
    report(&shared, CoreEvent::Stopped);
}

async fn init_core(shared: &Shared) -> Result<Rc<Core>, String> {
    // The port is known once every core's listener is bound.
    let bound = loop {
        if let Some(a) = shared.bound.get() {
            break *a;
        }
        if shared.stop.is_stopped() {
            return Err("stopped during start-up".into());
        }
        tern_runtime::sleep(Duration::from_millis(1)).await;
    };
    let mut config = shared.config.clone();
    config.listen_port = bound.port();
    let mesh = shared
        .mesh
        .lock()
        .map_err(|_| "mesh lock poisoned".to_string())?
        .clone();
    let port = mesh.join().await.map_err(|e| e.to_string())?;
    let store = ShardStore::open(&config.store, port.index())
        .await
        .map_err(|e| format!("cannot open store shard {}: {e}", port.index()))?;
    let mut topics = TopicTable::with_defaults(&config);
    for cfg in super::scheduled::system_topics::system_topics(
        &config.store.message_delay_level,
        port.peers(),
    ) {
        topics.upsert(cfg);
    }
    if let Some(w) = shared.topics.clone() {
        topics.merge_persisted(w);
    }
    let groups = GroupTable::from_persisted(shared.groups.clone().unwrap_or_default());
    let offsets = if port.index() == STATE_CORE {
        OffsetTable::from_persisted(shared.offsets.clone().unwrap_or_default())
    } else {
        OffsetTable::default()
    };
    let core = Core::new(Arc::new(config), port, store, topics, groups, offsets);
    core.serve_mesh();
    Ok(core)
}

/// Binds the metrics port on all interfaces (`None` when 0, i.e. off).
fn bind_metrics(port: u16) -> Result<Option<std::net::TcpListener>, BrokerError> {
    if port == 0 {
        return Ok(None);
    }
    std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .map(Some)
        .map_err(|source| BrokerError::Metrics { port, source })
}

/// Serves `GET /metrics` and the web console on the state core until the broker stops.
fn spawn_metrics(core: Rc<Core>, shared: &Shared, listener: std::net::TcpListener) {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the fd comes from a listening socket this process owns and nothing else uses.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let metrics = Arc::clone(&shared.metrics);
    // `/metrics` for Prometheus; every other path is the web console's (`console`).
    let answer = move |target: String| {
        let (core, metrics) = (Rc::clone(&core), Arc::clone(&metrics));
        async move {
            if target.split('?').next() == Some("/metrics") {
                let text = super::metrics::render(&core, &metrics).await;
                crate::metrics::http::Response::ok(crate::metrics::text::CONTENT_TYPE, text)
            } else {
                super::console::answer(&core, &target).await
            }
        }
    };
    tern_runtime::spawn_local(crate::metrics::http::serve_with(
        listener,
        shared.stop.clone(),
        answer,
    ))
    .detach();
}

/// Registers at start, after topic changes, and every `registerNameServerPeriod`.
async fn register_loop(core: Rc<Core>, registrar: Rc<Registrar>) {
    loop {
        let seen = core.topics_changed.generation();
        let topics = core.topics.borrow().wrapper();
        let n = registrar.register(topics).await;
        tracing::debug!(accepted = n, "registered with nameservers");
        core.topics_registered.advance_to(seen);
        let changed = tern_runtime::timeout(
            core.config.register_period,
            core.topics_changed.changed_since(seen),
        )
        .await;
        if changed.is_some() {
            tern_runtime::sleep(REGISTER_DEBOUNCE).await;
        }
    }
}

/// Writes the state files when tables change, and the offsets every `flushConsumerOffsetInterval`.
async fn persist_loop(core: Rc<Core>) {
    let mut topics_seen = core.topics_changed.generation();
    let mut groups_seen = core.groups_changed.generation();
    loop {
        tern_runtime::timeout(
            core.config.flush_offset_interval,
            futures_lite::future::or(
                core.topics_changed.changed_since(topics_seen),
                core.groups_changed.changed_since(groups_seen),
            ),
        )
        .await;
        let dir = core.config.config_dir();
        if core.topics_changed.generation() != topics_seen {
            topics_seen = core.topics_changed.generation();
            let bytes = pretty(&core.topics.borrow().wrapper());
            write_file(&dir.join(TOPICS_FILE), bytes).await;
        }
        if core.groups_changed.generation() != groups_seen {
            groups_seen = core.groups_changed.generation();
            let bytes = pretty(core.groups.borrow().wrapper());
            write_file(&dir.join(GROUPS_FILE), bytes).await;
        }
        let offsets = core.offsets.borrow_mut().take_dirty().map(pretty);
        if let Some(bytes) = offsets {
            write_file(&dir.join(OFFSETS_FILE), bytes).await;
        }
    }
}

fn pretty<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

async fn write_file(path: &Path, bytes: Vec<u8>) {
    let p = path.to_path_buf();
    if let Err(e) = tern_runtime::spawn_blocking(move || persist::write_atomic(&p, &bytes)).await {
        tracing::error!("{e}");
    }
}

/// Writes all three state files now (shutdown).
async fn persist_all(core: &Core) -> Result<(), PersistError> {
    let dir = core.config.config_dir();
    let files = [
        (TOPICS_FILE, pretty(&core.topics.borrow().wrapper())),
        (GROUPS_FILE, pretty(core.groups.borrow().wrapper())),
        (OFFSETS_FILE, pretty(core.offsets.borrow().file())),
    ];
    tern_runtime::spawn_blocking(move || {
        for (name, bytes) in files {
            persist::write_atomic(&dir.join(name), &bytes)?;
        }
        Ok(())
    })
    .await
}

/// Flushes ConsumeQueues/Index/checkpoint every `flushIntervalConsumeQueue` and runs retention
/// every `cleanResourceInterval` (both rounded up to whole flush intervals).
async fn maintenance_loop(core: Rc<Core>) {
    let interval = core
        .config
        .store
        .flush_interval_consume_queue
        .max(Duration::from_millis(10));
    let mut since_retention = Duration::ZERO;
    loop {
        tern_runtime::sleep(interval).await;
        if let Err(e) = core.store.flush_metadata().await {
            tracing::warn!(core = core.index, "metadata flush: {e}");
            if matches!(e, super::shard_store::ShardStoreError::Closed) {
                return;
            }
        }
        since_retention += interval;
        if since_retention >= core.config.clean_resource_interval {
            since_retention = Duration::ZERO;
            if let Err(e) = core.store.run_retention().await {
                tracing::warn!(core = core.index, "retention: {e}");
            }
        }
    }
}
