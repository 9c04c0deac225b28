//! The glommio transport: a multi-core [`Server`], a per-executor [`RemotingClient`], and the
//! connection machinery they share (framing, request/response matching by opaque, ordered writes,
//! zero-copy bodies, back-pressure).
//!
//! ## Behaviour on a connection (both sides)
//! - Frames are split with [`crate::frame::next_frame_len`] from one reused read buffer; a fatal
//!   [`crate::frame::FrameError`] (oversized length prefix, inconsistent lengths) closes the
//!   connection with a log line.
//! - A header that cannot be decoded but whose opaque was read gets `SYSTEM_ERROR` with the reason
//!   as remark; without an opaque the frame is dropped with a log line. The connection goes on.
//! - Each request runs in its own task on the connection's executor. At most
//!   [`ConnectionLimits::max_in_flight`] run at once; past that a request gets `SYSTEM_BUSY` at once
//!   (one-way requests are dropped). One-way requests never get a response.
//! - Responses and outbound requests are written whole, in the order they are ready, by one writer
//!   task, batched into vectored writes; when more than [`ConnectionLimits::max_queued_bytes`] wait
//!   (the peer stopped reading), the connection is closed; a [`Reply`] body may include file ranges sent with
//!   `sendfile` ([`crate::zero_copy`]). Well before that bound a server connection stops reading requests
//!   until the writer drains the queue (back-pressure), so a pipelining peer that does not read
//!   holds the kernel's socket buffers, not broker memory.
//! - A connection with no complete frame read and nothing written for
//!   [`ConnectionLimits::idle_timeout`] is closed (a half frame followed by silence included, and
//!   a peer paused by back-pressure that never reads again).
//! - Responses are matched to requests this side sent by opaque; requests arriving on a client
//!   connection go to the client's optional handler.
//! - Closing (EOF, error, fatal frame, stop) fails this side's pending requests and calls
//!   [`RequestHandler::on_close`] exactly once.

mod client;
mod connection;
mod io;
mod queue;
mod server;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use client::{ClientConfig, RemotingClient};
pub use connection::{not_supported, ConnectionInfo, Outbound};
pub use server::{serve_listener, Server, ServerConfig, StopSignal};

use crate::zero_copy::FileRegion;
use crate::RemotingCommand;

/// The future a [`RequestHandler`] returns.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Option<Reply>> + 'a>>;

/// Serves the requests of the connections of one core (or of one client). Built per core, so it
/// need not be `Send`.
pub trait RequestHandler {
    /// Handles one request. `Some(reply)` is sent back (the transport sets its opaque, response flag
    /// and serialize type from the request); `None` sends nothing. The reply to a one-way request is
    /// discarded. Unknown codes should get [`not_supported`].
    fn handle<'a>(&'a self, req: RemotingCommand, conn: &'a ConnectionInfo) -> HandlerFuture<'a>;

    /// Called once when a connection closes, for whatever reason.
    fn on_close(&self, _conn: &ConnectionInfo) {}
}

/// A response (or outbound request) to write: a command whose body is `command.body` followed by the
/// bytes of `file_body`, sent with `sendfile`.
#[derive(Debug)]
pub struct Reply {
    /// The command; its `body` is sent first.
    pub command: RemotingCommand,
    /// File ranges appended to the body without copying (pull responses).
    pub file_body: Vec<FileRegion>,
}

impl Reply {
    /// A reply whose body is in memory.
    pub fn new(command: RemotingCommand) -> Self {
        Reply {
            command,
            file_body: Vec::new(),
        }
    }

    /// A reply whose body continues with `file_body` after `command.body`.
    pub fn with_file_body(command: RemotingCommand, file_body: Vec<FileRegion>) -> Self {
        Reply { command, file_body }
    }
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest accepted frame, length prefix included (larger claims close the connection).
    pub max_frame_len: usize,
    /// Most requests handled at once per connection; more get `SYSTEM_BUSY`.
    pub max_in_flight: usize,
    /// Most bytes of output (frame bodies, file ranges included, plus a fixed allowance per frame) queued
    /// on a connection and not yet written. A peer that stops reading fills its socket, then this
    /// queue; past the bound the connection is closed, so its memory stays bounded and other
    /// connections are unaffected. A single frame is always accepted into an empty queue.
    ///
    /// Before that, a server connection stops reading requests while more than a quarter of this bound
    /// is queued (back-pressure: pipelined requests wait in the peer's socket, not in memory) and
    /// resumes once the writer has brought it back under an eighth.
    pub max_queued_bytes: usize,
    /// A connection on which no complete frame is read and no output is written for this long is
    /// closed (RocketMQ's `serverChannelMaxIdleTimeSeconds`, 120 s, Netty's all-idle state): a
    /// silent peer, a half frame then silence, or a peer whose reading is paused because it stopped
    /// reading its responses. `None` never closes an idle connection.
    pub idle_timeout: Option<Duration>,
}

impl Default for ConnectionLimits {
    /// 16 MiB frames (RocketMQ's default), 1024 requests in flight, 64 MiB of queued output and
    /// a 120 s idle timeout.
    fn default() -> Self {
        ConnectionLimits {
            max_frame_len: crate::frame::DEFAULT_MAX_FRAME_LEN,
            max_in_flight: 1024,
            max_queued_bytes: 64 * 1024 * 1024,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// RocketMQ's default `serverChannelMaxIdleTimeSeconds`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl ConnectionLimits {
    /// Queued output above which the connection stops reading requests.
    pub(crate) fn pause_reading_at(&self) -> usize {
        self.max_queued_bytes / 4
    }

    /// Queued output below which a paused connection reads again.
    pub(crate) fn resume_reading_at(&self) -> usize {
        self.max_queued_bytes / 8
    }
}

/// Why a request sent by this side got no response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not `host:port` or does not resolve.
    #[error("bad address {addr}: {reason}")]
    Address {
        /// The address given.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No response within the timeout (the request may still have been processed).
    #[error("no response from {addr} within {timeout:?}")]
    Timeout {
        /// The peer.
        addr: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection closed before the response arrived (or was closed already).
    #[error("connection to {addr} closed")]
    Closed {
        /// The peer.
        addr: String,
    },
}

/// Errors starting a [`Server`].
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// An executor could not be started, or died.
    #[error(transparent)]
    Runtime(#[from] tern_runtime::RuntimeError),
}
