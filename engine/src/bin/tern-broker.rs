//! `tern-broker`: the Tern broker.
//!
//! Settings, lowest precedence first: built-in defaults (store under `./data/broker`, port 10911,
//! nameserver 127.0.0.1:9876, broker-a in DefaultCluster), `-c broker.properties` (RocketMQ keys;
//! unknown keys are warned about with their line), `TERN_BROKER_<KEY>` environment variables,
//! then flags (`--set KEY=VALUE` and one `--<key>` flag per key; see `--help` and
//! [`tern_engine::knobs`]). `-p` prints the effective settings and exits, `-m` only the important
//! ones. Logs go to stderr, or to daily files under `--log-dir`; once serving, one line
//! `tern-broker listening on <addr>` is printed to stdout. SIGTERM or SIGINT unregisters from the
//! nameservers, flushes the stores and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use tern_engine::broker::config::KeyUse;
use tern_engine::broker::{knob_table, Broker, BrokerConfig};
use tern_engine::knobs::{self, Knob};
use tern_engine::logging::LogArgs;
use tern_engine::process::{serve, PrintArgs};

/// The Tern broker (RocketMQ-compatible).
#[derive(Debug, Parser)]
#[command(
    name = "tern-broker",
    version,
    after_help = "Every setting is read, lowest precedence first, from its built-in default, the -c \
                  file, the TERN_BROKER_<UPPER_SNAKE_KEY> environment variable, --set, and its flag."
)]
struct Args {
    /// RocketMQ broker.properties file.
    #[arg(short = 'c', long = "config", env = "TERN_BROKER_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    print: PrintArgs,
    /// Executors (cores); default: available cores.
    #[arg(long, env = "TERN_BROKER_CORES")]
    cores: Option<usize>,
    /// Any broker.properties key as KEY=VALUE; repeatable. Applied after the file and the
    /// environment, before the per-key flags, e.g. `--set flushCommitLogLeastPages=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let knobs = knob_table::knobs();
    let command = knobs::add_args(
        Args::command(),
        knob_table::ENV_PREFIX,
        "Settings (broker.properties keys)",
        &knobs,
    );
    let matches = command.get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let (_log, config) = match args
        .log
        .init_and_load("broker", || build_config(&args, &knobs, &matches))
    {
        Ok(started) => started,
        Err(code) => return code,
    };
    if let Some(code) = args.print.print(
        || config.to_properties(),
        || knob_table::important(&config.to_properties()),
    ) {
        return code;
    }
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    tern_engine::fd_limit::raise_and_log();
    serve("tern-broker", move || Broker::start(config, cores))
}

/// Defaults, then the file, then the environment, then `--set`, then the per-key flags.
fn build_config(
    args: &Args,
    knobs: &[Knob],
    matches: &clap::ArgMatches,
) -> Result<BrokerConfig, String> {
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
    let given = knobs::given(matches, knobs);
    let (env, flags): (Vec<_>, Vec<_>) = given
        .into_iter()
        .partition(|(_, _, src)| *src == knobs::Source::Env);
    for (key, value, _) in &env {
        config
            .set(key, value)
            .map_err(|e| format!("{}: {e}", knobs::env_name(knob_table::ENV_PREFIX, key)))?;
    }
    for kv in &args.set {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv}: expected KEY=VALUE"))?;
        let used = config.set(key.trim(), value).map_err(|e| e.to_string())?;
        if used == KeyUse::Unknown {
            return Err(format!("--set {kv}: unknown key {}", key.trim()));
        }
    }
    for (key, value, _) in &flags {
        config
            .set(key, value)
            .map_err(|e| format!("--{}: {e}", knobs::flag_name(key)))?;
    }
    Ok(config)
}
