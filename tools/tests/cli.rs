//! The real `tern` binary against an in-process nameserver (with a broker registration sent by a
//! remoting client) and against an in-process nameserver plus broker, over loopback sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tern_engine::broker::clients::{ConsumerData, HeartbeatData, SubscriptionData};
use tern_engine::broker::{Broker, BrokerConfig};
use tern_engine::namesrv::{Namesrv, NamesrvConfig};
use tern_net::body::{self, RegisterBrokerBody, TopicConfig};
use tern_net::code::{request, response};
use tern_net::header::{
    GetMaxOffsetResponseHeader, GetMinOffsetResponseHeader, RegisterBrokerRequestHeader,
};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::{frame, RemotingCommand};

const FAKE_BROKER: &str = "127.0.0.1:10911";

/// What one run of `tern` did.
struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

fn tern(namesrv: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(args)
        .args(["-n", namesrv, "--timeout-ms", "3000"])
        .env_remove("NAMESRV_ADDR")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run tern");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(namesrv: &str, args: &[&str]) -> Run {
    let run = tern(namesrv, args);
    assert!(run.ok, "tern {args:?} failed: {}", run.stderr);
    run
}

fn failed(namesrv: &str, args: &[&str]) -> Run {
    let run = tern(namesrv, args);
    assert_eq!(
        run.code,
        Some(1),
        "tern {args:?}: {}{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// Runs `tern` until it succeeds (an observable state reached), at most 15 s.
fn eventually(namesrv: &str, args: &[&str]) -> Run {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let run = tern(namesrv, args);
        if run.ok {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "tern {args:?} kept failing: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn namesrv() -> Namesrv {
    Namesrv::start(NamesrvConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kv_config_path: None,
        ..NamesrvConfig::default()
    })
    .expect("start nameserver")
}

/// Registers a fake broker `broker-a` with `topics` and keeps its connection open (the nameserver
/// drops a broker whose connection closes) until the returned sender is dropped.
fn register_fake_broker(namesrv: SocketAddr, topics: &[&str]) -> mpsc::Sender<()> {
    register_broker_at(namesrv, FAKE_BROKER, topics)
}

/// Registers `broker-a` at `broker_addr` with `topics` (4 queues each), held as
/// [`register_fake_broker`] holds it.
fn register_broker_at(namesrv: SocketAddr, broker_addr: &str, topics: &[&str]) -> mpsc::Sender<()> {
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
        broker_name: "broker-a".into(),
        broker_addr: broker_addr.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: "127.0.0.1:10912".into(),
        broker_id: 0,
        compressed: Some(false),
        ..Default::default()
    };
    let mut req = RemotingCommand::request(request::REGISTER_BROKER)
        .with_header(&header)
        .with_body(body::encode(&body));
    req.version = 475;
    send_and_hold(namesrv.to_string(), req)
}

/// Sends `req` to `addr` from a client on its own thread, asserts SUCCESS, and keeps the
/// connection open (servers forget brokers and consumers whose connection closes) until the
/// returned sender is dropped.
fn send_and_hold(addr: String, req: RemotingCommand) -> mpsc::Sender<()> {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        tern_runtime::block_on("held-client", async move {
            let client = RemotingClient::new(ClientConfig::default());
            let rsp = client.invoke(&addr, req, Duration::from_secs(5)).await;
            let _ = done_tx.send(rsp.map(|r| (r.code, r.remark)).map_err(|e| e.to_string()));
            let _ = tern_runtime::spawn_blocking(move || stop_rx.recv()).await;
        })
        .expect("executor");
    });
    let (code, remark) = done_rx.recv().expect("request ran").expect("answered");
    assert_eq!(code, response::SUCCESS, "{remark:?}");
    stop_tx
}

#[test]
fn nameserver_commands_print_tables_and_json() {
    let ns = namesrv();
    let addr = ns.local_addr().to_string();
    let _broker = register_fake_broker(ns.local_addr(), &["TBW102", "OrderTopic"]);

    let run = ok(&addr, &["topicList"]);
    assert_eq!(run.stdout, "OrderTopic\nTBW102\n");
    assert_eq!(
        ok(&addr, &["topicList", "--json"]).json(),
        serde_json::json!(["OrderTopic", "TBW102"])
    );

    let run = ok(&addr, &["topicRoute", "-t", "OrderTopic"]);
    assert_eq!(
        run.stdout,
        "Broker    Cluster         Addresses          ReadQueues  WriteQueues  Perm\n\
         broker-a  DefaultCluster  0=127.0.0.1:10911  4           4            6\n"
    );
    let route = ok(&addr, &["topicRoute", "-t", "OrderTopic", "--json"]).json();
    assert_eq!(route["brokerDatas"][0]["brokerAddrs"]["0"], FAKE_BROKER);
    assert_eq!(route["queueDatas"][0]["writeQueueNums"], 4);

    let run = ok(&addr, &["clusterList"]);
    assert_eq!(
        run.stdout,
        "Cluster         BrokerName  BrokerId  Address\n\
         DefaultCluster  broker-a    0         127.0.0.1:10911\n"
    );
    let json = ok(&addr, &["clusterList", "--json"]).json();
    assert_eq!(json[0]["Address"], FAKE_BROKER);

    // The first nameserver of the list is down: the second answers.
    let list = format!("127.0.0.1:1;{addr}");
    assert_eq!(ok(&list, &["topicList"]).stdout, "OrderTopic\nTBW102\n");

    // NAMESRV_ADDR stands in for -n.
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("topicList")
        .env("NAMESRV_ADDR", &addr)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OrderTopic\nTBW102\n");

    // KV config round trip.
    ok(
        &addr,
        &[
            "updateKvConfig",
            "-s",
            "ORDER_TOPIC_CONFIG",
            "-k",
            "OrderTopic",
            "-v",
            "broker-a:4",
        ],
    );
    assert_eq!(
        ok(&addr, &["getKvList", "-s", "ORDER_TOPIC_CONFIG"]).stdout,
        "Key         Value\nOrderTopic  broker-a:4\n"
    );
    ok(
        &addr,
        &[
            "deleteKvConfig",
            "-s",
            "ORDER_TOPIC_CONFIG",
            "-k",
            "OrderTopic",
        ],
    );
    let run = failed(&addr, &["getKvList", "-s", "NO_SUCH_NS"]);
    assert_eq!(run.stderr, "tern: namespace NO_SUCH_NS has no KV config\n");

    // Unknown topic and unknown cluster: clear errors, exit status 1.
    let run = failed(&addr, &["topicRoute", "-t", "Nope"]);
    assert_eq!(
        run.stderr,
        "tern: topic Nope does not exist (no route on the nameserver)\n"
    );
    let run = failed(
        &addr,
        &["deleteTopic", "-t", "OrderTopic", "-c", "NoCluster"],
    );
    assert_eq!(run.stderr, "tern: cluster NoCluster is not known\n");
    ns.stop().unwrap();
}

/// A broker that predates GET_TOPIC_STATS_INFO and GET_CONSUME_STATS: it answers those
/// REQUEST_CODE_NOT_SUPPORTED, every queue's offsets as `[0, 7)`, and no committed offsets.
/// Serves connections one after another on its own thread for the life of the test process.
fn old_broker() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            while let Some(req) = read_frame(&mut stream) {
                let rsp = match req.code {
                    request::GET_MIN_OFFSET => {
                        RemotingCommand::response_to(&req, response::SUCCESS, None)
                            .with_header(&GetMinOffsetResponseHeader { offset: 0 })
                    }
                    request::GET_MAX_OFFSET => {
                        RemotingCommand::response_to(&req, response::SUCCESS, None)
                            .with_header(&GetMaxOffsetResponseHeader { offset: 7 })
                    }
                    request::QUERY_CONSUMER_OFFSET => {
                        RemotingCommand::response_to(&req, response::QUERY_NOT_FOUND, None)
                    }
                    _ => RemotingCommand::response_to(
                        &req,
                        response::REQUEST_CODE_NOT_SUPPORTED,
                        None,
                    ),
                };
                let mut out = Vec::new();
                frame::encode(&rsp, &mut out);
                if stream.write_all(&out).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

/// One request frame from `stream`; `None` at end of stream or on a bad frame.
fn read_frame(stream: &mut TcpStream) -> Option<RemotingCommand> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut frame = len.to_vec();
    frame.resize(4 + u32::from_be_bytes(len) as usize, 0);
    stream.read_exact(&mut frame[4..]).ok()?;
    frame::decode(&frame).ok()
}

#[test]
fn old_brokers_are_read_queue_by_queue() {
    let ns = namesrv();
    let n = ns.local_addr().to_string();
    let b = old_broker();
    let _broker = register_broker_at(ns.local_addr(), &b.to_string(), &["TBW102", "OldT"]);

    let status = ok(&n, &["topicStatus", "-t", "OldT", "--json"]).json();
    let rows: Vec<(&str, &str, &str)> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                cell(r, "Queue"),
                cell(r, "MaxOffset"),
                cell(r, "LastUpdated"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("0", "7", "-"),
            ("1", "7", "-"),
            ("2", "7", "-"),
            ("3", "7", "-")
        ]
    );

    let progress = ok(&n, &["consumerProgress", "-g", "G", "-t", "OldT", "--json"]).json();
    assert_eq!(progress["totalLag"], 28);
    assert_eq!(cell(&progress["queues"][3], "ConsumerOffset"), "0");
    // Without a topic there is nothing to fall back on: the refusal names the request.
    let run = failed(&n, &["consumerProgress", "-g", "G"]);
    assert_eq!(
        run.stderr,
        format!("tern: {b} does not support request 208 (GET_CONSUME_STATS) yet\n")
    );
    ns.stop().unwrap();
}

#[test]
fn unreachable_nameserver_fails_cleanly() {
    for args in [
        &["topicList"][..],
        &["clusterList", "--json"],
        &["topicRoute", "-t", "T"],
    ] {
        let run = failed("127.0.0.1:1", args);
        assert!(
            run.stderr
                .starts_with("tern: cannot reach any nameserver of 127.0.0.1:1: cannot connect"),
            "{}",
            run.stderr
        );
    }
    let run = failed("", &["topicList"]);
    assert!(
        run.stderr.contains("no nameserver address"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_with_status_2() {
    let run = tern("127.0.0.1:1", &["updateTopic", "-t", "T"]);
    assert_eq!(run.code, Some(2));
    let run = tern("127.0.0.1:1", &["noSuchCommand"]);
    assert_eq!(run.code, Some(2));
}

/// The `tern-namesrv` binary next to `tern`, when the engine crate's binaries have been built.
fn namesrv_binary() -> Option<std::path::PathBuf> {
    let tern = std::path::Path::new(env!("CARGO_BIN_EXE_tern"));
    let path = tern.parent()?.join("tern-namesrv");
    path.exists().then_some(path)
}

#[test]
fn shutdown_signals_only_the_named_process() {
    let run = tern(
        "127.0.0.1:1",
        &["shutdown", "namesrv", "--pid", "1", "--dry-run"],
    );
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "tern: no tern-namesrv process with pid 1 is running\n"
    );

    let Some(binary) = namesrv_binary() else {
        eprintln!("tern-namesrv not built: skipping the real shutdown");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--kv-config-path"])
        .arg(dir.path().join("kv.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tern-namesrv");
    let pid = child.id().to_string();
    // SIGTERM's default action applies until the process has blocked it on its way to serving:
    // a signal sent right after exec killed it (exit by signal 15) in about one run in ten.
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    // The process may still be exec'ing: wait until it carries its name.
    let listed = eventually(
        "127.0.0.1:1",
        &["shutdown", "namesrv", "--pid", &pid, "--dry-run"],
    );
    assert!(listed.stdout.contains("would signal"), "{}", listed.stdout);
    assert!(child.try_wait().unwrap().is_none(), "a dry run signalled");

    let run = ok("127.0.0.1:1", &["shutdown", "namesrv", "--pid", &pid]);
    assert!(run.stdout.contains("SIGTERM sent"), "{}", run.stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tern-namesrv ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

fn broker_config(dir: &std::path::Path, namesrv: SocketAddr) -> BrokerConfig {
    let mut c = BrokerConfig::default();
    for (k, v) in [
        ("storePathRootDir", dir.display().to_string()),
        ("listenPort", "0".into()),
        ("brokerIP1", "127.0.0.1".into()),
        ("namesrvAddr", namesrv.to_string()),
        ("mappedFileSizeCommitLog", (4 << 20).to_string()),
        ("mappedFileSizeConsumeQueue", (20 * 1000).to_string()),
        ("defaultTopicQueueNums", "4".into()),
    ] {
        c.set(k, &v).unwrap();
    }
    c
}

/// A HEART_BEAT (34) of one consumer of `group` subscribed to `topic` with `tags`.
fn heartbeat(client_id: &str, group: &str, topic: &str, tags: &str) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.to_string(),
        producer_data_set: Vec::new(),
        consumer_data_set: vec![ConsumerData {
            group_name: group.to_string(),
            consume_type: Some("CONSUME_PASSIVELY".into()),
            message_model: Some("CLUSTERING".into()),
            consume_from_where: Some("CONSUME_FROM_LAST_OFFSET".into()),
            subscription_data_set: vec![SubscriptionData {
                topic: topic.to_string(),
                sub_string: tags.to_string(),
                expression_type: Some("TAG".into()),
                sub_version: 1,
            }],
            unit_mode: false,
        }],
    };
    RemotingCommand::request(request::HEART_BEAT)
        .with_body(serde_json::to_vec(&data).expect("heartbeat JSON"))
}

fn cell<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {row}"))
}

#[test]
fn broker_commands_against_a_live_broker() {
    let ns = namesrv();
    let n = ns.local_addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(broker_config(dir.path(), ns.local_addr()), 1).expect("broker");
    let b = format!("127.0.0.1:{}", broker.local_addr().port());
    // Registration runs in the background: wait until the nameserver lists the broker.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !tern(&n, &["clusterList"]).stdout.contains(&b) {
        assert!(Instant::now() < deadline, "the broker never registered");
        std::thread::sleep(Duration::from_millis(50));
    }

    // updateTopic on the cluster's masters; the broker re-registers and the route appears.
    let run = ok(
        &n,
        &[
            "updateTopic",
            "-t",
            "AdminT",
            "-c",
            "DefaultCluster",
            "-r",
            "2",
            "-w",
            "2",
        ],
    );
    assert!(run.stdout.contains(&b), "{}", run.stdout);
    eventually(&n, &["topicRoute", "-t", "AdminT"]);

    // sendMessage, then find it by id, by offset, and by pulling.
    let sent = ok(
        &n,
        &[
            "sendMessage",
            "-t",
            "AdminT",
            "-p",
            "hello tern",
            "-k",
            "k1 k2",
            "-c",
            "tagA",
            "--json",
        ],
    )
    .json();
    let sent = &sent[0];
    assert_eq!(cell(sent, "Queue"), "0");
    assert_eq!(cell(sent, "QueueOffset"), "0");
    let msg_id = cell(sent, "MsgId").to_string();
    let uniq_key = cell(sent, "UniqKey").to_string();
    assert_eq!(uniq_key.len(), 32, "{uniq_key}");

    let by_id = ok(&n, &["queryMsgById", "-i", &msg_id, "--json"]).json();
    assert_eq!(by_id["body"], "hello tern");
    assert_eq!(by_id["tags"], "tagA");
    assert_eq!(by_id["keys"], serde_json::json!(["k1", "k2"]));
    assert_eq!(by_id["topic"], "AdminT");
    assert_eq!(by_id["msgId"], msg_id.as_str());
    let text = ok(&n, &["queryMsgById", "-i", &msg_id]).stdout;
    assert!(text.contains("Body             hello tern\n"), "{text}");

    let by_offset = ok(
        &n,
        &[
            "queryMsgByOffset",
            "-t",
            "AdminT",
            "-b",
            "broker-a",
            "-i",
            "0",
            "-o",
            "0",
            "--json",
        ],
    )
    .json();
    assert_eq!(by_offset["msgId"], msg_id.as_str());
    let run = failed(
        &n,
        &[
            "queryMsgByOffset",
            "-t",
            "AdminT",
            "-b",
            "broker-a",
            "-i",
            "0",
            "-o",
            "5",
        ],
    );
    assert!(
        run.stderr.contains("no message at offset 5"),
        "{}",
        run.stderr
    );

    ok(
        &n,
        &["sendMessage", "-t", "AdminT", "-p", "second", "-i", "1"],
    );
    // A topic nobody created is sent on TBW102's route and the broker creates it.
    let auto = ok(&n, &["sendMessage", "-t", "AutoT", "-p", "auto", "--json"]).json();
    assert_eq!(cell(&auto[0], "Status"), "SEND_OK");
    eventually(&n, &["topicRoute", "-t", "AutoT"]);
    let pulled = ok(&n, &["consumeMessage", "-t", "AdminT", "--json"]).json();
    let bodies: Vec<&str> = pulled
        .as_array()
        .unwrap()
        .iter()
        .map(|r| cell(r, "Body"))
        .collect();
    assert_eq!(bodies, ["hello tern", "second"]);
    let one = ok(&n, &["consumeMessage", "-t", "AdminT", "-c", "1", "--json"]).json();
    assert_eq!(one.as_array().unwrap().len(), 1);

    // queryMsgByKey / queryMsgByUniqueKey through the broker's index.
    let found = ok(&n, &["queryMsgByKey", "-t", "AdminT", "-k", "k2", "--json"]).json();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["msgId"], msg_id.as_str());
    assert_eq!(found[0]["uniqKey"], uniq_key.as_str());
    assert_eq!(found[0]["queueOffset"], 0);
    assert_eq!(found[0]["keys"], serde_json::json!(["k1", "k2"]));
    let stored_at = found[0]["storeTimestamp"].as_i64().unwrap();
    assert!(stored_at > 0);
    let text = ok(&n, &["queryMsgByKey", "-t", "AdminT", "-k", "k1"]).stdout;
    assert!(
        text.starts_with("Broker    Queue  Offset  MsgId  ") && text.contains(&msg_id),
        "{text}"
    );
    assert!(text.contains("tagA  k1 k2  20"), "{text}");
    let run = failed(&n, &["queryMsgByKey", "-t", "AdminT", "-k", "nokey"]);
    assert_eq!(
        run.stderr,
        "tern: no message with key nokey in topic AdminT\n"
    );
    let later = (stored_at + 1).to_string();
    failed(
        &n,
        &["queryMsgByKey", "-t", "AdminT", "-k", "k1", "-b", &later],
    );
    let by_uniq = ok(
        &n,
        &[
            "queryMsgByUniqueKey",
            "-t",
            "AdminT",
            "-i",
            &uniq_key,
            "--json",
        ],
    )
    .json();
    assert_eq!(by_uniq[0]["msgId"], msg_id.as_str());
    let run = failed(
        &n,
        &[
            "queryMsgByUniqueKey",
            "-t",
            "AdminT",
            "-i",
            "00000000000000000000000000000000",
        ],
    );
    assert!(
        run.stderr.contains("no message with unique key"),
        "{}",
        run.stderr
    );

    // topicStatus from GET_TOPIC_STATS_INFO; consumerProgress from GET_CONSUME_STATS;
    // resetOffsetByTime moves the group to the end.
    let status = ok(&n, &["topicStatus", "-t", "AdminT", "--json"]).json();
    let status = status.as_array().unwrap();
    let max: Vec<&str> = status.iter().map(|r| cell(r, "MaxOffset")).collect();
    assert_eq!(max, ["1", "1"]);
    for row in status {
        assert!(cell(row, "LastUpdated").starts_with("20"), "{row}");
    }
    let text = ok(&n, &["topicStatus", "-t", "AdminT"]).stdout;
    assert!(
        text.starts_with("Broker    Queue  MinOffset  MaxOffset  LastUpdated\nbroker-a  0      0          1          20"),
        "{text}"
    );
    let run = failed(&n, &["consumerProgress", "-g", "G1"]);
    assert_eq!(
        run.stderr,
        "tern: consumer group G1 has no consume progress (no committed offset, no subscription)\n"
    );
    let progress = ok(
        &n,
        &["consumerProgress", "-g", "G1", "-t", "AdminT", "--json"],
    )
    .json();
    assert_eq!(progress["totalLag"], 2);
    assert_eq!(progress["consumeTps"], 0.0);
    assert_eq!(cell(&progress["queues"][0], "ConsumerOffset"), "0");
    assert_eq!(cell(&progress["queues"][0], "Lag"), "1");
    let reset = ok(
        &n,
        &[
            "resetOffsetByTime",
            "-g",
            "G1",
            "-t",
            "AdminT",
            "-s",
            "now",
            "--json",
        ],
    )
    .json();
    assert_eq!(cell(&reset[0], "NewOffset"), "1");
    let text = ok(&n, &["consumerProgress", "-g", "G1", "-t", "AdminT"]).stdout;
    assert!(
        text.ends_with("\nConsume TPS: 0.00\nDiff Total: 0\n"),
        "{text}"
    );
    // Without -t: every topic the group has offsets for.
    let text = ok(&n, &["consumerProgress", "-g", "G1"]).stdout;
    assert!(
        text.starts_with("Topic   Broker    Queue  BrokerOffset  ConsumerOffset  Lag  LastTime\nAdminT  broker-a  0      1             1               0    "),
        "{text}"
    );

    // Groups and broker statistics.
    let run = ok(&n, &["updateSubGroup", "-g", "G1", "-b", &b, "-q", "3"]);
    assert!(run.stdout.contains("G1"), "{}", run.stdout);
    let status = ok(&n, &["brokerStatus", "-b", &b, "--json"]).json();
    assert!(status[&b]["brokerVersionDesc"].is_string(), "{status}");
    assert!(ok(&n, &["brokerStatus", "-c", "DefaultCluster"])
        .stdout
        .contains("topicCount"));
    let config = ok(&n, &["getBrokerConfig", "-b", &b, "--json"]).json();
    assert_eq!(config[&b]["brokerName"], "broker-a");
    assert_eq!(config[&b]["defaultTopicQueueNums"], "4");
    let text = ok(&n, &["getBrokerConfig", "-c", "DefaultCluster"]).stdout;
    assert!(text.contains("brokerName  "), "{text}");
    assert!(text.contains(" broker-a\n"), "{text}");

    // consumerConnection: none online, then one consumer's heartbeat (its connection held open).
    let run = failed(&n, &["consumerConnection", "-g", "G1"]);
    assert_eq!(run.stderr, "tern: consumer group G1 has no online member\n");
    let _consumer = send_and_hold(b.clone(), heartbeat("cli-test@1", "G2", "AdminT", "tagA"));
    let text = ok(&n, &["consumerConnection", "-g", "G2"]).stdout;
    assert!(text.starts_with("ClientId    ClientAddr"), "{text}");
    assert!(text.contains("\ncli-test@1  127.0.0.1:"), "{text}");
    assert!(text.contains("\nAdminT  tagA           TAG\n"), "{text}");
    assert!(
        text.ends_with("MessageModel: CLUSTERING\nConsumeFromWhere: CONSUME_FROM_LAST_OFFSET\n"),
        "{text}"
    );
    let conn = ok(&n, &["consumerConnection", "-g", "G2", "--json"]).json();
    assert_eq!(conn["connectionSet"][0]["clientId"], "cli-test@1");
    assert_eq!(conn["subscriptionTable"]["AdminT"]["subString"], "tagA");

    // deleteSubGroup: the broker drops the group (DELETE_SUBSCRIPTIONGROUP).
    let run = ok(&n, &["deleteSubGroup", "-g", "G1", "-b", &b]);
    assert!(run.stdout.contains("G1     deleted"), "{}", run.stdout);
    let run = failed(&n, &["queryMsgById", "-i", "XYZ"]);
    assert!(
        run.stderr.starts_with("tern: bad message id XYZ"),
        "{}",
        run.stderr
    );

    // deleteTopic removes it from the broker and the nameserver.
    let run = ok(&n, &["deleteTopic", "-t", "AdminT", "-c", "DefaultCluster"]);
    assert!(run.stdout.contains("namesrv"), "{}", run.stdout);
    let run = failed(&n, &["topicRoute", "-t", "AdminT"]);
    assert!(
        run.stderr.contains("AdminT does not exist"),
        "{}",
        run.stderr
    );

    broker.shutdown().unwrap();
    ns.stop().unwrap();
}
