//! Helpers shared by the tests that drive the real binaries over raw TCP (`bad_input.rs`,
//! `crash.rs`): spawning a server, framing and reading commands on a blocking socket.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use tern_net::code::request;
use tern_net::frame;
use tern_net::header::{PullMessageRequestHeader, SendMessageRequestHeader};
use tern_net::RemotingCommand;

/// How long a server may take to answer before the test fails (never reached when all is well).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A server process, killed on drop; its stderr goes to a file checked for panics.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: PathBuf,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    pub fn spawn(bin: &str, args: &[&str], dir: &Path, name: &str) -> Server {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Server {
            child,
            addr,
            stderr,
            _stdout: stdout,
        }
    }

    /// Asserts the process has logged no panic (whether or not it still runs).
    pub fn assert_no_panic(&self) {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(!log.contains("panicked"), "panic logged: {log}");
    }

    /// Asserts the process is running and has logged no panic.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "server exited; stderr: {}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(!log.contains("panicked"), "panic logged: {log}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    s
}

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

/// A SEND_MESSAGE header for `topic`/`queue_id` with the given encoded properties.
pub fn send_header(topic: &str, queue_id: i32, properties: &str) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "bad_pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: Some(properties.into()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        ..SendMessageRequestHeader::default()
    }
}

/// A SEND_MESSAGE request of `body` with tag `t`.
pub fn send(topic: &str, queue_id: i32, body: &[u8]) -> Vec<u8> {
    with_header(
        request::SEND_MESSAGE,
        &send_header(topic, queue_id, "TAGS\u{1}t\u{2}"),
        body,
    )
}

/// A PULL_MESSAGE header from `offset`, up to 32 messages, subscription `*`, no long polling.
pub fn pull_header(topic: &str, queue_id: i32, offset: i64) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: "bad_cg".into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        // The subscription travels in the header.
        sys_flag: 4,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some("*".into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::default()
    }
}

/// A PULL_MESSAGE request (see [`pull_header`]).
pub fn pull(topic: &str, queue_id: i32, offset: i64) -> Vec<u8> {
    with_header(
        request::PULL_MESSAGE,
        &pull_header(topic, queue_id, offset),
        b"",
    )
}
