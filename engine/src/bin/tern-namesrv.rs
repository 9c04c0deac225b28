//! `tern-namesrv`: the Tern nameserver.
//!
//! Settings come from RocketMQ defaults, then `-c namesrv.properties`, then `TERN_NAMESRV_*`
//! environment variables, then command-line flags (each flag's help names its variable).
//! `-p` prints the effective settings and exits, `-m` only the important ones. Logs go to stderr
//! (`--log-level` or `RUST_LOG`), or to daily files under `--log-dir`; once listening, one line
//! `tern-namesrv listening on <addr>` is printed to stdout. SIGTERM or SIGINT stops it gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tern_engine::logging::LogArgs;
use tern_engine::namesrv::{Namesrv, NamesrvConfig};
use tern_engine::process::{serve, PrintArgs};

/// The Tern nameserver (RocketMQ-compatible).
#[derive(Debug, Parser)]
#[command(name = "tern-namesrv", version)]
struct Args {
    /// RocketMQ namesrv.properties file (listenPort, rocketmqHome, kvConfigPath, ...).
    #[arg(short = 'c', long = "config", env = "TERN_NAMESRV_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:9876].
    #[arg(long, env = "TERN_NAMESRV_LISTEN")]
    listen: Option<SocketAddr>,
    /// Executors (cores) serving connections.
    #[arg(long, default_value_t = 1, env = "TERN_NAMESRV_CORES")]
    cores: usize,
    /// Drop brokers not heard from for this many milliseconds [default: 120000].
    #[arg(long, env = "TERN_NAMESRV_BROKER_EXPIRY_MS")]
    broker_expiry_ms: Option<u64>,
    /// Look for expired brokers every this many milliseconds [default: 5000].
    #[arg(long, env = "TERN_NAMESRV_SCAN_INTERVAL_MS")]
    scan_interval_ms: Option<u64>,
    /// KV configuration file [default: ~/namesrv/kvConfig.json].
    #[arg(long, env = "TERN_NAMESRV_KV_CONFIG_PATH")]
    kv_config_path: Option<PathBuf>,
    /// Add orderTopicConf (KV namespace ORDER_TOPIC_CONFIG) to topic routes.
    #[arg(long, env = "TERN_NAMESRV_ORDER_MESSAGE_ENABLE")]
    order_message_enable: Option<bool>,
    /// Largest accepted frame in bytes [default: 16777216].
    #[arg(long, env = "TERN_NAMESRV_MAX_FRAME_LEN")]
    max_frame_len: Option<usize>,
    /// Requests handled at once per connection before SYSTEM_BUSY [default: 1024].
    #[arg(long, env = "TERN_NAMESRV_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// HTTP port of the Prometheus /metrics endpoint, 0 = off (metricsPort) [default: 0].
    #[arg(long, env = "TERN_NAMESRV_METRICS_PORT")]
    metrics_port: Option<u16>,
    #[command(flatten)]
    print: PrintArgs,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (_log, config) = match args.log.init_and_load("namesrv", || build_config(&args)) {
        Ok(started) => started,
        Err(code) => return code,
    };
    if let Some(code) = args
        .print
        .print(|| config.to_properties(), || config.important_properties())
    {
        return code;
    }
    tern_engine::fd_limit::raise_and_log();
    serve("tern-namesrv", move || Namesrv::start(config))
}

fn build_config(args: &Args) -> Result<NamesrvConfig, String> {
    let mut config = NamesrvConfig::default();
    if let Some(path) = &args.config {
        let props = tern_engine::properties::load(path).map_err(|e| e.to_string())?;
        for w in config.apply_properties(&props) {
            tracing::warn!("{}: ignoring {w}", path.display());
        }
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.cores = args.cores.max(1);
    if let Some(ms) = args.broker_expiry_ms {
        config.broker_expiry = Duration::from_millis(ms);
    }
    if let Some(ms) = args.scan_interval_ms {
        if ms == 0 {
            return Err("--scan-interval-ms must be positive".into());
        }
        config.scan_interval = Duration::from_millis(ms);
    }
    if let Some(p) = &args.kv_config_path {
        config.kv_config_path = Some(p.clone());
    }
    if let Some(v) = args.order_message_enable {
        config.order_message_enable = v;
    }
    if let Some(v) = args.max_frame_len {
        config.limits.max_frame_len = v;
    }
    if let Some(v) = args.metrics_port {
        config.metrics_port = v;
    }
    if let Some(v) = args.max_in_flight {
        config.limits.max_in_flight = v.max(1);
    }
    Ok(config)
}
