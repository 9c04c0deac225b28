//! End-to-end tests of the Rust client (`tern_net::client`) against the real `tern-namesrv` and
//! `tern-broker` binaries over loopback: producer send modes, push consumers (clustering split,
//! tag filter, broadcasting, redelivery), ordered sends and the pull consumer.
//!
//! Each test starts its own nameserver and broker (1 core, routes re-registered every 300 ms) and
//! uses short client intervals, so assignments and retry routes settle within a second or two.
//! Waits poll observable state (assigned queues, received messages) with a deadline.

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_net::client::{
    ConsumeFromWhere, ConsumeStatus, Message, MessageModel, OrderlyStatus, Producer, PullConsumer,
    PullStatus, PushConsumer, PushConsumerBuilder, SelectByHash, SendStatus,
};
use tern_net::code::{request, response};
use tern_net::header::CreateTopicRequestHeader;
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

use support::{BrokerArgs, Server};

const DEADLINE: Duration = Duration::from_secs(20);
const QUEUES: i32 = 4;

/// A nameserver and a broker, killed on drop.
struct Cluster {
    _ns: Server,
    _broker: Server,
    _dir: tempfile::TempDir,
    ns: String,
    broker: String,
}

/// Starts a one-core broker named `name` storing under `dir`, registered with `ns` every 300 ms.
fn spawn_broker(ns: &str, name: &str, dir: &std::path::Path) -> (Server, String) {
    let broker = BrokerArgs::new(ns, &dir.join(name))
        .cores(1)
        .flag("--broker-name", name)
        .set("registerNameServerPeriod=300")
        .start();
    let addr = broker.loopback();
    (broker, addr)
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ns_proc = support::namesrv();
        let ns = ns_proc.loopback();
        let (broker_proc, broker) = spawn_broker(&ns, "broker-a", dir.path());
        Cluster {
            _ns: ns_proc,
            _broker: broker_proc,
            _dir: dir,
            ns,
            broker,
        }
    }

    /// Creates `topic` with [`QUEUES`] queues and waits until the nameserver routes it.
    async fn create_topic(&self, topic: &str) {
        create_topic_on(&self.broker, topic).await;
        self.wait_route(topic, QUEUES as usize).await;
    }

    /// Waits until the nameserver routes `queues` readable queues of `topic`.
    async fn wait_route(&self, topic: &str, queues: usize) {
        let probe = self.pull_consumer("route_probe").await;
        wait_for("topic route", || async {
            probe
                .fetch_subscribe_message_queues(topic)
                .await
                .is_ok_and(|q| q.len() == queues)
        })
        .await;
    }

    /// A started pull consumer of `group` on this cluster's nameserver.
    async fn pull_consumer(&self, group: &str) -> PullConsumer {
        PullConsumer::builder(group)
            .namesrv_addr(&self.ns)
            .start()
            .await
            .unwrap()
    }

    fn producer(&self, group: &str) -> tern_net::client::ProducerBuilder {
        Producer::builder(group)
            .namesrv_addr(&self.ns)
            .poll_name_server_interval(Duration::from_millis(300))
    }

    fn push(&self, group: &str) -> PushConsumerBuilder {
        PushConsumer::builder(group)
            .namesrv_addr(&self.ns)
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .broker_suspend_max_time(Duration::from_secs(2))
            .rebalance_interval(Duration::from_millis(500))
            .poll_name_server_interval(Duration::from_millis(300))
            .persist_consumer_offset_interval(Duration::from_millis(500))
            .pull_time_delay_when_exception(Duration::from_millis(200))
    }
}

/// Starts a [`Cluster`], creates `topic` on it (routed, see [`Cluster::create_topic`]) and runs
/// `test` with it on a runtime named `name`; panics when `test` does.
fn with_topic<F: Future<Output = ()>>(name: &str, topic: &str, test: impl FnOnce(Cluster) -> F) {
    let cluster = Cluster::start();
    tern_runtime::block_on(name, async move {
        cluster.create_topic(topic).await;
        test(cluster).await;
    })
    .unwrap();
}

/// Creates `topic` with [`QUEUES`] queues on the broker at `broker`.
async fn create_topic_on(broker: &str, topic: &str) {
    let c = RemotingClient::new(ClientConfig::default());
    let create = CreateTopicRequestHeader {
        topic: topic.into(),
        default_topic: "TBW102".into(),
        read_queue_nums: QUEUES,
        write_queue_nums: QUEUES,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        ..Default::default()
    };
    let rsp = c
        .invoke(
            broker,
            RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC).with_header(&create),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
}

/// Polls `cond` every 20 ms until it holds; panics after [`DEADLINE`].
async fn wait_for(what: &str, cond: impl AsyncFnMut() -> bool) {
    support::wait_for(what, DEADLINE, cond).await;
}

/// What an orderly listener saw: (queue id, body, reconsume times), in delivery order.
type SeenInOrder = Rc<RefCell<Vec<(i32, String, i32)>>>;

/// An orderly listener recording into `seen` that suspends the queue once, the first time it
/// gets `suspend_once` (reconsume times 0), and succeeds otherwise.
fn orderly_recorder(
    seen: &SeenInOrder,
    suspend_once: &'static str,
) -> impl Fn(&[tern_net::client::MessageExt]) -> OrderlyStatus {
    let recorded = Rc::clone(seen);
    move |msgs| {
        let m = &msgs[0];
        let body = String::from_utf8_lossy(&m.body).into_owned();
        recorded
            .borrow_mut()
            .push((m.queue_id, body.clone(), m.reconsume_times));
        if body == suspend_once && m.reconsume_times == 0 {
            OrderlyStatus::SuspendCurrentQueueAMoment
        } else {
            OrderlyStatus::Success
        }
    }
}

/// What a listener saw: (consumer index, body, reconsume times, queue id).
type Seen = Rc<RefCell<Vec<(usize, String, i32, i32)>>>;

fn recorder(seen: &Seen, who: usize) -> impl Fn(&[tern_net::client::MessageExt]) -> ConsumeStatus {
    let seen = Rc::clone(seen);
    move |msgs| {
        for m in msgs {
            seen.borrow_mut().push((
                who,
                String::from_utf8_lossy(&m.body).into_owned(),
                m.reconsume_times,
                m.queue_id,
            ));
        }
        ConsumeStatus::ConsumeSuccess
    }
}

#[test]
fn clustering_splits_queues_and_every_send_mode_is_received_once() {
    with_topic("client-split", "Split", |cluster| async move {
        let seen: Seen = Rc::default();
        let mut consumers = Vec::new();
        for who in 0..2 {
            let c = cluster
                .push("g_split")
                .subscribe("Split", "*")
                .consume_message_batch_max_size(4)
                .register_message_listener_concurrently(recorder(&seen, who))
                .start()
                .await
                .unwrap();
            consumers.push(c);
        }
        let split = |c: &PushConsumer| {
            c.assigned_queues()
                .iter()
                .filter(|q| q.topic == "Split")
                .count()
        };
        wait_for("two queues each", || async {
            consumers.iter().all(|c| split(c) == 2)
        })
        .await;

        let producer = cluster.producer("p_split").start().await.unwrap();
        let mut ids = BTreeSet::new();
        for i in 0..4 {
            let r = producer
                .send(Message::new("Split", format!("sync-{i}")).with_keys([format!("k{i}")]))
                .await
                .unwrap();
            assert_eq!(r.status, SendStatus::SendOk);
            assert_eq!(r.msg_id.len(), 32);
            assert!(ids.insert(r.msg_id));
        }
        let pending: Vec<_> = (0..4)
            .map(|i| {
                tern_runtime::spawn_local(
                    producer.send_async(Message::new("Split", format!("async-{i}"))),
                )
            })
            .collect();
        for task in pending {
            let r = task.await.unwrap();
            assert!(ids.insert(r.msg_id));
        }
        for i in 0..4 {
            producer
                .send_oneway(Message::new("Split", format!("oneway-{i}")))
                .await
                .unwrap();
        }
        let batch = (0..4)
            .map(|i| Message::new("Split", format!("batch-{i}")).with_tags("B"))
            .collect();
        let r = producer.send_batch(batch).await.unwrap();
        assert_eq!(r.msg_id.split(',').count(), 4);

        wait_for("16 messages", || async { seen.borrow().len() >= 16 }).await;
        let seen = seen.borrow().clone();
        let bodies: BTreeSet<&str> = seen.iter().map(|(_, b, _, _)| b.as_str()).collect();
        assert_eq!(bodies.len(), 16, "duplicates in {seen:?}");
        assert_eq!(seen.len(), 16);
        // Each consumer got messages only from its own queues, and both got some.
        for (who, c) in consumers.iter().enumerate() {
            let mine: BTreeSet<i32> = c.assigned_queues().iter().map(|q| q.queue_id).collect();
            let got: Vec<_> = seen.iter().filter(|s| s.0 == who).collect();
            assert!(!got.is_empty(), "consumer {who} got nothing");
            assert!(got.iter().all(|s| mine.contains(&s.3)));
        }
        producer.shutdown().await;
        // Shutdown does not wait for the held long polls.
        let started = Instant::now();
        for c in consumers {
            c.shutdown().await;
        }
        assert!(started.elapsed() < Duration::from_millis(1500));
    });
}

#[test]
fn tag_expression_filters_messages() {
    with_topic("client-tags", "Tags", |cluster| async move {
        let seen: Seen = Rc::default();
        let consumer = cluster
            .push("g_tags")
            .subscribe("Tags", "TagA || TagB")
            .register_message_listener_concurrently(recorder(&seen, 0))
            .start()
            .await
            .unwrap();
        let producer = cluster.producer("p_tags").start().await.unwrap();
        let q0 = producer.fetch_publish_queues("Tags").await.unwrap()[0].clone();
        // All on one queue, so the TagC messages are behind none of the awaited ones.
        for (i, tag) in ["TagC", "TagA", "TagC", "TagB", "TagA"].iter().enumerate() {
            let msg = Message::new("Tags", format!("{tag}-{i}")).with_tags(*tag);
            producer.send_to_queue(msg, &q0).await.unwrap();
        }
        wait_for("3 messages", || async { seen.borrow().len() >= 3 }).await;
        let bodies: Vec<String> = seen.borrow().iter().map(|s| s.1.clone()).collect();
        assert_eq!(bodies, ["TagA-1", "TagB-3", "TagA-4"]);
        producer.shutdown().await;
        consumer.shutdown().await;
    });
}

#[test]
fn broadcasting_delivers_every_message_to_each_consumer() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let paths: Vec<_> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
    with_topic("client-broadcast", "Bcast", |cluster| async move {
        let seen: Seen = Rc::default();
        let mut consumers = Vec::new();
        for (who, dir) in paths.iter().enumerate() {
            let c = cluster
                .push("g_bcast")
                .message_model(MessageModel::Broadcasting)
                .offset_store_dir(dir)
                .subscribe("Bcast", "*")
                .register_message_listener_concurrently(recorder(&seen, who))
                .start()
                .await
                .unwrap();
            consumers.push(c);
        }
        wait_for("all queues each", || async {
            consumers
                .iter()
                .all(|c| c.assigned_queues().len() == QUEUES as usize)
        })
        .await;
        let producer = cluster.producer("p_bcast").start().await.unwrap();
        for i in 0..6 {
            producer
                .send(Message::new("Bcast", format!("b-{i}")))
                .await
                .unwrap();
        }
        wait_for("6 messages each", || async { seen.borrow().len() >= 12 }).await;
        for who in 0..2 {
            let got: BTreeSet<String> = seen
                .borrow()
                .iter()
                .filter(|s| s.0 == who)
                .map(|s| s.1.clone())
                .collect();
            assert_eq!(got.len(), 6, "consumer {who}");
        }
        producer.shutdown().await;
        for c in consumers {
            c.shutdown().await;
        }
        // Each consumer's offsets are in its own file: 6 messages consumed in all.
        for dir in &paths {
            let text = std::fs::read_to_string(dir.join("g_bcast").join("offsets.json")).unwrap();
            let file: serde_json::Value = serde_json::from_str(&text).unwrap();
            let total: i64 = file["offsetTable"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["offset"].as_i64().unwrap())
                .sum();
            assert_eq!(total, 6, "{text}");
        }
    });
}

#[test]
fn reconsume_later_redelivers_with_reconsume_times_incremented() {
    with_topic("client-retry", "Retry", |cluster| async move {
        let seen: Seen = Rc::default();
        let recorded = Rc::clone(&seen);
        let consumer = cluster
            .push("g_retry")
            .subscribe("Retry", "*")
            .register_message_listener_concurrently(move |msgs| {
                let m = &msgs[0];
                recorded.borrow_mut().push((
                    0,
                    String::from_utf8_lossy(&m.body).into_owned(),
                    m.reconsume_times,
                    m.queue_id,
                ));
                assert_eq!(
                    m.topic, "Retry",
                    "a retried message shows its original topic"
                );
                if m.reconsume_times == 0 {
                    ConsumeStatus::ReconsumeLater
                } else {
                    ConsumeStatus::ConsumeSuccess
                }
            })
            .start()
            .await
            .unwrap();
        let producer = cluster.producer("p_retry").start().await.unwrap();
        for i in 0..3 {
            producer
                .send(Message::new("Retry", format!("r-{i}")).with_tags("T"))
                .await
                .unwrap();
        }
        wait_for("6 deliveries", || async { seen.borrow().len() >= 6 }).await;
        let mut times: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (_, body, reconsume, _) in seen.borrow().iter() {
            times.entry(body.clone()).or_default().push(*reconsume);
        }
        for i in 0..3 {
            assert_eq!(times[&format!("r-{i}")], [0, 1], "{times:?}");
        }
        producer.shutdown().await;
        consumer.shutdown().await;
    });
}

/// Sends steps `0..steps` of six orders `<prefix>0` .. `<prefix>5` to `topic`, step by step:
/// message `<id>:<step>` (keyed `<id>` when `keyed`) on the queue [`SelectByHash`] picks for the
/// id. Returns (id, queue id) of every send, in order.
async fn send_orders(
    producer: &Producer,
    topic: &str,
    prefix: &str,
    steps: u32,
    keyed: bool,
) -> Vec<(String, i32)> {
    let mut sent = Vec::new();
    for step in 0..steps {
        for order in 0..6 {
            let id = format!("{prefix}{order}");
            let mut msg = Message::new(topic, format!("{id}:{step}"));
            if keyed {
                msg = msg.with_keys([id.as_str()]);
            }
            let r = producer
                .send_select(msg, &SelectByHash, id.as_str())
                .await
                .unwrap();
            sent.push((id, r.queue.queue_id));
        }
    }
    sent
}

#[test]
fn ordered_sends_keep_each_order_on_one_queue_in_order() {
    with_topic("client-order", "Orders", |cluster| async move {
        let producer = cluster.producer("p_order").start().await.unwrap();
        let mut queue_of: BTreeMap<String, i32> = BTreeMap::new();
        for (id, queue) in send_orders(&producer, "Orders", "order-", 5, true).await {
            assert_eq!(*queue_of.entry(id).or_insert(queue), queue);
        }
        producer.shutdown().await;
        // Read every queue back: each order's steps are on its queue, in order.
        let pull = cluster.pull_consumer("g_order").await;
        let mut steps: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for mq in pull.fetch_subscribe_message_queues("Orders").await.unwrap() {
            let r = pull.pull(&mq, "*", 0, 64).await.unwrap();
            for m in r.messages {
                let body = String::from_utf8(m.body).unwrap();
                let (id, step) = body.split_once(':').unwrap();
                assert_eq!(queue_of[id], mq.queue_id, "{body} on the wrong queue");
                steps
                    .entry(id.to_string())
                    .or_default()
                    .push(step.parse().unwrap());
            }
        }
        assert_eq!(steps.len(), 6);
        for (id, s) in steps {
            assert_eq!(s, [0, 1, 2, 3, 4], "{id}");
        }
    });
}

#[test]
fn pull_consumer_pulls_commits_and_a_new_consumer_resumes() {
    with_topic("client-pull", "Pull", |cluster| async move {
        let producer = cluster.producer("p_pull").start().await.unwrap();
        for i in 0..10 {
            let tag = if i % 2 == 0 { "even" } else { "odd" };
            producer
                .send(Message::new("Pull", format!("m-{i}")).with_tags(tag))
                .await
                .unwrap();
        }
        let first = cluster.pull_consumer("g_pull").await;
        let queues = first.fetch_subscribe_message_queues("Pull").await.unwrap();
        assert_eq!(queues.len(), QUEUES as usize);
        let mut total = 0;
        let mut odd = 0;
        for mq in &queues {
            let offset = first.fetch_consume_offset(mq, true).await.unwrap().max(0);
            let r = first.pull(mq, "*", offset, 32).await.unwrap();
            assert_eq!(r.status, PullStatus::Found);
            total += r.messages.len();
            assert_eq!(r.next_begin_offset, r.max_offset);
            let nothing = first.pull(mq, "*", r.next_begin_offset, 32).await.unwrap();
            assert_eq!(nothing.status, PullStatus::NoNewMsg);
            let filtered = first.pull(mq, "odd", offset, 32).await.unwrap();
            assert!(filtered.messages.iter().all(|m| m.tags() == Some("odd")));
            odd += filtered.messages.len();
            first.update_consume_offset(mq, r.next_begin_offset);
        }
        assert_eq!((total, odd), (10, 5));
        first.shutdown().await.unwrap();

        for i in 10..12 {
            producer
                .send(Message::new("Pull", format!("m-{i}")))
                .await
                .unwrap();
        }
        let second = cluster.pull_consumer("g_pull").await;
        let mut resumed = Vec::new();
        for mq in &second.fetch_subscribe_message_queues("Pull").await.unwrap() {
            let offset = second.fetch_consume_offset(mq, true).await.unwrap();
            assert!(offset >= 0);
            let r = second.pull(mq, "*", offset, 32).await.unwrap();
            resumed.extend(
                r.messages
                    .into_iter()
                    .map(|m| String::from_utf8(m.body).unwrap()),
            );
        }
        resumed.sort();
        assert_eq!(resumed, ["m-10", "m-11"]);
        producer.shutdown().await;
        second.shutdown().await.unwrap();
    });
}

#[test]
fn sends_retry_on_another_broker_when_one_dies() {
    let cluster = Cluster::start();
    let (broker_b, addr_b) = spawn_broker(&cluster.ns, "broker-b", cluster._dir.path());
    tern_runtime::block_on("client-failover", async move {
        let mut broker_b = Some(broker_b);
        create_topic_on(&cluster.broker, "Failover").await;
        create_topic_on(&addr_b, "Failover").await;
        cluster.wait_route("Failover", 2 * QUEUES as usize).await;
        let producer = cluster
            .producer("p_failover")
            .send_latency_fault_enable(true)
            .send_msg_timeout(Duration::from_secs(2))
            .start()
            .await
            .unwrap();
        let mut brokers = BTreeSet::new();
        for i in 0..8 {
            let r = producer
                .send(Message::new("Failover", format!("before-{i}")))
                .await
                .unwrap();
            brokers.insert(r.queue.broker_name);
        }
        assert_eq!(brokers.len(), 2, "round robin uses both brokers");
        drop(broker_b.take()); // SIGKILL
        for i in 0..8 {
            let r = producer
                .send(Message::new("Failover", format!("after-{i}")))
                .await
                .unwrap();
            assert_eq!(r.queue.broker_name, "broker-a", "send {i}");
        }
        producer.shutdown().await;
    })
    .unwrap();
}

/// What the orderly stub saw and holds: a nameserver and broker in one process, for the
/// LOCK_BATCH_MQ that Tern's broker does not serve yet.
#[derive(Default)]
struct StubState {
    /// The stub's own address (its route points at itself).
    addr: String,
    client_ids: Vec<String>,
    /// Stored records per queue.
    records: Vec<Vec<Vec<u8>>>,
    /// "lock <queue ids>", "pull <queue id>", "unlock", in arrival order.
    log: Vec<String>,
    /// Committed offsets per queue id.
    committed: BTreeMap<i32, i64>,
    /// When set, the first heartbeat is answered and then the stub asks the client, over the
    /// client's connection, each of these requests; the answers go to `probed`.
    probes: Vec<RemotingCommand>,
    /// (code, remark, body) of each probe's answer, in order.
    probed: Vec<(i32, Option<String>, Vec<u8>)>,
}

struct StubHandler(std::sync::Arc<std::sync::Mutex<StubState>>);

impl StubHandler {
    fn answer(&self, req: &RemotingCommand) -> (RemotingCommand, bool) {
        use tern_net::body::{BrokerData, QueueData, TopicRouteData};
        use tern_net::header::{PullMessageRequestHeader, PullMessageResponseHeader};
        let mut st = self.0.lock().unwrap();
        let ok = |body: Vec<u8>| {
            RemotingCommand::response_to(req, response::SUCCESS, None).with_body(body)
        };
        match req.code {
            request::GET_ROUTEINFO_BY_TOPIC if req.ext("topic") == Some("Ord") => {
                let route = TopicRouteData {
                    broker_datas: vec![BrokerData {
                        broker_addrs: BTreeMap::from([(0, st.addr.clone())]),
                        broker_name: "stub".into(),
                        cluster: "c".into(),
                        ..BrokerData::default()
                    }],
                    queue_datas: vec![QueueData {
                        broker_name: "stub".into(),
                        perm: 6,
                        read_queue_nums: 2,
                        write_queue_nums: 2,
                        topic_sys_flag: 0,
                    }],
                    ..TopicRouteData::default()
                };
                (ok(tern_net::body::encode(&route)), false)
            }
            request::GET_ROUTEINFO_BY_TOPIC => (
                RemotingCommand::response_to(req, response::TOPIC_NOT_EXIST, None),
                false,
            ),
            request::HEART_BEAT => {
                let hb: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                let id = hb["clientID"].as_str().unwrap().to_string();
                if !st.client_ids.contains(&id) {
                    st.client_ids.push(id);
                }
                (ok(Vec::new()), false)
            }
            request::GET_CONSUMER_LIST_BY_GROUP => {
                let body = serde_json::json!({ "consumerIdList": st.client_ids });
                (ok(body.to_string().into_bytes()), false)
            }
            request::QUERY_CONSUMER_OFFSET => (
                RemotingCommand::response_to(req, response::QUERY_NOT_FOUND, None),
                false,
            ),
            request::LOCK_BATCH_MQ | request::UNLOCK_BATCH_MQ => {
                let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                let ids: Vec<String> = body["mqSet"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| q["queueId"].to_string())
                    .collect();
                let verb = if req.code == request::LOCK_BATCH_MQ {
                    "lock"
                } else {
                    "unlock"
                };
                st.log.push(format!("{verb} {}", ids.join(",")));
                let rsp = serde_json::json!({ "lockOKMQSet": body["mqSet"] });
                (ok(rsp.to_string().into_bytes()), false)
            }
            request::PULL_MESSAGE => {
                let h: PullMessageRequestHeader = req.decode_header().unwrap();
                st.log.push(format!("pull {}", h.queue_id));
                let queue = &st.records[h.queue_id as usize];
                let from = h.queue_offset as usize;
                let to = (from + h.max_msg_nums as usize).min(queue.len());
                let header = |next: usize| PullMessageResponseHeader {
                    next_begin_offset: next as i64,
                    max_offset: queue.len() as i64,
                    ..PullMessageResponseHeader::default()
                };
                if from >= queue.len() {
                    let rsp = RemotingCommand::response_to(req, response::PULL_NOT_FOUND, None)
                        .with_header(&header(from));
                    return (rsp, true);
                }
                let body = queue[from..to].concat();
                (ok(body).with_header(&header(to)), false)
            }
            request::UPDATE_CONSUMER_OFFSET => {
                let q: i32 = req.ext("queueId").unwrap().parse().unwrap();
                let o: i64 = req.ext("commitOffset").unwrap().parse().unwrap();
                st.committed.insert(q, o);
                (ok(Vec::new()), false)
            }
            _ => (ok(Vec::new()), false),
        }
    }
}

impl tern_net::transport::RequestHandler for StubHandler {
    fn handle<'a>(
        &'a self,
        req: RemotingCommand,
        conn: &'a tern_net::transport::ConnectionInfo,
    ) -> tern_net::transport::HandlerFuture<'a> {
        Box::pin(async move {
            if req.code == request::HEART_BEAT {
                let probes = std::mem::take(&mut self.0.lock().unwrap().probes);
                if !probes.is_empty() {
                    let (outbound, state) = (conn.outbound(), std::sync::Arc::clone(&self.0));
                    tern_runtime::spawn_local(async move {
                        // Once the client pulls, its queues are assigned.
                        while !state
                            .lock()
                            .unwrap()
                            .log
                            .iter()
                            .any(|l| l.starts_with("pull"))
                        {
                            tern_runtime::sleep(Duration::from_millis(20)).await;
                        }
                        for probe in probes {
                            let rsp = outbound
                                .invoke(probe, Duration::from_secs(5))
                                .await
                                .unwrap();
                            let answer = (rsp.code, rsp.remark.clone(), rsp.body.clone());
                            state.lock().unwrap().probed.push(answer);
                        }
                    })
                    .detach();
                }
            }
            let (rsp, hold) = self.answer(&req);
            if hold {
                // A held long poll, shortened: nothing new will arrive.
                tern_runtime::sleep(Duration::from_millis(50)).await;
            }
            Some(tern_net::transport::Reply::new(rsp))
        })
    }
}

/// Serves [`StubHandler`] over `state` on an ephemeral loopback port, whose address it records
/// in `state` (the stub's route names it); returns the server and that address.
fn start_stub(
    state: &std::sync::Arc<std::sync::Mutex<StubState>>,
) -> (tern_net::transport::Server, String) {
    use tern_net::transport::{RequestHandler, Server, ServerConfig};
    let for_server = std::sync::Arc::clone(state);
    let server = Server::start(
        ServerConfig::new("127.0.0.1:0".parse().unwrap()),
        move |_| Rc::new(StubHandler(std::sync::Arc::clone(&for_server))) as Rc<dyn RequestHandler>,
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", server.local_addr().port());
    state.lock().unwrap().addr = addr.clone();
    (server, addr)
}

/// Stored records `q<queue>-<i>` for queues 0 and 1, five each.
fn stub_records() -> Vec<Vec<Vec<u8>>> {
    use tern_store::message::MessageDraft;
    let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
    (0..2)
        .map(|q| {
            (0..5)
                .map(|i| {
                    let body = format!("q{q}-{i}");
                    let draft = MessageDraft {
                        topic: "Ord",
                        queue_id: q,
                        flag: 0,
                        body: body.as_bytes(),
                        properties: b"TAGS\x01T\x02",
                        sys_flag: 0,
                        born_timestamp: 1,
                        born_host: host,
                        store_host: host,
                        reconsume_times: 0,
                        prepared_transaction_offset: 0,
                    };
                    let mut out = vec![0; draft.stored_len().unwrap()];
                    draft
                        .encode_into(i, q as i64 * 1000 + i, 2, &mut out)
                        .unwrap();
                    out
                })
                .collect()
        })
        .collect()
}

#[test]
fn orderly_listener_locks_queues_and_consumes_each_in_order() {
    use std::sync::{Arc, Mutex};

    let state = Arc::new(Mutex::new(StubState {
        records: stub_records(),
        ..StubState::default()
    }));
    let (server, addr) = start_stub(&state);
    tern_runtime::block_on("client-orderly", async move {
        let seen: SeenInOrder = Rc::default();
        let consumer = PushConsumer::builder("g_orderly")
            .namesrv_addr(&addr)
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .suspend_current_queue_time(Duration::from_millis(100))
            .subscribe("Ord", "*")
            .register_message_listener_orderly(orderly_recorder(&seen, "q0-2"))
            .start()
            .await
            .unwrap();
        wait_for("11 deliveries", || async { seen.borrow().len() >= 11 }).await;
        for q in 0..2 {
            let got: Vec<(String, i32)> = seen
                .borrow()
                .iter()
                .filter(|s| s.0 == q)
                .map(|s| (s.1.clone(), s.2))
                .collect();
            let mut want: Vec<(String, i32)> = (0..5).map(|i| (format!("q{q}-{i}"), 0)).collect();
            if q == 0 {
                want.insert(3, ("q0-2".into(), 1));
            }
            assert_eq!(got, want, "queue {q}");
        }
        consumer.shutdown().await;
    })
    .unwrap();
    server.stop().unwrap();
    let st = state.lock().unwrap();
    let first_lock = st.log.iter().position(|l| l.starts_with("lock")).unwrap();
    let first_pull = st.log.iter().position(|l| l.starts_with("pull")).unwrap();
    assert!(first_lock < first_pull, "{:?}", st.log);
    assert_eq!(st.log[first_lock], "lock 0,1");
    assert!(
        st.log.iter().any(|l| l.starts_with("unlock")),
        "{:?}",
        st.log
    );
    assert_eq!(st.committed, BTreeMap::from([(0, 5), (1, 5)]));
}

#[test]
fn rebalance_when_a_consumer_joins_and_leaves_loses_no_message() {
    with_topic("client-rebalance", "Rebal", |cluster| async move {
        let seen: Seen = Rc::default();
        let start = |who: usize| {
            cluster
                .push("g_rebal")
                .subscribe("Rebal", "*")
                .register_message_listener_concurrently(recorder(&seen, who))
                .start()
        };
        let count = |c: &PushConsumer| {
            c.assigned_queues()
                .iter()
                .filter(|q| q.topic == "Rebal")
                .count()
        };
        let producer = cluster.producer("p_rebal").start().await.unwrap();
        let send_round = |round: usize| {
            let producer = &producer;
            async move {
                for i in 0..8 {
                    producer
                        .send(Message::new("Rebal", format!("{round}-{i}")))
                        .await
                        .unwrap();
                }
            }
        };
        let a = start(0).await.unwrap();
        wait_for("A owns all queues", || async { count(&a) == 4 }).await;
        send_round(0).await;
        // B joins while messages keep coming.
        let b = start(1).await.unwrap();
        send_round(1).await;
        wait_for("an even split", || async {
            count(&a) == 2 && count(&b) == 2
        })
        .await;
        send_round(2).await;
        // A leaves while messages keep coming; B takes its queues over.
        a.shutdown().await;
        send_round(3).await;
        wait_for("B owns all queues", || async { count(&b) == 4 }).await;
        send_round(4).await;
        let all = || {
            seen.borrow()
                .iter()
                .map(|s| s.1.clone())
                .collect::<BTreeSet<String>>()
        };
        wait_for("all 40 messages", || async { all().len() == 40 }).await;
        assert!(seen
            .borrow()
            .iter()
            .any(|s| s.0 == 1 && s.1.starts_with("4-")));
        producer.shutdown().await;
        b.shutdown().await;
    });
}

/// Asks the broker at `broker` to lock every queue of `OrdReal` for `client_id` in `g_ord_real`;
/// returns the queue ids it granted, sorted.
async fn lock_all_as(broker: &str, client_id: &str) -> Vec<i64> {
    let (group, topic) = ("g_ord_real", "OrdReal");
    let mq_set: Vec<serde_json::Value> = (0..QUEUES)
        .map(|q| serde_json::json!({"topic": topic, "brokerName": "broker-a", "queueId": q}))
        .collect();
    let body = serde_json::json!({
        "consumerGroup": group,
        "clientId": client_id,
        "onlyThisBroker": true,
        "mqSet": mq_set,
    });
    let c = RemotingClient::new(ClientConfig::default());
    let rsp = c
        .invoke(
            broker,
            RemotingCommand::request(request::LOCK_BATCH_MQ)
                .with_body(body.to_string().into_bytes()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
    let granted: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
    let mut ids: Vec<i64> = granted["lockOKMQSet"]
        .as_array()
        .map(|a| a.iter().filter_map(|q| q["queueId"].as_i64()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

#[test]
fn orderly_consumer_on_the_real_broker_holds_the_locks_and_keeps_each_queue_in_order() {
    with_topic("client-orderly-real", "OrdReal", |cluster| async move {
        let producer = cluster.producer("p_ord_real").start().await.unwrap();
        let queue_of: BTreeMap<String, i32> = send_orders(&producer, "OrdReal", "o", 4, false)
            .await
            .into_iter()
            .collect();
        producer.shutdown().await;
        // (queue, body, reconsume times) in delivery order.
        let seen: SeenInOrder = Rc::default();
        let consumer = cluster
            .push("g_ord_real")
            .suspend_current_queue_time(Duration::from_millis(100))
            .subscribe("OrdReal", "*")
            .register_message_listener_orderly(orderly_recorder(&seen, "o0:1"))
            .start()
            .await
            .unwrap();
        wait_for("25 deliveries", || async { seen.borrow().len() >= 25 }).await;
        // Per order: steps in order; the suspended step comes again before the next one.
        let mut steps: BTreeMap<String, Vec<(u32, i32)>> = BTreeMap::new();
        for (q, body, times) in seen.borrow().iter() {
            let (id, step) = body.split_once(':').unwrap();
            assert_eq!(queue_of[id], *q, "{body} on the wrong queue");
            steps
                .entry(id.to_string())
                .or_default()
                .push((step.parse().unwrap(), *times));
        }
        assert_eq!(steps.len(), 6);
        for (id, s) in &steps {
            let want: Vec<(u32, i32)> = if id == "o0" {
                vec![(0, 0), (1, 0), (1, 1), (2, 0), (3, 0)]
            } else {
                (0..4).map(|i| (i, 0)).collect()
            };
            assert_eq!(*s, want, "{id}");
        }
        // The broker holds every queue for the consumer: another client is refused them, while
        // the holder itself is granted them again.
        let other = lock_all_as(&cluster.broker, "127.0.0.9@intruder").await;
        assert!(other.is_empty(), "an intruder got {other:?}");
        let mine = lock_all_as(&cluster.broker, consumer.client_id()).await;
        assert_eq!(mine, [0, 1, 2, 3]);
        consumer.shutdown().await;
        // Shutdown unlocks: now the other client gets them.
        let after = lock_all_as(&cluster.broker, "127.0.0.9@intruder").await;
        assert_eq!(after, [0, 1, 2, 3], "the queues stay locked after shutdown");
    });
}

#[test]
fn bodies_over_the_threshold_are_stored_zlib_and_read_back_inflated() {
    use tern_net::header::PullMessageRequestHeader;
    use tern_store::message::{sys_flag, StoredMessage};
    with_topic("client-compress", "Zip", |cluster| async move {
        let big: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 7) as u8).collect();
        let small = b"short body".to_vec();
        let default = cluster.producer("p_zip").start().await.unwrap();
        let off = cluster
            .producer("p_zip_off")
            .compress_msg_body_over_howmuch(usize::MAX)
            .start()
            .await
            .unwrap();
        let mut sent = Vec::new();
        for (producer, body) in [(&default, &big), (&default, &small), (&off, &big)] {
            let r = producer
                .send(Message::new("Zip", body.clone()))
                .await
                .unwrap();
            sent.push(r);
        }
        default.shutdown().await;
        off.shutdown().await;
        // What the broker stored, as any RocketMQ consumer receives it: (sys flag, stored body).
        let raw = RemotingClient::new(ClientConfig::default());
        let mut stored = Vec::new();
        for r in &sent {
            let header = PullMessageRequestHeader {
                consumer_group: "g_zip_raw".into(),
                topic: "Zip".into(),
                queue_id: r.queue.queue_id,
                queue_offset: r.queue_offset,
                max_msg_nums: 1,
                // FLAG_SUBSCRIPTION: the expression comes with the pull (no registered group).
                sys_flag: 4,
                subscription: Some("*".into()),
                ..PullMessageRequestHeader::default()
            };
            let rsp = raw
                .invoke(
                    &cluster.broker,
                    RemotingCommand::request(request::PULL_MESSAGE).with_header(&header),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            let m = StoredMessage::decode(&rsp.body).unwrap();
            stored.push((m.sys_flag, m.body.to_vec()));
        }
        let zlib = sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB_TYPE;
        assert_eq!(
            stored[0].0 & (sys_flag::COMPRESSED | sys_flag::COMPRESSION_TYPE_MASK),
            zlib
        );
        assert!(
            stored[0].1.len() < big.len() / 4,
            "{} bytes stored",
            stored[0].1.len()
        );
        assert_eq!(
            (stored[1].0 & sys_flag::COMPRESSED, &stored[1].1),
            (0, &small)
        );
        assert_eq!(
            (stored[2].0 & sys_flag::COMPRESSED, &stored[2].1),
            (0, &big)
        );
        // Tern's own consumers inflate it.
        let pull = cluster.pull_consumer("g_zip").await;
        let got = pull
            .pull(&sent[0].queue, "*", sent[0].queue_offset, 1)
            .await
            .unwrap();
        assert_eq!(got.status, PullStatus::Found);
        assert_eq!(got.messages[0].body, big);
        assert_eq!(got.messages[0].sys_flag & sys_flag::COMPRESSED, 0);
    });
}

#[test]
fn push_consumer_answers_running_info_and_consume_directly_over_its_connection() {
    use std::sync::{Arc, Mutex};

    let records = stub_records();
    let for_direct = records[0][1].clone();
    let ask = |code: i32, group: &str| {
        RemotingCommand::request(code)
            .with_ext("consumerGroup", group)
            .with_ext("clientId", "whoever")
            .with_ext("jstackEnable", "false")
            .with_ext("msgId", "0A")
            .with_ext("brokerName", "stub")
    };
    let state = Arc::new(Mutex::new(StubState {
        records,
        probes: vec![
            ask(request::GET_CONSUMER_RUNNING_INFO, "g_probe"),
            ask(request::CONSUME_MESSAGE_DIRECTLY, "g_probe").with_body(for_direct),
            ask(request::GET_CONSUMER_RUNNING_INFO, "another_group"),
        ],
        ..StubState::default()
    }));
    let (server, addr) = start_stub(&state);
    let probed = Arc::clone(&state);
    tern_runtime::block_on("client-probe", async move {
        let seen: Rc<RefCell<Vec<(String, i64)>>> = Rc::default();
        let recorded = Rc::clone(&seen);
        let consumer = PushConsumer::builder("g_probe")
            .namesrv_addr(&addr)
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .subscribe("Ord", "*")
            .register_message_listener_concurrently(move |msgs| {
                for m in msgs {
                    let body = String::from_utf8_lossy(&m.body).into_owned();
                    recorded.borrow_mut().push((body, m.queue_offset));
                }
                if msgs[0].body == b"q0-1" {
                    ConsumeStatus::ReconsumeLater
                } else {
                    ConsumeStatus::ConsumeSuccess
                }
            })
            .start()
            .await
            .unwrap();
        wait_for("three answers", || async {
            probed.lock().unwrap().probed.len() == 3
        })
        .await;
        consumer.shutdown().await;
    })
    .unwrap();
    server.stop().unwrap();
    let st = state.lock().unwrap();
    let (code, _, body) = &st.probed[0];
    assert_eq!(*code, response::SUCCESS);
    let text = String::from_utf8(body.clone()).unwrap();
    // fastjson's object-keyed map: the queue object itself is the key.
    assert!(
        text.contains(r#"{"brokerName":"stub","queueId":0,"topic":"Ord"}:{"#),
        "{text}"
    );
    assert!(
        text.starts_with(r#"{"mqPopTable":{},"mqTable":{"#),
        "{text}"
    );
    let props_at = text.find(r#""properties":"#).unwrap();
    let tail: serde_json::Value =
        serde_json::from_str(&format!("{{{}", &text[props_at..])).unwrap();
    assert_eq!(tail["properties"]["consumerGroup"], "g_probe");
    assert_eq!(tail["properties"]["PROP_CONSUMEORDERLY"], "false");
    assert_eq!(tail["properties"]["PROP_CONSUME_TYPE"], "CONSUME_PASSIVELY");
    assert_eq!(
        tail["properties"]["PROP_NAMESERVER_ADDR"],
        format!("{};", st.addr)
    );
    let topics: BTreeSet<&str> = tail["subscriptionSet"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["topic"].as_str())
        .collect();
    assert_eq!(topics, BTreeSet::from(["Ord", "%RETRY%g_probe"]));
    assert!(tail["statusTable"]["Ord"].is_object(), "{text}");

    let (code, _, body) = &st.probed[1];
    assert_eq!(*code, response::SUCCESS);
    let direct: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(direct["consumeResult"], "CR_LATER", "{direct}");
    assert_eq!(direct["order"], false);
    assert_eq!(direct["autoCommit"], true);

    let (code, remark, _) = &st.probed[2];
    assert_eq!(*code, response::SYSTEM_ERROR);
    assert!(
        remark.as_deref().unwrap_or("").contains("another_group"),
        "{remark:?}"
    );
}
