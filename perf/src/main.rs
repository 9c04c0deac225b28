//! `tern-perf`: load generators for a RocketMQ-protocol broker.
//!
//! ```text
//! tern-perf producer --broker 127.0.0.1:10911 --size 1024 --connections 4 --concurrency 16 --duration 10
//! tern-perf consumer -n 127.0.0.1:9876 --topic TernPerfTopic --duration 10 --hist-out e2e.hgrm
//! tern-perf connections --broker 127.0.0.1:10911 --count 1000 --duration 120 --pid $(pgrep -n tern-broker)
//! ```
//! Both print one progress line per second and a final report with throughput, latency
//! percentiles (p50 … p99.99, max) and errors by cause.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tern_perf::connections::{self, ConnectionsOptions};
use tern_perf::consumer::{self, ConsumerOptions};
use tern_perf::producer::{self, ProducerOptions};

#[derive(Debug, Parser)]
#[command(
    name = "tern-perf",
    version,
    about = "Load generators for a RocketMQ-protocol broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send messages and report send throughput and latency.
    Producer(ProducerOptions),
    /// Pull messages and report receive throughput and end-to-end latency.
    Consumer(ConsumerOptions),
    /// Hold many heartbeating connections and sample the broker's RSS.
    Connections(ConnectionsOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Producer(o) => producer::run(o),
        Command::Consumer(o) => consumer::run(o),
        Command::Connections(o) => connections::run(o),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern-perf: {e}");
            ExitCode::FAILURE
        }
    }
}
