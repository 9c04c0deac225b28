//! `tern-namesrv`: the Tern nameserver.
//!
//! Settings come from RocketMQ defaults, then `-c namesrv.properties`, then command-line flags.
//! Logs go to stderr (`--log-level` or `RUST_LOG`); once listening, one line
//! `tern-namesrv listening on <addr>` is printed to stdout. SIGTERM or SIGINT stops it gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tern_engine::namesrv::{Namesrv, NamesrvConfig};
use tern_engine::process::{init_logging, serve};

/// The Tern nameserver (RocketMQ-compatible).
#[derive(Debug, Parser)]
#[command(name = "tern-namesrv", version)]
struct Args {
    /// RocketMQ namesrv.properties file (listenPort, rocketmqHome, kvConfigPath, ...).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:9876].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Executors (cores) serving connections.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Drop brokers not heard from for this many milliseconds [default: 120000].
    #[arg(long)]
    broker_expiry_ms: Option<u64>,
    /// Look for expired brokers every this many milliseconds [default: 5000].
    #[arg(long)]
    scan_interval_ms: Option<u64>,
    /// KV configuration file [default: ~/namesrv/kvConfig.json].
    #[arg(long)]
    kv_config_path: Option<PathBuf>,
    /// Add orderTopicConf (KV namespace ORDER_TOPIC_CONFIG) to topic routes.
    #[arg(long)]
    order_message_enable: Option<bool>,
    /// Largest accepted frame in bytes [default: 16777216].
    #[arg(long)]
    max_frame_len: Option<usize>,
    /// Requests handled at once per connection before SYSTEM_BUSY [default: 1024].
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Log filter (overrides RUST_LOG), e.g. `info` or `tern_engine=debug`.
    #[arg(long)]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_level.as_deref());
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
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
    if let Some(v) = args.max_in_flight {
        config.limits.max_in_flight = v.max(1);
    }
    Ok(config)
}
