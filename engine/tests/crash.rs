//! Crash harness: a SYNC_FLUSH `tern-broker` (2 cores, 1 MiB CommitLog segments) is SIGKILLed at a
//! random moment while producers send; after each restart every acknowledged message must be
//! readable byte-exact at the queue offset it was acknowledged with, each queue must hold
//! consecutive offsets from 0 (no holes) and no acknowledged body may appear twice.
//!
//! `TERN_CRASH_ROUNDS` kills (default 3, for CI); `TERN_CRASH_SEED` fixes the kill moments.
//! `scripts/crash.sh` runs 100 rounds on a release build.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tern_net::code::response;
use tern_net::header::{PullMessageResponseHeader, SendMessageResponseHeader};
use tern_store::message::StoredMessage;

use support::{connect, pull, read_frame, send, Server};

const TOPIC: &str = "Crash";
const QUEUES: i32 = 4;
const PRODUCERS: usize = 2;

/// An acknowledged message: where the broker said it stored it.
#[derive(Debug, Clone)]
struct Acked {
    queue_id: i32,
    queue_offset: i64,
    body: Vec<u8>,
}

fn start_broker(store: &Path, dir: &Path, round: usize) -> Server {
    let store = store.display().to_string();
    Server::spawn(
        env!("CARGO_BIN_EXE_tern-broker"),
        &[
            "-n",
            "127.0.0.1:1",
            "--listen-port",
            "0",
            "--broker-ip",
            "127.0.0.1",
            "--cores",
            "2",
            "--store-path-root-dir",
            &store,
            "--mapped-file-size-commit-log",
            "1048576",
            "--set",
            "flushDiskType=SYNC_FLUSH",
            "--set",
            &format!("defaultTopicQueueNums={QUEUES}"),
        ],
        dir,
        &format!("broker-{round}"),
    )
}

/// Sends until the connection breaks or `stop` is set; records every acknowledged message.
fn produce(
    addr: SocketAddr,
    producer: usize,
    round: usize,
    stop: &AtomicBool,
    acked: &Mutex<Vec<Acked>>,
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

/// A small xorshift generator: kill moments only, no need for a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
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
                | 1
        });
    eprintln!("TERN_CRASH_SEED={seed} TERN_CRASH_ROUNDS={rounds}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let started = Instant::now();
    let mut checked = 0;
    for round in 0..rounds {
        let mut broker = start_broker(&store, dir.path(), round);
        // After a crash, recovery must give back everything acknowledged so far.
        checked += verify(broker.addr, &acked.lock().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (stop, acked, addr) = (Arc::clone(&stop), Arc::clone(&acked), broker.addr);
                std::thread::spawn(move || produce(addr, p, round, &stop, &acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        broker.child.kill().unwrap();
        broker.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for p in producers {
            p.join().expect("producer");
        }
        broker.assert_no_panic();
    }
    let mut broker = start_broker(&store, dir.path(), rounds);
    checked += verify(broker.addr, &acked.lock().unwrap());
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
