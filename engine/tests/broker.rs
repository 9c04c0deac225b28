//! End-to-end tests of the broker over loopback sockets: in-process brokers (1 and 2 cores) driven
//! by Tern's own remoting client, and the real `tern-broker` and `tern-namesrv` binaries for
//! registration, signals and restart.

mod support;

use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_engine::broker::admin_body::{decode_consume_stats, decode_topic_stats, ConsumeStats};
use tern_engine::broker::routing::owner_core;
use tern_engine::broker::{Broker, BrokerConfig};
use tern_net::body::{ClusterInfo, TopicRouteData};
use tern_net::code::{request, response};
use tern_net::header::{
    GetConsumeStatsRequestHeader, GetTopicStatsInfoRequestHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    QueryMessageRequestHeader, QueryMessageResponseHeader, SendMessageRequestHeader,
    SendMessageRequestHeaderV2, SendMessageResponseHeader, UpdateConsumerOffsetRequestHeader,
    ViewMessageRequestHeader,
};
use tern_net::transport::{
    ClientConfig, ConnectionInfo, HandlerFuture, RemotingClient, RequestHandler,
};
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;
use tern_store::message_id::MessageId;

use support::{client, loopback, max_offset, BrokerArgs, SMALL_CONSUME_QUEUE};

const TIMEOUT: Duration = Duration::from_secs(10);
const GROUP: &str = "test_cg";

/// A consumer's request handler that, on NOTIFY_CONSUMER_IDS_CHANGED, asks the nameserver for
/// `topic`'s route and keeps the answer's code: what a stock client's rebalance would find.
struct RouteAtNotify {
    namesrv: String,
    topic: String,
    code: Cell<Option<i32>>,
}

impl RouteAtNotify {
    fn new(namesrv: &str, topic: &str) -> Self {
        RouteAtNotify {
            namesrv: namesrv.into(),
            topic: topic.into(),
            code: Cell::new(None),
        }
    }
}

impl RequestHandler for RouteAtNotify {
    fn handle<'a>(&'a self, req: RemotingCommand, _conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            if req.code == request::NOTIFY_CONSUMER_IDS_CHANGED && self.code.get().is_none() {
                let ask = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
                    .with_ext("topic", self.topic.clone());
                let rsp = client().invoke(&self.namesrv, ask, TIMEOUT).await;
                self.code.set(Some(rsp.map(|r| r.code).unwrap_or(-1)));
            }
            None
        })
    }
}

/// [`support::broker_config`] with small consume-queue files, 64 KiB messages and short delay
/// levels: retries (level 3 + n) are due after a second.
fn broker_config(dir: &Path) -> BrokerConfig {
    support::broker_config(
        dir,
        &[
            SMALL_CONSUME_QUEUE,
            ("maxMessageSize", "65536"),
            ("messageDelayLevel", "1s 1s 1s 1s"),
        ],
    )
}

fn send_header(topic: &str, queue_id: i32, tags: &str, keys: &str) -> SendMessageRequestHeader {
    let properties = format!("TAGS\u{1}{tags}\u{2}KEYS\u{1}{keys}\u{2}WAIT\u{1}true\u{2}");
    SendMessageRequestHeader {
        producer_group: "test_pg".into(),
        ..support::send_header(topic, queue_id, &properties)
    }
}

async fn send(
    c: &RemotingClient,
    addr: &str,
    header: SendMessageRequestHeader,
    body: &[u8],
    v2: bool,
) -> RemotingCommand {
    let cmd = if v2 {
        RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_header(&SendMessageRequestHeaderV2::from(header))
    } else {
        RemotingCommand::request(request::SEND_MESSAGE).with_header(&header)
    };
    c.invoke(addr, cmd.with_body(body.to_vec()), TIMEOUT)
        .await
        .expect("send")
}

async fn send_ok(
    c: &RemotingClient,
    addr: &str,
    topic: &str,
    q: i32,
    tags: &str,
    body: &[u8],
) -> SendMessageResponseHeader {
    let rsp = send(c, addr, send_header(topic, q, tags, "k"), body, true).await;
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
    assert_eq!(rsp.ext("MSG_REGION"), Some("DefaultRegion"));
    rsp.decode_header().expect("send response header")
}

fn pull_header(
    topic: &str,
    q: i32,
    offset: i64,
    sub: &str,
    flags: i32,
    suspend_ms: i64,
) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: GROUP.into(),
        sys_flag: flags,
        suspend_timeout_millis: suspend_ms,
        subscription: Some(sub.into()),
        ..support::pull_header(topic, q, offset)
    }
}

/// Subscription in the header (flag 4), plus `extra` flags.
async fn pull(
    c: &RemotingClient,
    addr: &str,
    h: PullMessageRequestHeader,
) -> (RemotingCommand, PullMessageResponseHeader) {
    let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&h);
    let rsp = c
        .invoke(
            addr,
            cmd,
            TIMEOUT + Duration::from_millis(h.suspend_timeout_millis as u64),
        )
        .await
        .expect("pull");
    let header = rsp.decode_header().expect("pull response header");
    (rsp, header)
}

/// (body, tags, queue offset) of each record of a pull body.
fn records(body: &[u8]) -> Vec<(Vec<u8>, Option<String>, i64)> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let m = StoredMessage::decode(rest).expect("stored record");
        out.push((
            m.body.to_vec(),
            m.tags().map(str::to_string),
            m.queue_offset,
        ));
        rest = &rest[m.total_size..];
    }
    out
}

async fn query_offset(c: &RemotingClient, addr: &str, topic: &str, q: i32) -> RemotingCommand {
    let h = QueryConsumerOffsetRequestHeader {
        consumer_group: GROUP.into(),
        topic: topic.into(),
        queue_id: q,
        ..Default::default()
    };
    c.invoke(
        addr,
        RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&h),
        TIMEOUT,
    )
    .await
    .unwrap()
}

async fn update_offset(c: &RemotingClient, addr: &str, topic: &str, q: i32, offset: i64) {
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: GROUP.into(),
        topic: topic.into(),
        queue_id: q,
        commit_offset: offset,
        broker_name: None,
    };
    let rsp = c
        .invoke(
            addr,
            RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&h),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
}

/// Sends the request `make` builds to `addr` until `done` accepts the response (checked every
/// 20 ms, at most [`TIMEOUT`]) and returns that response.
async fn invoke_until(
    c: &RemotingClient,
    addr: &str,
    what: &str,
    make: impl Fn() -> RemotingCommand,
    done: impl Fn(&RemotingCommand) -> bool,
) -> RemotingCommand {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let rsp = c.invoke(addr, make(), TIMEOUT).await.expect("invoke");
        if done(&rsp) {
            return rsp;
        }
        assert!(Instant::now() < deadline, "{what}");
        tern_runtime::sleep(Duration::from_millis(20)).await;
    }
}

/// UPDATE_AND_CREATE_TOPIC of `topic` (2 queues, read-write) at `addr`; asserts SUCCESS.
async fn create_topic(c: &RemotingClient, addr: &str, topic: &str) {
    let create = tern_net::header::CreateTopicRequestHeader {
        topic: topic.into(),
        default_topic: "TBW102".into(),
        read_queue_nums: 2,
        write_queue_nums: 2,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        ..Default::default()
    };
    let cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC).with_header(&create);
    let rsp = c.invoke(addr, cmd, TIMEOUT).await.expect("create topic");
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
}

/// The code of the nameserver's answer to GET_ROUTEINFO_BY_TOPIC for `topic`, asked once.
async fn route_code(c: &RemotingClient, namesrv: &str, topic: &str) -> i32 {
    let ask = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
        .with_ext("topic", topic.to_string());
    c.invoke(namesrv, ask, TIMEOUT)
        .await
        .expect("nameserver")
        .code
}

/// An in-process broker on a temporary store (see [`broker_config`]) and its loopback address.
struct TestBroker {
    dir: tempfile::TempDir,
    broker: Broker,
    addr: String,
}

impl TestBroker {
    fn start(cores: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(broker_config(dir.path()), cores).expect("start");
        let addr = loopback(broker.local_addr());
        TestBroker { dir, broker, addr }
    }
}

#[test]
fn single_core_send_pull_filter_offsets_and_long_poll() {
    let TestBroker { dir, broker, addr } = TestBroker::start(1);
    tern_runtime::block_on("client", async move {
        let c = client();
        let topic = "TopicA";
        // Auto-created from TBW102 with min(4, 4) queues; SEND_MESSAGE and SEND_MESSAGE_V2.
        let first = send(
            &c,
            &addr,
            send_header(topic, 1, "TagA", "k0"),
            b"hello-0",
            false,
        )
        .await;
        assert_eq!(first.code, response::SUCCESS, "{:?}", first.remark);
        let h: SendMessageResponseHeader = first.decode_header().unwrap();
        assert_eq!((h.queue_id, h.queue_offset), (1, 0));
        let id = MessageId::parse(&h.msg_id).unwrap();
        assert_eq!(id.shard(), 0);
        assert!(h.transaction_id.is_some());
        for i in 1..6 {
            let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
            let h = send_ok(&c, &addr, topic, 1, tag, format!("hello-{i}").as_bytes()).await;
            assert_eq!(h.queue_offset, i);
        }
        assert_eq!(max_offset(&c, &addr, topic, 1).await, 6);

        // Pull everything back, byte-exact and in order.
        let (rsp, ph) = pull(&c, &addr, pull_header(topic, 1, 0, "*", 4, 0)).await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        assert_eq!(
            (ph.next_begin_offset, ph.min_offset, ph.max_offset),
            (6, 0, 6)
        );
        let got = records(&rsp.body);
        assert_eq!(got.len(), 6);
        for (i, (body, _, qo)) in got.iter().enumerate() {
            assert_eq!(body, format!("hello-{i}").as_bytes());
            assert_eq!(*qo, i as i64);
        }

        // Tag filter: "TagA || TagC" selects offsets 0, 2, 4.
        let (rsp, _) = pull(&c, &addr, pull_header(topic, 1, 0, " TagA || TagC ", 4, 0)).await;
        let tags: Vec<i64> = records(&rsp.body).iter().map(|r| r.2).collect();
        assert_eq!(tags, vec![0, 2, 4]);

        // At the end of the queue without suspension: PULL_NOT_FOUND.
        let (rsp, ph) = pull(&c, &addr, pull_header(topic, 1, 6, "*", 4, 0)).await;
        assert_eq!(rsp.code, response::PULL_NOT_FOUND);
        assert_eq!(ph.next_begin_offset, 6);
        // Far beyond: PULL_OFFSET_MOVED.
        let (rsp, _) = pull(&c, &addr, pull_header(topic, 1, 100, "*", 4, 0)).await;
        assert_eq!(rsp.code, response::PULL_OFFSET_MOVED);

        // Long poll: suspended until a send to the queue wakes it.
        let started = Instant::now();
        let waiter = {
            let addr = addr.clone();
            tern_runtime::spawn_local(async move {
                let c2 = client();
                pull(&c2, &addr, pull_header(topic, 1, 6, "*", 4 | 2, 8000)).await
            })
        };
        tern_runtime::sleep(Duration::from_millis(100)).await;
        send_ok(&c, &addr, topic, 1, "TagA", b"wake-up").await;
        let (rsp, ph) = waiter.await;
        assert_eq!(rsp.code, response::SUCCESS);
        assert_eq!(records(&rsp.body)[0].0, b"wake-up");
        assert_eq!(ph.next_begin_offset, 7);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken by the send, not the deadline"
        );
        // Long poll that nobody wakes: PULL_NOT_FOUND at its deadline.
        let started = Instant::now();
        let (rsp, _) = pull(&c, &addr, pull_header(topic, 1, 7, "*", 4 | 2, 300)).await;
        assert_eq!(rsp.code, response::PULL_NOT_FOUND);
        assert!(started.elapsed() >= Duration::from_millis(300));

        // Offsets: none committed yet. A new group starts at 0 while the queue still holds its
        // first message; with setZeroIfNotFound=false, or on an empty queue, QUERY_NOT_FOUND.
        let q = query_offset(&c, &addr, topic, 1).await;
        assert_eq!(q.code, response::SUCCESS);
        assert_eq!(
            q.decode_header::<QueryConsumerOffsetResponseHeader>()
                .unwrap()
                .offset,
            0
        );
        assert_eq!(
            query_offset(&c, &addr, topic, 2).await.code,
            response::QUERY_NOT_FOUND
        );
        let h = QueryConsumerOffsetRequestHeader {
            consumer_group: GROUP.into(),
            topic: topic.into(),
            queue_id: 1,
            set_zero_if_not_found: Some(false),
            ..Default::default()
        };
        let cmd = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&h);
        assert_eq!(
            c.invoke(&addr, cmd, TIMEOUT).await.unwrap().code,
            response::QUERY_NOT_FOUND
        );
        // Then committed by UPDATE_CONSUMER_OFFSET and by a pull's commit flag.
        update_offset(&c, &addr, topic, 1, 3).await;
        let q = query_offset(&c, &addr, topic, 1).await;
        assert_eq!(
            q.decode_header::<QueryConsumerOffsetResponseHeader>()
                .unwrap()
                .offset,
            3
        );
        let mut h = pull_header(topic, 1, 5, "*", 4 | 1, 0);
        h.commit_offset = 5;
        pull(&c, &addr, h).await;
        let q = query_offset(&c, &addr, topic, 1).await;
        assert_eq!(
            q.decode_header::<QueryConsumerOffsetResponseHeader>()
                .unwrap()
                .offset,
            5
        );

        // Queue lookups: min offset, search by store time, earliest store time.
        let ask = |code: i32, extra: Option<(&'static str, String)>| {
            let mut cmd = RemotingCommand::request(code)
                .with_ext("topic", topic)
                .with_ext("queueId", "1");
            if let Some((k, v)) = extra {
                cmd = cmd.with_ext(k.to_string(), v);
            }
            let (c, addr) = (&c, &addr);
            async move {
                let rsp = c.invoke(addr, cmd, TIMEOUT).await.unwrap();
                assert_eq!(rsp.code, response::SUCCESS, "{code}: {:?}", rsp.remark);
                rsp
            }
        };
        let min = ask(request::GET_MIN_OFFSET, None).await;
        assert_eq!(min.ext("offset"), Some("0"));
        let earliest = ask(request::GET_EARLIEST_MSG_STORETIME, None).await;
        let first_stored: i64 = earliest.ext("timestamp").unwrap().parse().unwrap();
        assert!(first_stored > 1_700_000_000_000, "{first_stored}");
        let search = ask(
            request::SEARCH_OFFSET_BY_TIMESTAMP,
            Some(("timestamp", first_stored.to_string())),
        )
        .await;
        assert_eq!(search.ext("offset"), Some("0"));
        let search = ask(
            request::SEARCH_OFFSET_BY_TIMESTAMP,
            Some(("timestamp", (first_stored + 3_600_000).to_string())),
        )
        .await;
        assert_eq!(search.ext("offset"), Some("7"));

        // LITE_PULL_MESSAGE takes the same header and path.
        let lite = RemotingCommand::request(request::LITE_PULL_MESSAGE).with_header(&pull_header(
            topic,
            1,
            6,
            "*",
            4 | 16,
            0,
        ));
        let rsp = c.invoke(&addr, lite, TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        assert_eq!(records(&rsp.body)[0].0, b"wake-up");

        // VIEW_MESSAGE_BY_ID returns the stored record.
        let view = ViewMessageRequestHeader {
            topic: None,
            offset: id.physical_offset,
        };
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_header(&view),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        assert_eq!(records(&rsp.body)[0].0, b"hello-0");

        // Pull bodies on the owning core's own connection went out with sendfile.
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
                TIMEOUT,
            )
            .await
            .unwrap();
        let info: tern_net::body::KvTable = serde_json::from_slice(&rsp.body).unwrap();
        let zero_copy: u64 = info.table["pullZeroCopyBytes"].parse().unwrap();
        assert!(zero_copy > 0, "{info:?}");
        assert_eq!(info.table["pullCopiedBytes"], "0");

        // Bad input.
        let big = vec![7u8; 65537];
        let rsp = send(&c, &addr, send_header(topic, 0, "T", "k"), &big, true).await;
        assert_eq!(rsp.code, response::MESSAGE_ILLEGAL);
        let rsp = send(&c, &addr, send_header("bad/topic", 0, "T", "k"), b"x", true).await;
        assert_eq!(rsp.code, response::INVALID_PARAMETER);
        let rsp = send(
            &c,
            &addr,
            send_header(&"x".repeat(128), 0, "T", "k"),
            b"x",
            true,
        )
        .await;
        assert_eq!(rsp.code, response::INVALID_PARAMETER);
        let rsp = send(&c, &addr, send_header(topic, 4, "T", "k"), b"x", true).await;
        assert_eq!(rsp.code, response::INVALID_PARAMETER);
        let rsp = send(
            &c,
            &addr,
            send_header("SCHEDULE_TOPIC_XXXX", 0, "T", "k"),
            b"x",
            true,
        )
        .await;
        assert_eq!(rsp.code, response::NO_PERMISSION);
        let rsp = c
            .invoke(&addr, RemotingCommand::request(9999), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(rsp.code, response::REQUEST_CODE_NOT_SUPPORTED);
        assert_eq!(
            rsp.remark.as_deref(),
            Some(" request type 9999 not supported")
        );
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::SEND_MESSAGE),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SYSTEM_ERROR);
    })
    .unwrap();
    broker.shutdown().expect("shutdown");
    // State files were written at shutdown.
    let offsets = std::fs::read_to_string(dir.path().join("config/consumerOffset.json")).unwrap();
    assert!(offsets.contains("TopicA@test_cg"), "{offsets}");
    assert!(dir.path().join("config/topics.json").exists());
}

#[test]
fn two_cores_forward_sends_pulls_and_heartbeats() {
    let TestBroker {
        dir: _dir,
        broker,
        addr,
    } = TestBroker::start(2);
    tern_runtime::block_on("client2", async move {
        let c = client();
        let topic = "Spread";
        let mut shards = std::collections::BTreeSet::new();
        let mut first_ids = Vec::new();
        for q in 0..4 {
            for i in 0..3 {
                let h = send_ok(&c, &addr, topic, q, "T", format!("{q}-{i}").as_bytes()).await;
                assert_eq!((h.queue_id, h.queue_offset), (q, i));
                shards.insert(MessageId::parse(&h.msg_id).unwrap().shard());
                if i == 0 {
                    first_ids.push(MessageId::parse(&h.msg_id).unwrap());
                }
            }
        }
        assert_eq!(shards.len(), 2, "queues live on both cores");
        for q in 0..4 {
            let (rsp, ph) = pull(&c, &addr, pull_header(topic, q, 0, "*", 4, 0)).await;
            assert_eq!(rsp.code, response::SUCCESS);
            assert_eq!(ph.max_offset, 3);
            let bodies: Vec<Vec<u8>> = records(&rsp.body).into_iter().map(|r| r.0).collect();
            let want: Vec<Vec<u8>> = (0..3).map(|i| format!("{q}-{i}").into_bytes()).collect();
            assert_eq!(bodies, want);
            // No commit yet: 0, whichever core owns the queue.
            let qr = query_offset(&c, &addr, topic, q).await;
            assert_eq!(
                qr.decode_header::<QueryConsumerOffsetResponseHeader>()
                    .unwrap()
                    .offset,
                0
            );
            update_offset(&c, &addr, topic, q, 2).await;
            let qr = query_offset(&c, &addr, topic, q).await;
            assert_eq!(
                qr.decode_header::<QueryConsumerOffsetResponseHeader>()
                    .unwrap()
                    .offset,
                2
            );
        }
        // A heartbeat registers the group's subscription; a pull without one in its header uses it.
        let hb = format!(
            r#"{{"clientID":"c1","producerDataSet":[],"consumerDataSet":[{{"groupName":"{GROUP}",
            "consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",
            "subscriptionDataSet":[{{"topic":"{topic}","subString":"*","subVersion":1}}]}}]}}"#
        );
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::HEART_BEAT).with_body(hb.into_bytes()),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
                    .with_ext("consumerGroup", GROUP),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.body, br#"{"consumerIdList":["c1"]}"#);
        for q in 0..4 {
            let (rsp, _) = pull(&c, &addr, pull_header(topic, q, 1, "", 0, 0)).await;
            assert_eq!(rsp.code, response::SUCCESS, "queue {q}: {:?}", rsp.remark);
            assert_eq!(records(&rsp.body).len(), 2);
        }

        // CONSUMER_SEND_MSG_BACK: into %RETRY%<group> with reconsumeTimes + 1, then (max reached)
        // into %DLQ%<group>; messages of either core.
        let send_back = |id: MessageId, max: i32| {
            RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK).with_header(
                &tern_net::header::ConsumerSendMsgBackRequestHeader {
                    offset: id.physical_offset,
                    group: GROUP.into(),
                    delay_level: 0,
                    origin_msg_id: None,
                    origin_topic: Some(topic.into()),
                    unit_mode: Some(false),
                    max_reconsume_times: Some(max),
                },
            )
        };
        for (n, id) in first_ids.iter().enumerate() {
            let rsp = c.invoke(&addr, send_back(*id, 16), TIMEOUT).await.unwrap();
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            let retry = format!("%RETRY%{GROUP}");
            // Held for delay level 3 (1 s here), then delivered: long-poll for it.
            let (rsp, _) = pull(
                &c,
                &addr,
                pull_header(&retry, 0, n as i64, "*", 4 | 2, 5000),
            )
            .await;
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            let m = StoredMessage::decode(&rsp.body).unwrap();
            assert_eq!(m.body, format!("{n}-0").as_bytes());
            assert_eq!(m.reconsume_times, 1);
            assert_eq!(m.property("RETRY_TOPIC"), Some(topic));
            assert_eq!(m.tags(), Some("T"));
        }
        let rsp = c
            .invoke(&addr, send_back(first_ids[1], 0), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let (rsp, _) = pull(
            &c,
            &addr,
            pull_header(&format!("%DLQ%{GROUP}"), 0, 0, "*", 4, 0),
        )
        .await;
        assert_eq!(records(&rsp.body)[0].0, b"1-0");
        let bad = tern_net::header::ConsumerSendMsgBackRequestHeader {
            offset: 200 << 56,
            group: GROUP.into(),
            ..Default::default()
        };
        let cmd = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK).with_header(&bad);
        assert_eq!(
            c.invoke(&addr, cmd, TIMEOUT).await.unwrap().code,
            response::SYSTEM_ERROR
        );
    })
    .unwrap();
    broker.shutdown().expect("shutdown");
}

#[test]
fn binary_prints_config_from_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.properties");
    std::fs::write(
        &file,
        "brokerClusterName=c1\nbrokerName=from-file\nnoSuchKey=1\nmaxMessageSize=1024\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tern-broker"))
        .args([
            "-c",
            file.to_str().unwrap(),
            "-n",
            "10.0.0.1:9876;10.0.0.2:9876",
            "-p",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "brokerClusterName=c1",
        "brokerName=from-file",
        "maxMessageSize=1024",
        "namesrvAddr=10.0.0.1:9876;10.0.0.2:9876",
        "listenPort=10911",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from {text}"
        );
    }
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("noSuchKey") && log.contains(":3"), "{log}");
}

#[test]
fn binary_registers_serves_and_restarts_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = support::namesrv();
    let ns = namesrv.loopback();
    let args = BrokerArgs::new(&ns, dir.path())
        .cores(2)
        .flag("--broker-name", "broker-t");
    let mut broker = args.start();
    let addr = broker.loopback();
    let (ns2, addr2) = (ns.clone(), addr.clone());
    tern_runtime::block_on("bin1", async move {
        let c = client();
        // Topics a request created are registered before it is answered, as RocketMQ does
        // (`register.rs`): one route query right after the answer finds them. The first send
        // auto-creates "Durable"; UPDATE_AND_CREATE_TOPIC over fresh connections lands on either
        // core, so both the state core's own wait and another core's question to it are used.
        send_ok(&c, &addr2, "Durable", 0, "T", b"m0").await;
        assert_eq!(route_code(&c, &ns2, "Durable").await, response::SUCCESS);
        for i in 0..6 {
            let topic = format!("Created{i}");
            create_topic(&client(), &addr2, &topic).await;
            assert_eq!(route_code(&c, &ns2, &topic).await, response::SUCCESS, "{topic}");
        }
        for q in 1..4 {
            send_ok(&c, &addr2, "Durable", q, "T", format!("m{q}").as_bytes()).await;
        }
        update_offset(&c, &addr2, "Durable", 2, 1).await;
        let rsp = c
            .invoke(
                &ns2,
                RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
                    .with_ext("topic", "Durable"),
                TIMEOUT,
            )
            .await
            .unwrap();
        let route: TopicRouteData = serde_json::from_slice(&rsp.body).unwrap();
        assert_eq!(route.broker_datas[0].broker_name, "broker-t");
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        // A new group's retry topic is registered before the group's members hear of it
        // (NOTIFY_CONSUMER_IDS_CHANGED, on which stock clients rebalance) and before the
        // heartbeat is answered: the route is there at both moments, asked once, no retries.
        let notified = Rc::new(RouteAtNotify::new(&ns2, "%RETRY%FreshGroup"));
        let member = RemotingClient::with_handler(
            ClientConfig::default(),
            Rc::clone(&notified) as Rc<dyn RequestHandler>,
        );
        let hb = r#"{"clientID":"hb-client","producerDataSet":[],"consumerDataSet":[{"groupName":"FreshGroup",
            "consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet":[{"topic":"Durable","subString":"*","subVersion":1}],"unitMode":false}]}"#;
        let rsp = member
            .invoke(
                &addr2,
                RemotingCommand::request(request::HEART_BEAT).with_body(hb.as_bytes().to_vec()),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        assert_eq!(
            route_code(&c, &ns2, "%RETRY%FreshGroup").await,
            response::SUCCESS
        );
        support::wait_for("NOTIFY_CONSUMER_IDS_CHANGED", TIMEOUT, async || {
            notified.code.get().is_some()
        })
        .await;
        assert_eq!(
            notified.code.get(),
            Some(response::SUCCESS),
            "no retry route when the member was notified"
        );
        let rsp = c
            .invoke(
                &ns2,
                RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO),
                TIMEOUT,
            )
            .await
            .unwrap();
        let info: ClusterInfo = serde_json::from_slice(&rsp.body).unwrap();
        assert_eq!(info.broker_addr_table["broker-t"].broker_addrs[&0], addr2);
    })
    .unwrap();
    broker.sigterm();

    // Unregistered at shutdown.
    let ns3 = ns.clone();
    tern_runtime::block_on("bin2", async move {
        let c = client();
        let rsp = c
            .invoke(
                &ns3,
                RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO),
                TIMEOUT,
            )
            .await
            .unwrap();
        let info: ClusterInfo = serde_json::from_slice(&rsp.body).unwrap_or_default();
        assert!(!info.broker_addr_table.contains_key("broker-t"), "{info:?}");
    })
    .unwrap();

    let broker = args.start();
    let addr = broker.loopback();
    tern_runtime::block_on("bin3", async move {
        let c = client();
        for q in 0..4 {
            let (rsp, ph) = pull(&c, &addr, pull_header("Durable", q, 0, "*", 4, 0)).await;
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            assert_eq!(ph.max_offset, 1);
            assert_eq!(records(&rsp.body)[0].0, format!("m{q}").as_bytes());
        }
        let q = query_offset(&c, &addr, "Durable", 2).await;
        assert_eq!(
            q.decode_header::<QueryConsumerOffsetResponseHeader>()
                .unwrap()
                .offset,
            1
        );
        // Appends continue after the recovered tail.
        let h = send_ok(&c, &addr, "Durable", 0, "T", b"after-restart").await;
        assert_eq!(h.queue_offset, 1);
    })
    .unwrap();
}

/// Records the NOTIFY_CONSUMER_IDS_CHANGED requests a client receives.
#[derive(Default)]
struct NotifyRecorder {
    groups: std::cell::RefCell<Vec<String>>,
}

impl tern_net::transport::RequestHandler for NotifyRecorder {
    fn handle<'a>(
        &'a self,
        req: RemotingCommand,
        _conn: &'a tern_net::transport::ConnectionInfo,
    ) -> tern_net::transport::HandlerFuture<'a> {
        Box::pin(async move {
            if req.code == request::NOTIFY_CONSUMER_IDS_CHANGED {
                self.groups
                    .borrow_mut()
                    .push(req.ext("consumerGroup").unwrap_or("").to_string());
            }
            None
        })
    }
}

fn heartbeat(client_id: &str, group: &str, topic: &str) -> RemotingCommand {
    let hb = format!(
        r#"{{"clientID":"{client_id}","producerDataSet":[{{"groupName":"p"}}],"consumerDataSet":[{{"groupName":"{group}",
        "consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",
        "subscriptionDataSet":[{{"topic":"{topic}","subString":"*","subVersion":1,"expressionType":"TAG"}}]}}]}}"#
    );
    RemotingCommand::request(request::HEART_BEAT).with_body(hb.into_bytes())
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tern_runtime::sleep(Duration::from_millis(2)).await;
    }
}

#[test]
fn batches_admin_requests_and_membership_notifications() {
    let TestBroker { dir, broker, addr } = TestBroker::start(2);
    tern_runtime::block_on("client3", async move {
        let c = client();
        // UPDATE_AND_CREATE_TOPIC, then GET_ALL_TOPIC_CONFIG shows it (on whichever core answers).
        create_topic(&c, &addr, "Admin").await;
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG),
                TIMEOUT,
            )
            .await
            .unwrap();
        let all: tern_net::body::TopicConfigSerializeWrapper =
            serde_json::from_slice(&rsp.body).unwrap();
        assert_eq!(all.topic_config_table["Admin"].write_queue_nums, 2);
        assert!(all.topic_config_table.contains_key("TBW102"));

        // SEND_BATCH_MESSAGE with V2 header names: consecutive offsets, comma-joined ids.
        let mut batch = Vec::new();
        for (i, tag) in ["A", "B", "A"].iter().enumerate() {
            let body = format!("batch-{i}");
            let props = format!("TAGS\u{1}{tag}\u{2}");
            let total = 22 + body.len() + props.len();
            batch.extend_from_slice(&(total as i32).to_be_bytes());
            batch.extend_from_slice(&[0; 8]);
            batch.extend_from_slice(&0i32.to_be_bytes());
            batch.extend_from_slice(&(body.len() as i32).to_be_bytes());
            batch.extend_from_slice(body.as_bytes());
            batch.extend_from_slice(&(props.len() as u16).to_be_bytes());
            batch.extend_from_slice(props.as_bytes());
        }
        for q in 0..2 {
            let header = SendMessageRequestHeaderV2::from(send_header("Admin", q, "", "k"));
            let cmd = RemotingCommand::request(request::SEND_BATCH_MESSAGE)
                .with_header(&header)
                .with_body(batch.clone());
            let rsp = c.invoke(&addr, cmd, TIMEOUT).await.unwrap();
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            let h: SendMessageResponseHeader = rsp.decode_header().unwrap();
            assert_eq!((h.queue_id, h.queue_offset), (q, 0));
            assert_eq!(h.msg_id.split(',').count(), 3);
            let (rsp, _) = pull(&c, &addr, pull_header("Admin", q, 0, "A", 4, 0)).await;
            let got: Vec<(Vec<u8>, i64)> =
                records(&rsp.body).into_iter().map(|r| (r.0, r.2)).collect();
            assert_eq!(
                got,
                vec![(b"batch-0".to_vec(), 0), (b"batch-2".to_vec(), 2)]
            );
        }
        let bad = RemotingCommand::request(request::SEND_BATCH_MESSAGE)
            .with_header(&SendMessageRequestHeaderV2::from(send_header(
                "Admin", 0, "", "k",
            )))
            .with_body(vec![0, 0, 0, 9]);
        assert_eq!(
            c.invoke(&addr, bad, TIMEOUT).await.unwrap().code,
            response::MESSAGE_ILLEGAL
        );

        // DELETE_TOPIC_IN_BROKER removes it everywhere: sends to it now need auto-creation, which
        // this header's unknown default topic cannot give.
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER)
                    .with_ext("topic", "Admin"),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        let mut h = send_header("Admin", 0, "T", "k");
        h.default_topic = "NoSuchDefault".into();
        assert_eq!(
            send(&c, &addr, h, b"x", true).await.code,
            response::TOPIC_NOT_EXIST
        );

        // UPDATE_AND_CREATE_SUBSCRIPTIONGROUP with consumeEnable=false: pulls are refused.
        let group = r#"{"groupName":"closed_cg","consumeEnable":false}"#;
        let rsp = c
            .invoke(
                &addr,
                RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                    .with_body(group.into()),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        send_ok(&c, &addr, "Other", 0, "T", b"x").await;
        let mut h = pull_header("Other", 0, 0, "*", 4, 0);
        h.consumer_group = "closed_cg".into();
        let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&h);
        assert_eq!(
            c.invoke(&addr, cmd, TIMEOUT).await.unwrap().code,
            response::NO_PERMISSION
        );

        // Membership: each join notifies every member's connection; leaving notifies the rest.
        let rec1 = std::rc::Rc::new(NotifyRecorder::default());
        let rec2 = std::rc::Rc::new(NotifyRecorder::default());
        let c1 = RemotingClient::with_handler(ClientConfig::default(), rec1.clone());
        let c2 = RemotingClient::with_handler(ClientConfig::default(), rec2.clone());
        assert_eq!(
            c1.invoke(&addr, heartbeat("c1", "members_cg", "Other"), TIMEOUT)
                .await
                .unwrap()
                .code,
            response::SUCCESS
        );
        wait_until("c1 notified of its own join", || {
            rec1.groups.borrow().len() == 1
        })
        .await;
        c2.invoke(&addr, heartbeat("c2", "members_cg", "Other"), TIMEOUT)
            .await
            .unwrap();
        wait_until("both notified of c2's join", || {
            rec1.groups.borrow().len() == 2 && rec2.groups.borrow().len() == 1
        })
        .await;
        assert_eq!(rec1.groups.borrow()[1], "members_cg");
        let list = c
            .invoke(
                &addr,
                RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
                    .with_ext("consumerGroup", "members_cg"),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(list.body, br#"{"consumerIdList":["c1","c2"]}"#);
        let unregister = RemotingCommand::request(request::UNREGISTER_CLIENT)
            .with_ext("clientID", "c2")
            .with_ext("consumerGroup", "members_cg");
        assert_eq!(
            c2.invoke(&addr, unregister, TIMEOUT).await.unwrap().code,
            response::SUCCESS
        );
        wait_until("c1 notified of c2 leaving", || {
            rec1.groups.borrow().len() == 3
        })
        .await;
        // Closing c1's connection removes it from the group.
        c1.close(&addr);
        invoke_until(
            &c,
            &addr,
            "c1 still listed",
            || {
                RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
                    .with_ext("consumerGroup", "members_cg")
            },
            |list| list.code == response::SYSTEM_ERROR,
        )
        .await;
    })
    .unwrap();
    broker.shutdown().expect("shutdown");
    let groups = std::fs::read_to_string(dir.path().join("config/subscriptionGroup.json")).unwrap();
    assert!(groups.contains("closed_cg"));
}

/// Load figures, not a correctness test: `cargo test -p tern-engine --test broker -- --ignored
/// --nocapture send_throughput`. 1 KiB messages, async flush, 4 and 64 concurrent producers sharing
/// one connection (as a RocketMQ client instance does), broker on 2 cores.
#[test]
#[ignore]
fn send_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = broker_config(dir.path());
    config
        .set("mappedFileSizeCommitLog", &(256 << 20).to_string())
        .unwrap();
    config.set("defaultTopicQueueNums", "8").unwrap();
    let broker = Broker::start(config, 2).expect("start");
    let addr = loopback(broker.local_addr());
    tern_runtime::block_on("bench", async move {
        let c = std::rc::Rc::new(client());
        let body = vec![b'x'; 1024];
        send_ok(&c, &addr, "Bench", 0, "T", &body).await;
        for producers in [4usize, 64] {
            let per_producer = 20_000 / producers;
            let started = Instant::now();
            let tasks: Vec<_> = (0..producers)
                .map(|p| {
                    let (c, addr, body) = (c.clone(), addr.clone(), body.clone());
                    tern_runtime::spawn_local(async move {
                        let mut lat = Vec::with_capacity(per_producer);
                        for i in 0..per_producer {
                            let q = ((p + i) % 4) as i32;
                            let t = Instant::now();
                            let rsp =
                                send(&c, &addr, send_header("Bench", q, "T", "k"), &body, true)
                                    .await;
                            assert_eq!(rsp.code, response::SUCCESS);
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                        lat
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await);
            }
            let secs = started.elapsed().as_secs_f64();
            all.sort_unstable();
            let p99 = all[all.len() * 99 / 100];
            let p50 = all[all.len() / 2];
            println!(
                "producers={producers} msgs={} msgs/s={:.0} p50={p50}us p99={p99}us",
                all.len(),
                all.len() as f64 / secs
            );
        }
    })
    .unwrap();
    broker.shutdown().expect("shutdown");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn query_message(
    c: &RemotingClient,
    addr: &str,
    topic: &str,
    key: &str,
    max_num: i32,
    unique: bool,
) -> RemotingCommand {
    let h = QueryMessageRequestHeader {
        topic: topic.into(),
        key: key.into(),
        max_num,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
    };
    let mut cmd = RemotingCommand::request(request::QUERY_MESSAGE).with_header(&h);
    if unique {
        cmd = cmd.with_ext("_UNIQUE_KEY_QUERY", "true");
    }
    c.invoke(addr, cmd, TIMEOUT).await.unwrap()
}

async fn consume_stats(c: &RemotingClient, addr: &str, topic: Option<&str>) -> ConsumeStats {
    let h = GetConsumeStatsRequestHeader {
        consumer_group: GROUP.into(),
        topic: topic.map(str::to_string),
        topic_list: None,
    };
    let cmd = RemotingCommand::request(request::GET_CONSUME_STATS).with_header(&h);
    let rsp = c.invoke(addr, cmd, TIMEOUT).await.unwrap();
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
    decode_consume_stats(&rsp.body).expect("ConsumeStats body")
}

#[test]
fn two_cores_answer_topic_stats_consume_stats_and_key_queries() {
    let TestBroker { dir, broker, addr } = TestBroker::start(2);
    let topic = "Stats";
    // A queue owned by core 1: its pull commits travel to the state core over the mesh.
    let remote_q = (0..4).find(|&q| owner_core(topic, q, 2) == 1).unwrap();
    tern_runtime::block_on("stats", async {
        let c = client();
        let t0 = now_ms();
        // Queue q holds q + 1 messages, keyed "k<q>" and "shared".
        for q in 0..4 {
            for i in 0..=q {
                let mut h = send_header(topic, q, "T", &format!("k{q} shared"));
                if q == 3 && i == 0 {
                    let props = h.properties.take().unwrap();
                    h.properties = Some(format!("{props}UNIQ_KEY\u{1}UNIQ-0001\u{2}"));
                }
                let rsp = send(&c, &addr, h, format!("{q}-{i}").as_bytes(), true).await;
                assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            }
        }
        let t1 = now_ms();

        // GET_TOPIC_STATS_INFO: every queue, from both cores.
        let cmd = RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_header(
            &GetTopicStatsInfoRequestHeader {
                topic: topic.into(),
            },
        );
        let rsp = c.invoke(&addr, cmd, TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let stats = decode_topic_stats(&rsp.body).unwrap();
        assert_eq!(stats.offset_table.len(), 4);
        for (q, (mq, off)) in stats.offset_table.iter().enumerate() {
            assert_eq!(
                (mq.topic.as_str(), mq.broker_name.as_str()),
                (topic, "broker-a")
            );
            assert_eq!(mq.queue_id, q as i32);
            assert_eq!((off.min_offset, off.max_offset), (0, q as i64 + 1));
            assert!((t0..=t1).contains(&off.last_update_timestamp), "{off:?}");
        }
        let cmd = RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_header(
            &GetTopicStatsInfoRequestHeader {
                topic: "NoSuchTopic".into(),
            },
        );
        let rsp = c.invoke(&addr, cmd, TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::TOPIC_NOT_EXIST);

        // GET_CONSUME_STATS: committed offsets from the state core, max offsets from the owners.
        assert!(consume_stats(&c, &addr, None).await.offset_table.is_empty());
        for q in 0..4 {
            if q != remote_q {
                update_offset(&c, &addr, topic, q, q as i64).await;
            }
        }
        // A pull on core 1's queue commits there and forwards the commit to the state core.
        let commit = pull_header(topic, remote_q, 0, "*", 1 | 4, 0);
        let commit = PullMessageRequestHeader {
            commit_offset: remote_q as i64 + 1,
            ..commit
        };
        let (rsp, _) = pull(&c, &addr, commit).await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let want_committed = |q: i32| {
            if q == remote_q {
                q as i64 + 1
            } else {
                q as i64
            }
        };
        let stats = loop {
            let stats = consume_stats(&c, &addr, Some(topic)).await;
            let remote = stats.offset_table.values().nth(remote_q as usize);
            if remote.is_some_and(|w| w.consumer_offset == want_committed(remote_q)) {
                break stats;
            }
            tern_runtime::yield_if_needed().await;
        };
        assert_eq!(stats.offset_table.len(), 4);
        for (q, (mq, w)) in stats.offset_table.iter().enumerate() {
            let q = q as i32;
            assert_eq!(mq.queue_id, q);
            assert_eq!(w.broker_offset, q as i64 + 1);
            assert_eq!(w.consumer_offset, want_committed(q));
            assert_eq!(w.pull_offset, w.consumer_offset);
            if w.consumer_offset > 0 {
                assert!((t0..=t1).contains(&w.last_timestamp), "{w:?}");
            } else {
                assert_eq!(w.last_timestamp, 0);
            }
        }
        let all = consume_stats(&c, &addr, None).await;
        assert_eq!(all, stats, "the group's committed topics are the default");

        // QUERY_MESSAGE: by key over both cores' indexes, limited by maxNum; by unique key.
        let rsp = query_message(&c, &addr, topic, "shared", 32, false).await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let mut bodies: Vec<Vec<u8>> = records(&rsp.body).into_iter().map(|r| r.0).collect();
        bodies.sort();
        assert_eq!(bodies.len(), 10);
        let h: QueryMessageResponseHeader = rsp.decode_header().unwrap();
        assert!((t0..=t1).contains(&h.index_last_update_timestamp));
        assert!(h.index_last_update_phyoffset > 0);
        let rsp = query_message(&c, &addr, topic, "shared", 3, false).await;
        assert_eq!(records(&rsp.body).len(), 3);
        let rsp = query_message(&c, &addr, topic, "k2", 32, false).await;
        let mut bodies: Vec<Vec<u8>> = records(&rsp.body).into_iter().map(|r| r.0).collect();
        bodies.sort();
        assert_eq!(
            bodies,
            vec![b"2-0".to_vec(), b"2-1".to_vec(), b"2-2".to_vec()]
        );
        let rsp = query_message(&c, &addr, topic, "UNIQ-0001", 1, true).await;
        assert_eq!(records(&rsp.body)[0].0, b"3-0");
        let rsp = query_message(&c, &addr, topic, "absent", 32, false).await;
        assert_eq!(rsp.code, response::QUERY_NOT_FOUND);
        assert!(rsp.body.is_empty());

        // GET_CONSUMER_CONNECTION_LIST: the group's members as their heartbeats described them.
        let rsp = c
            .invoke(&addr, heartbeat("client-7", GROUP, topic), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        let ask = |group: &str| {
            RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
                .with_ext("consumerGroup", group)
        };
        let rsp = c.invoke(&addr, ask(GROUP), TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let list: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
        assert_eq!(list["connectionSet"][0]["clientId"], "client-7");
        let client_addr = list["connectionSet"][0]["clientAddr"].as_str().unwrap();
        assert!(client_addr.starts_with("127.0.0.1:"), "{client_addr}");
        assert_eq!(list["messageModel"], "CLUSTERING");
        assert_eq!(list["subscriptionTable"][topic]["subString"], "*");
        let rsp = c.invoke(&addr, ask("offline"), TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::CONSUMER_NOT_ONLINE);

        // GET_BROKER_CONFIG: the settings as properties text.
        let cmd = RemotingCommand::request(request::GET_BROKER_CONFIG);
        let rsp = c.invoke(&addr, cmd, TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        let text = String::from_utf8(rsp.body.clone()).unwrap();
        assert!(text.lines().any(|l| l == "brokerName=broker-a"), "{text}");
        assert!(rsp.ext("version").unwrap().contains("\"counter\""));

        // A last commit on core 1 right before shutdown: the state core persists only after
        // core 1 has drained, so it is not lost.
        let last = PullMessageRequestHeader {
            commit_offset: 0,
            ..pull_header(topic, remote_q, 0, "*", 1 | 4, 0)
        };
        let (rsp, _) = pull(&c, &addr, last).await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
    })
    .unwrap();
    broker.shutdown().expect("shutdown");

    // The commit forwarded from core 1 reached the state core's final persist.
    let broker = Broker::start(broker_config(dir.path()), 2).expect("restart");
    let addr = loopback(broker.local_addr());
    tern_runtime::block_on("stats-restart", async {
        let c = client();
        for q in 0..4 {
            let rsp = query_offset(&c, &addr, topic, q).await;
            let h: QueryConsumerOffsetResponseHeader = rsp.decode_header().unwrap();
            let want = if q == remote_q { 0 } else { q as i64 };
            assert_eq!(h.offset, want, "queue {q}");
        }
    })
    .unwrap();
    broker.shutdown().expect("shutdown");
}
