//! Transactional messages against the real `tern-broker` binary (2 cores), with Tern's remoting
//! client playing a transactional producer: half messages, END_TRANSACTION, checks back to the
//! producer, the check-max topic, and all of it across SIGTERM and kill -9 restarts.

mod support;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_net::code::{request, response};
use tern_net::header::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader, PullMessageRequestHeader,
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use tern_net::transport::{
    ClientConfig, ConnectionInfo, HandlerFuture, RemotingClient, RequestHandler,
};
use tern_net::RemotingCommand;
use tern_store::message::{sys_flag, StoredMessage};
use tern_store::message_id::MessageId;

use support::{max_offset, pull_header, send_header, split_records, BrokerArgs, Server};

const TIMEOUT: Duration = Duration::from_secs(10);
const PRODUCER_GROUP: &str = "txn_pg";
const COMMIT: i32 = sys_flag::TRANSACTION_COMMIT_TYPE;
const ROLLBACK: i32 = sys_flag::TRANSACTION_ROLLBACK_TYPE;

/// Starts `tern-broker` (2 cores, no nameserver, consumer offsets flushed every 100 ms) on `dir`
/// with extra `--set` entries; returns it and its address.
fn start_broker(dir: &Path, settings: &[&str]) -> (Server, String) {
    let args = BrokerArgs::new("127.0.0.1:1", dir)
        .cores(2)
        .set("flushConsumerOffsetInterval=100");
    let broker = settings.iter().fold(args, |a, s| a.set(s)).start();
    let addr = broker.loopback();
    (broker, addr)
}

/// CHECK_TRANSACTION_STATE requests the producer received: (header, stored record).
#[derive(Default)]
struct Checks {
    seen: RefCell<Vec<(CheckTransactionStateRequestHeader, Vec<u8>)>>,
}

impl RequestHandler for Checks {
    fn handle<'a>(&'a self, req: RemotingCommand, _conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            if req.code == request::CHECK_TRANSACTION_STATE {
                let h = req.decode_header().expect("check header");
                self.seen.borrow_mut().push((h, req.body));
            }
            None
        })
    }
}

/// A producer of [`PRODUCER_GROUP`] that records the checks it is sent.
struct Producer {
    client: RemotingClient,
    checks: Rc<Checks>,
    addr: String,
}

impl Producer {
    async fn connect(addr: &str, client_id: &str) -> Producer {
        let checks = Rc::new(Checks::default());
        let client =
            RemotingClient::with_handler(ClientConfig::default(), Rc::clone(&checks) as Rc<_>);
        let hb = format!(
            r#"{{"clientID":"{client_id}","producerDataSet":[{{"groupName":"{PRODUCER_GROUP}"}}],"consumerDataSet":[]}}"#
        );
        let rsp = client
            .invoke(
                addr,
                RemotingCommand::request(request::HEART_BEAT).with_body(hb.into_bytes()),
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(rsp.code, response::SUCCESS);
        Producer {
            client,
            checks,
            addr: addr.to_string(),
        }
    }

    /// Sends a half message to `(topic, queue)`; returns the send result.
    async fn send_half(&self, topic: &str, queue: i32, uniq: &str) -> SendMessageResponseHeader {
        self.send_half_with(topic, queue, uniq, "").await
    }

    /// [`Producer::send_half`] with `extra` (encoded properties) added to the message's.
    async fn send_half_with(
        &self,
        topic: &str,
        queue: i32,
        uniq: &str,
        extra: &str,
    ) -> SendMessageResponseHeader {
        let properties = format!(
            "KEYS\u{1}k-{uniq}\u{2}TAGS\u{1}TagT\u{2}TRAN_MSG\u{1}true\u{2}\
             PGROUP\u{1}{PRODUCER_GROUP}\u{2}UNIQ_KEY\u{1}{uniq}\u{2}WAIT\u{1}true\u{2}{extra}"
        );
        let header = SendMessageRequestHeader {
            producer_group: PRODUCER_GROUP.into(),
            sys_flag: sys_flag::TRANSACTION_PREPARED_TYPE,
            born_timestamp: now_ms(),
            ..send_header(topic, queue, &properties)
        };
        let cmd = RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_header(&SendMessageRequestHeaderV2::from(header))
            .with_body(format!("body-{uniq}").into_bytes());
        let rsp = self.client.invoke(&self.addr, cmd, TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let h: SendMessageResponseHeader = rsp.decode_header().unwrap();
        assert_eq!(h.queue_id, queue);
        assert_eq!(h.transaction_id.as_deref(), Some(uniq));
        h
    }

    /// END_TRANSACTION for a half sent with result `sent`; returns the response code.
    async fn end(&self, topic: &str, sent: &SendMessageResponseHeader, how: i32) -> i32 {
        let phys = MessageId::parse(&sent.msg_id).unwrap().physical_offset;
        let uniq = sent.transaction_id.clone().unwrap();
        self.end_at(topic, sent.queue_offset, phys, &uniq, how, false)
            .await
    }

    async fn end_at(
        &self,
        topic: &str,
        queue_offset: i64,
        phys: i64,
        uniq: &str,
        how: i32,
        from_check: bool,
    ) -> i32 {
        let h = EndTransactionRequestHeader {
            topic: Some(topic.into()),
            producer_group: PRODUCER_GROUP.into(),
            tran_state_table_offset: queue_offset,
            commit_log_offset: phys,
            commit_or_rollback: how,
            from_transaction_check: Some(from_check),
            msg_id: uniq.into(),
            transaction_id: Some(uniq.into()),
        };
        let cmd = RemotingCommand::request(request::END_TRANSACTION).with_header(&h);
        self.client
            .invoke(&self.addr, cmd, TIMEOUT)
            .await
            .unwrap()
            .code
    }

    /// Waits for a check of transaction `uniq` and answers it with `how`; returns the stored
    /// record the check carried.
    async fn answer_check(&self, topic: &str, uniq: &str, how: i32) -> Vec<u8> {
        let (h, body) = wait_for(&format!("check of {uniq}"), || {
            self.checks
                .seen
                .borrow()
                .iter()
                .find(|(h, _)| h.transaction_id.as_deref() == Some(uniq))
                .cloned()
        })
        .await;
        let code = self
            .end_at(
                topic,
                h.tran_state_table_offset,
                h.commit_log_offset,
                uniq,
                how,
                true,
            )
            .await;
        assert_eq!(code, response::SUCCESS);
        body
    }

    fn checked(&self, uniq: &str) -> usize {
        self.checks
            .seen
            .borrow()
            .iter()
            .filter(|(h, _)| h.transaction_id.as_deref() == Some(uniq))
            .count()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn wait_for<T>(what: &str, probe: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tern_runtime::sleep(Duration::from_millis(10)).await;
    }
}

/// The stored records of `(topic, q)` from offset 0 (empty when none), pulled by group `group`.
async fn pull_all(c: &RemotingClient, addr: &str, topic: &str, q: i32) -> Vec<Vec<u8>> {
    let h = PullMessageRequestHeader {
        consumer_group: "txn_cg".into(),
        ..pull_header(topic, q, 0)
    };
    let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&h);
    let rsp = c.invoke(addr, cmd, TIMEOUT).await.unwrap();
    if rsp.code != response::SUCCESS {
        assert_eq!(rsp.code, response::PULL_NOT_FOUND, "{:?}", rsp.remark);
        return Vec::new();
    }
    split_records(&rsp.body)
}

/// (queue id, half queue offset) of a send result.
fn h_offsets(sent: &SendMessageResponseHeader) -> (i32, i64) {
    (sent.queue_id, sent.queue_offset)
}

fn bodies(records: &[Vec<u8>]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(StoredMessage::decode(r).unwrap().body).into_owned())
        .collect()
}

#[test]
fn halves_are_invisible_until_committed_and_rollbacks_never_show() {
    let dir = tempfile::tempdir().unwrap();
    // No checks during this test.
    let (_broker, addr) = start_broker(dir.path(), &["transactionCheckInterval=600000"]);
    tern_runtime::block_on("txn-basic", async move {
        let p = Producer::connect(&addr, "p1").await;
        let c = &p.client;
        let a = p.send_half("TxnT", 1, "TXA").await;
        assert_eq!(a.queue_offset, 0);
        let b = p.send_half("TxnT", 1, "TXB").await;
        assert_eq!(b.queue_offset, 1, "halves share the half queue");
        // Invisible in the real topic, present in the half queue.
        assert!(pull_all(c, &addr, "TxnT", 1).await.is_empty());
        assert_eq!(max_offset(c, &addr, "TxnT", 1).await, 0);
        assert_eq!(max_offset(c, &addr, "RMQ_SYS_TRANS_HALF_TOPIC", 0).await, 2);

        // Wrong producer group, wrong offsets: refused, nothing happens.
        let phys = MessageId::parse(&a.msg_id).unwrap().physical_offset;
        assert_eq!(
            p.end_at("TxnT", a.queue_offset + 1, phys, "TXA", COMMIT, false)
                .await,
            response::SYSTEM_ERROR
        );
        assert_eq!(
            p.end_at("TxnT", a.queue_offset, phys + 1, "TXA", COMMIT, false)
                .await,
            response::SYSTEM_ERROR
        );

        assert_eq!(p.end("TxnT", &a, COMMIT).await, response::SUCCESS);
        let visible = pull_all(c, &addr, "TxnT", 1).await;
        assert_eq!(bodies(&visible), ["body-TXA"]);
        let m = StoredMessage::decode(&visible[0]).unwrap();
        assert_eq!((m.topic, m.queue_id, m.queue_offset), ("TxnT", 1, 0));
        assert_eq!(
            sys_flag::transaction_type(m.sys_flag),
            sys_flag::TRANSACTION_COMMIT_TYPE
        );
        assert_eq!(m.prepared_transaction_offset, phys);
        assert_eq!(m.tags(), Some("TagT"));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["k-TXA"]);
        assert_eq!(m.uniq_key(), Some("TXA"));
        assert_eq!(m.property("PGROUP"), Some(PRODUCER_GROUP));
        for gone in ["REAL_TOPIC", "REAL_QID", "TRAN_MSG"] {
            assert_eq!(
                m.property(gone),
                None,
                "{gone} left on the committed message"
            );
        }

        // A second END (commit or rollback) for the same half changes nothing.
        assert_eq!(p.end("TxnT", &a, COMMIT).await, response::SUCCESS);
        assert_eq!(p.end("TxnT", &a, ROLLBACK).await, response::SUCCESS);
        assert_eq!(p.end("TxnT", &b, ROLLBACK).await, response::SUCCESS);
        assert_eq!(p.end("TxnT", &b, COMMIT).await, response::SUCCESS);
        assert_eq!(bodies(&pull_all(c, &addr, "TxnT", 1).await), ["body-TXA"]);
        // One op per resolved half.
        assert_eq!(
            max_offset(c, &addr, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0).await,
            2
        );
    })
    .unwrap();
}

#[test]
fn unknown_transactions_are_checked_back_then_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = start_broker(
        dir.path(),
        &[
            "transactionCheckInterval=100",
            "transactionTimeOut=200",
            "transactionCheckMax=2",
        ],
    );
    tern_runtime::block_on("txn-check", async move {
        let p = Producer::connect(&addr, "p1").await;
        let c = &p.client;
        let sent = p.send_half("TxnC", 2, "TXC").await;
        let ignored = p.send_half("TxnC", 2, "TXIGNORED").await;
        // The check carries the half re-encoded with its real topic and queue.
        let record = p.answer_check("TxnC", "TXC", COMMIT).await;
        let m = StoredMessage::decode(&record).unwrap();
        assert_eq!((m.topic, m.queue_id), ("TxnC", 2));
        assert_eq!(m.body, b"body-TXC");
        assert_eq!(h_offsets(&sent), (2, 0));
        assert_eq!(m.property("TRANSACTION_CHECK_TIMES"), Some("1"));
        assert_eq!(bodies(&pull_all(c, &addr, "TxnC", 2).await), ["body-TXC"]);

        // Never answered: checked transactionCheckMax times, then moved to the check-max topic.
        let deadline = Instant::now() + TIMEOUT;
        while max_offset(c, &addr, "TRANS_CHECK_MAX_TIME_TOPIC", 0).await < 1 {
            assert!(Instant::now() < deadline, "never given up");
            tern_runtime::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(p.checked("TXIGNORED"), 2);
        assert_eq!(p.checked("TXC"), 1, "a resolved half is not checked again");
        assert_eq!(h_offsets(&ignored), (2, 1));
        assert_eq!(bodies(&pull_all(c, &addr, "TxnC", 2).await), ["body-TXC"]);
    })
    .unwrap();
}

#[test]
fn resolutions_and_checks_survive_sigterm_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = ["transactionCheckInterval=600000"];
    let checking = ["transactionCheckInterval=100", "transactionTimeOut=100"];

    let (mut broker, addr) = start_broker(dir.path(), &quiet);
    let a2 = addr.clone();
    tern_runtime::block_on("txn-run1", async move {
        let p = Producer::connect(&a2, "p1").await;
        let c = p.send_half("TxnR", 0, "TXCOMMIT").await;
        let r = p.send_half("TxnR", 0, "TXROLLBACK").await;
        p.send_half("TxnR", 0, "TXOPEN").await;
        assert_eq!(p.end("TxnR", &c, COMMIT).await, response::SUCCESS);
        assert_eq!(p.end("TxnR", &r, ROLLBACK).await, response::SUCCESS);
    })
    .unwrap();
    broker.sigterm();

    // After a clean restart only the open transaction is checked.
    let (mut broker, addr) = start_broker(dir.path(), &checking);
    let a2 = addr.clone();
    tern_runtime::block_on("txn-run2", async move {
        let p = Producer::connect(&a2, "p2").await;
        p.answer_check("TxnR", "TXOPEN", COMMIT).await;
        assert_eq!(
            bodies(&pull_all(&p.client, &a2, "TxnR", 0).await),
            ["body-TXCOMMIT", "body-TXOPEN"]
        );
        assert_eq!(p.checked("TXCOMMIT") + p.checked("TXROLLBACK"), 0);
        // A later half is checked only once the rounds walked past the resolved ones (whose
        // progress is then persisted within flushConsumerOffsetInterval).
        p.send_half("TxnR", 0, "TXLATE1").await;
        p.answer_check("TxnR", "TXLATE1", ROLLBACK).await;
    })
    .unwrap();
    broker.kill9();

    // After a crash nothing resolved is checked or committed again; new halves still work.
    let (_broker, addr) = start_broker(dir.path(), &checking);
    tern_runtime::block_on("txn-run3", async move {
        let p = Producer::connect(&addr, "p3").await;
        p.send_half("TxnR", 0, "TXLATE2").await;
        p.answer_check("TxnR", "TXLATE2", ROLLBACK).await;
        for done in ["TXCOMMIT", "TXROLLBACK", "TXOPEN", "TXLATE1"] {
            assert_eq!(p.checked(done), 0, "{done} checked again after restart");
        }
        assert_eq!(
            bodies(&pull_all(&p.client, &addr, "TxnR", 0).await),
            ["body-TXCOMMIT", "body-TXOPEN"]
        );
    })
    .unwrap();
}

/// A half sent with `DELAY` is held as any half; once committed, the committed copy goes through
/// the delay path (RocketMQ's schedule hook sees the commit's put) and shows up in its real topic
/// and queue only after the level's delay (level 1: 1 s by default).
#[test]
fn a_committed_delayed_half_is_delivered_after_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = start_broker(dir.path(), &["transactionCheckInterval=600000"]);
    tern_runtime::block_on("txn-delay", async move {
        let p = Producer::connect(&addr, "p1").await;
        let c = &p.client;
        let sent = p.send_half_with("TxnD", 2, "TXD", "DELAY\u{1}1\u{2}").await;
        let committed = now_ms();
        assert_eq!(p.end("TxnD", &sent, COMMIT).await, response::SUCCESS);
        assert!(
            pull_all(c, &addr, "TxnD", 2).await.is_empty(),
            "not before due"
        );
        assert_eq!(max_offset(c, &addr, "SCHEDULE_TOPIC_XXXX", 0).await, 1);
        let deadline = Instant::now() + TIMEOUT;
        let records = loop {
            let r = pull_all(c, &addr, "TxnD", 2).await;
            if !r.is_empty() {
                break r;
            }
            assert!(Instant::now() < deadline, "never delivered");
            tern_runtime::sleep(Duration::from_millis(20)).await;
        };
        assert!(now_ms() - committed >= 1000, "delivered before its delay");
        assert_eq!(bodies(&records), ["body-TXD"]);
        let m = StoredMessage::decode(&records[0]).unwrap();
        assert_eq!((m.topic, m.queue_id), ("TxnD", 2));
        assert_eq!(
            sys_flag::transaction_type(m.sys_flag),
            sys_flag::TRANSACTION_COMMIT_TYPE
        );
        assert_eq!(m.property("DELAY"), None);
        assert_eq!(m.property("TRAN_MSG"), None);
        assert_eq!(m.uniq_key(), Some("TXD"));
    })
    .unwrap();
}
