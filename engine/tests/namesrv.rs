//! The nameserver over real loopback sockets: registration and route lookups through the Tern
//! client, expiry, removal on connection close, bad input, and the real `tern-namesrv` binary.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream as StdStream;
use std::process::Command;
use std::time::{Duration, Instant};

use tern_engine::namesrv::{Namesrv, NamesrvConfig};
use tern_net::body::{
    self, ClusterInfo, KvTable, RegisterBrokerBody, TopicConfig, TopicList, TopicRouteData,
};
use tern_net::code::{request, response};
use tern_net::header::{GetRouteInfoRequestHeader, RegisterBrokerRequestHeader};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

use support::{connect, encode, read_frame, Server, NAMESRV};

const T: Duration = Duration::from_secs(5);
const BROKER_ADDR: &str = "127.0.0.1:10911";

fn config() -> NamesrvConfig {
    NamesrvConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kv_config_path: None,
        ..NamesrvConfig::default()
    }
}

fn register_request(broker_name: &str, topics: &[&str]) -> RemotingCommand {
    let mut body = RegisterBrokerBody::default();
    body.topic_config_serialize_wrapper.data_version.counter = 1;
    for t in topics {
        body.topic_config_serialize_wrapper
            .topic_config_table
            .insert(
                t.to_string(),
                TopicConfig {
                    topic_name: t.to_string(),
                    read_queue_nums: 4,
                    write_queue_nums: 4,
                    ..TopicConfig::default()
                },
            );
    }
    let header = RegisterBrokerRequestHeader {
        broker_name: broker_name.into(),
        broker_addr: BROKER_ADDR.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: "127.0.0.1:10912".into(),
        broker_id: 0,
        compressed: Some(false),
        ..Default::default()
    };
    let mut req = RemotingCommand::request(request::REGISTER_BROKER)
        .with_header(&header)
        .with_body(body::encode(&body));
    req.version = 475; // a RocketMQ 5 broker
    req
}

fn route_request(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_header(
        &GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        },
    )
}

async fn route_code(client: &RemotingClient, addr: &str, topic: &str) -> i32 {
    client
        .invoke(addr, route_request(topic), T)
        .await
        .unwrap()
        .code
}

/// Polls until the topic's route is gone (the observable effect of a broker's removal).
async fn wait_until_no_route(client: &RemotingClient, addr: &str, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while route_code(client, addr, topic).await != response::TOPIC_NOT_EXIST {
        assert!(
            Instant::now() < deadline,
            "route of {topic} never went away"
        );
        tern_runtime::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn registration_is_visible_in_routes_cluster_info_and_topic_lists() {
    let namesrv = Namesrv::start(config()).unwrap();
    let addr = namesrv.local_addr().to_string();
    tern_runtime::block_on("test", async move {
        let broker = RemotingClient::new(ClientConfig::default());
        let resp = broker
            .invoke(&addr, register_request("broker-a", &["TBW102", "T1"]), T)
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);

        let client = RemotingClient::new(ClientConfig::default());
        let resp = client.invoke(&addr, route_request("T1"), T).await.unwrap();
        assert_eq!(resp.code, response::SUCCESS);
        let route: TopicRouteData = body::decode(&resp.body).unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].broker_addrs[&0], BROKER_ADDR);
        assert_eq!(route.broker_datas[0].cluster, "DefaultCluster");
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        // Standard JSON keys, as RocketMQ ≥ 4.9.4 clients expect.
        assert!(String::from_utf8_lossy(&resp.body).contains(r#""brokerAddrs":{"0":"127.0.0.1:10911"}"#));

        let resp = client
            .invoke(&addr, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), T)
            .await
            .unwrap();
        let info: ClusterInfo = body::decode(&resp.body).unwrap();
        assert!(info.cluster_addr_table["DefaultCluster"].contains("broker-a"));
        assert_eq!(info.broker_addr_table["broker-a"].broker_addrs[&0], BROKER_ADDR);

        let resp = client
            .invoke(&addr, RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER), T)
            .await
            .unwrap();
        let topics: TopicList = body::decode(&resp.body).unwrap();
        assert_eq!(topics.topic_list.iter().collect::<Vec<_>>(), ["T1", "TBW102"]);

        let resp = client.invoke(&addr, route_request("nope"), T).await.unwrap();
        assert_eq!(resp.code, response::TOPIC_NOT_EXIST);
        assert_eq!(
            resp.remark.as_deref(),
            Some("No topic route info in name server for the topic: nope\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.")
        );

        // KV config round trip, and REGISTER_BROKER then returns the ORDER_TOPIC_CONFIG table.
        let put = RemotingCommand::request(request::PUT_KV_CONFIG)
            .with_ext("namespace", "ORDER_TOPIC_CONFIG")
            .with_ext("key", "T1")
            .with_ext("value", "broker-a:4");
        assert_eq!(client.invoke(&addr, put, T).await.unwrap().code, response::SUCCESS);
        let get = RemotingCommand::request(request::GET_KV_CONFIG)
            .with_ext("namespace", "ORDER_TOPIC_CONFIG")
            .with_ext("key", "T1");
        let resp = client.invoke(&addr, get, T).await.unwrap();
        assert_eq!(resp.ext("value"), Some("broker-a:4"));
        let resp = broker
            .invoke(&addr, register_request("broker-a", &["TBW102", "T1"]), T)
            .await
            .unwrap();
        let table: KvTable = body::decode(&resp.body).unwrap();
        assert_eq!(table.table["T1"], "broker-a:4");

        // Unregistering removes the routes.
        let unregister = RemotingCommand::request(request::UNREGISTER_BROKER)
            .with_ext("brokerName", "broker-a")
            .with_ext("brokerAddr", BROKER_ADDR)
            .with_ext("clusterName", "DefaultCluster")
            .with_ext("brokerId", "0");
        assert_eq!(broker.invoke(&addr, unregister, T).await.unwrap().code, response::SUCCESS);
        assert_eq!(route_code(&client, &addr, "T1").await, response::TOPIC_NOT_EXIST);
    })
    .unwrap();
    namesrv.stop().unwrap();
}

#[test]
fn silent_broker_expires() {
    let namesrv = Namesrv::start(NamesrvConfig {
        broker_expiry: Duration::from_millis(200),
        scan_interval: Duration::from_millis(20),
        ..config()
    })
    .unwrap();
    let addr = namesrv.local_addr().to_string();
    tern_runtime::block_on("test", async move {
        // The broker's connection stays open: only expiry can remove it.
        let broker = RemotingClient::new(ClientConfig::default());
        let resp = broker
            .invoke(&addr, register_request("broker-a", &["T1", "T2"]), T)
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
        let registered_at = Instant::now();
        assert_eq!(route_code(&broker, &addr, "T1").await, response::SUCCESS);
        wait_until_no_route(&broker, &addr, "T1").await;
        assert!(
            registered_at.elapsed() >= Duration::from_millis(200),
            "expired too early"
        );
        assert!(broker.is_connected(&addr));
    })
    .unwrap();
    namesrv.stop().unwrap();
}

#[test]
fn closing_the_broker_connection_removes_its_routes() {
    let namesrv = Namesrv::start(config()).unwrap();
    let addr = namesrv.local_addr().to_string();
    tern_runtime::block_on("test", async move {
        let broker = RemotingClient::new(ClientConfig::default());
        broker
            .invoke(&addr, register_request("broker-a", &["T1", "T2"]), T)
            .await
            .unwrap();
        let client = RemotingClient::new(ClientConfig::default());
        assert_eq!(route_code(&client, &addr, "T1").await, response::SUCCESS);
        drop(broker);
        wait_until_no_route(&client, &addr, "T1").await;
    })
    .unwrap();
    namesrv.stop().unwrap();
}

fn send(s: &mut StdStream, cmd: &RemotingCommand) {
    s.write_all(&encode(cmd)).unwrap();
}

#[test]
fn bad_input_is_contained_to_its_connection() {
    let namesrv = Namesrv::start(config()).unwrap();
    let addr = namesrv.local_addr();
    let mut good = connect(addr);

    let mut huge = connect(addr);
    huge.write_all(&(64u32 * 1024 * 1024).to_be_bytes())
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        huge.read(&mut buf).unwrap_or(0),
        0,
        "oversized frame did not close the connection"
    );

    let mut bad = connect(addr);
    let header = br#"{"code":105,"opaque":77,"flag":"x","extFields":[1]}"#;
    let mut bytes = ((4 + header.len()) as u32).to_be_bytes().to_vec();
    bytes.extend((header.len() as u32).to_be_bytes());
    bytes.extend(header);
    bad.write_all(&bytes).unwrap();
    let resp = read_frame(&mut bad).unwrap();
    assert_eq!((resp.opaque, resp.code), (77, response::SYSTEM_ERROR));

    let unknown = RemotingCommand::request(31337);
    send(&mut bad, &unknown);
    let resp = read_frame(&mut bad).unwrap();
    assert_eq!(resp.opaque, unknown.opaque);
    assert_eq!(resp.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 31337 not supported")
    );

    // A header missing a required field: SYSTEM_ERROR naming it.
    let no_topic = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC);
    send(&mut bad, &no_topic);
    let resp = read_frame(&mut bad).unwrap();
    assert_eq!(resp.code, response::SYSTEM_ERROR);
    assert!(resp.remark.unwrap().contains("topic"));

    let info = RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO);
    send(&mut good, &info);
    let resp = read_frame(&mut good).unwrap();
    assert_eq!((resp.opaque, resp.code), (info.opaque, response::SUCCESS));
    namesrv.stop().unwrap();
}

#[test]
fn the_binary_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("namesrv.properties");
    std::fs::write(
        &props,
        format!(
            "kvConfigPath={}\nnoSuchKey=1\n",
            dir.path().join("kv.json").display()
        ),
    )
    .unwrap();
    // The default log level: the registration is logged at info.
    let mut cmd = Command::new(NAMESRV);
    cmd.args(["--listen", "127.0.0.1:0", "-c"]).arg(&props);
    let mut namesrv = Server::with_command(cmd, dir.path().join("namesrv.stderr"));
    let addr = namesrv.addr.to_string();
    let line = &namesrv.banner;
    assert!(line.starts_with("tern-namesrv listening on "), "{line}");

    let kv_file = dir.path().join("kv.json");
    let a = addr.clone();
    tern_runtime::block_on("test", async move {
        let client = RemotingClient::new(ClientConfig::default());
        let resp = client
            .invoke(&a, register_request("broker-b", &["TBW102", "X"]), T)
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
        let resp = client.invoke(&a, route_request("TBW102"), T).await.unwrap();
        let route: TopicRouteData = body::decode(&resp.body).unwrap();
        assert_eq!(route.broker_datas[0].broker_name, "broker-b");
        let put = RemotingCommand::request(request::PUT_KV_CONFIG)
            .with_ext("namespace", "ns")
            .with_ext("key", "k")
            .with_ext("value", "v");
        assert_eq!(
            client.invoke(&a, put, T).await.unwrap().code,
            response::SUCCESS
        );
    })
    .unwrap();
    // The KV change was persisted before the response.
    assert!(std::fs::read_to_string(&kv_file)
        .unwrap()
        .contains("\"k\": \"v\""));

    namesrv.sigterm();
    let logs = namesrv.log();
    assert!(
        logs.contains("noSuchKey"),
        "unknown key not reported: {logs}"
    );
    assert!(logs.contains("broker registered"), "{logs}");
}

#[test]
fn register_variants_old_body_crc_and_compressed() {
    let namesrv = Namesrv::start(config()).unwrap();
    let addr = namesrv.local_addr().to_string();
    tern_runtime::block_on("test", async move {
        let client = RemotingClient::new(ClientConfig::default());
        // A pre-3.0.11 broker sends a bare TopicConfigSerializeWrapper.
        let mut req = register_request("broker-old", &["A", "B"]);
        let body: RegisterBrokerBody = body::decode(&req.body).unwrap();
        req.body = body::encode(&body.topic_config_serialize_wrapper);
        req.version = 0;
        assert_eq!(
            client.invoke(&addr, req, T).await.unwrap().code,
            response::SUCCESS
        );
        assert_eq!(route_code(&client, &addr, "A").await, response::SUCCESS);

        let req = register_request("broker-crc", &["C", "D"]);
        let crc = (crc32fast::hash(&req.body) & 0x7FFF_FFFF) as i32;
        let good = req.clone().with_ext("bodyCrc32", crc.to_string());
        assert_eq!(
            client.invoke(&addr, good, T).await.unwrap().code,
            response::SUCCESS
        );
        let bad = req.with_ext("bodyCrc32", (crc ^ 1).to_string());
        let resp = client.invoke(&addr, bad, T).await.unwrap();
        assert_eq!(
            (resp.code, resp.remark.as_deref()),
            (response::SYSTEM_ERROR, Some("crc32 not match"))
        );

        let compressed = register_request("broker-z", &["E", "F"]).with_ext("compressed", "true");
        let resp = client.invoke(&addr, compressed, T).await.unwrap();
        assert_eq!(resp.code, response::SYSTEM_ERROR);
        assert!(resp.remark.unwrap().contains("compressed"));
        assert_eq!(
            route_code(&client, &addr, "E").await,
            response::TOPIC_NOT_EXIST
        );
    })
    .unwrap();
    namesrv.stop().unwrap();
}
