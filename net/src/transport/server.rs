//! The multi-core server: one executor per core, each with its own listening socket on the same
//! port (glommio's `TcpListener::bind` sets `SO_REUSEPORT`, so the kernel spreads connections over
//! the cores), its own handler and its own connections.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::{TcpListener, TcpStream};
use tern_runtime::ExecutorHandle;

use super::connection::{Connection, Side};
use super::{ConnectionLimits, RequestHandler, TransportError};

/// How often a core checks its [`StopSignal`] while idle in `accept`.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long a stopping core lets running requests finish and queued output drain.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Where and how a [`Server`] runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (shared by all cores).
    pub listen: SocketAddr,
    /// Number of executors (cores), at least 1.
    pub cores: usize,
    /// Pin executor `i` to CPU `i`.
    pub pin_to_cores: bool,
    /// Prefix of the executor thread names.
    pub name: String,
    /// Per-connection limits.
    pub limits: ConnectionLimits,
}

impl ServerConfig {
    /// One unpinned core on `listen` with default limits.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            cores: 1,
            pin_to_cores: false,
            name: "tern-net".to_string(),
            limits: ConnectionLimits::default(),
        }
    }
}

/// Asks a [`Server`] to stop; cloneable and `Send` (for example into a SIGTERM handler thread).
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal. Idempotent.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once raised.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Completes once the signal is raised (checked every 50 ms; a cross-thread flag cannot wake a
    /// glommio task directly).
    pub async fn wait(&self) {
        while !self.is_stopped() {
            tern_runtime::sleep(STOP_POLL).await;
        }
    }

    /// The next connection accepted on `listener` (or the accept's error); `None` once the signal
    /// is raised first, as [`StopSignal::wait`] sees it.
    pub async fn accept(&self, listener: &TcpListener) -> Option<glommio::Result<TcpStream, ()>> {
        futures_lite::future::or(async { Some(listener.accept().await) }, async {
            self.wait().await;
            None
        })
        .await
    }
}

/// A running server. Stopping it stops accepting, lets running requests finish and their responses
/// drain (up to 5 s), then closes every connection (each closing calls the handler's `on_close`).
pub struct Server {
    local_addr: SocketAddr,
    stop: StopSignal,
    cores: Vec<ExecutorHandle<()>>,
}

/// Fails with [`TransportError::Bind`] (`AddrInUse`) when a socket already listens on `addr`'s
/// port at an overlapping address.
///
/// The cores bind with `SO_REUSEPORT`, which lets a second process of the same user bind the same
/// port too: the kernel would then split new connections between two brokers without a word,
/// where RocketMQ fails to start. This process has bound nothing on the port yet, so any listener
/// the kernel lists for it (`/proc/net/tcp`, `/proc/net/tcp6`) belongs to someone else. A plain
/// bind would not do as the probe: it also conflicts with the previous run's connections still in
/// TIME_WAIT. A listener that goes away within [`PREVIOUS_LISTENER_GRACE`] was the previous run's.
/// Port 0 (an ephemeral port) needs no check; without `/proc` there is none.
fn refuse_a_port_in_use(addr: SocketAddr) -> Result<(), TransportError> {
    if addr.port() == 0 {
        return Ok(());
    }
    let taken = || {
        ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
            std::fs::read_to_string(table)
                .map(|text| listeners(&text).any(|l| overlaps(l, addr)))
                .unwrap_or(false)
        })
    };
    // A process that just exited can leave its listener for a moment: glommio's io_uring still
    // holds an accept on it, and the kernel tears the ring down asynchronously after the exit.
    // A restart right after a stop waits that out instead of failing.
    let deadline = std::time::Instant::now() + PREVIOUS_LISTENER_GRACE;
    while taken() {
        if std::time::Instant::now() >= deadline {
            return Err(TransportError::Bind {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process already listens on this port",
                ),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// How long a listener found on the port may take to go away before the port counts as taken.
const PREVIOUS_LISTENER_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The listening sockets of a `/proc/net/tcp` or `/proc/net/tcp6` table.
fn listeners(table: &str) -> impl Iterator<Item = SocketAddr> + '_ {
    const LISTEN: &str = "0A";
    table.lines().skip(1).filter_map(|line| {
        let mut cols = line.split_whitespace();
        let local = cols.nth(1)?;
        let state = cols.nth(1)?;
        if state != LISTEN {
            return None;
        }
        let (ip_hex, port_hex) = local.split_once(':')?;
        let port = u16::from_str_radix(port_hex, 16).ok()?;
        // The address is printed as the host's 32-bit words of its network-order bytes.
        let mut bytes = Vec::with_capacity(16);
        for word in ip_hex.as_bytes().chunks(8) {
            let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        let ip: std::net::IpAddr = match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes).ok()?.into(),
            16 => <[u8; 16]>::try_from(bytes).ok()?.into(),
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    })
}

/// Whether a listener on `other` takes connections meant for `ours`: the same port, and the same
/// address or a wildcard on either side.
fn overlaps(other: SocketAddr, ours: SocketAddr) -> bool {
    other.port() == ours.port()
        && (other.ip().is_unspecified() || ours.ip().is_unspecified() || other.ip() == ours.ip())
}

impl Server {
    /// Starts `config.cores` executors, each listening on the same address and serving its
    /// connections with the handler `factory(core)` builds on that executor. Returns once every core
    /// is listening; a bind error of any core is returned (and started cores are stopped). A port
    /// another process already listens on is refused, although the cores bind with `SO_REUSEPORT`.
    pub fn start<F>(config: ServerConfig, factory: F) -> Result<Server, TransportError>
    where
        F: Fn(usize) -> Rc<dyn RequestHandler> + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        let stop = StopSignal::new();
        let mut server = Server {
            local_addr: config.listen,
            stop: stop.clone(),
            cores: Vec::new(),
        };
        refuse_a_port_in_use(config.listen)?;
        for core in 0..config.cores.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            let (factory, stop, limits) = (Arc::clone(&factory), stop.clone(), config.limits);
            // Core 0 may bind port 0; the others bind the port it got.
            let addr = server.local_addr;
            let placement = config.pin_to_cores.then_some(core);
            let name = format!("{}-{core}", config.name);
            let started = tern_runtime::spawn_executor(&name, placement, move || async move {
                let listener = match TcpListener::bind(addr) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::from(e)));
                        return;
                    }
                };
                let _ = tx.send(listener.local_addr().map_err(std::io::Error::from));
                serve_core(core, listener, factory(core), limits, stop).await;
            });
            let handle = match started {
                Ok(h) => h,
                Err(e) => {
                    server.shutdown_started();
                    return Err(e.into());
                }
            };
            let bound = rx.recv();
            server.cores.push(handle);
            match bound {
                Ok(Ok(a)) => server.local_addr = a,
                Ok(Err(source)) => {
                    server.shutdown_started();
                    return Err(TransportError::Bind { addr, source });
                }
                Err(_) => {
                    // The executor died before binding; joining reports how.
                    let err = server.cores.pop().map(|h| h.join());
                    server.shutdown_started();
                    return Err(match err {
                        Some(Err(e)) => e.into(),
                        _ => TransportError::Runtime(tern_runtime::RuntimeError::Panicked(name)),
                    });
                }
            }
        }
        tracing::info!(addr = %server.local_addr, cores = server.cores.len(), "listening");
        Ok(server)
    }

    /// The address the server listens on (with the actual port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops this server when raised.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Raises the stop signal and waits for every core to finish.
    pub fn stop(self) -> Result<(), TransportError> {
        self.stop.stop();
        self.join()
    }

    /// Waits for every core to finish (after the stop signal is raised elsewhere).
    pub fn join(mut self) -> Result<(), TransportError> {
        let mut first_err = None;
        for h in self.cores.drain(..) {
            if let Err(e) = h.join() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }

    fn shutdown_started(&mut self) {
        self.stop.stop();
        for h in self.cores.drain(..) {
            let _ = h.join();
        }
    }
}

/// Serves an extra listener on the calling executor (core `core`) with `handler` until `stop` is
/// raised, then winds its connections down as [`Server`] does: for a second port served by the
/// same cores (the broker's HA port).
pub async fn serve_listener(
    core: usize,
    listener: TcpListener,
    handler: Rc<dyn RequestHandler>,
    limits: ConnectionLimits,
    stop: StopSignal,
) {
    serve_core(core, listener, handler, limits, stop).await
}

/// Accepts and serves connections on one core until stopped, then winds them down.
async fn serve_core(
    core: usize,
    listener: TcpListener,
    handler: Rc<dyn RequestHandler>,
    limits: ConnectionLimits,
    stop: StopSignal,
) {
    let conns: RefCell<Vec<Weak<Connection>>> = RefCell::new(Vec::new());
    loop {
        match stop.accept(&listener).await {
            None => break,
            Some(Ok(stream)) => {
                match Connection::start(
                    stream,
                    core,
                    Side::Server,
                    limits,
                    Some(Rc::clone(&handler)),
                ) {
                    Ok(conn) => {
                        tracing::debug!(peer = %conn.info().peer, core, "accepted");
                        let mut conns = conns.borrow_mut();
                        conns.retain(|c| c.upgrade().is_some_and(|c| !c.is_closed()));
                        conns.push(Rc::downgrade(&conn));
                    }
                    Err(e) => tracing::warn!(core, "cannot set up an accepted connection: {e}"),
                }
            }
            Some(Err(e)) => {
                tracing::warn!(core, "accept failed: {e}");
                tern_runtime::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    let live: Vec<Rc<Connection>> = conns.borrow().iter().filter_map(Weak::upgrade).collect();
    let deadline = Instant::now() + STOP_GRACE;
    // Let running requests finish, then let each writer drain what is queued and close.
    while live.iter().any(|c| !c.is_closed() && c.in_flight() > 0) && Instant::now() < deadline {
        tern_runtime::sleep(Duration::from_millis(5)).await;
    }
    for c in &live {
        c.finish();
    }
    while live.iter().any(|c| !c.is_closed()) && Instant::now() < deadline {
        tern_runtime::sleep(Duration::from_millis(5)).await;
    }
    for c in &live {
        c.close();
    }
    tracing::debug!(core, "stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_read_from_the_kernel_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue\n   0: 00000000:07E8 00000000:0000 0A 0\n   1: 0100007F:74B4 0100007F:9C40 01 0\n   2: 0100007F:4E22 00000000:0000 0A 0\n";
        let got: Vec<SocketAddr> = listeners(v4).collect();
        assert_eq!(
            got,
            [
                "0.0.0.0:2024".parse().unwrap(),
                "127.0.0.1:20002".parse().unwrap()
            ]
        );
        let v6 = "  sl  local_address remote_address st\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0\n";
        let got: Vec<SocketAddr> = listeners(v6).collect();
        assert_eq!(got, ["[::1]:8080".parse().unwrap()]);
    }

    #[test]
    fn a_wildcard_on_either_side_overlaps() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlaps(a("0.0.0.0:10911"), a("127.0.0.1:10911")));
        assert!(overlaps(a("127.0.0.1:10911"), a("0.0.0.0:10911")));
        assert!(overlaps(a("[::]:10911"), a("127.0.0.1:10911")));
        assert!(!overlaps(a("127.0.0.2:10911"), a("127.0.0.1:10911")));
        assert!(!overlaps(a("0.0.0.0:10912"), a("0.0.0.0:10911")));
    }
}
