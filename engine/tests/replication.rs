//! Master/slave replication with the real `tern-namesrv` and `tern-broker` binaries on loopback:
//! SYNC_MASTER acknowledgements survive `kill -9` of the master byte for byte, an ASYNC slave
//! restarted during load catches up, a slave refuses sends, and the disk guard refuses and then
//! resumes writes.

mod support;

use std::path::Path;
use std::time::Duration;

use tern_net::body::TopicRouteData;
use tern_net::code::{request, response};
use tern_net::header::{
    PullMessageRequestHeader, PullMessageResponseHeader, SendMessageRequestHeader,
    SendMessageResponseHeader,
};
use tern_net::transport::RemotingClient;
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;

use support::{client, free_port, pull_header, split_records, BrokerArgs, Server, BROKER};

const TIMEOUT: Duration = Duration::from_secs(20);
const TOPIC: &str = "Replicated";
const QUEUES: i32 = 4;

/// A nameserver and its loopback address.
fn namesrv() -> (Server, String) {
    let namesrv = support::namesrv();
    let addr = namesrv.loopback();
    (namesrv, addr)
}

/// A broker of `broker-ha` with 2 cores and short replication timings.
fn broker(ns: &str, dir: &Path, port: u16, role: &str, extra: &[&str]) -> (Server, String) {
    let broker = broker_args(ns, dir, port, role, extra, 2).start();
    let addr = broker.loopback();
    (broker, addr)
}

/// The arguments of a `broker-ha` broker in `role` (id 1 for a SLAVE, else 0) on `port`, with
/// 1 MiB commit-log files, [`QUEUES`] queues per topic, short replication timings, then `extra`
/// settings.
fn broker_args(
    ns: &str,
    dir: &Path,
    port: u16,
    role: &str,
    extra: &[&str],
    cores: usize,
) -> BrokerArgs {
    let id = if role == "SLAVE" { "1" } else { "0" };
    let args = BrokerArgs::new(ns, dir)
        .port(port)
        .cores(cores)
        .commit_log(1 << 20)
        .flag("--broker-name", "broker-ha")
        .flag("--broker-id", id)
        .flag("--default-topic-queue-nums", QUEUES)
        .set(format!("brokerRole={role}"))
        .set("haSendHeartbeatInterval=500")
        .set("registerNameServerPeriod=300")
        .set("slaveSyncConfigInterval=200")
        .set("syncFlushTimeout=3000");
    extra.iter().fold(args, |a, kv| a.set(kv))
}

fn send_header(queue_id: i32) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "ha_pg".into(),
        default_topic_queue_nums: QUEUES,
        ..support::send_header(TOPIC, queue_id, "TAGS\u{1}T\u{2}WAIT\u{1}true\u{2}")
    }
}

async fn send(c: &RemotingClient, addr: &str, queue_id: i32, body: &[u8]) -> RemotingCommand {
    send_headed(c, addr, &send_header(queue_id), body).await
}

/// A send of `body` to `queue_id` whose message properties are `properties` (RocketMQ's
/// `\u{1}`/`\u{2}` encoding) instead of [`send_header`]'s.
async fn send_with_properties(
    c: &RemotingClient,
    addr: &str,
    queue_id: i32,
    properties: &str,
    body: &[u8],
) -> RemotingCommand {
    let h = SendMessageRequestHeader {
        properties: Some(properties.into()),
        ..send_header(queue_id)
    };
    send_headed(c, addr, &h, body).await
}

async fn send_headed(
    c: &RemotingClient,
    addr: &str,
    header: &SendMessageRequestHeader,
    body: &[u8],
) -> RemotingCommand {
    let cmd = RemotingCommand::request(request::SEND_MESSAGE)
        .with_header(header)
        .with_body(body.to_vec());
    c.invoke(addr, cmd, TIMEOUT).await.expect("send")
}

/// Every stored record of a queue, from offset 0, as raw bytes (the pull body's records).
async fn records(c: &RemotingClient, addr: &str, queue_id: i32) -> Result<Vec<Vec<u8>>, i32> {
    let mut out = Vec::new();
    loop {
        let h = PullMessageRequestHeader {
            consumer_group: "ha_cg".into(),
            ..pull_header(TOPIC, queue_id, out.len() as i64)
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
        out.extend(split_records(&rsp.body));
    }
}

/// The max offset of queue `queue_id` of [`TOPIC`]; -1 when the broker has none.
async fn max_offset(c: &RemotingClient, addr: &str, queue_id: i32) -> i64 {
    support::try_max_offset(c, addr, TOPIC, queue_id)
        .await
        .unwrap_or(-1)
}

/// `suggestWhichBrokerId` of a pull of queue `queue_id` from offset 0.
async fn suggested_broker(c: &RemotingClient, addr: &str, queue_id: i32) -> i64 {
    let h = PullMessageRequestHeader {
        consumer_group: "ha_cg".into(),
        max_msg_nums: 1,
        ..pull_header(TOPIC, queue_id, 0)
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

/// Polls `cond` every 20 ms until it holds; panics after [`TIMEOUT`].
async fn wait_for(what: &str, cond: impl AsyncFnMut() -> bool) {
    support::wait_for(what, TIMEOUT, cond).await;
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
    // Every reader lags (ratio 0), but slaveReadEnable is off, RocketMQ's default.
    let (mut master, m_addr) = broker(
        &ns,
        m_dir.path(),
        m_port,
        "SYNC_MASTER",
        &[&ha, "accessMessageInMemoryMaxRatio=0"],
    );
    let s_port = free_port();
    let (mut slave, s_addr) = broker(&ns, s_dir.path(), s_port, "SLAVE", &[]);
    let s_path = s_dir.path().to_path_buf();
    tern_runtime::block_on("sync-master", async move {
        let c = client();
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
        // Without slaveReadEnable a master never steers readers away, however far behind.
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
        let c = client();
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
    // With slaveReadEnable and accessMessageInMemoryMaxRatio=0 any lagging reader is steered to
    // the group's whichBrokerWhenConsumeSlowly (1, the slave).
    let (_master, m_addr) = broker(
        &ns,
        m_dir.path(),
        free_port(),
        "ASYNC_MASTER",
        &[
            &ha,
            "accessMessageInMemoryMaxRatio=0",
            "slaveReadEnable=true",
        ],
    );
    let s_port = free_port();
    let (slave, s_addr) = broker(&ns, s_dir.path(), s_port, "SLAVE", &[]);
    let mut slave = Some(slave);
    let s_dir_path = s_dir.path().to_path_buf();
    tern_runtime::block_on("async-master", async move {
        let c = client();
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
        let c = client();
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
    let slave = Server::with_command(support::command(BROKER, args.to_vec()), log.clone());
    let s_addr = slave.loopback();
    tern_runtime::block_on("core-mismatch", async move {
        let c = client();
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

/// A broker's `config/timerProgress.json` as JSON (`Null` while absent).
fn timer_progress(store: &Path) -> serde_json::Value {
    std::fs::read(store.join("config/timerProgress.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Only the master delivers a delayed message (the slave gets the delivered copy by replication,
/// never one of its own), and the slave copies the master's delay offset table
/// (GET_ALL_DELAY_OFFSET) into its own `delayOffset.json`. The same for a timed message and the
/// timer progress (GET_TIMER_CHECK_POINT into `timerProgress.json`).
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
        let c = client();
        let props = "TAGS\u{1}T\u{2}DELAY\u{1}1\u{2}";
        let rsp = send_with_properties(&c, &m_addr, 1, props, b"later").await;
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

        // A timed message: the master delivers it and records its timer progress; the slave's
        // file becomes the same.
        let props = "TAGS\u{1}T\u{2}TIMER_DELAY_MS\u{1}300\u{2}";
        let rsp = send_with_properties(&c, &m_addr, 2, props, b"timed").await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        wait_for("the master's timer delivery", async || {
            records(&c, &m_addr, 2).await.is_ok_and(|r| !r.is_empty())
        })
        .await;
        wait_for("the master's timer progress", async || {
            timer_progress(&m_path)["queues"]
                .as_object()
                .is_some_and(|q| q.values().any(|p| p["scanFrom"].as_i64() >= Some(1)))
        })
        .await;
        wait_for("the slave's copy of the timer progress", async || {
            timer_progress(&s_path) == timer_progress(&m_path)
        })
        .await;
    })
    .unwrap();
}
