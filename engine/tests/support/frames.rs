//! Raw remoting frames over a blocking `TcpStream`: for the tests that talk to a server byte by
//! byte (`bad_input.rs`, `crash.rs`, `console.rs`, `namesrv.rs`) instead of through
//! `RemotingClient`.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tern_net::code::request;
use tern_net::frame;
use tern_net::RemotingCommand;

use super::requests::{pull_header, send_header};

/// How long a server may take to answer before the test fails (never reached when all is well).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking connection to `addr` whose reads give up after [`ANSWER_TIMEOUT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    s
}

/// `cmd` as the bytes of one frame (length prefix included).
pub fn encode(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(cmd, &mut out);
    out
}

/// A frame with a hand-written header (JSON or ROCKETMQ bytes) and body; lengths consistent.
pub fn raw_frame(serialize_type: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = ((4 + header.len() + body.len()) as u32)
        .to_be_bytes()
        .to_vec();
    out.extend(((u32::from(serialize_type) << 24) | header.len() as u32).to_be_bytes());
    out.extend(header);
    out.extend(body);
    out
}

/// Reads one frame; `None` on a clean close (EOF or reset). Panics on a timeout.
pub fn read_frame(s: &mut TcpStream) -> Option<RemotingCommand> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
            panic!("no answer within {ANSWER_TIMEOUT:?}")
        }
        Err(_) => return None,
    }
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut rest).ok()?;
    let mut whole = len.to_vec();
    whole.extend(rest);
    Some(frame::decode(&whole).expect("the server's frame decodes"))
}

/// A request with opaque 7 carrying typed header `h`.
pub fn with_header<H: tern_net::header::CommandHeader>(code: i32, h: &H, body: &[u8]) -> Vec<u8> {
    let mut cmd = RemotingCommand::request(code)
        .with_header(h)
        .with_body(body.to_vec());
    cmd.opaque = 7;
    encode(&cmd)
}

/// A SEND_MESSAGE request of `body` with tag `t`.
pub fn send(topic: &str, queue_id: i32, body: &[u8]) -> Vec<u8> {
    with_header(
        request::SEND_MESSAGE,
        &send_header(topic, queue_id, "TAGS\u{1}t\u{2}"),
        body,
    )
}

/// A PULL_MESSAGE request (see [`pull_header`]).
pub fn pull(topic: &str, queue_id: i32, offset: i64) -> Vec<u8> {
    with_header(
        request::PULL_MESSAGE,
        &pull_header(topic, queue_id, offset),
        b"",
    )
}
