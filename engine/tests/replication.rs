//! Master/slave replication with the real `tern-namesrv` and `tern-broker` binaries on loopback:
//! SYNC_MASTER acknowledgements survive `kill -9` of the master byte for byte, an ASYNC slave
//! restarted during load catches up, a slave refuses sends, and the disk guard refuses and then
//! resumes writes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tern_net::body::TopicRouteData;
use tern_net::code::{request, response};
use tern_net::header::{
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, SendMessageRequestHeader, SendMessageResponseHeader,
};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;

const TIMEOUT: Duration = Duration::from_secs(20);
const TOPIC: &str = "Replicated";
const QUEUES: i32 = 4;

/// A child process killed (SIGKILL) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn sigterm(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let status = self.0.wait().expect("wait");
        assert!(status.success(), "exit status {status:?}");
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bin` with `args`; returns it with the address of its "listening on" line.
fn spawn_server(bin: &str, args: &[String]) -> (Proc, String) {
    spawn_logged(bin, args, None)
}

/// [`spawn_server`] with the process's log (stderr) written to `log` when given.
fn spawn_logged(bin: &str, args: &[String], log: Option<&Path>) -> (Proc, String) {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
        None => Stdio::inherit(),
    };
    let mut child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    let addr: SocketAddr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (Proc(child), format!("127.0.0.1:{}", addr.port()))
}

fn namesrv() -> (Proc, String) {
    spawn_server(
        env!("CARGO_BIN_EXE_tern-namesrv"),
        &["--listen".into(), "127.0.0.1:0".into()],
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A broker of `broker-ha` with 2 cores and short replication timings.
fn broker(ns: &str, dir: &Path, port: u16, role: &str, extra: &[&str]) -> (Proc, String) {
    spawn_server(
        env!("CARGO_BIN_EXE_tern-broker"),
        &broker_args(ns, dir, port, role, extra, 2),
    )
}

fn broker_args(
    ns: &str,
    dir: &Path,
    port: u16,
    role: &str,
    extra: &[&str],
    cores: usize,
) -> Vec<String> {
    let id = if role == "SLAVE" { "1" } else { "0" };
    let mut args: Vec<String> = [
        "-n",
        ns,
        "--listen-port",
        &port.to_string(),
        "--broker-ip",
        "127.0.0.1",
        "--cores",
        &cores.to_string(),
        "--broker-name",
        "broker-ha",
        "--broker-id",
        id,
        "--store-path-root-dir",
        &dir.display().to_string(),
        "--mapped-file-size-commit-log",
        "1048576",
        "--default-topic-queue-nums",
        &QUEUES.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for kv in [
        format!("brokerRole={role}"),
        "haSendHeartbeatInterval=500".into(),
        "registerNameServerPeriod=300".into(),
        "slaveSyncConfigInterval=200".into(),
        "syncFlushTimeout=3000".into(),
    ]
    .into_iter()
    .chain(extra.iter().map(|s| s.to_string()))
    {
        args.push("--set".into());
        args.push(kv);
    }
    args
}

fn send_header(queue_id: i32) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "ha_pg".into(),
        topic: TOPIC.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: QUEUES,
        queue_id,
        born_timestamp: 1_700_000_000_000,
        properties: Some("TAGS\u{1}T\u{2}WAIT\u{1}true\u{2}".into()),
        ..SendMessageRequestHeader::default()
    }
}

async fn send(c: &RemotingClient, addr: &str, queue_id: i32, body: &[u8]) -> RemotingCommand {
    let cmd = RemotingCommand::request(request::SEND_MESSAGE)
        .with_header(&send_header(queue_id))
        .with_body(body.to_vec());
    c.invoke(addr, cmd, TIMEOUT).await.expect("send")
}

/// Every stored record of a queue, from offset 0, as raw bytes (the pull body's records).
async fn records(c: &RemotingClient, addr: &str, queue_id: i32) -> Result<Vec<Vec<u8>>, i32> {
    let mut out = Vec::new();
    loop {
        let h = PullMessageRequestHeader {
            consumer_group: "ha_cg".into(),
            topic: TOPIC.into(),
            queue_id,
            queue_offset: out.len() as i64,
            max_msg_nums: 32,
            sys_flag: 4, // subscription in the header
            subscription: Some("*".into()),
            expression_type: Some("TAG".into()),
            ..PullMessageRequestHeader::default()
        };
        let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&h);
        let rsp = c.invoke(addr, cmd, TIMEOUT).await.expect("pull");
        if rsp.code == response::PULL_NOT_FOUND {
            return Ok(out);
        }
        if rsp.code != response::SUCCESS {
            return Err(rsp.code);
        }
        let _: PullMessageResponseHeader = rsp.decode_header().expect("pull header");
        let mut rest = &rsp.body[..];
        while !rest.is_empty() {
            let m = StoredMessage::decode(rest).expect("record");
            out.push(rest[..m.total_size].to_vec());
            rest = &rest[m.total_size..];
        }
    }
}

async fn max_offset(c: &RemotingClient, addr: &str, queue_id: i32) -> i64 {
    let h = GetMaxOffsetRequestHeader {
        topic: TOPIC.into(),
        queue_id,
        ..Default::default()
    };
    let cmd = RemotingCommand::request(request::GET_MAX_OFFSET).with_header(&h);
    let rsp = c.invoke(addr, cmd, TIMEOUT).await.expect("max offset");
    rsp.decode_header::<GetMaxOffsetResponseHeader>()
        .map_or(-1, |h| h.offset)
}

/// `suggestWhichBrokerId` of a pull of queue `queue_id` from offset 0.
async fn suggested_broker(c: &RemotingClient, addr: &str, queue_id: i32) -> i64 {
    let h = PullMessageRequestHeader {
        consumer_group: "ha_cg".into(),
        topic: TOPIC.into(),
        queue_id,
        max_msg_nums: 1,
        sys_flag: 4,
        subscription: Some("*".into()),
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::default()
    };
    let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&h);
    let rsp = c.invoke(addr, cmd, TIMEOUT).await.expect("pull");
    assert_eq!(rsp.code, response::SUCCESS);
    let h: PullMessageResponseHeader = rsp.decode_header().expect("pull header");
    h.suggest_which_broker_id
}

/// The broker ids the nameserver's route of the topic lists for `broker-ha`.
async fn route_ids(c: &RemotingClient, ns: &str) -> Vec<i64> {
    let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", TOPIC);
    let rsp = c.invoke(ns, cmd, TIMEOUT).await.expect("route");
    if rsp.code != response::SUCCESS {
        return Vec::new();
    }
    let route: TopicRouteData = tern_net::body::decode(&rsp.body).expect("route body");
    route
        .broker_datas
        .iter()
        .filter(|b| b.broker_name == "broker-ha")
        .flat_map(|b| b.broker_addrs.keys().copied())
        .collect()
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tern_runtime::sleep(Duration::from_millis(20)).await;
    }
}

fn body(i: usize) -> Vec<u8> {
    format!("message {i} ").repeat(1 + i % 40).into_bytes()
}

#[test]
fn sync_master_acks_survive_kill_9_and_the_slave_serves_them() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ns, ns) = namesrv();
    let (m_port, m_ha) = (free_port(), free_port());
    let ha = format!("haListenPort={m_ha}");
    let (mut master, m_addr) = broker(&ns, m_dir.path(), m_port, "SYNC_MASTER", &[&ha]);
    let s_port = free_port();
    let (mut slave, s_addr) = broker(&ns, s_dir.path(), s_port, "SLAVE", &[]);
    let s_path = s_dir.path().to_path_buf();
    tern_runtime::block_on("sync-master", async move {
        let c = RemotingClient::new(ClientConfig::default());
        // Until the slave replicates, a SYNC_MASTER stores but answers SLAVE_NOT_AVAILABLE.
        wait_for("the slave to confirm a send", async || {
            let rsp = send(&c, &m_addr, 0, b"warm-up").await;
            assert!(
                [response::SUCCESS, response::SLAVE_NOT_AVAILABLE].contains(&rsp.code),
                "{rsp:?}"
            );
            rsp.code == response::SUCCESS
        })
        .await;
        let refused = send(&c, &s_addr, 0, b"to the slave").await;
        assert_eq!(refused.code, response::SERVICE_NOT_AVAILABLE);
        assert!(refused.remark.unwrap_or_default().contains("slave"));
        wait_for("the slave to learn the topic", async || {
            records(&c, &s_addr, 1).await.is_ok()
        })
        .await;

        let mut acked = Vec::new();
        for i in 0..200usize {
            let q = (i % QUEUES as usize) as i32;
            let rsp = send(&c, &m_addr, q, &body(i)).await;
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            let h: SendMessageResponseHeader = rsp.decode_header().expect("send header");
            acked.push((q, h.queue_offset, body(i)));
        }
        // A reader near the end is served from memory: the master suggests itself.
        assert_eq!(suggested_broker(&c, &m_addr, 2).await, 0);
        let mut on_master = Vec::new();
        for q in 0..QUEUES {
            on_master.push(records(&c, &m_addr, q).await.expect("master records"));
        }
        master.kill9();

        for q in 0..QUEUES {
            let on_slave = records(&c, &s_addr, q).await.expect("slave records");
            assert_eq!(
                on_slave, on_master[q as usize],
                "queue {q} differs byte for byte"
            );
        }
        // The nameserver drops the dead master, so clients route broker-ha to the slave (id 1).
        wait_for("the route to list only the slave", async || {
            route_ids(&c, &ns).await == vec![1]
        })
        .await;
        for (q, offset, body) in acked {
            let rec = &on_master[q as usize][offset as usize];
            let m = StoredMessage::decode(rec).expect("record");
            assert_eq!(m.body, &body[..]);
        }
        for q in 0..QUEUES {
            let held = on_master[q as usize].len() as i64;
            assert_eq!(max_offset(&c, &s_addr, q).await, held);
        }

        // Promotion: the slave restarts as a master on its data and continues the queues.
        slave.sigterm();
        let promoted_ha = format!("haListenPort={}", free_port());
        let (_promoted, p_addr) = broker(&ns, &s_path, s_port, "ASYNC_MASTER", &[&promoted_ha]);
        let c = RemotingClient::new(ClientConfig::default());
        let rsp = send(&c, &p_addr, 1, b"after failover").await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let h: SendMessageResponseHeader = rsp.decode_header().expect("send header");
        assert_eq!(h.queue_offset, on_master[1].len() as i64);
    })
    .unwrap();
}

#[test]
fn async_slave_restarted_during_load_catches_up() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ns, ns) = namesrv();
    let m_ha = free_port();
    let ha = format!("haListenPort={m_ha}");
    // With accessMessageInMemoryMaxRatio=0 any lagging reader is steered to the slave.
    let (_master, m_addr) = broker(
        &ns,
        m_dir.path(),
        free_port(),
        "ASYNC_MASTER",
        &[&ha, "accessMessageInMemoryMaxRatio=0"],
    );
    let s_port = free_port();
    let (slave, s_addr) = broker(&ns, s_dir.path(), s_port, "SLAVE", &[]);
    let mut slave = Some(slave);
    let s_dir_path = s_dir.path().to_path_buf();
    tern_runtime::block_on("async-master", async move {
        let c = RemotingClient::new(ClientConfig::default());
        for i in 0..400usize {
            if i == 100 {
                if let Some(mut s) = slave.take() {
                    s.sigterm();
                }
            }
            if i == 300 {
                slave = Some(broker(&ns, &s_dir_path, s_port, "SLAVE", &[]).0);
            }
            let q = (i % QUEUES as usize) as i32;
            let rsp = send(&c, &m_addr, q, &body(i)).await;
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        }
        for q in 0..QUEUES {
            let want = max_offset(&c, &m_addr, q).await;
            assert_eq!(want, 100);
            wait_for("the slave to catch up", async || {
                max_offset(&c, &s_addr, q).await == want
            })
            .await;
        }
        wait_for("the slave to learn the topic", async || {
            records(&c, &s_addr, 0).await.is_ok()
        })
        .await;
        assert_eq!(suggested_broker(&c, &m_addr, 0).await, 1);
        assert_eq!(suggested_broker(&c, &s_addr, 0).await, 0);
        for q in 0..QUEUES {
            let m = records(&c, &m_addr, q).await.expect("master");
            let s = records(&c, &s_addr, q).await.expect("slave");
            assert_eq!(m, s, "queue {q}");
        }
        drop(slave);
    })
    .unwrap();
}

#[test]
fn disk_guard_refuses_writes_when_full_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("usage");
    std::fs::write(&usage, "10").unwrap();
    let (_ns, ns) = namesrv();
    let knob = format!("diskUsageOverrideFile={}", usage.display());
    let (_broker, addr) = broker(
        &ns,
        &dir.path().join("store"),
        free_port(),
        "ASYNC_MASTER",
        &[
            &knob,
            "cleanResourceInterval=50",
            "flushIntervalConsumeQueue=50",
        ],
    );
    tern_runtime::block_on("disk-guard", async move {
        let c = RemotingClient::new(ClientConfig::default());
        for q in 0..QUEUES {
            assert_eq!(send(&c, &addr, q, b"before").await.code, response::SUCCESS);
        }
        std::fs::write(&usage, "95").unwrap();
        for q in 0..QUEUES {
            wait_for("sends to be refused", async || {
                send(&c, &addr, q, b"full").await.code == response::SERVICE_NOT_AVAILABLE
            })
            .await;
        }
        std::fs::write(&usage, "20").unwrap();
        for q in 0..QUEUES {
            wait_for("sends to resume", async || {
                send(&c, &addr, q, b"after").await.code == response::SUCCESS
            })
            .await;
        }
        // Nothing acknowledged was lost.
        for q in 0..QUEUES {
            let recs = records(&c, &addr, q).await.expect("records");
            let first = StoredMessage::decode(&recs[0]).expect("record");
            assert_eq!(first.body, b"before");
        }
    })
    .unwrap();
}

#[test]
fn a_slave_with_another_core_count_is_refused() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ns, ns) = namesrv();
    let ha = format!("haListenPort={}", free_port());
    let (_master, m_addr) = broker(&ns, m_dir.path(), free_port(), "ASYNC_MASTER", &[&ha]);
    let log = s_dir.path().join("slave.log");
    let args = broker_args(
        &ns,
        &s_dir.path().join("store"),
        free_port(),
        "SLAVE",
        &[],
        1,
    );
    let (_slave, s_addr) = spawn_logged(env!("CARGO_BIN_EXE_tern-broker"), &args, Some(&log));
    tern_runtime::block_on("core-mismatch", async move {
        let c = RemotingClient::new(ClientConfig::default());
        for q in 0..QUEUES {
            assert_eq!(send(&c, &m_addr, q, b"m").await.code, response::SUCCESS);
        }
        wait_for("the slave to log the refusal", async || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("core count mismatch"))
        })
        .await;
        for q in 0..QUEUES {
            assert_eq!(max_offset(&c, &s_addr, q).await, 0);
        }
    })
    .unwrap();
}

/// The level's entry of a broker's `config/delayOffset.json` (`Null` while absent).
fn delay_offset(store: &Path, level: &str) -> serde_json::Value {
    std::fs::read(store.join("config/delayOffset.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map_or(serde_json::Value::Null, |v| v["offsetTable"][level].clone())
}

/// Only the master delivers a delayed message (the slave gets the delivered copy by replication,
/// never one of its own), and the slave copies the master's delay offset table
/// (GET_ALL_DELAY_OFFSET) into its own `delayOffset.json`.
#[test]
fn the_slave_copies_the_delay_offsets_and_delivers_nothing_itself() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ns, ns) = namesrv();
    let (m_port, m_ha) = (free_port(), free_port());
    let ha = format!("haListenPort={m_ha}");
    let levels = "messageDelayLevel=1s 2s";
    let (_master, m_addr) = broker(&ns, m_dir.path(), m_port, "ASYNC_MASTER", &[&ha, levels]);
    let (_slave, s_addr) = broker(&ns, s_dir.path(), free_port(), "SLAVE", &[levels]);
    let (m_path, s_path) = (m_dir.path().to_path_buf(), s_dir.path().to_path_buf());
    tern_runtime::block_on("delay-offsets", async move {
        let c = RemotingClient::new(ClientConfig::default());
        let mut h = send_header(1);
        h.properties = Some("TAGS\u{1}T\u{2}DELAY\u{1}1\u{2}".into());
        let cmd = RemotingCommand::request(request::SEND_MESSAGE)
            .with_header(&h)
            .with_body(b"later".to_vec());
        let rsp = c.invoke(&m_addr, cmd, TIMEOUT).await.expect("send");
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        wait_for("the master's delivery", async || {
            delay_offset(&m_path, "1") == 1
        })
        .await;
        wait_for("the slave's copy of the table", async || {
            delay_offset(&s_path, "1") == 1
        })
        .await;
        let on_master = records(&c, &m_addr, 1).await.expect("master records");
        assert_eq!(on_master.len(), 1);
        wait_for("the delivered copy on the slave", async || {
            records(&c, &s_addr, 1).await.is_ok_and(|r| !r.is_empty())
        })
        .await;
        assert_eq!(records(&c, &s_addr, 1).await, Ok(on_master));
    })
    .unwrap();
}
