//! One TCP connection, the same on both sides: a reader task that splits the byte stream into frames
//! and dispatches them, a writer task that sends queued commands in order, and the table of requests
//! this side sent and still awaits answers for.
//!
//! The socket is `dup`ed so that the reader and the writer each own a glommio stream; shutting the
//! socket down (either side, or [`Connection::close`]) ends both tasks.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use super::io::write_all_vectored;
use super::queue::{Oneshot, OutQueue};
use super::{ClientError, ConnectionLimits, Reply, RequestHandler};
use crate::code::response;
use crate::frame::{self, DecodeError};
use crate::{RemotingCommand, FLAG_RESPONSE};

/// Bytes the read buffer starts with and shrinks back to.
const READ_BUFFER: usize = 64 * 1024;
/// Most replies the writer sends with one `sendmsg`.
const WRITE_BATCH: usize = 64;
/// Remark of a request refused because the connection has too many in flight (RocketMQ's wording).
pub(crate) const BUSY_REMARK: &str = "[OVERLOAD]system busy, start flow control for a while";

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// What a request handler knows about the connection a request came on.
#[derive(Clone)]
pub struct ConnectionInfo {
    /// Process-wide unique id of the connection.
    pub id: u64,
    /// The remote address.
    pub peer: SocketAddr,
    /// The local address.
    pub local: SocketAddr,
    /// Index of the server core (executor) serving the connection; 0 on client connections.
    pub core: usize,
    link: Weak<Connection>,
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("core", &self.core)
            .finish()
    }
}

impl ConnectionInfo {
    /// A handle for sending requests to the peer over this connection (for example
    /// NOTIFY_CONSUMER_IDS_CHANGED to a client). It stays valid after the handler returns and
    /// reports [`ClientError::Closed`] once the connection is gone.
    pub fn outbound(&self) -> Outbound {
        Outbound {
            link: self.link.clone(),
            peer: self.peer,
        }
    }
}

/// Sends requests over an existing connection; see [`ConnectionInfo::outbound`]. Cheap to clone;
/// does not keep the connection open.
#[derive(Clone, Debug)]
pub struct Outbound {
    link: Weak<Connection>,
    peer: SocketAddr,
}

impl Outbound {
    /// Sends `cmd` and waits up to `timeout` for the response with the same opaque.
    pub async fn invoke(
        &self,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        let conn = self.link.upgrade().ok_or(ClientError::Closed {
            addr: self.peer.to_string(),
        })?;
        conn.invoke(cmd, timeout).await
    }

    /// Sends `cmd` marked one-way; no response is expected. Returns once it is queued.
    pub fn invoke_oneway(&self, cmd: RemotingCommand) -> Result<(), ClientError> {
        let conn = self.link.upgrade().ok_or(ClientError::Closed {
            addr: self.peer.to_string(),
        })?;
        conn.invoke_oneway(cmd)
    }

    /// True while the connection is open.
    pub fn is_open(&self) -> bool {
        self.link.upgrade().is_some_and(|c| !c.closed.get())
    }
}

/// The shared state of one connection (see the module docs).
pub(crate) struct Connection {
    info: ConnectionInfo,
    fd: RawFd,
    limits: ConnectionLimits,
    handler: Option<Rc<dyn RequestHandler>>,
    out: OutQueue<Reply>,
    pending: RefCell<HashMap<i32, Rc<Oneshot<RemotingCommand>>>>,
    in_flight: Cell<usize>,
    /// Sum of [`queued_weight`] over the replies queued or being written.
    queued_bytes: Cell<usize>,
    /// The reader, parked while the output queue is over the pause mark.
    reader_parked: Cell<Option<Waker>>,
    /// When the reader last dispatched a complete frame or the writer last finished a batch
    /// (start time before either).
    last_progress: Cell<Instant>,
    closed: Cell<bool>,
    next_opaque: Cell<i32>,
    side: Side,
}

/// Which end of the TCP connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Accepted by a [`super::Server`]: reads requests, pauses them under back-pressure.
    Server,
    /// Made by a [`super::RemotingClient`]: reads responses, never pauses.
    Client,
}

impl Connection {
    /// Takes over `stream`, starts its reader and writer tasks and returns the connection.
    pub(crate) fn start(
        stream: TcpStream,
        core: usize,
        side: Side,
        limits: ConnectionLimits,
        handler: Option<Rc<dyn RequestHandler>>,
    ) -> io::Result<Rc<Connection>> {
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let _ = stream.set_nodelay(true);
        let fd = stream.as_raw_fd();
        // SAFETY: dup of an open socket; the new descriptor is owned by the writer stream below.
        let wfd = unsafe { libc::dup(fd) };
        if wfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `wfd` is a fresh descriptor nobody else owns.
        let writer = unsafe { TcpStream::from_raw_fd(wfd) };
        let conn = Rc::new_cyclic(|link| Connection {
            info: ConnectionInfo {
                id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                local,
                core,
                link: link.clone(),
            },
            fd,
            limits,
            handler,
            out: OutQueue::new(),
            pending: RefCell::new(HashMap::new()),
            in_flight: Cell::new(0),
            queued_bytes: Cell::new(0),
            reader_parked: Cell::new(None),
            last_progress: Cell::new(Instant::now()),
            closed: Cell::new(false),
            next_opaque: Cell::new(i32::MAX / 2),
            side,
        });
        tern_runtime::spawn_local(Rc::clone(&conn).read_loop(stream)).detach();
        tern_runtime::spawn_local(Rc::clone(&conn).write_loop(writer)).detach();
        if let Some(idle) = limits.idle_timeout {
            tern_runtime::spawn_local(Self::idle_watchdog(Rc::downgrade(&conn), idle)).detach();
        }
        Ok(conn)
    }

    pub(crate) fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Requests being handled right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Closes the connection: pending invokes fail with `Closed`, queued output is dropped, the
    /// socket is shut down (ending both tasks) and the handler's `on_close` runs, all once.
    pub(crate) fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        self.out.close();
        if let Some(w) = self.reader_parked.take() {
            w.wake();
        }
        // SAFETY: shutdown on our socket; the descriptor stays open until the reader drops it.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        let pending: Vec<_> = self.pending.borrow_mut().drain().map(|(_, s)| s).collect();
        for slot in pending {
            slot.complete(None);
        }
        if let Some(h) = &self.handler {
            h.on_close(&self.info);
        }
    }

    /// Queues `reply` for the writer; false if the connection is closed. Closes the connection
    /// instead when the queue would exceed [`ConnectionLimits::max_queued_bytes`].
    pub(crate) fn send(&self, reply: Reply) -> bool {
        let queued = self.queued_bytes.get();
        let weight = queued_weight(&reply);
        if queued > 0 && queued + weight > self.limits.max_queued_bytes {
            if !self.closed.get() {
                tracing::warn!(peer = %self.info.peer, queued,
                    "closing connection: the peer is not reading its responses");
            }
            self.close();
            return false;
        }
        if self.out.push(reply).is_err() {
            return false;
        }
        self.queued_bytes.set(queued + weight);
        true
    }

    pub(crate) async fn invoke(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        let addr = || self.info.peer.to_string();
        if self.closed.get() {
            return Err(ClientError::Closed { addr: addr() });
        }
        cmd.flag &= !FLAG_RESPONSE;
        if self.pending.borrow().contains_key(&cmd.opaque) {
            cmd.opaque = self.fresh_opaque();
        }
        let opaque = cmd.opaque;
        let slot = Rc::new(Oneshot::new());
        self.pending.borrow_mut().insert(opaque, Rc::clone(&slot));
        if !self.send(Reply::new(cmd)) {
            self.pending.borrow_mut().remove(&opaque);
            return Err(ClientError::Closed { addr: addr() });
        }
        match tern_runtime::timeout(timeout, slot.wait()).await {
            Some(Some(resp)) => Ok(resp),
            Some(None) => Err(ClientError::Closed { addr: addr() }),
            None => {
                self.pending.borrow_mut().remove(&opaque);
                Err(ClientError::Timeout {
                    addr: addr(),
                    timeout,
                })
            }
        }
    }

    pub(crate) fn invoke_oneway(&self, mut cmd: RemotingCommand) -> Result<(), ClientError> {
        cmd.flag &= !FLAG_RESPONSE;
        cmd.set_oneway();
        if self.send(Reply::new(cmd)) {
            Ok(())
        } else {
            Err(ClientError::Closed {
                addr: self.info.peer.to_string(),
            })
        }
    }

    /// An opaque not awaiting a response on this connection (used only on a collision).
    fn fresh_opaque(&self) -> i32 {
        let pending = self.pending.borrow();
        loop {
            let o = self.next_opaque.get();
            self.next_opaque.set(o.wrapping_add(1));
            if !pending.contains_key(&o) {
                return o;
            }
        }
    }

    async fn read_loop(self: Rc<Self>, mut stream: TcpStream) {
        let reason = self.read_frames(&mut stream).await;
        match reason {
            Ok(()) => tracing::debug!(peer = %self.info.peer, "connection closed by peer"),
            Err(ReadError::Frame(e)) if !self.closed.get() => {
                tracing::warn!(peer = %self.info.peer, "closing connection: {e}")
            }
            Err(e) => tracing::debug!(peer = %self.info.peer, "connection closed: {e}"),
        }
        self.close();
    }

    /// Waits while more output is queued than [`ConnectionLimits::pause_reading_at`], until the
    /// writer brings it under [`ConnectionLimits::resume_reading_at`] or the connection closes.
    /// Returns whether it waited.
    /// Only server connections pause: a client reading responses frees memory, and pausing both
    /// ends of one connection could leave each waiting for the other.
    async fn wait_for_output_room(&self) -> bool {
        if self.side == Side::Client || self.queued_bytes.get() <= self.limits.pause_reading_at() {
            return false;
        }
        tracing::debug!(peer = %self.info.peer, queued = self.queued_bytes.get(),
            "pausing reads: the peer is slow to read its responses");
        poll_fn(|cx| {
            if self.closed.get() || self.queued_bytes.get() <= self.limits.resume_reading_at() {
                Poll::Ready(())
            } else {
                self.reader_parked.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        true
    }

    /// Closes the connection once it has gone `idle` without a complete frame read or a batch of
    /// output written (a silent peer, or one that neither reads nor sends while its output is
    /// backed up); ends when the connection does.
    async fn idle_watchdog(link: Weak<Connection>, idle: Duration) {
        let mut wait = idle;
        loop {
            tern_runtime::sleep(wait).await;
            let Some(conn) = link.upgrade() else { return };
            if conn.closed.get() {
                return;
            }
            let quiet = conn.last_progress.get().elapsed();
            if quiet >= idle {
                tracing::info!(peer = %conn.info.peer, queued = conn.queued_bytes.get(),
                    "closing idle connection: no frame read or written for {idle:?}");
                conn.close();
                return;
            }
            wait = idle.saturating_sub(quiet).max(Duration::from_millis(1));
        }
    }

    /// Reads and dispatches frames until EOF (`Ok`) or a fatal error.
    async fn read_frames(&self, stream: &mut TcpStream) -> Result<(), ReadError> {
        let max = self.limits.max_frame_len;
        let mut buf = vec![0u8; READ_BUFFER];
        let (mut start, mut end) = (0usize, 0usize);
        loop {
            // Dispatch every whole frame in buf[start..end], pausing while the output is backed up.
            while let Some(len) = frame::next_frame_len(&buf[start..end], max)? {
                if self.wait_for_output_room().await && self.closed.get() {
                    return Ok(());
                }
                self.on_frame(&buf[start..start + len])?;
                self.last_progress.set(Instant::now());
                start += len;
            }
            if start == end {
                (start, end) = (0, 0);
                if buf.len() > 4 * READ_BUFFER {
                    buf.truncate(READ_BUFFER);
                    buf.shrink_to_fit();
                }
            }
            // Make room for the rest of the current frame: its length is known once 4 bytes are in,
            // and next_frame_len has already checked it against `max`.
            let needed = match buf[start..end].get(..4) {
                Some(&[a, b, c, d]) => 4 + u32::from_be_bytes([a, b, c, d]) as usize,
                _ => 4,
            };
            if start + needed > buf.len() || end == buf.len() {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
                if needed > buf.len() {
                    buf.resize(needed, 0);
                }
            }
            debug_assert!(end < buf.len());
            if self.wait_for_output_room().await && self.closed.get() {
                return Ok(());
            }
            let n = stream.read(&mut buf[end..]).await?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        }
    }

    /// Handles one whole frame. Only fatal problems are errors.
    fn on_frame(&self, bytes: &[u8]) -> Result<(), ReadError> {
        match frame::decode(bytes) {
            Ok(cmd) if cmd.is_response() => {
                let slot = self.pending.borrow_mut().remove(&cmd.opaque);
                match slot {
                    Some(slot) => slot.complete(Some(cmd)),
                    None => tracing::debug!(peer = %self.info.peer, opaque = cmd.opaque,
                        "response to no pending request (timed out?)"),
                }
                Ok(())
            }
            Ok(cmd) => {
                self.dispatch(cmd);
                Ok(())
            }
            Err(DecodeError::Frame(e)) => Err(ReadError::Frame(e)),
            Err(DecodeError::Header(e)) => {
                match e.opaque {
                    Some(opaque) => {
                        tracing::warn!(peer = %self.info.peer, "bad request header: {}", e.reason);
                        let mut resp = RemotingCommand::request(response::SYSTEM_ERROR);
                        resp.opaque = opaque;
                        resp.flag = FLAG_RESPONSE;
                        resp.serialize_type = e.serialize_type;
                        resp.remark = Some(e.reason);
                        self.send(Reply::new(resp));
                    }
                    None => tracing::warn!(peer = %self.info.peer,
                        "dropping a frame whose header is unreadable: {}", e.reason),
                }
                Ok(())
            }
        }
    }

    /// Runs the handler on a request in its own task, or refuses it when too many are in flight.
    fn dispatch(&self, req: RemotingCommand) {
        let oneway = req.is_oneway();
        let Some(handler) = self.handler.clone() else {
            if !oneway {
                self.send(not_supported(&req));
            }
            return;
        };
        if self.in_flight.get() >= self.limits.max_in_flight {
            tracing::debug!(peer = %self.info.peer, code = req.code, "refusing request: too many in flight");
            if !oneway {
                let resp = RemotingCommand::response_to(
                    &req,
                    response::SYSTEM_BUSY,
                    Some(BUSY_REMARK.to_string()),
                );
                self.send(Reply::new(resp));
            }
            return;
        }
        let Some(conn) = self.info.link.upgrade() else {
            return;
        };
        self.in_flight.set(self.in_flight.get() + 1);
        let (opaque, serialize_type) = (req.opaque, req.serialize_type);
        tern_runtime::spawn_local(async move {
            let reply = handler.handle(req, &conn.info).await;
            conn.in_flight.set(conn.in_flight.get() - 1);
            if let (Some(mut reply), false) = (reply, oneway) {
                reply.command.opaque = opaque;
                reply.command.flag |= FLAG_RESPONSE;
                reply.command.serialize_type = serialize_type;
                conn.send(reply);
            }
        })
        .detach();
    }

    /// Stops taking new output, lets the writer send what is queued, then closes.
    pub(crate) fn finish(&self) {
        self.out.finish();
    }

    async fn write_loop(self: Rc<Self>, mut stream: TcpStream) {
        if let Err(e) = self.write_replies(&mut stream).await {
            if !self.closed.get() {
                tracing::warn!(peer = %self.info.peer, "write failed, closing connection: {e}");
            }
        }
        self.close();
    }

    async fn write_replies(&self, stream: &mut TcpStream) -> io::Result<()> {
        let mut batch: Vec<Reply> = Vec::with_capacity(WRITE_BATCH);
        let mut heads: Vec<u8> = Vec::with_capacity(4096);
        let mut head_ends: Vec<usize> = Vec::with_capacity(WRITE_BATCH);
        let mut scratch: Vec<u8> = Vec::new();
        while self.out.pop_batch(&mut batch, WRITE_BATCH).await {
            let mut from = 0;
            while from < batch.len() {
                // A run of byte-bodied replies goes out in one vectored write.
                let run_end = batch[from..]
                    .iter()
                    .position(|r| !r.file_body.is_empty())
                    .map_or(batch.len(), |p| from + p);
                if run_end > from {
                    heads.clear();
                    head_ends.clear();
                    for r in &batch[from..run_end] {
                        frame::encode_head(&r.command, r.command.body.len(), &mut heads);
                        head_ends.push(heads.len());
                    }
                    let mut slices = Vec::with_capacity(2 * (run_end - from));
                    let mut head_start = 0;
                    for (r, &head_end) in batch[from..run_end].iter().zip(&head_ends) {
                        slices.push(IoSlice::new(&heads[head_start..head_end]));
                        slices.push(IoSlice::new(&r.command.body));
                        head_start = head_end;
                    }
                    write_all_vectored(stream, &mut slices).await?;
                    from = run_end;
                } else {
                    let r = &batch[from];
                    let body_len: usize = r.file_body.iter().map(|f| f.len).sum();
                    heads.clear();
                    frame::encode_head(&r.command, r.command.body.len() + body_len, &mut heads);
                    let mut slices = [IoSlice::new(&heads), IoSlice::new(&r.command.body)];
                    write_all_vectored(stream, &mut slices).await?;
                    for region in &r.file_body {
                        crate::zero_copy::send_file_range(
                            stream,
                            &*region.file,
                            region.offset,
                            region.len,
                            &mut scratch,
                        )
                        .await?;
                    }
                    from += 1;
                }
            }
            let written: usize = batch.iter().map(queued_weight).sum();
            debug_assert!(written <= self.queued_bytes.get());
            self.queued_bytes
                .set(self.queued_bytes.get().saturating_sub(written));
            self.last_progress.set(Instant::now());
            if self.queued_bytes.get() <= self.limits.resume_reading_at() {
                if let Some(w) = self.reader_parked.take() {
                    w.wake();
                }
            }
            batch.clear();
        }
        Ok(())
    }
}

/// What a queued reply counts against [`ConnectionLimits::max_queued_bytes`]: its body (in memory
/// and file ranges) and a fixed allowance for its header.
fn queued_weight(reply: &Reply) -> usize {
    const FRAME_ALLOWANCE: usize = 256;
    let file_bytes: usize = reply.file_body.iter().map(|f| f.len).sum();
    FRAME_ALLOWANCE + reply.command.body.len() + file_bytes
}

/// Why a reader stopped.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Frame(#[from] frame::FrameError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The REQUEST_CODE_NOT_SUPPORTED response RocketMQ gives to a request code it has no processor for
/// (remark `" request type N not supported"`, leading space included, as Java writes it).
pub fn not_supported(req: &RemotingCommand) -> Reply {
    Reply::new(RemotingCommand::response_to(
        req,
        response::REQUEST_CODE_NOT_SUPPORTED,
        Some(format!(" request type {} not supported", req.code)),
    ))
}
