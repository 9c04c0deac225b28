//! The transport over real loopback sockets: request/response, one-way, timeouts, opaque matching,
//! back-pressure, server-initiated requests, zero-copy bodies, bad input and graceful stop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_net::code::response;
use tern_net::frame;
use tern_net::transport::{
    not_supported, ClientConfig, ClientError, ConnectionInfo, ConnectionLimits, HandlerFuture,
    RemotingClient, Reply, RequestHandler, Server, ServerConfig, TransportError,
};
use tern_net::zero_copy::FileRegion;
use tern_net::RemotingCommand;

const ECHO: i32 = 9001;
const SLOW: i32 = 9002;
const ASK_CLIENT: i32 = 9003;
const PULL_FILE: i32 = 9004;
const DELAYED_ECHO: i32 = 9005;
const CLIENT_QUESTION: i32 = 9100;

/// Counters shared between the test thread and the server's cores.
#[derive(Default)]
struct Seen {
    oneways: AtomicUsize,
    slow_started: AtomicUsize,
    closes: AtomicUsize,
}

struct TestHandler {
    seen: Arc<Seen>,
    file: Option<Rc<std::fs::File>>,
}

impl RequestHandler for TestHandler {
    fn handle<'a>(&'a self, req: RemotingCommand, conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            if req.is_oneway() {
                self.seen.oneways.fetch_add(1, Ordering::SeqCst);
                return None;
            }
            match req.code {
                ECHO => {
                    let mut reply = echo(&req);
                    reply
                        .command
                        .ext_fields
                        .insert("core", conn.core.to_string());
                    Some(reply)
                }
                DELAYED_ECHO => {
                    let us: u64 = req.ext("us").and_then(|v| v.parse().ok()).unwrap_or(0);
                    tern_runtime::sleep(Duration::from_micros(us)).await;
                    Some(echo(&req))
                }
                SLOW => {
                    self.seen.slow_started.fetch_add(1, Ordering::SeqCst);
                    tern_runtime::sleep(Duration::from_millis(300)).await;
                    Some(echo(&req))
                }
                ASK_CLIENT => {
                    let question = RemotingCommand::request(CLIENT_QUESTION);
                    let answer = conn
                        .outbound()
                        .invoke(question, Duration::from_secs(5))
                        .await
                        .ok()?;
                    let resp = RemotingCommand::response_to(&req, response::SUCCESS, None)
                        .with_body(answer.body);
                    Some(Reply::new(resp))
                }
                PULL_FILE => {
                    let file = self.file.clone()?;
                    let offset: u64 = req.ext("offset")?.parse().ok()?;
                    let len: usize = req.ext("len")?.parse().ok()?;
                    let resp = RemotingCommand::response_to(&req, response::SUCCESS, None)
                        .with_body(b"prefix:".to_vec());
                    Some(Reply::with_file_body(
                        resp,
                        vec![FileRegion { file, offset, len }],
                    ))
                }
                _ => Some(not_supported(&req)),
            }
        })
    }

    fn on_close(&self, _conn: &ConnectionInfo) {
        self.seen.closes.fetch_add(1, Ordering::SeqCst);
    }
}

fn echo(req: &RemotingCommand) -> Reply {
    let mut resp = RemotingCommand::response_to(req, response::SUCCESS, None);
    resp.body = req.body.clone();
    resp.ext_fields = req.ext_fields.clone();
    Reply::new(resp)
}

fn start_server(
    cores: usize,
    limits: ConnectionLimits,
    file: Option<PathBuf>,
) -> (Server, Arc<Seen>) {
    start_server_on("127.0.0.1:0".parse().unwrap(), cores, limits, file)
}

fn start_server_on(
    addr: SocketAddr,
    cores: usize,
    limits: ConnectionLimits,
    file: Option<PathBuf>,
) -> (Server, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let config = ServerConfig {
        cores,
        limits,
        ..ServerConfig::new(addr)
    };
    let s = Arc::clone(&seen);
    let server = Server::start(config, move |_core| -> Rc<dyn RequestHandler> {
        Rc::new(TestHandler {
            seen: Arc::clone(&s),
            file: file
                .as_ref()
                .map(|p| Rc::new(std::fs::File::open(p).unwrap())),
        })
    })
    .unwrap();
    (server, seen)
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn frame_of(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(cmd, &mut out);
    out
}

/// Reads one whole frame from a blocking socket; `None` on EOF.
fn read_frame(s: &mut StdStream) -> Option<RemotingCommand> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let total = u32::from_be_bytes(len) as usize;
    let mut rest = vec![0u8; total];
    s.read_exact(&mut rest).ok()?;
    let mut whole = len.to_vec();
    whole.extend_from_slice(&rest);
    Some(frame::decode(&whole).expect("server sent a bad frame"))
}

fn raw_connect(addr: SocketAddr) -> StdStream {
    let s = StdStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn request_gets_its_response_over_two_cores() {
    let (server, _) = start_server(2, ConnectionLimits::default(), None);
    let addr = server.local_addr().to_string();
    tern_runtime::block_on("client", async move {
        let client = RemotingClient::new(ClientConfig::default());
        for i in 0..20 {
            let req = RemotingCommand::request(ECHO)
                .with_ext("i", i.to_string())
                .with_body(format!("hello {i}").into_bytes());
            let opaque = req.opaque;
            let resp = client
                .invoke(&addr, req, Duration::from_secs(5))
                .await
                .unwrap();
            assert!(resp.is_response());
            assert_eq!(resp.opaque, opaque);
            assert_eq!(resp.code, response::SUCCESS);
            assert_eq!(resp.ext("i"), Some(i.to_string().as_str()));
            assert_eq!(resp.body, format!("hello {i}").into_bytes());
        }
    })
    .unwrap();
    // SO_REUSEPORT spreads connections over both cores (all 32 on one core: odds 2^-31).
    let mut cores = std::collections::BTreeSet::new();
    for _ in 0..32 {
        let mut s = raw_connect(server.local_addr());
        s.write_all(&frame_of(&RemotingCommand::request(ECHO)))
            .unwrap();
        cores.insert(read_frame(&mut s).unwrap().ext("core").unwrap().to_string());
    }
    assert_eq!(cores.len(), 2, "{cores:?}");
    server.stop().unwrap();
}

#[test]
fn a_port_another_server_listens_on_is_refused() {
    let (first, _) = start_server(2, ConnectionLimits::default(), None);
    let taken = first.local_addr();
    let err = Server::start(
        ServerConfig::new(taken),
        |_core| -> Rc<dyn RequestHandler> { unreachable!("never serves") },
    )
    .err()
    .expect("a second server on a taken port");
    assert!(
        matches!(&err, TransportError::Bind { addr, source }
            if *addr == taken && source.kind() == std::io::ErrorKind::AddrInUse),
        "{err}"
    );
    // The first still serves, alone: every connection reaches it.
    let mut s = raw_connect(taken);
    s.write_all(&frame_of(&RemotingCommand::request(ECHO)))
        .unwrap();
    assert_eq!(read_frame(&mut s).unwrap().code, response::SUCCESS);
    first.stop().unwrap();
    // Once it has stopped the port is free again, even with the old connection still open.
    let (again, _) = start_server_on(taken, 1, ConnectionLimits::default(), None);
    again.stop().unwrap();
    drop(s);
}

#[test]
fn oneway_gets_no_response_and_unknown_code_is_not_supported() {
    let (server, seen) = start_server(1, ConnectionLimits::default(), None);
    let mut s = raw_connect(server.local_addr());
    let mut oneway = RemotingCommand::request(ECHO);
    oneway.set_oneway();
    let unknown = RemotingCommand::request(4242);
    let mut bytes = frame_of(&oneway);
    bytes.extend(frame_of(&unknown));
    s.write_all(&bytes).unwrap();
    let resp = read_frame(&mut s).unwrap();
    assert_eq!(
        resp.opaque, unknown.opaque,
        "the one-way request got an answer"
    );
    assert_eq!(resp.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 4242 not supported")
    );
    wait_until("the one-way request", || {
        seen.oneways.load(Ordering::SeqCst) == 1
    });
    server.stop().unwrap();
}

#[test]
fn timeout_then_the_connection_still_works() {
    let (server, _) = start_server(1, ConnectionLimits::default(), None);
    let addr = server.local_addr().to_string();
    tern_runtime::block_on("client", async move {
        let client = RemotingClient::new(ClientConfig::default());
        let err = client
            .invoke(
                &addr,
                RemotingCommand::request(SLOW),
                Duration::from_millis(50),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        let resp = client
            .invoke(
                &addr,
                RemotingCommand::request(ECHO),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
    })
    .unwrap();
    server.stop().unwrap();
}

#[test]
fn concurrent_requests_are_matched_by_opaque() {
    let (server, _) = start_server(1, ConnectionLimits::default(), None);
    let addr = server.local_addr().to_string();
    tern_runtime::block_on("client", async move {
        let client = Rc::new(RemotingClient::new(ClientConfig::default()));
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let (client, addr) = (Rc::clone(&client), addr.clone());
                tern_runtime::spawn_local(async move {
                    // Later requests finish first, so responses come back out of order.
                    let req = RemotingCommand::request(DELAYED_ECHO)
                        .with_ext("us", ((200 - i) * 50).to_string())
                        .with_body(i.to_le_bytes().to_vec());
                    let resp = client
                        .invoke(&addr, req, Duration::from_secs(10))
                        .await
                        .unwrap();
                    assert_eq!(resp.body, i.to_le_bytes().to_vec());
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    })
    .unwrap();
    server.stop().unwrap();
}

#[test]
fn requests_past_the_in_flight_bound_get_system_busy() {
    let limits = ConnectionLimits {
        max_in_flight: 2,
        ..ConnectionLimits::default()
    };
    let (server, _) = start_server(1, limits, None);
    let mut s = raw_connect(server.local_addr());
    let slow1 = RemotingCommand::request(SLOW);
    let slow2 = RemotingCommand::request(SLOW);
    let third = RemotingCommand::request(ECHO);
    let mut bytes = frame_of(&slow1);
    bytes.extend(frame_of(&slow2));
    bytes.extend(frame_of(&third));
    s.write_all(&bytes).unwrap();
    let first = read_frame(&mut s).unwrap();
    assert_eq!(first.opaque, third.opaque);
    assert_eq!(first.code, response::SYSTEM_BUSY);
    let mut rest = [read_frame(&mut s).unwrap(), read_frame(&mut s).unwrap()];
    rest.sort_by_key(|r| r.opaque);
    let mut want = [slow1.opaque, slow2.opaque];
    want.sort();
    assert_eq!([rest[0].opaque, rest[1].opaque], want);
    assert!(rest.iter().all(|r| r.code == response::SUCCESS));
    server.stop().unwrap();
}

#[test]
fn a_peer_that_stops_reading_is_paused_then_closed_when_idle() {
    let limits = ConnectionLimits {
        max_queued_bytes: 1 << 20,
        idle_timeout: Some(Duration::from_millis(300)),
        ..ConnectionLimits::default()
    };
    let (server, _) = start_server(1, limits, None);
    // 256 echoes of 256 KiB (64 MiB of requests, more than the socket buffers hold) and not a
    // byte read: the server stops reading requests once its output backs up, so the writes block
    // until the idle rule closes the connection.
    let mut stalled = raw_connect(server.local_addr());
    let big = RemotingCommand::request(ECHO).with_body(vec![7u8; 256 * 1024]);
    let mut writer = stalled.try_clone().unwrap();
    let writes = std::thread::spawn(move || {
        let mut written = 0;
        for _ in 0..256 {
            if writer.write_all(&frame_of(&big)).is_err() {
                break; // closed
            }
            written += 1;
        }
        written
    });
    // Another connection is served meanwhile.
    let mut other = raw_connect(server.local_addr());
    let ping = RemotingCommand::request(ECHO);
    other.write_all(&frame_of(&ping)).unwrap();
    assert_eq!(read_frame(&mut other).unwrap().opaque, ping.opaque);
    let written = writes.join().unwrap();
    assert!(
        written < 256,
        "the server read every request of a peer that never reads"
    );
    // The stalled peer finds what the socket buffers and the paused queue held, then the end.
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stalled.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stalled connection was not closed: {e}"),
        }
    }
    assert!(received < 64 << 20, "received {received} bytes");
    server.stop().unwrap();
}

#[test]
fn a_peer_pipelining_past_the_output_bound_gets_every_response() {
    // A peer sends 16 times the output bound of requests while reading the responses at its own
    // pace: back-pressure, not the bound, meets it, and nothing is lost or closed.
    let limits = ConnectionLimits {
        max_queued_bytes: 1 << 20,
        idle_timeout: None,
        ..ConnectionLimits::default()
    };
    let (server, _) = start_server(1, limits, None);
    let mut s = raw_connect(server.local_addr());
    let big = RemotingCommand::request(ECHO).with_body(vec![9u8; 256 * 1024]);
    let mut writer = s.try_clone().unwrap();
    let writes = std::thread::spawn(move || {
        for _ in 0..64 {
            writer.write_all(&frame_of(&big)).unwrap();
        }
    });
    for i in 0..64 {
        let rsp = read_frame(&mut s).unwrap_or_else(|| panic!("closed after {i} responses"));
        assert_eq!(rsp.body.len(), 256 * 1024);
    }
    writes.join().unwrap();
    server.stop().unwrap();
}

#[test]
fn a_connection_silent_after_half_a_frame_is_closed_when_idle() {
    let limits = ConnectionLimits {
        idle_timeout: Some(Duration::from_millis(200)),
        ..ConnectionLimits::default()
    };
    let (server, _) = start_server(1, limits, None);
    // A served request, then half of the next frame and silence.
    let mut s = raw_connect(server.local_addr());
    let ping = RemotingCommand::request(ECHO);
    s.write_all(&frame_of(&ping)).unwrap();
    assert_eq!(read_frame(&mut s).unwrap().opaque, ping.opaque);
    let half = frame_of(&RemotingCommand::request(ECHO));
    s.write_all(&half[..half.len() / 2]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the idle connection to be closed, got {other:?}"),
    }
    // A connection that keeps sending whole frames is not idle.
    let mut busy = raw_connect(server.local_addr());
    for _ in 0..5 {
        let ping = RemotingCommand::request(ECHO);
        busy.write_all(&frame_of(&ping)).unwrap();
        assert_eq!(read_frame(&mut busy).unwrap().opaque, ping.opaque);
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop().unwrap();
}

struct ClientSide;

impl RequestHandler for ClientSide {
    fn handle<'a>(&'a self, req: RemotingCommand, _conn: &'a ConnectionInfo) -> HandlerFuture<'a> {
        Box::pin(async move {
            assert_eq!(req.code, CLIENT_QUESTION);
            let resp = RemotingCommand::response_to(&req, response::SUCCESS, None)
                .with_body(b"answer from the client".to_vec());
            Some(Reply::new(resp))
        })
    }
}

#[test]
fn server_sends_a_request_to_a_connected_client() {
    let (server, _) = start_server(1, ConnectionLimits::default(), None);
    let addr = server.local_addr().to_string();
    tern_runtime::block_on("client", async move {
        let client = RemotingClient::with_handler(ClientConfig::default(), Rc::new(ClientSide));
        let resp = client
            .invoke(
                &addr,
                RemotingCommand::request(ASK_CLIENT),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
        assert_eq!(resp.body, b"answer from the client");
    })
    .unwrap();
    server.stop().unwrap();
}

#[test]
fn file_body_is_sent_zero_copy() {
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &data).unwrap();
    let (server, _) = start_server(1, ConnectionLimits::default(), Some(file.path().into()));
    let addr = server.local_addr().to_string();
    let expected = data.clone();
    tern_runtime::block_on("client", async move {
        let client = RemotingClient::new(ClientConfig::default());
        let (offset, len) = (1000usize, 2 * 1024 * 1024 + 17);
        let req = RemotingCommand::request(PULL_FILE)
            .with_ext("offset", offset.to_string())
            .with_ext("len", len.to_string());
        let resp = client
            .invoke(&addr, req, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(&resp.body[..7], b"prefix:");
        assert!(
            resp.body[7..] == expected[offset..offset + len],
            "file bytes differ"
        );
        // The connection is still in frame sync afterwards.
        let echo = client
            .invoke(
                &addr,
                RemotingCommand::request(ECHO).with_body(b"x".to_vec()),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(echo.body, b"x");
    })
    .unwrap();
    server.stop().unwrap();
}

#[test]
fn bad_input_closes_or_answers_only_the_offending_connection() {
    let (server, seen) = start_server(1, ConnectionLimits::default(), None);
    let mut good = raw_connect(server.local_addr());

    // A header that is JSON but not a command, with a readable opaque: SYSTEM_ERROR, conn stays.
    let mut bad_header = raw_connect(server.local_addr());
    let header = br#"{"code":{"x":1},"opaque":42}"#;
    let mut bytes = ((4 + header.len()) as u32).to_be_bytes().to_vec();
    bytes.extend((header.len() as u32).to_be_bytes());
    bytes.extend(header);
    bad_header.write_all(&bytes).unwrap();
    let resp = read_frame(&mut bad_header).unwrap();
    assert_eq!((resp.opaque, resp.code), (42, response::SYSTEM_ERROR));
    assert!(resp
        .remark
        .unwrap_or_default()
        .contains("invalid JSON header"));
    let ok = RemotingCommand::request(ECHO);
    bad_header.write_all(&frame_of(&ok)).unwrap();
    assert_eq!(read_frame(&mut bad_header).unwrap().opaque, ok.opaque);

    // An oversized length prefix closes that connection.
    let mut huge = raw_connect(server.local_addr());
    huge.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(huge.read(&mut buf).unwrap_or(0), 0, "connection not closed");
    wait_until("the close notification", || {
        seen.closes.load(Ordering::SeqCst) == 1
    });

    // The other connection never noticed.
    let req = RemotingCommand::request(ECHO).with_body(b"still here".to_vec());
    good.write_all(&frame_of(&req)).unwrap();
    let resp = read_frame(&mut good).unwrap();
    assert_eq!(resp.body, b"still here");
    server.stop().unwrap();
}

#[test]
fn stop_finishes_running_requests_then_closes() {
    let (server, seen) = start_server(1, ConnectionLimits::default(), None);
    let mut s = raw_connect(server.local_addr());
    let slow = RemotingCommand::request(SLOW);
    s.write_all(&frame_of(&slow)).unwrap();
    wait_until("the request to start", || {
        seen.slow_started.load(Ordering::SeqCst) == 1
    });
    server.stop().unwrap();
    let resp = read_frame(&mut s).expect("the running request's response");
    assert_eq!(resp.opaque, slow.opaque);
    assert!(read_frame(&mut s).is_none(), "connection left open");
    assert_eq!(seen.closes.load(Ordering::SeqCst), 1);
}

#[test]
fn client_reconnects_after_the_connection_closes() {
    let (server, _) = start_server(1, ConnectionLimits::default(), None);
    let listen = server.local_addr();
    let addr = listen.to_string();
    tern_runtime::block_on("client", async move {
        let client = RemotingClient::new(ClientConfig::default());
        let ping = || RemotingCommand::request(ECHO);
        client
            .invoke(&addr, ping(), Duration::from_secs(5))
            .await
            .unwrap();
        tern_runtime::spawn_blocking(move || server.stop().unwrap()).await;
        while client.is_connected(&addr) {
            tern_runtime::sleep(Duration::from_millis(1)).await;
        }
        let (server, _) = tern_runtime::spawn_blocking(move || {
            start_server_on(listen, 1, ConnectionLimits::default(), None)
        })
        .await;
        let resp = client
            .invoke(&addr, ping(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
        tern_runtime::spawn_blocking(move || server.stop().unwrap()).await;
    })
    .unwrap();
}

#[test]
fn frames_split_anywhere_or_larger_than_the_read_buffer_arrive_whole() {
    let (server, _) = start_server(1, ConnectionLimits::default(), None);
    let mut s = raw_connect(server.local_addr());
    s.set_nodelay(true).unwrap();
    // One byte per write: the server sees partial length prefixes and headers.
    let small = RemotingCommand::request(ECHO).with_body(b"tiny".to_vec());
    for b in frame_of(&small) {
        s.write_all(&[b]).unwrap();
    }
    let resp = read_frame(&mut s).unwrap();
    assert_eq!(
        (resp.opaque, resp.body.as_slice()),
        (small.opaque, &b"tiny"[..])
    );
    // A 1 MiB body (16 times the initial read buffer), then a small frame in the same write.
    let big_body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    let big = RemotingCommand::request(ECHO).with_body(big_body.clone());
    let after = RemotingCommand::request(ECHO).with_body(b"after".to_vec());
    let mut bytes = frame_of(&big);
    bytes.extend(frame_of(&after));
    s.write_all(&bytes).unwrap();
    let mut got = [read_frame(&mut s).unwrap(), read_frame(&mut s).unwrap()];
    got.sort_by_key(|r| r.body.len());
    assert_eq!(got[0].body, b"after");
    assert!(got[1].body == big_body, "big body differs");
    server.stop().unwrap();
}
