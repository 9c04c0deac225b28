//! The web console in headless Chromium: real tern-namesrv and tern-broker processes, messages
//! produced and consumed with raw remoting requests, then `engine/tests/console/check.mjs`
//! (playwright-core driving Debian's /usr/bin/chromium) loads the page and reports what it shows.
//! The numbers shown must be the broker's own (GET_TOPIC_STATS_INFO, GET_CONSUME_STATS), the key
//! lookup must find the message with its markup-laden key shown as text, and a screenshot is saved
//! under the target dir (`console-screenshot.png`) as a test artifact.
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci` in `engine/tests/console`; `scripts/test.sh`
//! installs them. Missing, the test fails saying so (it never skips).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    connect, free_port, namesrv_and_broker, read_frame, send_header, with_header, Server,
};
use tern_engine::broker::admin_body::{decode_consume_stats, decode_topic_stats};
use tern_net::body::ClusterInfo;
use tern_net::code::{request, response};
use tern_net::header::UpdateConsumerOffsetRequestHeader;
use tern_net::RemotingCommand;

const TOPIC: &str = "ConsoleTopic";
const GROUP: &str = "console_cg";
/// A key with markup in it: the page must show it as text.
const KEY: &str = "<i>order-7</i>";
/// Messages sent per queue (queue id = index).
const PER_QUEUE: [usize; 2] = [5, 3];
/// Offsets committed per queue.
const COMMITTED: [i64; 2] = [2, 1];
const CHECK_TIMEOUT: Duration = Duration::from_secs(40);

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// Fails with what to install when the browser, node or playwright-core is missing.
fn require_tools() {
    let hint = "run scripts/test.sh (it installs them) or: apt-get install -y chromium && \
                npm ci --prefix engine/tests/console";
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing; {hint}"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.map(|o| o.status.success()).unwrap_or(false),
        "node is missing; {hint}"
    );
    assert!(
        console_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in engine/tests/console; {hint}"
    );
}

fn call(s: &mut TcpStream, frame: &[u8]) -> RemotingCommand {
    s.write_all(frame).unwrap();
    read_frame(s).expect("an answer")
}

fn request(code: i32, ext: &[(&str, &str)]) -> Vec<u8> {
    let mut cmd = RemotingCommand::request(code);
    for (k, v) in ext {
        cmd = cmd.with_ext(k.to_string(), *v);
    }
    cmd.opaque = 9;
    support::encode(&cmd)
}

/// Waits until the nameserver lists the broker (the page's cluster panel reads it from there).
fn wait_registered(namesrv: SocketAddr) -> ClusterInfo {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect(namesrv);
        let rsp = call(&mut s, &request(request::GET_BROKER_CLUSTER_INFO, &[]));
        let info: ClusterInfo = tern_net::body::decode(&rsp.body).unwrap_or_default();
        if !info.broker_addr_table.is_empty() {
            return info;
        }
        assert!(Instant::now() < deadline, "broker never registered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A nameserver and a broker registered with it serving metrics and the console on
/// `metrics_port`, logging under `dir`.
fn spawn(dir: &Path, metrics_port: u16) -> (Server, Server) {
    let metrics = format!("metricsPort={metrics_port}");
    namesrv_and_broker(dir, &["defaultTopicQueueNums=4", &metrics])
}

/// Produces [`PER_QUEUE`] messages (the first carries [`KEY`]) and commits [`COMMITTED`].
fn produce_and_consume(broker: SocketAddr) {
    let mut s = connect(broker);
    for (queue, &n) in PER_QUEUE.iter().enumerate() {
        for i in 0..n {
            let props = if queue == 0 && i == 0 {
                format!("TAGS\u{1}t\u{2}KEYS\u{1}{KEY}\u{2}")
            } else {
                "TAGS\u{1}t\u{2}".to_string()
            };
            let h = send_header(TOPIC, queue as i32, &props);
            let body = format!("body {queue}/{i} <b>bold?</b>");
            let rsp = call(
                &mut s,
                &with_header(request::SEND_MESSAGE, &h, body.as_bytes()),
            );
            assert_eq!(rsp.code, response::SUCCESS, "send: {:?}", rsp.remark);
        }
    }
    let rsp = call(&mut s, &support::pull(TOPIC, 0, 0));
    assert_eq!(rsp.code, response::SUCCESS, "pull: {:?}", rsp.remark);
    for (queue, &offset) in COMMITTED.iter().enumerate() {
        let h = UpdateConsumerOffsetRequestHeader {
            consumer_group: GROUP.into(),
            topic: TOPIC.into(),
            queue_id: queue as i32,
            commit_offset: offset,
            broker_name: None,
        };
        let rsp = call(
            &mut s,
            &with_header(request::UPDATE_CONSUMER_OFFSET, &h, b""),
        );
        assert_eq!(rsp.code, response::SUCCESS, "commit: {:?}", rsp.remark);
    }
}

fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// Runs check.mjs; its stdout is one JSON line of what the page shows.
fn run_check(url: &str, screenshot: &Path) -> serde_json::Value {
    let mut child = Command::new("node")
        .arg(console_dir().join("check.mjs"))
        .args([url, &screenshot.display().to_string(), TOPIC, KEY])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let deadline = Instant::now() + CHECK_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("check.mjs took longer than {CHECK_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn console_in_headless_chromium_shows_the_brokers_numbers() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (namesrv, mut broker) = spawn(dir.path(), port);
    let cluster = wait_registered(namesrv.addr);
    produce_and_consume(broker.addr);

    // What the broker itself says, over the remoting protocol.
    let mut s = connect(broker.addr);
    let rsp = call(
        &mut s,
        &request(request::GET_TOPIC_STATS_INFO, &[("topic", TOPIC)]),
    );
    let stats = decode_topic_stats(&rsp.body).unwrap();
    let want_topics: BTreeMap<i32, (i64, i64)> = stats
        .offset_table
        .iter()
        .map(|(mq, o)| (mq.queue_id, (o.min_offset, o.max_offset)))
        .collect();
    assert_eq!(want_topics.get(&0), Some(&(0, 5)));
    let rsp = call(
        &mut s,
        &request(request::GET_CONSUME_STATS, &[("consumerGroup", GROUP)]),
    );
    let consume = decode_consume_stats(&rsp.body).unwrap();
    let want_lag: BTreeMap<i32, i64> = consume
        .offset_table
        .iter()
        .filter(|(mq, _)| mq.topic == TOPIC)
        .map(|(mq, w)| (mq.queue_id, w.broker_offset - w.consumer_offset))
        .collect();
    assert_eq!(want_lag.get(&0), Some(&3));
    assert_eq!(want_lag.get(&1), Some(&2));

    // The endpoints answer JSON, and a bad lookup is a typed 400, not a crash.
    let (head, body) = http_get(port, "/api/message?id=nonsense");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(body.contains("\"error\""), "{body}");
    let (head, _) = http_get(port, "/api/message?key=%zz");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (head, page) = http_get(port, "/");
    assert!(head.contains("text/html"), "{head}");
    assert!(page.contains("Tern console"));

    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .to_path_buf();
    let screenshot = target.join("console-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    let shown = run_check(&format!("http://127.0.0.1:{port}/"), &screenshot);
    eprintln!("page shows: {shown}");

    assert_eq!(shown["pageErrors"], serde_json::json!([]), "{shown}");
    let broker_name = cluster.broker_addr_table.keys().next().unwrap();
    let registered = format!("127.0.0.1:{}", broker.addr.port());
    let brokers = shown["brokers"].as_array().unwrap();
    assert!(
        brokers
            .iter()
            .any(|row| row[1] == broker_name.as_str() && row[3] == registered.as_str()),
        "broker list {brokers:?} lacks {broker_name} at {registered}"
    );

    let shown_topics: BTreeMap<i32, (i64, i64)> = shown["topics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["topic"] == TOPIC)
        .map(|t| {
            let n = |k: &str| t[k].as_i64().unwrap();
            (n("queue") as i32, (n("min"), n("max")))
        })
        .collect();
    assert_eq!(shown_topics, want_topics, "{shown}");

    let shown_lag: BTreeMap<i32, i64> = shown["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["group"] == GROUP && g["topic"] == TOPIC)
        .map(|g| {
            (
                g["queue"].as_i64().unwrap() as i32,
                g["lag"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown_lag, want_lag, "{shown}");

    let lookup = &shown["lookup"];
    let rows = lookup["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{lookup}");
    assert_eq!(rows[0]["keys"], KEY, "the key is shown as text: {lookup}");
    assert_eq!(rows[0]["body"], "body 0/0 <b>bold?</b>", "{lookup}");
    assert_eq!(lookup["injectedElements"], 0, "{lookup}");

    let sent: usize = PER_QUEUE.iter().sum();
    assert!(shown["tps"]["samples"].as_i64().unwrap() >= 2, "{shown}");
    assert_eq!(shown["tps"]["produced"].as_u64(), Some(sent as u64));

    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    eprintln!("screenshot: {}", screenshot.display());
    broker.assert_healthy();
}
