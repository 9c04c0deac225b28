//! Wire compatibility of `tern-namesrv` with a real third-party client, the `rocketmq-client-rust`
//! crate (1.0.0).
//!
//! Every test that links that client lives in this one target so CI compiles it once (it is large:
//! see `docs/compat.md` for the build cost, what the client sends and its known quirks).
//!
//! Each test starts the real `tern-namesrv` binary on an ephemeral loopback port in its own temporary
//! directory, registers a broker the way an Apache RocketMQ broker does (REGISTER_BROKER, code 103,
//! JSON header and JSON body), then drives the client against it. The client is async on tokio; each
//! test owns its client runtime and shuts it down before returning, so no test waits on another.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{
    ClientRuntime, ClientRuntimeConfig, DefaultMQAdminExt, DefaultMQProducer, MQAdminReadExt,
    MQClientException,
};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_observability::TelemetryRuntimeGuard;
use rocketmq_protocol::protocol::remoting_command_defaults::{
    RemotingCommandDefaults, RemotingCommandFactory,
};
use rocketmq_protocol::protocol::SerializeType;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use tern_net::body::{DataVersion, RegisterBrokerBody, TopicConfig};
use tern_net::header::RegisterBrokerRequestHeader;
use tern_net::{code, frame, RemotingCommand};

/// Longest any single client call may take before the test calls it a hang.
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// Budget for the client runtime to stop its tasks.
const CLIENT_SHUTDOWN: Duration = Duration::from_secs(3);
/// How long the nameserver may take to report its listening address after spawn.
const NAMESRV_STARTUP: Duration = Duration::from_secs(10);

/// Remoting protocol version a current Java broker sends (`MQVersion.Version.V5_3_3.ordinal()`).
const JAVA_BROKER_VERSION: i32 = 480;
/// Read and write permission bits (`PermName.PERM_READ | PermName.PERM_WRITE`).
const PERM_READ_WRITE: i32 = 6;

// ---------------------------------------------------------------------------------------------
// The nameserver under test
// ---------------------------------------------------------------------------------------------

/// A running `tern-namesrv` child process; killed and reaped on drop, so a failing test leaves
/// nothing running. Its log (stderr) goes to a file that is printed if the test panics.
struct NamesrvProcess {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// What `tern-namesrv` prints on stdout, followed by its bound address, once it accepts.
const LISTENING_PREFIX: &str = "tern-namesrv listening on ";

impl NamesrvProcess {
    /// Spawns the binary on an ephemeral loopback port (`--listen 127.0.0.1:0`) and returns once
    /// it has reported the address it listens on.
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("create nameserver working dir");
        let log_path = dir.path().join("namesrv.log");
        let log = std::fs::File::create(&log_path).expect("create nameserver log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern-namesrv"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn tern-namesrv");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut namesrv = NamesrvProcess {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            log_path,
            _dir: dir,
        };
        namesrv.addr = namesrv.await_listening_line(stdout);
        namesrv
    }

    /// Reads the first stdout line on a helper thread (which then drains the rest, so the child
    /// never blocks on a full pipe) and parses the address out of it.
    fn await_listening_line(&mut self, stdout: ChildStdout) -> SocketAddr {
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = line_tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = line_rx.recv_timeout(NAMESRV_STARTUP).unwrap_or_else(|_| {
            panic!(
                "tern-namesrv printed nothing within {NAMESRV_STARTUP:?}:\n{}",
                self.log()
            )
        });
        match line.trim().strip_prefix(LISTENING_PREFIX).map(str::parse) {
            Some(Ok(addr)) => addr,
            _ => panic!(
                "tern-namesrv did not report its address (stdout {line:?}, exit {:?}):\n{}",
                self.child.try_wait(),
                self.log()
            ),
        }
    }

    /// The address clients pass as `namesrvAddr`.
    fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for NamesrvProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- tern-namesrv log ---\n{}", self.log());
        }
    }
}

/// A loopback address with a port the kernel just handed out (and released for the child).
fn free_loopback_addr() -> SocketAddr {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral loopback port");
    listener.local_addr().expect("ephemeral port address")
}

// ---------------------------------------------------------------------------------------------
// Broker registration, as an Apache RocketMQ broker sends it (built with Tern's own codec)
// ---------------------------------------------------------------------------------------------

/// What a broker announces in one REGISTER_BROKER request.
struct BrokerRegistration<'a> {
    cluster: &'a str,
    broker_name: &'a str,
    /// `host:port` clients will send to.
    broker_addr: &'a str,
    /// Topics served, each with its read and write queue count.
    topics: &'a [(&'a str, i32)],
}

impl BrokerRegistration<'_> {
    /// The REGISTER_BROKER request a Java broker (5.3) sends for this registration: JSON header,
    /// uncompressed JSON `RegisterBrokerBody`, `bodyCrc32` as Java's `UtilAll.crc32` (CRC32 with
    /// the sign bit cleared).
    fn command(&self) -> RemotingCommand {
        let mut body = RegisterBrokerBody::default();
        let wrapper = &mut body.topic_config_serialize_wrapper;
        wrapper.data_version = DataVersion {
            counter: 1,
            state_version: 0,
            timestamp: 1_700_000_000_000,
        };
        for &(topic, queues) in self.topics {
            let config = TopicConfig {
                topic_name: topic.to_owned(),
                read_queue_nums: queues,
                write_queue_nums: queues,
                perm: PERM_READ_WRITE,
                ..TopicConfig::default()
            };
            wrapper.topic_config_table.insert(topic.to_owned(), config);
        }
        let body = tern_net::body::encode(&body);
        let host = self.broker_addr.split(':').next().unwrap_or("127.0.0.1");
        let header = RegisterBrokerRequestHeader {
            broker_name: self.broker_name.to_owned(),
            broker_addr: self.broker_addr.to_owned(),
            cluster_name: self.cluster.to_owned(),
            ha_server_addr: format!("{host}:10912"),
            broker_id: 0,
            heartbeat_timeout_millis: Some(120_000),
            enable_acting_master: Some(false),
            compressed: Some(false),
            body_crc32: Some((crc32fast::hash(&body) & 0x7FFF_FFFF) as i32),
        };
        let mut command = RemotingCommand::request(code::request::REGISTER_BROKER)
            .with_header(&header)
            .with_body(body);
        command.version = JAVA_BROKER_VERSION;
        command
    }
}

/// Registers `registration` with the nameserver over a fresh connection, checks for SUCCESS and
/// returns the connection: like RocketMQ's, Tern's nameserver drops a broker whose connection
/// closes, so the caller keeps it open for as long as the broker should stay routed.
fn register_broker(namesrv: &NamesrvProcess, registration: &BrokerRegistration<'_>) -> TcpStream {
    let mut stream = TcpStream::connect(namesrv.addr).expect("connect to tern-namesrv");
    stream
        .set_read_timeout(Some(CALL_LIMIT))
        .expect("set read timeout");
    let mut wire = Vec::new();
    frame::encode(&registration.command(), &mut wire);
    stream.write_all(&wire).expect("send REGISTER_BROKER");
    let response = read_frame(&mut stream);
    assert_eq!(
        response.code,
        code::response::SUCCESS,
        "REGISTER_BROKER refused: {:?}",
        response.remark
    );
    stream
}

/// Reads exactly one frame from `stream` and decodes it.
fn read_frame(stream: &mut TcpStream) -> RemotingCommand {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(len) = frame::next_frame_len(&received, frame::DEFAULT_MAX_FRAME_LEN)
            .expect("well-formed response frame")
        {
            assert_eq!(len, received.len(), "more than one frame received");
            return frame::decode(&received).expect("decodable response");
        }
        let read = stream.read(&mut chunk).expect("read response");
        assert!(read > 0, "connection closed before a whole response frame");
        received.extend_from_slice(&chunk[..read]);
    }
}

// ---------------------------------------------------------------------------------------------
// The third-party client
// ---------------------------------------------------------------------------------------------

/// One `rocketmq-client-rust` runtime (its own tokio runtime, no global telemetry), shut down on
/// drop within [`CLIENT_SHUTDOWN`].
struct ClientHarness {
    owner: Option<RuntimeOwner>,
    client_runtime: Arc<ClientRuntime>,
    telemetry: Option<TelemetryRuntimeGuard>,
}

impl ClientHarness {
    /// A client runtime whose requests carry headers in `serialize_type`.
    fn new(scope: &str, serialize_type: SerializeType) -> Self {
        let owner = RuntimeOwner::plan(RuntimeConfig {
            worker_threads: 2,
            thread_name: format!("compat-{scope}"),
            shutdown_timeout: CLIENT_SHUTDOWN,
            ..RuntimeConfig::default()
        })
        .expect("valid client runtime config")
        .build()
        .expect("build client runtime");
        let telemetry = TelemetryRuntimeGuard::noop();
        let defaults = RemotingCommandDefaults::new(
            rocketmq_model::version::CURRENT_VERSION as i32,
            serialize_type,
        );
        let client_runtime = ClientRuntime::try_new_with_remoting_command_factory(
            owner.root_context().component("client"),
            ClientRuntimeConfig {
                shutdown_timeout: CLIENT_SHUTDOWN,
                ..ClientRuntimeConfig::default()
            },
            telemetry.handle(),
            RemotingCommandFactory::new(defaults),
        )
        .expect("create client runtime");
        ClientHarness {
            owner: Some(owner),
            client_runtime,
            telemetry: Some(telemetry),
        }
    }

    fn runtime(&self) -> Arc<ClientRuntime> {
        Arc::clone(&self.client_runtime)
    }

    /// Runs `future` to completion on the client's tokio runtime.
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.owner
            .as_ref()
            .expect("client runtime is live until drop")
            .block_on(future)
    }
}

impl Drop for ClientHarness {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            let client_runtime = Arc::clone(&self.client_runtime);
            owner.block_on(async move {
                client_runtime.shutdown().await;
            });
            owner.block_on(owner.shutdown_tasks());
            owner.shutdown_background();
        }
        if let Some(telemetry) = self.telemetry.take() {
            telemetry.shutdown();
        }
    }
}

/// Awaits `future`, failing the test if the client has not answered within [`CALL_LIMIT`].
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(CALL_LIMIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: the client did not finish within {CALL_LIMIT:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

const CLUSTER: &str = "TernCompatCluster";
const BROKER_NAME: &str = "broker-compat";
const ROUTED_TOPIC: &str = "TernCompatRouted";
const ROUTED_QUEUES: i32 = 4;
/// A second topic every Java broker registers. A broker's first registration must carry more than
/// one topic: RocketMQ's nameserver refuses a single-topic registration from an unknown broker.
/// TBW102 (auto-create) is deliberately absent, so unknown topics have no fallback route.
const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";

/// A broker as the nameserver sees it: registered, its connection held open.
struct RegisteredBroker {
    /// The address it registered (a free loopback port nothing listens on: these tests never
    /// reach the broker).
    addr: String,
    _connection: TcpStream,
}

/// A nameserver with one broker registered, serving [`ROUTED_TOPIC`].
fn namesrv_with_routed_topic() -> (NamesrvProcess, RegisteredBroker) {
    let namesrv = NamesrvProcess::start();
    let broker_addr = free_loopback_addr().to_string();
    let connection = register_broker(
        &namesrv,
        &BrokerRegistration {
            cluster: CLUSTER,
            broker_name: BROKER_NAME,
            broker_addr: &broker_addr,
            topics: &[(ROUTED_TOPIC, ROUTED_QUEUES), (SELF_TEST_TOPIC, 1)],
        },
    );
    let broker = RegisteredBroker {
        addr: broker_addr,
        _connection: connection,
    };
    (namesrv, broker)
}

/// The producer's publish queues and the admin's raw route for [`ROUTED_TOPIC`] match what the
/// broker registered.
fn assert_client_sees_registered_route(serialize_type: SerializeType, scope: &str) {
    let (namesrv, broker) = namesrv_with_routed_topic();
    let client = ClientHarness::new(scope, serialize_type);
    client.block_on(async {
        let mut producer = DefaultMQProducer::builder(client.runtime())
            .producer_group(format!("TernCompatPG_{scope}"))
            .name_server_addr(namesrv.addr_string())
            .send_msg_timeout(3000)
            .build();
        within("producer start", producer.start())
            .await
            .expect("producer starts");
        let queues = within(
            "fetch publish queues",
            producer.fetch_publish_message_queues(ROUTED_TOPIC),
        )
        .await
        .expect("publish queues of a registered topic");
        let mut queue_ids: Vec<i32> = queues.iter().map(|mq| mq.queue_id()).collect();
        queue_ids.sort_unstable();
        assert_eq!(queue_ids, [0, 1, 2, 3]);
        for mq in &queues {
            assert_eq!(mq.topic_str(), ROUTED_TOPIC);
            assert_eq!(mq.broker_name().as_str(), BROKER_NAME);
        }

        let mut admin = DefaultMQAdminExt::new(client.runtime());
        admin.set_namesrv_addr(namesrv.addr_string());
        within("admin start", admin.start())
            .await
            .expect("admin starts");
        let route = within(
            "examine route",
            admin.examine_topic_route_info(ROUTED_TOPIC.into()),
        )
        .await
        .expect("route lookup succeeds")
        .expect("route exists for a registered topic");
        assert_eq!(route.broker_datas.len(), 1, "{route:?}");
        let broker_data = &route.broker_datas[0];
        assert_eq!(broker_data.cluster(), CLUSTER);
        assert_eq!(broker_data.broker_name().as_str(), BROKER_NAME);
        assert_eq!(
            broker_data.broker_addrs().get(&0).map(|addr| addr.as_str()),
            Some(broker.addr.as_str())
        );
        assert_eq!(route.queue_datas.len(), 1, "{route:?}");
        let queue_data = &route.queue_datas[0];
        assert_eq!(queue_data.broker_name.as_str(), BROKER_NAME);
        assert_eq!(
            i64::from(queue_data.read_queue_nums),
            i64::from(ROUTED_QUEUES)
        );
        assert_eq!(
            i64::from(queue_data.write_queue_nums),
            i64::from(ROUTED_QUEUES)
        );
        assert_eq!(i64::from(queue_data.perm), i64::from(PERM_READ_WRITE));

        admin.shutdown().await;
        producer.shutdown().await;
    });
}

#[test]
fn client_with_json_headers_resolves_registered_route() {
    assert_client_sees_registered_route(SerializeType::JSON, "json");
}

#[test]
fn client_with_rocketmq_headers_resolves_registered_route() {
    assert_client_sees_registered_route(SerializeType::ROCKETMQ, "binary");
}

#[test]
fn unknown_topic_fails_fast_with_no_route_error() {
    const MISSING_TOPIC: &str = "TernCompatMissing";
    let (namesrv, _broker) = namesrv_with_routed_topic();
    let client = ClientHarness::new("missing", SerializeType::JSON);
    client.block_on(async {
        let mut admin = DefaultMQAdminExt::new(client.runtime());
        admin.set_namesrv_addr(namesrv.addr_string());
        within("admin start", admin.start())
            .await
            .expect("admin starts");
        // The client maps TOPIC_NOT_EXIST (17) to "no route"; any other answer is an error.
        let route = within(
            "examine missing route",
            admin.examine_topic_route_info(MISSING_TOPIC.into()),
        )
        .await
        .expect("TOPIC_NOT_EXIST is answered, not an error");
        assert!(route.is_none(), "unexpected route {route:?}");
        admin.shutdown().await;

        let mut producer = DefaultMQProducer::builder(client.runtime())
            .producer_group("TernCompatPG_missing")
            .name_server_addr(namesrv.addr_string())
            .send_msg_timeout(3000)
            .build();
        within("producer start", producer.start())
            .await
            .expect("producer starts");
        let queues = within(
            "fetch missing publish queues",
            producer.fetch_publish_message_queues(MISSING_TOPIC),
        )
        .await;
        assert!(queues.is_err(), "unexpected queues {queues:?}");

        let message = Message::builder()
            .topic(MISSING_TOPIC)
            .tags("TagA")
            .body_slice(b"never routed")
            .build_unchecked();
        let sent = within("send to missing topic", producer.send(message)).await;
        // The producer looks the topic up, then falls back to the auto-create topic TBW102; with
        // neither routed, the send fails with the nameserver's TOPIC_NOT_EXIST for TBW102.
        let error = sent.expect_err("a send to an unrouted topic fails");
        let cause = error
            .source_ref::<MQClientException>()
            .unwrap_or_else(|| panic!("not a client-side error: {error:?}"));
        assert_eq!(
            cause.response_code(),
            code::response::TOPIC_NOT_EXIST,
            "unexpected error: {cause}"
        );
        producer.shutdown().await;
    });
}

#[test]
fn route_is_withdrawn_once_the_broker_connection_closes() {
    let (namesrv, broker) = namesrv_with_routed_topic();
    let client = ClientHarness::new("withdrawn", SerializeType::JSON);
    client.block_on(async {
        let mut admin = DefaultMQAdminExt::new(client.runtime());
        admin.set_namesrv_addr(namesrv.addr_string());
        within("admin start", admin.start())
            .await
            .expect("admin starts");
        let route = within(
            "examine route",
            admin.examine_topic_route_info(ROUTED_TOPIC.into()),
        )
        .await
        .expect("route lookup succeeds");
        assert!(route.is_some(), "registered topic has no route");

        drop(broker);
        // The nameserver notices the close asynchronously: poll the client's view until the
        // route is gone (TOPIC_NOT_EXIST again), or fail after CALL_LIMIT.
        within("route withdrawal", async {
            loop {
                let route = admin
                    .examine_topic_route_info(ROUTED_TOPIC.into())
                    .await
                    .expect("route lookup succeeds");
                if route.is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        admin.shutdown().await;
    });
}
