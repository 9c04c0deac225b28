//! The client side: one connection per peer address, made on first use and remade after it closes.
//! Used by brokers (registration with nameservers), the Rust client and the tools. Lives on one
//! executor (`!Send`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpStream;

use super::connection::{Connection, Side};
use super::{ClientError, ConnectionLimits, RequestHandler};
use crate::RemotingCommand;

/// How a [`RemotingClient`] connects.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// Longest wait for a TCP connection to be established.
    pub connect_timeout: Duration,
    /// Limits applied to each connection (frames from the peer, requests from the peer in flight).
    pub limits: ConnectionLimits,
}

impl Default for ClientConfig {
    /// 3 s connect timeout (RocketMQ's `connectTimeoutMillis`), default limits.
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            limits: ConnectionLimits::default(),
        }
    }
}

/// Sends requests to peers by address (`host:port`), matching responses by opaque. Requests the
/// peers send on these connections go to the optional handler (without one they get
/// REQUEST_CODE_NOT_SUPPORTED). Dropping the client closes its connections.
pub struct RemotingClient {
    config: ClientConfig,
    handler: Option<Rc<dyn RequestHandler>>,
    conns: RefCell<HashMap<String, Rc<Connection>>>,
}

impl RemotingClient {
    /// A client without a handler for peer-initiated requests.
    pub fn new(config: ClientConfig) -> Self {
        RemotingClient {
            config,
            handler: None,
            conns: RefCell::new(HashMap::new()),
        }
    }

    /// A client whose connections pass requests from the peer to `handler`.
    pub fn with_handler(config: ClientConfig, handler: Rc<dyn RequestHandler>) -> Self {
        RemotingClient {
            config,
            handler: Some(handler),
            conns: RefCell::new(HashMap::new()),
        }
    }

    /// Sends `cmd` to `addr` and waits up to `timeout` for its response (connecting first if needed,
    /// which may take up to the connect timeout besides).
    pub async fn invoke(
        &self,
        addr: &str,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        let conn = self.connection(addr).await?;
        let result = conn.invoke(cmd, timeout).await;
        if let Err(ClientError::Closed { .. }) = &result {
            self.forget(addr, &conn);
        }
        result.map_err(|e| rename(e, addr))
    }

    /// Sends `cmd` to `addr` marked one-way (no response); returns once it is queued.
    pub async fn invoke_oneway(&self, addr: &str, cmd: RemotingCommand) -> Result<(), ClientError> {
        let conn = self.connection(addr).await?;
        conn.invoke_oneway(cmd).map_err(|e| rename(e, addr))
    }

    /// Closes the connection to `addr`, if any; the next request makes a new one.
    pub fn close(&self, addr: &str) {
        if let Some(conn) = self.conns.borrow_mut().remove(addr) {
            conn.close();
        }
    }

    /// True when an open connection to `addr` exists.
    pub fn is_connected(&self, addr: &str) -> bool {
        self.conns
            .borrow()
            .get(addr)
            .is_some_and(|c| !c.is_closed())
    }

    /// The open connection to `addr`, made if there is none (or it closed).
    async fn connection(&self, addr: &str) -> Result<Rc<Connection>, ClientError> {
        if let Some(conn) = self.conns.borrow().get(addr) {
            if !conn.is_closed() {
                return Ok(Rc::clone(conn));
            }
        }
        let target = resolve(addr).await?;
        let stream = TcpStream::connect_timeout(target, self.config.connect_timeout)
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.to_string(),
                source: e.into(),
            })?;
        let conn = Connection::start(
            stream,
            0,
            Side::Client,
            self.config.limits,
            self.handler.clone(),
        )
        .map_err(|source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        })?;
        tracing::debug!(addr, "connected");
        let mut conns = self.conns.borrow_mut();
        // Another task may have connected meanwhile; keep one connection per address.
        if let Some(existing) = conns.get(addr) {
            if !existing.is_closed() {
                conn.close();
                return Ok(Rc::clone(existing));
            }
        }
        conns.insert(addr.to_string(), Rc::clone(&conn));
        Ok(conn)
    }

    fn forget(&self, addr: &str, conn: &Rc<Connection>) {
        let mut conns = self.conns.borrow_mut();
        if conns.get(addr).is_some_and(|c| Rc::ptr_eq(c, conn)) {
            conns.remove(addr);
        }
    }
}

impl Drop for RemotingClient {
    fn drop(&mut self) {
        for (_, conn) in self.conns.borrow_mut().drain() {
            conn.close();
        }
    }
}

/// Reports errors with the address the caller used (a name rather than the resolved IP).
fn rename(e: ClientError, addr: &str) -> ClientError {
    match e {
        ClientError::Timeout { timeout, .. } => ClientError::Timeout {
            addr: addr.to_string(),
            timeout,
        },
        ClientError::Closed { .. } => ClientError::Closed {
            addr: addr.to_string(),
        },
        other => other,
    }
}

/// Parses `host:port`; names are resolved on a helper thread (DNS blocks).
async fn resolve(addr: &str) -> Result<SocketAddr, ClientError> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let owned = addr.to_string();
    let resolved = tern_runtime::spawn_blocking(move || {
        owned
            .to_socket_addrs()
            .map(|mut it| it.next())
            .map_err(|e| e.to_string())
    })
    .await;
    match resolved {
        Ok(Some(sa)) => Ok(sa),
        Ok(None) => Err(ClientError::Address {
            addr: addr.to_string(),
            reason: "resolves to no address".into(),
        }),
        Err(reason) => Err(ClientError::Address {
            addr: addr.to_string(),
            reason,
        }),
    }
}
