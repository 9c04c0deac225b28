//! `tern-namesrv`: the Tern nameserver.
//!
//! Settings come from RocketMQ defaults, then `-c namesrv.properties`, then command-line flags.
//! Logs go to stderr (`--log-level` or `RUST_LOG`); once listening, one line
//! `tern-namesrv listening on <addr>` is printed to stdout. SIGTERM or SIGINT stops it gracefully.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tern_engine::namesrv::{Namesrv, NamesrvConfig};

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
    // Block the stop signals before any executor thread exists so only the waiter thread sees them.
    let signals = match StopSignals::block() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot set up signal handling: {e}");
            return ExitCode::FAILURE;
        }
    };
    let namesrv = match Namesrv::start(config) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("tern-namesrv listening on {}", namesrv.local_addr());
    let _ = std::io::stdout().flush();
    let stop = namesrv.stop_signal();
    std::thread::spawn(move || {
        let sig = signals.wait();
        tracing::info!(signal = sig, "stopping");
        stop.stop();
    });
    match namesrv.join() {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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

/// SIGTERM and SIGINT, blocked in every thread and collected by one waiter.
struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    /// Blocks SIGTERM and SIGINT in this thread (and threads it starts later).
    fn block() -> std::io::Result<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(StopSignals { set })
        }
    }

    /// Waits for one of the signals and returns its number.
    fn wait(&self) -> i32 {
        let mut sig = 0;
        // SAFETY: `set` is initialised; `sig` is a valid out pointer.
        unsafe { libc::sigwait(&self.set, &mut sig) };
        sig
    }
}
