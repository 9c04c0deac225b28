//! Consumer-side guarantees over loopback against an in-process broker with 2 cores (queues of a
//! topic alternate between cores, so locks and pulls cross the mesh): orderly queue locks with
//! pull refusal and expiry, broadcasting consumers, and redelivery of messages a dead consumer
//! pulled but never committed.

mod support;

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_engine::broker::Broker;
use tern_net::code::{request, response};
use tern_net::header::{
    PullMessageRequestHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    SendMessageRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use tern_net::transport::{
    ClientConfig, ConnectionInfo, HandlerFuture, RemotingClient, RequestHandler,
};
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;

const TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC: &str = "OrderT";

/// A two-core in-process broker on `dir` whose queue locks expire after `lock_ttl_ms`; returns
/// it and its loopback address.
fn start(dir: &Path, lock_ttl_ms: u64) -> (Broker, String) {
    let ttl = lock_ttl_ms.to_string();
    let c = support::broker_config(dir, &[("rebalanceLockMaxLiveTime", &ttl)]);
    let broker = Broker::start(c, 2).expect("start");
    let addr = support::loopback(broker.local_addr());
    (broker, addr)
}

/// Records NOTIFY_CONSUMER_IDS_CHANGED.
#[derive(Default)]
struct Notified(std::cell::Cell<usize>);

impl RequestHandler for Notified {
    fn handle<'a>(&'a self, req: RemotingCommand, _conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            if req.code == request::NOTIFY_CONSUMER_IDS_CHANGED {
                self.0.set(self.0.get() + 1);
            }
            None
        })
    }
}

/// A consumer: its own connection, a client id.
struct Consumer {
    client: RemotingClient,
    notified: Rc<Notified>,
    id: String,
    addr: String,
}

impl Consumer {
    fn new(addr: &str, id: &str) -> Consumer {
        let notified = Rc::new(Notified::default());
        Consumer {
            client: RemotingClient::with_handler(
                ClientConfig::default(),
                Rc::clone(&notified) as Rc<_>,
            ),
            notified,
            id: id.into(),
            addr: addr.into(),
        }
    }

    async fn call(&self, cmd: RemotingCommand) -> RemotingCommand {
        self.client.invoke(&self.addr, cmd, TIMEOUT).await.unwrap()
    }

    async fn heartbeat(&self, group: &str, model: &str) {
        let hb = format!(
            r#"{{"clientID":"{}","producerDataSet":[],"consumerDataSet":[{{"groupName":"{group}",
            "consumeType":"CONSUME_PASSIVELY","messageModel":"{model}","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet":[{{"topic":"{TOPIC}","subString":"*","subVersion":1}}],"unitMode":false}}]}}"#,
            self.id
        );
        let rsp = self
            .call(RemotingCommand::request(request::HEART_BEAT).with_body(hb.into_bytes()))
            .await;
        assert_eq!(rsp.code, response::SUCCESS);
    }

    fn lock_body(&self, group: &str, queues: &[i32]) -> Vec<u8> {
        let mqs: Vec<String> = queues
            .iter()
            .map(|q| format!(r#"{{"topic":"{TOPIC}","brokerName":"broker-a","queueId":{q}}}"#))
            .collect();
        format!(
            r#"{{"consumerGroup":"{group}","clientId":"{}","onlyThisBroker":false,"mqSet":[{}]}}"#,
            self.id,
            mqs.join(",")
        )
        .into_bytes()
    }

    /// LOCK_BATCH_MQ; returns the queue ids locked, sorted.
    async fn lock(&self, group: &str, queues: &[i32]) -> Vec<i32> {
        let cmd = RemotingCommand::request(request::LOCK_BATCH_MQ)
            .with_body(self.lock_body(group, queues));
        let rsp = self.call(cmd).await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let body: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
        let mut ids: Vec<i32> = body["lockOKMQSet"]
            .as_array()
            .unwrap()
            .iter()
            .map(|mq| {
                assert_eq!(mq["topic"], TOPIC);
                mq["queueId"].as_i64().unwrap() as i32
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    async fn unlock(&self, group: &str, queues: &[i32]) {
        let cmd = RemotingCommand::request(request::UNLOCK_BATCH_MQ)
            .with_body(self.lock_body(group, queues));
        assert_eq!(self.call(cmd).await.code, response::SUCCESS);
    }

    /// Pulls `(TOPIC, q)` from `offset` for `group` (no offset commit); (code, bodies).
    async fn pull(&self, group: &str, q: i32, offset: i64) -> (i32, Vec<String>) {
        let h = PullMessageRequestHeader {
            consumer_group: group.into(),
            ..support::pull_header(TOPIC, q, offset)
        };
        let rsp = self
            .call(RemotingCommand::request(request::PULL_MESSAGE).with_header(&h))
            .await;
        let mut bodies = Vec::new();
        let mut rest = &rsp.body[..];
        while rsp.code == response::SUCCESS && !rest.is_empty() {
            let m = StoredMessage::decode(rest).unwrap();
            bodies.push(String::from_utf8_lossy(m.body).into_owned());
            rest = &rest[m.total_size..];
        }
        (rsp.code, bodies)
    }

    async fn commit(&self, group: &str, q: i32, offset: i64) {
        let h = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: TOPIC.into(),
            queue_id: q,
            commit_offset: offset,
            broker_name: None,
        };
        let rsp = self
            .call(RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&h))
            .await;
        assert_eq!(rsp.code, response::SUCCESS);
    }

    /// The committed offset of `(TOPIC, q)` for `group`; `None` when there is none.
    async fn committed(&self, group: &str, q: i32) -> Option<i64> {
        let h = QueryConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: TOPIC.into(),
            queue_id: q,
            set_zero_if_not_found: Some(false),
            ..Default::default()
        };
        let rsp = self
            .call(RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&h))
            .await;
        (rsp.code == response::SUCCESS).then(|| {
            rsp.decode_header::<QueryConsumerOffsetResponseHeader>()
                .unwrap()
                .offset
        })
    }
}

/// Sends `body` to `(TOPIC, q)`.
async fn send(c: &Consumer, q: i32, body: &str) {
    let h = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: TOPIC.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: q,
        properties: Some("TAGS\u{1}T\u{2}".into()),
        ..SendMessageRequestHeader::default()
    };
    let cmd = RemotingCommand::request(request::SEND_MESSAGE)
        .with_header(&h)
        .with_body(body.as_bytes().to_vec());
    let rsp = c.call(cmd).await;
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
}

#[test]
fn queue_locks_refuse_other_clients_pulls_until_unlocked_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(400);
    let (broker, addr) = start(dir.path(), ttl.as_millis() as u64);
    tern_runtime::block_on("locks", async move {
        let a = Consumer::new(&addr, "client-a");
        let b = Consumer::new(&addr, "client-b");
        for q in 0..3 {
            send(&a, q, &format!("m{q}")).await;
        }
        assert_eq!(a.lock("og", &[0, 1]).await, [0, 1]);
        // Queue 1 is taken: b gets only the free one.
        assert_eq!(b.lock("og", &[1, 2]).await, [2]);
        for q in [0, 1] {
            assert_eq!(a.pull("og", q, 0).await.0, response::SUCCESS);
            assert_eq!(b.pull("og", q, 0).await.0, response::NO_PERMISSION);
        }
        assert_eq!(
            b.pull("og", 2, 0).await,
            (response::SUCCESS, vec!["m2".into()])
        );
        assert_eq!(a.pull("og", 2, 0).await.0, response::NO_PERMISSION);
        // Other groups are not affected.
        assert_eq!(b.pull("other", 1, 0).await.0, response::SUCCESS);
        // Unlocking by a non-holder does nothing; by the holder frees the queue.
        b.unlock("og", &[1]).await;
        assert_eq!(b.pull("og", 1, 0).await.0, response::NO_PERMISSION);
        a.unlock("og", &[1]).await;
        assert_eq!(
            b.pull("og", 1, 0).await,
            (response::SUCCESS, vec!["m1".into()])
        );
        // Re-lock by a renews; b cannot take it until the lock lives past its ttl unrenewed.
        let renewed = Instant::now();
        assert_eq!(a.lock("og", &[1]).await, [1]);
        assert_eq!(b.pull("og", 1, 0).await.0, response::NO_PERMISSION);
        loop {
            if b.lock("og", &[1]).await == [1] {
                break;
            }
            assert!(renewed.elapsed() < TIMEOUT, "lock never expired");
            tern_runtime::sleep(Duration::from_millis(20)).await;
        }
        assert!(renewed.elapsed() >= ttl, "taken over before expiry");
        assert_eq!(a.pull("og", 1, 0).await.0, response::NO_PERMISSION);
        assert_eq!(b.pull("og", 1, 0).await.0, response::SUCCESS);
    })
    .unwrap();
    broker.shutdown().unwrap();
}

#[test]
fn broadcasting_consumers_each_get_every_message_without_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), 60_000);
    tern_runtime::block_on("broadcast", async move {
        let a = Consumer::new(&addr, "bc-a");
        let b = Consumer::new(&addr, "bc-b");
        a.heartbeat("bg", "BROADCASTING").await;
        b.heartbeat("bg", "BROADCASTING").await;
        for q in 0..4 {
            send(&a, q, &format!("b{q}")).await;
        }
        // Each member reads every queue from its own (client-side) offset.
        for c in [&a, &b] {
            let mut got = Vec::new();
            for q in 0..4 {
                let (code, bodies) = c.pull("bg", q, 0).await;
                assert_eq!(code, response::SUCCESS);
                got.extend(bodies);
            }
            assert_eq!(got, ["b0", "b1", "b2", "b3"]);
        }
        // Nothing was committed on the broker.
        for q in 0..4 {
            assert_eq!(a.committed("bg", q).await, None);
        }
    })
    .unwrap();
    broker.shutdown().unwrap();
}

#[test]
fn messages_a_dead_consumer_never_committed_go_to_another_member() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), 60_000);
    tern_runtime::block_on("redeliver", async move {
        let a = Consumer::new(&addr, "rd-a");
        let b = Consumer::new(&addr, "rd-b");
        a.heartbeat("rg", "CLUSTERING").await;
        b.heartbeat("rg", "CLUSTERING").await;
        for i in 0..4 {
            send(&b, 0, &format!("r{i}")).await;
        }
        // a consumed r0 and committed it, then received r1..r3 and died before committing them.
        assert_eq!(a.committed("rg", 0).await, None);
        let (_, got) = a.pull("rg", 0, 0).await;
        assert_eq!(got, ["r0", "r1", "r2", "r3"]);
        a.commit("rg", 0, 1).await;
        let before = b.notified.0.get();
        drop(a);
        // b is told the group changed and, after rebalancing, owns queue 0 from the committed offset.
        let deadline = Instant::now() + TIMEOUT;
        while b.notified.0.get() == before {
            assert!(Instant::now() < deadline, "no NOTIFY_CONSUMER_IDS_CHANGED");
            tern_runtime::sleep(Duration::from_millis(5)).await;
        }
        let list = b
            .call(
                RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
                    .with_ext("consumerGroup", "rg"),
            )
            .await;
        let ids: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
        assert_eq!(ids["consumerIdList"], serde_json::json!(["rd-b"]));
        let from = b.committed("rg", 0).await.expect("committed offset");
        assert_eq!(from, 1);
        assert_eq!(
            b.pull("rg", 0, from).await,
            (
                response::SUCCESS,
                vec!["r1".into(), "r2".into(), "r3".into()]
            )
        );
    })
    .unwrap();
    broker.shutdown().unwrap();
}
