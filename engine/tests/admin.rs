//! The admin requests mqadmin and stock clients send beyond produce/consume, over loopback against an
//! in-process two-core broker: GET_TOPIC_CONFIG, GET_ALL_CONSUMER_OFFSET,
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG, QUERY_TOPIC_CONSUME_BY_WHO, CLONE_GROUP_OFFSET,
//! INVOKE_BROKER_TO_RESET_OFFSET, DELETE_SUBSCRIPTIONGROUP, GET_BROKER_RUNTIME_INFO (summed over
//! cores) and UPDATE_BROKER_CONFIG (applied live and persisted).

mod support;

use std::path::Path;
use std::time::Duration;

use tern_engine::broker::admin_body::decode_reset_offset;
use tern_engine::broker::routing::owner_core;
use tern_engine::broker::{Broker, BrokerConfig};
use tern_net::body::KvTable;
use tern_net::code::{request, response};
use tern_net::header::{
    QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader, SendMessageRequestHeader,
    SendMessageRequestHeaderV2, UpdateConsumerOffsetRequestHeader,
};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

const TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC: &str = "AdminT";

fn broker_config(dir: &Path) -> BrokerConfig {
    support::broker_config(dir, &[support::SMALL_CONSUME_QUEUE])
}

/// Invokes `cmd` and returns the response.
async fn call(c: &RemotingClient, addr: &str, cmd: RemotingCommand) -> RemotingCommand {
    c.invoke(addr, cmd, TIMEOUT).await.expect("invoke")
}

/// Invokes a request with `fields` as header fields and expects SUCCESS.
async fn call_ok(
    c: &RemotingClient,
    addr: &str,
    code: i32,
    fields: &[(&str, &str)],
) -> RemotingCommand {
    let cmd = fields
        .iter()
        .fold(RemotingCommand::request(code), |cmd, (k, v)| {
            cmd.with_ext(k.to_string(), *v)
        });
    let rsp = call(c, addr, cmd).await;
    assert_eq!(rsp.code, response::SUCCESS, "{code}: {:?}", rsp.remark);
    rsp
}

async fn send(c: &RemotingClient, addr: &str, queue_id: i32, body: Vec<u8>) -> RemotingCommand {
    let h = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: TOPIC.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        born_timestamp: 1_700_000_000_000,
        properties: Some("TAGS\u{1}a\u{2}".into()),
        ..SendMessageRequestHeader::default()
    };
    let cmd = RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_header(&SendMessageRequestHeaderV2::from(h))
        .with_body(body);
    call(c, addr, cmd).await
}

async fn commit(c: &RemotingClient, addr: &str, group: &str, queue_id: i32, offset: i64) {
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: TOPIC.into(),
        queue_id,
        commit_offset: offset,
        broker_name: None,
    };
    let rsp = call(
        c,
        addr,
        RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&h),
    )
    .await;
    assert_eq!(rsp.code, response::SUCCESS);
}

async fn committed(c: &RemotingClient, addr: &str, group: &str, queue_id: i32) -> Option<i64> {
    let h = QueryConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: TOPIC.into(),
        queue_id,
        ..Default::default()
    };
    let cmd = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&h);
    let rsp = call(c, addr, cmd).await;
    (rsp.code == response::SUCCESS).then(|| {
        rsp.decode_header::<QueryConsumerOffsetResponseHeader>()
            .unwrap()
            .offset
    })
}

fn json(rsp: &RemotingCommand) -> serde_json::Value {
    serde_json::from_slice(&rsp.body).expect("JSON body")
}

async fn runtime_info(c: &RemotingClient, addr: &str) -> KvTable {
    let rsp = call_ok(c, addr, request::GET_BROKER_RUNTIME_INFO, &[]).await;
    serde_json::from_slice(&rsp.body).unwrap()
}

#[test]
fn two_cores_answer_group_offset_and_config_admin() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(broker_config(dir.path()), 2).expect("start");
    let addr = support::loopback(broker.local_addr());
    // The topic's queues are spread over both cores.
    let owners: Vec<usize> = (0..4).map(|q| owner_core(TOPIC, q, 2)).collect();
    assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
    let run = tern_runtime::block_on("admin", async move {
        let c = RemotingClient::new(ClientConfig::default());
        for q in 0..4 {
            for _ in 0..3 {
                let rsp = send(&c, &addr, q, vec![b'x'; 100]).await;
                assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
            }
        }

        // GET_TOPIC_CONFIG.
        let rsp = call_ok(&c, &addr, request::GET_TOPIC_CONFIG, &[("topic", TOPIC)]).await;
        let cfg = json(&rsp);
        assert_eq!(cfg["topicName"], TOPIC);
        assert_eq!(cfg["readQueueNums"], 4);
        let cmd = RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", "Nope");
        assert_eq!(call(&c, &addr, cmd).await.code, response::TOPIC_NOT_EXIST);

        // A group with committed offsets, and the whole-table reads.
        let group = r#"{"groupName":"g1"}"#;
        let cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(group.into());
        assert_eq!(call(&c, &addr, cmd).await.code, response::SUCCESS);
        for q in 0..4 {
            commit(&c, &addr, "g1", q, 2).await;
        }
        let rsp = call_ok(&c, &addr, request::GET_ALL_CONSUMER_OFFSET, &[]).await;
        let key = format!("{TOPIC}@g1");
        assert_eq!(json(&rsp)["offsetTable"][&key]["3"], 2);
        let rsp = call_ok(&c, &addr, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[]).await;
        assert_eq!(
            json(&rsp)["subscriptionGroupTable"]["g1"]["groupName"],
            "g1"
        );
        assert!(rsp.ext("totalGroupNum").is_some());

        // QUERY_TOPIC_CONSUME_BY_WHO.
        let rsp = call_ok(
            &c,
            &addr,
            request::QUERY_TOPIC_CONSUME_BY_WHO,
            &[("topic", TOPIC)],
        )
        .await;
        assert_eq!(json(&rsp)["groupList"], serde_json::json!(["g1"]));

        // CLONE_GROUP_OFFSET.
        let fields = [
            ("srcGroup", "g1"),
            ("destGroup", "g2"),
            ("topic", TOPIC),
            ("offline", "true"),
        ];
        call_ok(&c, &addr, request::CLONE_GROUP_OFFSET, &fields).await;
        assert_eq!(committed(&c, &addr, "g2", 1).await, Some(2));

        // INVOKE_BROKER_TO_RESET_OFFSET to the start (timestamp 0) and to the end (-1).
        let fields = [
            ("topic", TOPIC),
            ("group", "g1"),
            ("timestamp", "0"),
            ("isForce", "true"),
        ];
        let rsp = call_ok(&c, &addr, request::INVOKE_BROKER_TO_RESET_OFFSET, &fields).await;
        let table = decode_reset_offset(&rsp.body).unwrap();
        assert_eq!(table.len(), 4);
        assert!(table.values().all(|&o| o == 0), "{table:?}");
        assert_eq!(committed(&c, &addr, "g1", 2).await, Some(0));
        let fields = [
            ("topic", TOPIC),
            ("group", "g1"),
            ("timestamp", "-1"),
            ("isForce", "true"),
        ];
        let rsp = call_ok(&c, &addr, request::INVOKE_BROKER_TO_RESET_OFFSET, &fields).await;
        assert!(decode_reset_offset(&rsp.body)
            .unwrap()
            .values()
            .all(|&o| o == 3));
        assert_eq!(committed(&c, &addr, "g1", 0).await, Some(3));
        let fields = [
            ("topic", TOPIC),
            ("group", "g1"),
            ("queueId", "1"),
            ("offset", "9"),
        ];
        let cmd = fields.iter().fold(
            RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET),
            |cmd, (k, v)| cmd.with_ext(k.to_string(), *v),
        );
        assert_eq!(call(&c, &addr, cmd).await.code, response::SYSTEM_ERROR);
        let cmd = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET)
            .with_ext("topic", TOPIC)
            .with_ext("group", "nobody")
            .with_ext("timestamp", "0");
        let rsp = call(&c, &addr, cmd).await;
        assert_eq!(rsp.code, response::SUBSCRIPTION_GROUP_NOT_EXIST);

        // DELETE_SUBSCRIPTIONGROUP with cleanOffset.
        let fields = [("groupName", "g1"), ("cleanOffset", "true")];
        call_ok(&c, &addr, request::DELETE_SUBSCRIPTIONGROUP, &fields).await;
        let rsp = call_ok(&c, &addr, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[]).await;
        assert!(json(&rsp)["subscriptionGroupTable"].get("g1").is_none());
        let rsp = call_ok(&c, &addr, request::GET_ALL_CONSUMER_OFFSET, &[]).await;
        assert!(json(&rsp)["offsetTable"].get(&key).is_none());
        assert_eq!(committed(&c, &addr, "g2", 0).await, Some(2));

        // GET_BROKER_RUNTIME_INFO sums both cores' puts.
        let info = runtime_info(&c, &addr).await;
        assert_eq!(info.table["msgPutTotalTodayNow"], "12");
        assert_eq!(info.table["putMessageSizeTotal"], "1200");
        assert_eq!(info.table["flushDiskType"], "ASYNC_FLUSH");
        assert_eq!(info.table["commitLogIoMode"], "mmap");
        assert_eq!(info.table["msgGetTotalTodayMorning"], "0");
        assert!(info.table["brokerVersionDesc"].starts_with("Tern"));
        assert!(info.table["commitLogDirCapacity"].starts_with("Total : "));

        // UPDATE_BROKER_CONFIG: a live key changes sends at once on every queue (both cores).
        let update = |text: &str| {
            RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
                .with_body(text.as_bytes().to_vec())
        };
        let rsp = call(
            &c,
            &addr,
            update("maxMessageSize=50\nbrokerName=broker-z\n"),
        )
        .await;
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        assert!(rsp.remark.unwrap_or_default().contains("brokerName"));
        for q in 0..4 {
            let rsp = send(&c, &addr, q, vec![b'y'; 60]).await;
            assert_eq!(rsp.code, response::MESSAGE_ILLEGAL, "queue {q}");
        }
        let rsp = call_ok(&c, &addr, request::GET_BROKER_CONFIG, &[]).await;
        let text = String::from_utf8(rsp.body.clone()).unwrap();
        assert!(text.contains("maxMessageSize=50"), "{text}");
        assert!(rsp.ext("version").unwrap().contains("\"counter\":1"));
        let rsp = call(&c, &addr, update("noSuchKey=1\n")).await;
        assert_eq!(rsp.code, response::SYSTEM_ERROR);
        let rsp = call(&c, &addr, update("brokerConfigPath=/tmp/x\n")).await;
        assert_eq!(rsp.code, response::NO_PERMISSION);
    });
    run.expect("client executor");
    broker.shutdown().unwrap();

    // The update was persisted and loads back.
    let file = dir.path().join("config").join("broker.properties");
    let mut reloaded = BrokerConfig::default();
    let unknown = reloaded.load_file(&file).expect("persisted config loads");
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(reloaded.store.max_message_size, 50);
    assert_eq!(reloaded.broker_name, "broker-z");
}
