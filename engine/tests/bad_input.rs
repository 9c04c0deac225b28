//! The bad-input catalogue (docs/bad-input.md): hand-built frames over raw TCP against the real
//! `tern-broker` and `tern-namesrv` binaries. Each case gets its documented response code or a clean
//! close; after each, another connection's traffic still succeeds; at the end both processes are
//! still up and neither logged a panic.

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::path::Path;

use support::{
    connect, encode, namesrv_and_broker, pull, pull_header, raw_frame, read_frame, send,
    send_header, with_header, Server,
};
use tern_net::code::{request, response};
use tern_net::header::{
    GetMaxOffsetRequestHeader, PullMessageRequestHeader, QueryConsumerOffsetRequestHeader,
    SendMessageRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use tern_net::{ExtFields, RemotingCommand};

const MAX_MESSAGE_SIZE: usize = 65_536;

/// What a case got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A response to the bad request with this code.
    Code(i32),
    /// The server closed the connection.
    Closed,
    /// The frame was dropped without an answer and the connection went on serving.
    Dropped,
}

/// Opaque of the probe request sent right after a bad frame on the same connection.
const PROBE_OPAQUE: i32 = 900_001;

fn probe(code: i32) -> Vec<u8> {
    let mut cmd = RemotingCommand::request(code);
    cmd.opaque = PROBE_OPAQUE;
    encode(&cmd)
}

/// Sends `bytes` then (unless `then_eof`) a probe request on a fresh connection and classifies the
/// first thing that comes back. With `then_eof` the write half is shut after `bytes`.
fn exchange(addr: SocketAddr, bytes: &[u8], then_eof: bool, probe_code: i32) -> Outcome {
    let mut s = connect(addr);
    let mut out = bytes.to_vec();
    if !then_eof {
        out.extend(probe(probe_code));
    }
    // The server may close before taking everything: a failed write is part of the outcome.
    let _ = s.write_all(&out);
    if then_eof {
        let _ = s.shutdown(Shutdown::Write);
    }
    match read_frame(&mut s) {
        None => Outcome::Closed,
        Some(rsp) if rsp.opaque == PROBE_OPAQUE => Outcome::Dropped,
        Some(rsp) => {
            assert!(rsp.is_response(), "{rsp:?}");
            Outcome::Code(rsp.code)
        }
    }
}

/// A well-formed request with opaque 7.
fn req(code: i32, ext: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut cmd = RemotingCommand::request(code).with_body(body.to_vec());
    cmd.opaque = 7;
    cmd.ext_fields = ext
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<ExtFields>();
    encode(&cmd)
}

/// One packed message of a SEND_BATCH_MESSAGE body.
fn batch_item(total: i32, body: &[u8], props: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [total, 0, 0, 0, body.len() as i32] {
        out.extend(word.to_be_bytes());
    }
    out.extend(body);
    out.extend((props.len() as u16).to_be_bytes());
    out.extend(props);
    out
}

/// A ROCKETMQ binary header: code, language, version, opaque, flag, then remark and ext fields
/// with the given (possibly lying) lengths.
fn binary_header(opaque: i32, remark_len: i32, rest: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend((request::SEND_MESSAGE as i16).to_be_bytes());
    h.push(0); // JAVA
    h.extend(0i16.to_be_bytes());
    h.extend(opaque.to_be_bytes());
    h.extend(0i32.to_be_bytes());
    h.extend(remark_len.to_be_bytes());
    h.extend(rest);
    h
}

/// A bad input and what the server must do with it.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// Shut the write half after the bytes instead of sending a probe (truncated frames).
    then_eof: bool,
    expect: Outcome,
}

fn case(name: &'static str, bytes: Vec<u8>, expect: Outcome) -> Case {
    Case {
        name,
        bytes,
        then_eof: false,
        expect,
    }
}

/// Frame-level cases shared by both servers (`code` is a request the server knows).
fn framing_cases(code: i32) -> Vec<Case> {
    use Outcome::*;
    let good = req(code, &[], b"");
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let mut lying_total = good.clone();
    lying_total[..4].copy_from_slice(&3u32.to_be_bytes());
    let mut header_past_frame = good.clone();
    header_past_frame[5..8].copy_from_slice(&[0x00, 0x10, 0x00]);
    vec![
        Case {
            name: "truncated frame, then EOF",
            bytes: truncated,
            then_eof: true,
            expect: Closed,
        },
        Case {
            name: "only 2 bytes of the length prefix, then EOF",
            bytes: vec![0, 0],
            then_eof: true,
            expect: Closed,
        },
        case(
            "total length < 4 (no room for the header word)",
            lying_total,
            Closed,
        ),
        case("header length > frame", header_past_frame, Closed),
        case(
            "length prefix > 16 MiB",
            (64u32 << 20).to_be_bytes().to_vec(),
            Closed,
        ),
        case(
            "length prefix 0xFFFFFFFF",
            u32::MAX.to_be_bytes().to_vec(),
            Closed,
        ),
        case(
            "unknown serialize type byte",
            raw_frame(7, b"{}", b""),
            Closed,
        ),
        case(
            "JSON header is not JSON, opaque unreadable",
            raw_frame(0, b"\xff\xfenot json", b""),
            Dropped,
        ),
        case(
            "JSON header truncated after the opaque",
            raw_frame(0, br#"{"code":10,"opaque":7,"extFields":{"#, b""),
            Dropped,
        ),
        case(
            "JSON header with wrong types (flag a string, extFields an array)",
            raw_frame(
                0,
                br#"{"code":10,"opaque":7,"flag":"x","extFields":[1]}"#,
                b"",
            ),
            Code(response::SYSTEM_ERROR),
        ),
        case("empty JSON header", raw_frame(0, b"", b""), Dropped),
        case(
            "ROCKETMQ header with a remark length past the header",
            raw_frame(1, &binary_header(7, 1000, b"abc"), b""),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "ROCKETMQ header with a negative remark length",
            raw_frame(1, &binary_header(7, -5, b""), b""),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "ROCKETMQ header with an ext-fields length past the header",
            raw_frame(1, &binary_header(7, 0, &1000i32.to_be_bytes()), b""),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "ROCKETMQ header shorter than its fixed part",
            raw_frame(1, &[0, 10, 0], b""),
            Dropped,
        ),
        case(
            "unknown request code",
            req(31337, &[], b""),
            Code(response::REQUEST_CODE_NOT_SUPPORTED),
        ),
    ]
}

fn broker_cases() -> Vec<Case> {
    use Outcome::*;
    let long_topic = "T".repeat(200);
    let mut cases = framing_cases(request::HEART_BEAT);
    let send_v1 =
        |h: SendMessageRequestHeader, body: &[u8]| with_header(request::SEND_MESSAGE, &h, body);
    cases.extend([
        case(
            "SEND_MESSAGE missing required fields",
            req(request::SEND_MESSAGE, &[("topic", "Good")], b"x"),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "SEND_MESSAGE queueId not a number",
            req(
                request::SEND_MESSAGE,
                &[
                    ("producerGroup", "g"),
                    ("topic", "Good"),
                    ("defaultTopic", "TBW102"),
                    ("defaultTopicQueueNums", "4"),
                    ("queueId", "abc"),
                    ("sysFlag", "0"),
                    ("bornTimestamp", "0"),
                    ("flag", "0"),
                ],
                b"x",
            ),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "SEND_MESSAGE empty topic",
            send("", 0, b"x"),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "SEND_MESSAGE topic of 200 characters",
            send(&long_topic, 0, b"x"),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "SEND_MESSAGE topic with illegal characters",
            send("bad topic/*", 0, b"x"),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "SEND_MESSAGE body over maxMessageSize",
            send("Good", 0, &vec![b'x'; MAX_MESSAGE_SIZE + 1]),
            Code(response::MESSAGE_ILLEGAL),
        ),
        case(
            "SEND_MESSAGE queueId out of range",
            send("Good", 999, b"x"),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "SEND_MESSAGE negative queueId",
            send("Good", -3, b"x"),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "SEND_MESSAGE properties garbage (stored as given)",
            send_v1(
                send_header("Good", 1, "\u{1}\u{2}\u{2}junk\u{1}\u{1}x\u{2}TAGS"),
                b"x",
            ),
            Code(response::SUCCESS),
        ),
        case(
            "SEND_BATCH_MESSAGE with a TOTALSIZE past the body",
            with_header(
                request::SEND_BATCH_MESSAGE,
                &send_header("Good", 0, ""),
                &batch_item(500, b"abc", b""),
            ),
            Code(response::MESSAGE_ILLEGAL),
        ),
        case(
            "SEND_BATCH_MESSAGE with a negative BODYLEN",
            with_header(request::SEND_BATCH_MESSAGE, &send_header("Good", 0, ""), &{
                let mut b = batch_item(25, b"abc", b"");
                b[16..20].copy_from_slice(&(-1i32).to_be_bytes());
                b
            }),
            Code(response::MESSAGE_ILLEGAL),
        ),
        case(
            "SEND_BATCH_MESSAGE with an empty body",
            with_header(
                request::SEND_BATCH_MESSAGE,
                &send_header("Good", 0, ""),
                b"",
            ),
            Code(response::MESSAGE_ILLEGAL),
        ),
        case(
            "PULL_MESSAGE negative offset",
            pull("Good", 0, -5),
            Code(response::PULL_OFFSET_MOVED),
        ),
        case(
            "PULL_MESSAGE far past the max offset",
            pull("Good", 0, 1_000_000),
            Code(response::PULL_OFFSET_MOVED),
        ),
        case(
            "PULL_MESSAGE exactly at the max offset",
            pull("Good", 0, 1),
            Code(response::PULL_NOT_FOUND),
        ),
        case(
            "PULL_MESSAGE queueId out of range",
            pull("Good", 999, 0),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "PULL_MESSAGE unknown topic",
            pull("NoSuchTopic", 0, 0),
            Code(response::TOPIC_NOT_EXIST),
        ),
        case(
            "PULL_MESSAGE maxMsgNums negative",
            with_header(
                request::PULL_MESSAGE,
                &PullMessageRequestHeader {
                    max_msg_nums: -1,
                    ..pull_header("Good", 0, 0)
                },
                b"",
            ),
            Code(response::SUCCESS),
        ),
        case(
            "UPDATE_CONSUMER_OFFSET negative offset",
            with_header(
                request::UPDATE_CONSUMER_OFFSET,
                &UpdateConsumerOffsetRequestHeader {
                    consumer_group: "bad_cg".into(),
                    topic: "Good".into(),
                    queue_id: 0,
                    commit_offset: -9,
                    ..Default::default()
                },
                b"",
            ),
            Code(response::SUCCESS),
        ),
        case(
            "QUERY_CONSUMER_OFFSET queueId out of range",
            with_header(
                request::QUERY_CONSUMER_OFFSET,
                &QueryConsumerOffsetRequestHeader {
                    consumer_group: "bad_cg".into(),
                    topic: "Good".into(),
                    queue_id: 999,
                    ..Default::default()
                },
                b"",
            ),
            Code(response::QUERY_NOT_FOUND),
        ),
        case(
            "GET_MAX_OFFSET negative queueId",
            with_header(
                request::GET_MAX_OFFSET,
                &GetMaxOffsetRequestHeader {
                    topic: "Good".into(),
                    queue_id: -1,
                    ..Default::default()
                },
                b"",
            ),
            Code(response::SUCCESS),
        ),
        case(
            "HEART_BEAT with a body that is not JSON",
            req(request::HEART_BEAT, &[], b"{\"clientID\":"),
            Code(response::SYSTEM_ERROR),
        ),
        case(
            "VIEW_MESSAGE_BY_ID offset past the log",
            req(
                request::VIEW_MESSAGE_BY_ID,
                &[("offset", "99999999999")],
                b"",
            ),
            Code(response::SYSTEM_ERROR),
        ),
    ]);
    cases
}

fn namesrv_cases() -> Vec<Case> {
    use Outcome::*;
    let mut cases = framing_cases(request::GET_BROKER_CLUSTER_INFO);
    cases.extend([
        case(
            "GET_ROUTEINFO_BY_TOPIC empty topic",
            req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", "")], b""),
            Code(response::TOPIC_NOT_EXIST),
        ),
        case(
            "REGISTER_BROKER with a garbage body",
            req(
                request::REGISTER_BROKER,
                &[
                    ("brokerName", "b"),
                    ("brokerAddr", "127.0.0.1:1"),
                    ("clusterName", "c"),
                    ("haServerAddr", "127.0.0.1:2"),
                    ("brokerId", "0"),
                ],
                b"\x00\x01garbage",
            ),
            Code(response::SYSTEM_ERROR),
        ),
    ]);
    cases
}

/// Runs every case against `server`, checking after each that `good` (a request on a connection
/// opened before the cases) still succeeds there. Returns the cases answered otherwise than expected.
fn run_cases(
    server: &mut Server,
    cases: Vec<Case>,
    probe_code: i32,
    good: &dyn Fn() -> Vec<u8>,
) -> Vec<String> {
    let mut other = connect(server.addr);
    let mut failures = Vec::new();
    for c in &cases {
        let got = exchange(server.addr, &c.bytes, c.then_eof, probe_code);
        if got != c.expect {
            failures.push(format!("{}: expected {:?}, got {got:?}", c.name, c.expect));
        }
        other.write_all(&good()).unwrap();
        let rsp = read_frame(&mut other).expect("the other connection stays open");
        assert_eq!(
            rsp.code,
            response::SUCCESS,
            "after {:?}: {:?}",
            c.name,
            rsp.remark
        );
    }
    server.assert_healthy();
    eprintln!("{} bad inputs tried", cases.len());
    failures
}

/// A nameserver and a broker registered with it (messages up to [`MAX_MESSAGE_SIZE`]), logging
/// under `dir`.
fn spawn_pair(dir: &Path) -> (Server, Server) {
    let max = format!("maxMessageSize={MAX_MESSAGE_SIZE}");
    namesrv_and_broker(dir, &[&max, "defaultTopicQueueNums=4"])
}

fn send_good(addr: SocketAddr, body: &[u8]) {
    let mut s = connect(addr);
    s.write_all(&send("Good", 0, body)).unwrap();
    let rsp = read_frame(&mut s).unwrap();
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
}

#[test]
fn broker_and_namesrv_answer_every_bad_input_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let (mut namesrv, mut broker) = spawn_pair(dir.path());
    // One message in Good/0, so the pull cases have something around them.
    send_good(broker.addr, b"first");

    run_cases(
        &mut namesrv,
        namesrv_cases(),
        request::GET_BROKER_CLUSTER_INFO,
        &|| req(request::GET_BROKER_CLUSTER_INFO, &[], b""),
    );
    run_cases(&mut broker, broker_cases(), request::HEART_BEAT, &|| {
        send("Good", 2, b"other client")
    });
    broker.assert_healthy();
    namesrv.assert_healthy();
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:` for the peak).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Pipelined pulls written at once by the stalled client.
const STALLED_PULLS: u64 = 300;
/// Sends a producer completes while the stalled client holds its connection.
const PRODUCER_SENDS: usize = 200;

/// The documented bound (docs/reliability.md, "Memory per connection") on what a client that
/// never reads can make the broker hold: the queued-output bound (64 MiB), plus for each request
/// in flight a copied pull body capped at 256 KiB and the read buffer it is copied from, plus
/// 32 MiB of allocator slack (zero-copy bodies are file regions and cost no heap).
const STALLED_BOUND_KIB: u64 = 64 * 1024 + STALLED_PULLS * 2 * 256 + 32 * 1024;

#[test]
fn a_client_that_never_reads_stays_within_the_memory_bound_and_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let (_namesrv, mut broker) = spawn_pair(dir.path());
    let pid = broker.child.id();
    // 32 messages of 60 KB: a pull asking for 16 of them would answer ~1 MB.
    let body = vec![b'p'; 60_000];
    for _ in 0..32 {
        send_good(broker.addr, &body);
    }
    let rss_before = status_kib(pid, "VmRSS:");

    // 300 pulls written without reading a byte (~300 MB of responses uncapped).
    let mut stalled = connect(broker.addr);
    let pulls: Vec<u8> = (0..STALLED_PULLS)
        .flat_map(|_| pull("Good", 0, 0))
        .collect();
    stalled.write_all(&pulls).unwrap();

    // Meanwhile a producer completes its sends on another connection.
    let mut producer = connect(broker.addr);
    for i in 0..PRODUCER_SENDS {
        producer
            .write_all(&send("Good", 1, format!("not blocked {i}").as_bytes()))
            .unwrap();
        let rsp = read_frame(&mut producer).expect("producer connection closed");
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
    }

    // Reading now finds every response, or some and then the close (when the responses in
    // preparation overflowed the output bound).
    let mut answered = 0u64;
    while answered < STALLED_PULLS {
        match read_frame(&mut stalled) {
            Some(rsp) => {
                assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
                answered += 1;
            }
            None => break,
        }
    }
    let peak = status_kib(pid, "VmHWM:");
    send_good(broker.addr, b"still serving");
    broker.assert_healthy();
    eprintln!(
        "stalled client got {answered} responses; RSS {rss_before} KiB before, peak {peak} KiB \
         (growth {} KiB, bound {STALLED_BOUND_KIB} KiB)",
        peak.saturating_sub(rss_before)
    );
    assert!(
        peak.saturating_sub(rss_before) <= STALLED_BOUND_KIB,
        "peak RSS {peak} KiB grew past the bound from {rss_before} KiB"
    );
}
