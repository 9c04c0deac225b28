//! Crash harness: a SYNC_FLUSH `tern-broker` (2 cores, 1 MiB CommitLog segments) is SIGKILLed at a
//! random moment while producers send; after each restart every acknowledged message must be
//! readable byte-exact at the queue offset it was acknowledged with, each queue must hold
//! consecutive offsets from 0 (no holes) and no acknowledged body may appear twice. Producers also
//! commit consumer offsets, persisted every 20 ms: after each restart the broker must load its
//! offsets file and report, per queue, an offset that was committed.
//!
//! `TERN_CRASH_ROUNDS` kills (default 3, for CI); `TERN_CRASH_SEED` fixes the kill moments;
//! `TERN_CRASH_BROKER` names the broker binary to kill (default: this profile's `tern-broker`).
//! `scripts/crash.sh` runs 100 rounds against a release-built broker.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tern_net::code::{request, response};
use tern_net::header::{
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    SendMessageResponseHeader, UpdateConsumerOffsetRequestHeader,
};
use tern_store::message::StoredMessage;

use support::{connect, pull, read_frame, send, with_header, BrokerArgs, Server};

const TOPIC: &str = "Crash";
const QUEUES: i32 = 4;
const PRODUCERS: usize = 2;
const GROUP: &str = "crash_cg";

/// An acknowledged message: where the broker said it stored it.
#[derive(Debug, Clone)]
struct Acked {
    queue_id: i32,
    queue_offset: i64,
    body: Vec<u8>,
}

/// The broker binary under test: `TERN_CRASH_BROKER`, or the one cargo built with this test.
fn broker_binary() -> String {
    std::env::var("TERN_CRASH_BROKER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tern-broker").to_string())
}

/// Starts the broker of round `round` on `store`, its stderr in `<dir>/broker-<round>.stderr`.
fn start_broker(store: &Path, dir: &Path, round: usize) -> Server {
    let args = BrokerArgs::new("127.0.0.1:1", store)
        .cores(2)
        .commit_log(1 << 20)
        .set("flushDiskType=SYNC_FLUSH")
        .set("flushConsumerOffsetInterval=20")
        .set(format!("defaultTopicQueueNums={QUEUES}"));
    Server::spawn(
        &broker_binary(),
        args.to_vec(),
        dir,
        &format!("broker-{round}"),
    )
}

/// Every consumer offset committed so far, per queue (the broker persists them to
/// `consumerOffset.json` every 20 ms, so kills land in the middle of those writes).
type Committed = Mutex<HashMap<i32, HashSet<i64>>>;

/// Sends until the connection breaks or `stop` is set; records every acknowledged message, and
/// after every fourth commits a consumer offset for its queue.
fn produce(
    addr: SocketAddr,
    producer: usize,
    round: usize,
    stop: &AtomicBool,
    acked: &Mutex<Vec<Acked>>,
    committed: &Committed,
) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(support::ANSWER_TIMEOUT));
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Unique, variable-length bodies: a torn or misplaced record cannot pass for another.
        let pad = "x".repeat((seq as usize * 37) % 700);
        let body = format!("r{round}-p{producer}-s{seq}-{pad}").into_bytes();
        let queue_id = (seq % QUEUES as u64) as i32;
        if s.write_all(&send(TOPIC, queue_id, &body)).is_err() {
            return;
        }
        let Some(rsp) = read_frame(&mut s) else {
            return;
        };
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let h: SendMessageResponseHeader = rsp.decode_header().expect("send response header");
        assert_eq!(h.queue_id, queue_id);
        acked.lock().unwrap().push(Acked {
            queue_id,
            queue_offset: h.queue_offset,
            body,
        });
        seq += 1;
        if seq.is_multiple_of(4) {
            let offset = h.queue_offset + 1;
            // Recorded before sending: a commit the broker may have applied counts as made.
            committed
                .lock()
                .unwrap()
                .entry(queue_id)
                .or_default()
                .insert(offset);
            let commit = UpdateConsumerOffsetRequestHeader {
                consumer_group: GROUP.into(),
                topic: TOPIC.into(),
                queue_id,
                commit_offset: offset,
                ..Default::default()
            };
            if s.write_all(&with_header(request::UPDATE_CONSUMER_OFFSET, &commit, b""))
                .is_err()
            {
                return;
            }
            match read_frame(&mut s) {
                Some(rsp) => assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark),
                None => return,
            }
        }
    }
}

/// Every message of one queue, in order, as (queue offset, body).
fn read_queue(addr: SocketAddr, queue_id: i32) -> Vec<(i64, Vec<u8>)> {
    let mut s = connect(addr);
    let mut out = Vec::new();
    let mut next = 0i64;
    loop {
        s.write_all(&pull(TOPIC, queue_id, next)).unwrap();
        let rsp = read_frame(&mut s).expect("pull response");
        if rsp.code != response::SUCCESS {
            // PULL_NOT_FOUND at the end of the queue (or the topic not created yet).
            assert!(
                [
                    response::PULL_NOT_FOUND,
                    response::TOPIC_NOT_EXIST,
                    response::PULL_OFFSET_MOVED
                ]
                .contains(&rsp.code),
                "queue {queue_id} offset {next}: code {} {:?}",
                rsp.code,
                rsp.remark
            );
            if rsp.code == response::PULL_OFFSET_MOVED {
                let h: PullMessageResponseHeader = rsp.decode_header().unwrap();
                assert_eq!(h.min_offset, 0, "queue {queue_id} lost its head");
            }
            return out;
        }
        let mut body = rsp.body.as_slice();
        while !body.is_empty() {
            let msg = StoredMessage::decode(body).expect("a pulled record decodes");
            out.push((msg.queue_offset, msg.body.to_vec()));
            body = &body[msg.total_size..];
            next = msg.queue_offset + 1;
        }
    }
}

/// Each queue's committed offset after a restart is one that was committed (or none yet): the
/// offsets file was never left torn.
fn verify_offsets(addr: SocketAddr, committed: &Committed) {
    let committed = committed.lock().unwrap();
    let mut s = connect(addr);
    for q in 0..QUEUES {
        let query = QueryConsumerOffsetRequestHeader {
            consumer_group: GROUP.into(),
            topic: TOPIC.into(),
            queue_id: q,
            ..Default::default()
        };
        s.write_all(&with_header(request::QUERY_CONSUMER_OFFSET, &query, b""))
            .unwrap();
        let rsp = read_frame(&mut s).expect("offset response");
        if rsp.code == response::QUERY_NOT_FOUND {
            continue;
        }
        assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        let h: QueryConsumerOffsetResponseHeader = rsp.decode_header().unwrap();
        // Never committed: 0 when the queue starts at 0 (RocketMQ's answer too).
        assert!(
            h.offset == 0 || committed.get(&q).is_some_and(|c| c.contains(&h.offset)),
            "queue {q}: offset {} was never committed",
            h.offset
        );
    }
}

/// Checks every acknowledged message against the restarted broker; returns how many were checked.
fn verify(addr: SocketAddr, acked: &[Acked]) -> usize {
    let mut by_queue: HashMap<i32, Vec<&Acked>> = HashMap::new();
    for a in acked {
        by_queue.entry(a.queue_id).or_default().push(a);
    }
    for q in 0..QUEUES {
        let stored = read_queue(addr, q);
        for (i, (offset, _)) in stored.iter().enumerate() {
            assert_eq!(*offset, i as i64, "queue {q}: hole or disorder at {i}");
        }
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        for (_, body) in &stored {
            *seen.entry(body.as_slice()).or_default() += 1;
        }
        for a in by_queue.get(&q).map(Vec::as_slice).unwrap_or_default() {
            let at = usize::try_from(a.queue_offset).unwrap();
            let got = stored.get(at).map(|(_, b)| b.as_slice());
            assert_eq!(
                got,
                Some(a.body.as_slice()),
                "queue {q}: acknowledged offset {} lost or changed ({} stored)",
                a.queue_offset,
                stored.len()
            );
            assert_eq!(
                seen[a.body.as_slice()],
                1,
                "queue {q}: duplicate of offset {at}"
            );
        }
    }
    acked.len()
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    let rounds: usize = std::env::var("TERN_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("TERN_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!(
        "TERN_CRASH_SEED={seed} TERN_CRASH_ROUNDS={rounds} broker={}",
        broker_binary()
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let committed: Arc<Committed> = Arc::default();
    let started = Instant::now();
    let mut checked = 0;
    for round in 0..rounds {
        let mut broker = start_broker(&store, dir.path(), round);
        // After a crash, recovery must give back everything acknowledged so far.
        checked += verify(broker.addr, &acked.lock().unwrap());
        verify_offsets(broker.addr, &committed);
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (stop, acked, committed) = (
                    Arc::clone(&stop),
                    Arc::clone(&acked),
                    Arc::clone(&committed),
                );
                let addr = broker.addr;
                std::thread::spawn(move || produce(addr, p, round, &stop, &acked, &committed))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20 + rng.u64(..300)));
        broker.kill9();
        stop.store(true, Ordering::Relaxed);
        for p in producers {
            p.join().expect("producer");
        }
        broker.assert_no_panic();
    }
    let mut broker = start_broker(&store, dir.path(), rounds);
    checked += verify(broker.addr, &acked.lock().unwrap());
    verify_offsets(broker.addr, &committed);
    broker.assert_healthy();
    eprintln!(
        "{rounds} SIGKILL rounds survived: {} messages acknowledged, {checked} checks, {:.1?}",
        acked.lock().unwrap().len(),
        started.elapsed()
    );
    assert!(
        !acked.lock().unwrap().is_empty(),
        "nothing was acknowledged"
    );
}

/// A crash at any point of a state-file write (consumer offsets, topics, groups) leaves the old or
/// the new version. `write_atomic` writes `<name>.tmp`, fsyncs it, renames it over `<name>` and
/// fsyncs the directory; the images below are what the disk can hold after a power cut at each step
/// (the temp file absent, empty, torn at every byte, complete but not renamed; then renamed). The
/// reader must see the old version until the rename and the new one after, and a later write must
/// succeed over any leftover temp file.
#[test]
fn state_files_hold_the_old_or_the_new_version_after_a_crash_mid_write() {
    use tern_engine::broker::persist::{load_json, write_atomic};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config").join("consumerOffset.json");
    let tmp = dir.path().join("config").join("consumerOffset.json.tmp");
    let old = br#"{"offsetTable":{"Crash@g":{"0":5}}}"#.to_vec();
    let new = br#"{"offsetTable":{"Crash@g":{"0":9,"1":3}}}"#.to_vec();
    let value = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    let mut images = 0;
    for torn_at in 0..=new.len() + 1 {
        write_atomic(&path, &old).unwrap();
        // torn_at == new.len() + 1: no temp file at all (crash before it was created).
        if torn_at <= new.len() {
            std::fs::write(&tmp, &new[..torn_at]).unwrap();
        }
        let seen: serde_json::Value = load_json(&path).unwrap().expect("the old version");
        assert_eq!(seen, value(&old), "temp file torn at {torn_at}");
        // The next write goes through whatever the crash left behind.
        write_atomic(&path, &new).unwrap();
        let seen: serde_json::Value = load_json(&path).unwrap().expect("the new version");
        assert_eq!(seen, value(&new));
        assert!(!tmp.exists(), "temp file left behind");
        images += 1;
    }
    eprintln!("{images} mid-write crash images of a state file checked");
}
