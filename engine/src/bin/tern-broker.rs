//! `tern-broker`: the Tern broker.
//!
//! Settings come from embedded defaults (store under `./data/broker`, port 10911, nameserver
//! 127.0.0.1:9876, broker-a in DefaultCluster), then `-c broker.properties` (RocketMQ keys; unknown
//! keys are warned about with their line), then command-line flags. `-p` prints the effective
//! settings and exits. Logs go to stderr; once serving, one line `tern-broker listening on <addr>`
//! is printed to stdout. SIGTERM or SIGINT unregisters from the nameservers, flushes the stores
//! and exits.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tern_engine::broker::{Broker, BrokerConfig};
use tern_engine::process::{init_logging, serve};

/// The Tern broker (RocketMQ-compatible).
#[derive(Debug, Parser)]
#[command(name = "tern-broker", version)]
struct Args {
    /// RocketMQ broker.properties file.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Print the effective settings and exit.
    #[arg(short = 'p', long = "print-config")]
    print_config: bool,
    /// Executors (cores); default: available cores.
    #[arg(long)]
    cores: Option<usize>,
    /// Nameserver addresses, `;`-separated (namesrvAddr).
    #[arg(short = 'n', long = "namesrv-addr")]
    namesrv_addr: Option<String>,
    /// Port to listen on (listenPort).
    #[arg(long)]
    listen_port: Option<u16>,
    /// Address advertised to nameservers (brokerIP1).
    #[arg(long)]
    broker_ip: Option<IpAddr>,
    /// Broker name (brokerName).
    #[arg(long)]
    broker_name: Option<String>,
    /// Cluster name (brokerClusterName).
    #[arg(long)]
    cluster_name: Option<String>,
    /// Broker id, 0 for a master (brokerId).
    #[arg(long)]
    broker_id: Option<i64>,
    /// Store root directory (storePathRootDir).
    #[arg(long)]
    store_path_root_dir: Option<PathBuf>,
    /// CommitLog segment size in bytes (mappedFileSizeCommitLog).
    #[arg(long)]
    mapped_file_size_commit_log: Option<u64>,
    /// ASYNC_FLUSH or SYNC_FLUSH (flushDiskType).
    #[arg(long)]
    flush_disk_type: Option<String>,
    /// Largest message body in bytes (maxMessageSize).
    #[arg(long)]
    max_message_size: Option<u32>,
    /// Queues of auto-created topics (defaultTopicQueueNums).
    #[arg(long)]
    default_topic_queue_nums: Option<i32>,
    /// Create unknown topics on send (autoCreateTopicEnable).
    #[arg(long)]
    auto_create_topic_enable: Option<bool>,
    /// mmap or direct (commitLogIoMode).
    #[arg(long)]
    commit_log_io_mode: Option<String>,
    /// Any broker.properties key (broker or store), as KEY=VALUE; repeatable. Applied after `-c`
    /// and before the flags above, e.g. `--set flushCommitLogLeastPages=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log filter (overrides RUST_LOG), e.g. `info` or `tern_engine=debug`.
    #[arg(long)]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_level.as_deref());
    let (config, cores) = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if args.print_config {
        print!("{}", config.to_properties());
        return ExitCode::SUCCESS;
    }
    serve("tern-broker", move || Broker::start(config, cores))
}

fn build_config(args: &Args) -> Result<(BrokerConfig, usize), String> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        let unknown = config.load_file(path).map_err(|e| e.to_string())?;
        config.config_file = Some(path.clone());
        for u in unknown {
            tracing::warn!(
                "{}:{}: unknown key {}, ignored",
                path.display(),
                u.line,
                u.key
            );
        }
    }
    for kv in &args.set {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv}: expected KEY=VALUE"))?;
        let used = config.set(key.trim(), value).map_err(|e| e.to_string())?;
        if used == tern_engine::broker::config::KeyUse::Unknown {
            return Err(format!("--set {kv}: unknown key {}", key.trim()));
        }
    }
    let mut set = |key: &str, value: Option<String>| -> Result<(), String> {
        if let Some(v) = value {
            config.set(key, &v).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    set("namesrvAddr", args.namesrv_addr.clone())?;
    set("listenPort", args.listen_port.map(|v| v.to_string()))?;
    set("brokerIP1", args.broker_ip.map(|v| v.to_string()))?;
    set("brokerName", args.broker_name.clone())?;
    set("brokerClusterName", args.cluster_name.clone())?;
    set("brokerId", args.broker_id.map(|v| v.to_string()))?;
    set(
        "storePathRootDir",
        args.store_path_root_dir
            .as_ref()
            .map(|p| p.display().to_string()),
    )?;
    set(
        "mappedFileSizeCommitLog",
        args.mapped_file_size_commit_log.map(|v| v.to_string()),
    )?;
    set("flushDiskType", args.flush_disk_type.clone())?;
    set(
        "maxMessageSize",
        args.max_message_size.map(|v| v.to_string()),
    )?;
    set(
        "defaultTopicQueueNums",
        args.default_topic_queue_nums.map(|v| v.to_string()),
    )?;
    set(
        "autoCreateTopicEnable",
        args.auto_create_topic_enable.map(|v| v.to_string()),
    )?;
    set("commitLogIoMode", args.commit_log_io_mode.clone())?;
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    Ok((config, cores))
}
