//! Configuration compatibility: the shipped `conf/` layouts and the seed guide's broker file load
//! without unknown keys, and the real `tern-broker` binary applies flag > environment > file >
//! default and warns about unknown keys with their line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tern_engine::broker::config::KeyUse;
use tern_engine::broker::BrokerConfig;
use tern_engine::namesrv::NamesrvConfig;
use tern_engine::properties;

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf")
}

/// The broker file of the RocketMQ 3.2.6 guide (the seed), with every commented-out key enabled.
const SEED_BROKER: &str = "\
brokerClusterName=rocketmq-cluster
brokerName=broker-a
brokerId=0
namesrvAddr=rocketmq-nameserver1:9876;rocketmq-nameserver2:9876
defaultTopicQueueNums=4
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
listenPort=10911
deleteWhen=04
fileReservedTime=120
mapedFileSizeCommitLog=1073741824
mapedFileSizeConsumeQueue=300000
destroyMapedFileIntervalForcibly=120000
redeleteHangedFileInterval=120000
diskMaxUsedSpaceRatio=88
storePathRootDir=/usr/local/rocketmq/store
storePathCommitLog=/usr/local/rocketmq/store/commitlog
storePathConsumeQueue=/usr/local/rocketmq/store/consumequeue
storePathIndex=/usr/local/rocketmq/store/index
storeCheckpoint=/usr/local/rocketmq/store/checkpoint
abortFile=/usr/local/rocketmq/store/abort
maxMessageSize=65536
flushCommitLogLeastPages=4
flushConsumeQueueLeastPages=2
flushCommitLogThoroughInterval=10000
flushConsumeQueueThoroughInterval=60000
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
checkTransactionMessageEnable=false
sendMessageThreadPoolNums=128
pullMessageThreadPoolNums=128
";

#[test]
fn every_seed_key_loads() {
    let mut c = BrokerConfig::default();
    for p in properties::parse(SEED_BROKER) {
        let used = c.set(&p.key, &p.value);
        assert!(
            matches!(used, Ok(u) if u != KeyUse::Unknown),
            "{} (line {}): {used:?}",
            p.key,
            p.line
        );
    }
    assert_eq!(c.store.flush_commit_log_least_pages, 4);
    assert_eq!(c.store.max_message_size, 65536);
}

#[test]
fn every_shipped_layout_loads_without_unknown_keys() {
    let mut files = vec![conf_dir().join("broker.properties")];
    for layout in ["2m-noslave", "2m-2s-async", "2m-2s-sync"] {
        let mut names: Vec<_> = std::fs::read_dir(conf_dir().join(layout))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert!(names.len() >= 2, "{layout}: {names:?}");
        files.extend(names);
    }
    for f in &files {
        let mut c = BrokerConfig::default();
        let unknown = c.load_file(f).unwrap();
        assert!(unknown.is_empty(), "{}: {unknown:?}", f.display());
        let name = f.file_stem().unwrap().to_str().unwrap();
        if name != "broker" {
            assert_eq!(c.broker_name, name.trim_end_matches("-s"));
            assert_eq!(c.broker_id, i64::from(name.ends_with("-s")));
        }
    }
    let props = properties::load(&conf_dir().join("namesrv.properties")).unwrap();
    let mut ns = NamesrvConfig::default();
    assert_eq!(ns.apply_properties(&props), vec![]);
    assert_eq!(ns.metrics_port, 9877);
}

fn broker(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tern-broker"));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

fn value(out: &Output, key: &str) -> String {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("{key} missing from {text}"))
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.properties");
    std::fs::write(&file, "listenPort=1111\nflushCommitLogLeastPages=7\n").unwrap();
    let f = file.to_str().unwrap();
    let env = [
        ("TERN_BROKER_LISTEN_PORT", "2222"),
        ("TERN_BROKER_BROKER_NAME", "from-env"),
    ];

    let out = broker(&["-p"], &[]);
    assert_eq!(value(&out, "listenPort"), "10911");
    assert_eq!(value(&out, "flushCommitLogLeastPages"), "4");

    let out = broker(&["-p", "-c", f], &[]);
    assert_eq!(value(&out, "listenPort"), "1111");
    assert_eq!(value(&out, "flushCommitLogLeastPages"), "7");

    let out = broker(&["-p", "-c", f], &env);
    assert_eq!(value(&out, "listenPort"), "2222");
    assert_eq!(value(&out, "brokerName"), "from-env");
    assert_eq!(value(&out, "flushCommitLogLeastPages"), "7");

    let out = broker(
        &[
            "-p",
            "-c",
            f,
            "--listen-port",
            "3333",
            "--flush-commit-log-least-pages",
            "9",
        ],
        &env,
    );
    assert_eq!(value(&out, "listenPort"), "3333");
    assert_eq!(value(&out, "brokerName"), "from-env");
    assert_eq!(value(&out, "flushCommitLogLeastPages"), "9");

    // -m prints the important part only.
    let out = broker(&["-m", "-c", f], &[]);
    assert_eq!(value(&out, "listenPort"), "1111");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("flushCommitLogLeastPages"));
}

#[test]
fn bad_env_value_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_tern-broker"))
        .arg("-p")
        .env("TERN_BROKER_LISTEN_PORT", "ninety")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("TERN_BROKER_LISTEN_PORT"), "{log}");
}

#[test]
fn unknown_keys_warn_with_name_and_line_and_inert_keys_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.properties");
    std::fs::write(
        &file,
        "brokerName=x\nsendMessageThreadPoolNums=64\n\nnoSuchKey=1\n",
    )
    .unwrap();
    let out = broker(&["-p", "-c", file.to_str().unwrap()], &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:4: unknown key noSuchKey, ignored", file.display());
    assert!(log.contains(&expected), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("sendMessageThreadPoolNums")),
        "{log}"
    );
}

#[test]
fn help_explains_units_and_defaults() {
    let out = broker(&["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--flush-commit-log-least-pages",
        "TERN_BROKER_FLUSH_COMMIT_LOG_LEAST_PAGES",
        "dirty 4 KiB pages",
        "[default: 4]",
        "milliseconds",
        "--metrics-port",
    ] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
}
