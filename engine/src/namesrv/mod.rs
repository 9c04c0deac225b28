//! The nameserver (`tern-namesrv`): brokers register their topics here, clients look up routes.
//!
//! ## Threading
//! The server runs on `cores` executors (default 1) sharing one state (route table and KV
//! configuration) behind a mutex: the state is tiny, every operation on it is a short synchronous
//! call, and no produce or consume request waits for it, so a lock is simpler than forwarding
//! requests to one owning core. Expiry is scanned on core 0.
//!
//! ## Liveness
//! A broker is dropped when it has not re-registered (or sent BROKER_HEARTBEAT / QUERY_DATA_VERSION)
//! for `broker_expiry` (RocketMQ's two minutes, or the broker's own `heartbeatTimeoutMillis`), checked
//! every `scan_interval`, and as soon as the connection it registered on closes.

mod config;
mod handler;
mod kv;
mod metrics;
mod route;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tern_net::transport::{RequestHandler, Server, ServerConfig, StopSignal, TransportError};

pub use config::{
    NamesrvConfig, PropertyWarning, DEFAULT_BROKER_EXPIRY, DEFAULT_PORT, DEFAULT_SCAN_INTERVAL,
};
pub use kv::{KvError, NAMESPACE_ORDER_TOPIC_CONFIG};

use handler::{NamesrvHandler, Shared};
use kv::KvConfig;

/// Errors starting the nameserver.
#[derive(Debug, thiserror::Error)]
pub enum NamesrvError {
    /// The KV configuration file could not be loaded.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The server could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The metrics port could not be bound.
    #[error("cannot listen on metrics port {port}: {source}")]
    Metrics {
        /// The port (`metricsPort`).
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running nameserver.
pub struct Namesrv {
    server: Server,
    metrics_addr: Option<SocketAddr>,
}

impl Namesrv {
    /// Loads the KV configuration and starts serving on `config.listen`. Returns once listening.
    pub fn start(config: NamesrvConfig) -> Result<Namesrv, NamesrvError> {
        let kv = match &config.kv_config_path {
            Some(path) => KvConfig::load(path)?,
            None => KvConfig::default(),
        };
        let server_config = ServerConfig {
            cores: config.cores.max(1),
            name: "tern-namesrv".to_string(),
            limits: config.limits,
            ..ServerConfig::new(config.listen)
        };
        let metrics_listener = match config.metrics_port {
            0 => None,
            port => Some(
                std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port))
                    .map_err(|source| NamesrvError::Metrics { port, source })?,
            ),
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let metrics_listener = std::sync::Mutex::new(metrics_listener);
        let shared = Arc::new(Shared::new(config, kv));
        // Never raised: the metrics task ends with core 0's executor when the server stops.
        let metrics_stop = StopSignal::new();
        let server = Server::start(server_config, move |core| -> Rc<dyn RequestHandler> {
            if core == 0 {
                let for_metrics = Arc::clone(&shared);
                let shared = Arc::clone(&shared);
                tern_runtime::spawn_local(async move {
                    let interval = shared.config().scan_interval;
                    loop {
                        tern_runtime::sleep(interval).await;
                        shared.expire(Instant::now());
                    }
                })
                .detach();
                if let Some(l) = metrics_listener.lock().ok().and_then(|mut l| l.take()) {
                    use std::os::fd::{FromRawFd, IntoRawFd};
                    // SAFETY: a listening socket this process owns and nothing else uses.
                    let l = unsafe { glommio::net::TcpListener::from_raw_fd(l.into_raw_fd()) };
                    let render = move || {
                        let text = metrics::render(&for_metrics);
                        async move { text }
                    };
                    tern_runtime::spawn_local(crate::metrics::http::serve(
                        l,
                        metrics_stop.clone(),
                        render,
                    ))
                    .detach();
                }
            }
            Rc::new(NamesrvHandler::new(Arc::clone(&shared)))
        })?;
        Ok(Namesrv {
            server,
            metrics_addr,
        })
    }

    /// The address of the Prometheus `/metrics` endpoint, when `metricsPort` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address it listens on (the real port when port 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// A `Send` handle that stops the nameserver (used on SIGTERM).
    pub fn stop_signal(&self) -> StopSignal {
        self.server.stop_signal()
    }

    /// Stops and waits for the executors to finish.
    pub fn stop(self) -> Result<(), TransportError> {
        self.server.stop()
    }

    /// Waits until stopped through [`Namesrv::stop_signal`].
    pub fn join(self) -> Result<(), TransportError> {
        self.server.join()
    }
}
