//! Addresses and ports of servers under test.

use std::net::SocketAddr;

/// `127.0.0.1:<port of addr>`: how clients reach a server bound on any interface or loopback.
pub fn loopback(addr: SocketAddr) -> String {
    format!("127.0.0.1:{}", addr.port())
}

/// A loopback port that was free a moment ago (a server may bind it next; a race is possible
/// but needs another process to take the port in between).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
