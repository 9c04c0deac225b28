//! The real `tern-perf` binary against an in-process nameserver and broker on loopback: a producer
//! run routed through the nameserver, a batch run straight to the broker, and a consumer run that
//! reads what they stored.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tern_engine::broker::{Broker, BrokerConfig};
use tern_engine::namesrv::{Namesrv, NamesrvConfig};
use tern_net::code::{request, response};
use tern_net::header::GetRouteInfoRequestHeader;
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

fn loopback(addr: SocketAddr) -> String {
    format!("127.0.0.1:{}", addr.port())
}

fn start_namesrv() -> Namesrv {
    let config = NamesrvConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        kv_config_path: None,
        ..NamesrvConfig::default()
    };
    Namesrv::start(config).expect("namesrv")
}

fn start_broker(dir: &Path, namesrv: &str) -> Broker {
    let mut c = BrokerConfig::default();
    for (k, v) in [
        ("storePathRootDir", dir.display().to_string()),
        ("listenPort", "0".into()),
        ("brokerIP1", "127.0.0.1".into()),
        ("namesrvAddr", namesrv.into()),
        ("mappedFileSizeCommitLog", (64 << 20).to_string()),
        ("defaultTopicQueueNums", "4".into()),
    ] {
        c.set(k, &v).expect("broker setting");
    }
    Broker::start(c, 1).expect("broker")
}

/// Waits until the broker's registration made TBW102 routable (the producer's fallback route).
fn await_default_route(namesrv: &str) {
    let namesrv = namesrv.to_string();
    tern_runtime::block_on("await-route", async move {
        let client = RemotingClient::new(ClientConfig::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let h = GetRouteInfoRequestHeader {
                topic: "TBW102".into(),
                accept_standard_json_only: Some(true),
            };
            let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_header(&h);
            let rsp = client
                .invoke(&namesrv, cmd, Duration::from_secs(5))
                .await
                .expect("namesrv answers");
            if rsp.code == response::SUCCESS {
                return;
            }
            assert!(Instant::now() < deadline, "broker never registered TBW102");
            tern_runtime::sleep(Duration::from_millis(20)).await;
        }
    })
    .expect("runtime");
}

fn tern_perf(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tern-perf"))
        .args(args)
        .output()
        .expect("run tern-perf");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tern-perf {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `throughput:` line's msgs/s.
fn throughput(report: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix("throughput: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no throughput line in\n{report}"))
}

fn ok_messages(report: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix("messages: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no messages line in\n{report}"))
}

fn assert_percentiles(report: &str) {
    for label in ["p50", "p90", "p99", "p99.9", "p99.99", "max"] {
        assert!(
            report
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{label} "))),
            "no {label} line in\n{report}"
        );
    }
}

#[test]
fn producer_and_consumer_runs_report_throughput_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv();
    let ns = loopback(namesrv.local_addr());
    let broker = start_broker(dir.path(), &ns);
    let broker_addr = loopback(broker.local_addr());
    await_default_route(&ns);
    let hgrm = dir.path().join("send.hgrm");
    let svg = dir.path().join("send.svg");

    // Routed through the nameserver (TBW102 fallback: the topic is auto-created by the sends).
    let report = tern_perf(&[
        "producer",
        "-n",
        &ns,
        "--topic",
        "PerfTopic",
        "--size",
        "256",
        "--threads",
        "2",
        "--connections",
        "2",
        "--concurrency",
        "4",
        "--keys",
        "k1",
        "--duration",
        "1.5",
        "--hist-out",
        hgrm.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_percentiles(&report);
    assert!(throughput(&report) > 0.0, "{report}");
    assert!(report.contains("errors: none"), "{report}");
    assert!(report.contains("msgs/s"), "{report}");
    assert!(
        report.contains(&format!("broker {broker_addr}: ")),
        "runtime info line missing:\n{report}"
    );
    let sent_single = ok_messages(&report);
    let hist = std::fs::read_to_string(&hgrm).unwrap();
    assert!(hist.contains("#[Max     ="), "{hist}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") && plot.contains("<polyline"),
        "{plot}"
    );
    assert!(
        hist.contains(&format!("Total count    = {sent_single:>12}]")),
        "{hist}"
    );

    // Batches straight to the broker, a fixed count that ends in a short batch of 4.
    let report = tern_perf(&[
        "producer",
        "--broker",
        &broker_addr,
        "--topic",
        "PerfTopic",
        "--size",
        "100",
        "--batch",
        "8",
        "--concurrency",
        "2",
        "--count",
        "404",
    ]);
    assert_eq!(ok_messages(&report), 404, "{report}");
    assert!(report.contains("errors: none"), "{report}");

    // The consumer reads back everything stored, then stops at the count.
    let total = sent_single + 404;
    let report = tern_perf(&[
        "consumer",
        "--broker",
        &broker_addr,
        "--topic",
        "PerfTopic",
        "--threads",
        "2",
        "--count",
        &total.to_string(),
        "--duration",
        "20",
    ]);
    assert_percentiles(&report);
    assert_eq!(ok_messages(&report), total, "{report}");
    assert!(throughput(&report) > 0.0, "{report}");

    broker.shutdown().expect("broker shutdown");
    namesrv.stop().expect("namesrv stop");
}

#[test]
fn rate_limited_oneway_run_stays_near_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv();
    let ns = loopback(namesrv.local_addr());
    let broker = start_broker(dir.path(), &ns);
    let broker_addr = loopback(broker.local_addr());
    let report = tern_perf(&[
        "producer",
        "--broker",
        &broker_addr,
        "--topic",
        "RateTopic",
        "--oneway",
        "--rate",
        "500",
        "--concurrency",
        "2",
        "--duration",
        "1",
    ]);
    let sent = ok_messages(&report);
    // 500/s for one second, give or take the schedule's edges.
    assert!((400..=520).contains(&sent), "{report}");
    assert_percentiles(&report);
    broker.shutdown().expect("broker shutdown");
    namesrv.stop().expect("namesrv stop");
}
