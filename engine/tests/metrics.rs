//! The broker's Prometheus endpoint over a real socket: after producing, pulling and committing
//! through the remoting protocol, a scrape of `GET /metrics` shows the same numbers.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use tern_engine::broker::{Broker, BrokerConfig};
use tern_net::code::{request, response};
use tern_net::header::{
    PullMessageRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
    UpdateConsumerOffsetRequestHeader,
};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

use support::free_port;

const TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC: &str = "Metered";
const GROUP: &str = "metrics_cg";

fn config(dir: &Path, metrics_port: u16) -> BrokerConfig {
    let metrics_port = metrics_port.to_string();
    support::broker_config(
        dir,
        &[
            support::SMALL_CONSUME_QUEUE,
            ("metricsPort", &metrics_port),
            // Every acknowledged send waits for a flush round, so the flush counters are exact.
            ("flushDiskType", "SYNC_FLUSH"),
        ],
    )
}

fn send_cmd(body: &[u8]) -> RemotingCommand {
    let h = SendMessageRequestHeader {
        producer_group: "metrics_pg".into(),
        topic: TOPIC.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        born_timestamp: 1_700_000_000_000,
        properties: Some("WAIT\u{1}true\u{2}".into()),
        ..SendMessageRequestHeader::default()
    };
    RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_header(&SendMessageRequestHeaderV2::from(h))
        .with_body(body.to_vec())
}

fn pull_cmd(offset: i64, max: i32) -> RemotingCommand {
    let h = PullMessageRequestHeader {
        consumer_group: GROUP.into(),
        topic: TOPIC.into(),
        queue_id: 0,
        queue_offset: offset,
        max_msg_nums: max,
        sys_flag: 4,
        subscription: Some("*".into()),
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::default()
    };
    RemotingCommand::request(request::PULL_MESSAGE).with_header(&h)
}

fn commit_cmd(offset: i64) -> RemotingCommand {
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: GROUP.into(),
        topic: TOPIC.into(),
        queue_id: 0,
        commit_offset: offset,
        broker_name: None,
    };
    RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&h)
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", addr.port())).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Sum of the samples of `name` whose labels contain every `filter` (e.g. `path="copied"`).
fn sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name && filters.iter().all(|f| series.contains(f)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

#[test]
fn scrape_reports_produce_pull_latency_lag_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path(), free_port()), 2).expect("start");
    let metrics = broker.metrics_addr().expect("metrics endpoint");
    let addr = support::loopback(broker.local_addr());
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| vec![b'x'; 100 + i]).collect();
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    let pulled = tern_runtime::block_on("client", async move {
        let c = RemotingClient::new(ClientConfig::default());
        for b in &bodies {
            let rsp = c.invoke(&addr, send_cmd(b), TIMEOUT).await.unwrap();
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        }
        let rsp = c.invoke(&addr, pull_cmd(0, 3), TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let rsp = c.invoke(&addr, commit_cmd(2), TIMEOUT).await.unwrap();
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        rsp.code
    });
    assert_eq!(pulled.unwrap(), response::SUCCESS);

    let page = http_get(metrics, "/metrics");
    let (head, text) = page.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");

    assert_eq!(
        sum(text, "tern_messages_produced_total", &[]),
        5.0,
        "{text}"
    );
    assert_eq!(
        sum(text, "tern_produced_bytes_total", &[]),
        body_bytes as f64
    );
    assert_eq!(sum(text, "tern_messages_consumed_total", &[]), 3.0);
    assert!(sum(text, "tern_consumed_bytes_total", &[]) > 300.0);
    assert_eq!(sum(text, "tern_send_latency_seconds_count", &[]), 5.0);
    assert_eq!(
        sum(text, "tern_send_latency_seconds_bucket", &["le=\"+Inf\""]),
        5.0
    );
    assert!(sum(text, "tern_send_latency_seconds_sum", &[]) > 0.0);
    assert_eq!(sum(text, "tern_pull_latency_seconds_count", &[]), 1.0);
    let lag = [&*format!("group=\"{GROUP}\""), "topic=\"Metered\""];
    assert_eq!(sum(text, "tern_consumer_lag_messages", &lag), 3.0);
    assert_eq!(
        sum(text, "tern_topic_lag_messages", &["topic=\"Metered\""]),
        3.0
    );
    assert_eq!(
        sum(text, "tern_topic_max_offset", &["topic=\"Metered\""]),
        5.0
    );
    assert!(sum(text, "tern_connections_opened_total", &[]) >= 1.0);
    let rounds = sum(text, "tern_flush_rounds_total", &[]);
    assert!((1.0..=5.0).contains(&rounds), "{rounds}");
    assert_eq!(sum(text, "tern_flush_appends_total", &[]), 5.0);
    assert!(sum(text, "tern_flush_bytes_total", &[]) > body_bytes as f64);
    assert!(sum(text, "tern_flush_seconds_total", &[]) > 0.0);
    assert_eq!(sum(text, "tern_cores", &[]), 2.0);
    let used = sum(text, "tern_disk_used_ratio", &[]);
    assert!((0.0..=1.0).contains(&used), "{used}");

    let other = http_get(metrics, "/nothing");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    broker.shutdown().unwrap();
}

#[test]
fn a_taken_metrics_port_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Broker::start(config(dir.path(), port), 1)
        .err()
        .expect("port in use");
    assert!(err.to_string().contains("metrics port"), "{err}");
}

#[test]
fn namesrv_scrape_counts_registered_brokers_and_topics() {
    use tern_engine::namesrv::{Namesrv, NamesrvConfig};
    let ns = Namesrv::start(NamesrvConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kv_config_path: None,
        metrics_port: free_port(),
        ..NamesrvConfig::default()
    })
    .expect("namesrv");
    let metrics = ns.metrics_addr().expect("metrics endpoint");
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 0);
    c.set(
        "namesrvAddr",
        &format!("127.0.0.1:{}", ns.local_addr().port()),
    )
    .unwrap();
    let broker = Broker::start(c, 1).expect("broker");
    // Registration runs in the background right after start; wait until it is visible.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let text = loop {
        let page = http_get(metrics, "/metrics");
        let text = page.split_once("\r\n\r\n").unwrap().1.to_string();
        if sum(
            &text,
            "tern_namesrv_brokers",
            &["cluster=\"DefaultCluster\""],
        ) == 1.0
        {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(sum(&text, "tern_namesrv_broker_groups", &[]), 1.0);
    assert!(sum(&text, "tern_namesrv_topics", &[]) >= 1.0, "{text}");
    broker.shutdown().unwrap();
    ns.stop().unwrap();
}
