//! Tern load generators and benchmarks: the `tern-perf` producer and consumer (remoting-protocol
//! clients driving a broker from several glommio executors) and their reporting.
//!
//! A run is split over `--threads` executors. Each executor owns its own
//! [`tern_net::transport::RemotingClient`]s and a latency histogram; executors share only the
//! atomic counters of [`run::RunControl`] (read once a second for the progress line) and return
//! their histograms and error tallies when they finish, which the main thread merges.

pub mod batch;
pub mod connections;
pub mod consumer;
pub mod latency;
pub mod plot;
pub mod producer;
pub mod run;
pub mod target;

use tern_net::transport::ClientError;

/// Why a run could not start or was cut short.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    /// Talking to the nameserver or broker failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The topic route could not be obtained.
    #[error("route: {0}")]
    Route(String),
    /// An executor could not be started or panicked.
    #[error(transparent)]
    Runtime(#[from] tern_runtime::RuntimeError),
    /// Bad options.
    #[error("invalid options: {0}")]
    Options(String),
    /// Writing the report or histogram file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A message could not be encoded.
    #[error(transparent)]
    Batch(#[from] batch::BatchEncodeError),
    /// The `--plot` file could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}
