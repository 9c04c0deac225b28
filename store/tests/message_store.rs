//! MessageStore behaviour on real files: put/get across segment rolls, statuses and next offsets,
//! batch puts, lookups, clean shutdown, retention and disk-full refusal. CommitLog-touching tests
//! run once per I/O backend.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use tern_store::checkpoint::{abort_file_exists, Checkpoint, CheckpointState};
use tern_store::config::{FlushDiskType, IoMode, StoreConfig};
use tern_store::consume_queue::tag_hash_code;
use tern_store::message::{MessageDraft, StoredMessage};
use tern_store::message_store::{
    GetResult, GetStatus, MessageStore, PutStatus, RecoveryMode, StoreEnv,
};
use tern_store::properties;
use tern_store::retention::{Clock, DiskUsageProbe};
use tern_store::segment::ReadRange;

const SEGMENT: u64 = 64 * 1024;
const HOUR_MS: i64 = 3_600_000;

fn config(dir: &Path, mode: IoMode, flush: FlushDiskType) -> StoreConfig {
    let mut c = StoreConfig {
        store_path_root_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    c.mapped_file_size_commit_log = SEGMENT;
    c.mapped_file_size_consume_queue = 16 * 20; // ConsumeQueue files roll too
    c.max_hash_slot_num = 256;
    c.max_index_num = 1024;
    c.commit_log_io_mode = mode;
    c.flush_disk_type = flush;
    c
}

fn host() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10911))
}

fn props(tag: &str, keys: &str, uniq: &str) -> Vec<u8> {
    let mut out = Vec::new();
    properties::encode(
        [
            (properties::TAGS, tag),
            (properties::KEYS, keys),
            (properties::UNIQ_KEY, uniq),
        ],
        &mut out,
    );
    out
}

fn draft<'a>(topic: &'a str, queue_id: i32, body: &'a [u8], props: &'a [u8]) -> MessageDraft<'a> {
    MessageDraft {
        topic,
        queue_id,
        flag: 0,
        body,
        properties: props,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: host(),
        store_host: host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fn body_of(i: usize) -> Vec<u8> {
    let len = 1 + (i * 577) % 1500;
    (0..len).map(|j| (i * 7 + j) as u8).collect()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tern_runtime::block_on("message-store-test", f).expect("executor")
}

fn bytes_of(range: &ReadRange) -> Vec<u8> {
    let mut v = vec![0u8; range.len()];
    range.copy_to(&mut v).unwrap();
    v
}

fn get_all(store: &MessageStore, topic: &str, qid: i32, from: i64) -> GetResult {
    store.get_messages(topic, qid, from, 10_000, usize::MAX, |_| true)
}

const TOPICS: [&str; 2] = ["TopicA", "TopicB"];

/// Puts `n` messages round-robin over 2 topics × 3 queues; returns (topic, qid, body) per message.
async fn fill(store: &MessageStore, n: usize) -> Vec<(&'static str, i32, Vec<u8>)> {
    let mut sent = Vec::new();
    for i in 0..n {
        let topic = TOPICS[i % 2];
        let qid = (i % 3) as i32;
        let body = body_of(i);
        let tag = if i % 4 == 0 { "TagA" } else { "TagB" };
        let p = props(tag, &format!("key{i} shared"), &format!("UNIQ{i:08}"));
        let out = store.put(&draft(topic, qid, &body, &p)).await;
        assert_eq!(out.status, PutStatus::PutOk, "message {i}");
        sent.push((topic, qid, body));
    }
    sent
}

async fn round_trips_across_segment_rolls(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), mode, FlushDiskType::Async);
    let store = MessageStore::open(&cfg, 1).await.unwrap();
    assert!(abort_file_exists(store.root()));
    assert_eq!(store.min_phys_offset(), 1 << 56);
    let sent = fill(&store, 300).await;
    assert!(store.max_phys_offset() - store.min_phys_offset() > 3 * SEGMENT);
    for topic in TOPICS {
        for qid in 0..3 {
            let expected: Vec<&Vec<u8>> = sent
                .iter()
                .filter(|(t, q, _)| *t == topic && *q == qid)
                .map(|(_, _, b)| b)
                .collect();
            let got = get_all(&store, topic, qid, 0);
            assert_eq!(got.status, GetStatus::Found);
            assert_eq!(got.max_offset, expected.len() as i64);
            assert_eq!(got.next_begin_offset, expected.len() as i64);
            assert_eq!(got.messages.len(), expected.len());
            for (n, (m, body)) in got.messages.iter().zip(expected).enumerate() {
                assert_eq!(m.queue_offset, n as i64, "dense offsets");
                let bytes = bytes_of(&m.range);
                let rec = StoredMessage::decode(&bytes).unwrap();
                assert_eq!(rec.body, &body[..]);
                assert_eq!(rec.topic, topic);
                assert_eq!(rec.queue_id, qid);
                assert_eq!(rec.queue_offset, n as i64);
                assert_eq!(rec.tag_hash(), m.tag_hash);
            }
        }
    }
    // The periodic metadata flush records progress in the checkpoint while the store runs.
    store.flush_metadata().await.unwrap();
    let cp = Checkpoint::open(&store.root().join("checkpoint")).unwrap();
    assert_eq!(cp.state(), CheckpointState::Intact);
    assert!(cp.values().logics_msg_timestamp > 1_600_000_000_000);
    assert!(cp.values().index_msg_timestamp > 1_600_000_000_000);
    // Reads bounded by count and bytes, continuing from next_begin_offset.
    let first = store.get_messages("TopicA", 0, 0, 3, usize::MAX, |_| true);
    assert_eq!(first.messages.len(), 3);
    assert_eq!(first.next_begin_offset, 3);
    let small = store.get_messages("TopicA", 0, 3, 100, 1, |_| true);
    assert_eq!(
        small.messages.len(),
        1,
        "at least one message even past max_bytes"
    );
    assert_eq!(small.next_begin_offset, 4);
    store.shutdown().await.unwrap();
}

async fn tag_filter_and_statuses(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(&config(dir.path(), mode, FlushDiskType::Async), 0)
        .await
        .unwrap();
    fill(&store, 120).await;
    let tag_a = tag_hash_code("TagA");
    // TopicA queue 0 holds messages 0, 6, 12, ...; TagA on those divisible by 4 (every other one).
    let got = store.get_messages("TopicA", 0, 0, 100, usize::MAX, |h| h == tag_a);
    assert_eq!(got.status, GetStatus::Found);
    assert_eq!(got.messages.len(), 10);
    assert!(got.messages.iter().all(|m| m.tag_hash == tag_a));
    assert!(got.messages.iter().all(|m| m.queue_offset % 2 == 0));
    assert_eq!(got.next_begin_offset, 20);
    let none = store.get_messages("TopicA", 0, 0, 100, usize::MAX, |_| false);
    assert_eq!(none.status, GetStatus::NoMatchedMessage);
    assert_eq!(
        none.next_begin_offset, 20,
        "skips past the rejected entries"
    );
    assert!(none.messages.is_empty());

    let max = store.max_offset("TopicA", 0);
    assert_eq!(max, 20);
    let one = get_all(&store, "TopicA", 0, max);
    assert_eq!(
        (one.status, one.next_begin_offset),
        (GetStatus::OffsetOverflowOne, max)
    );
    let bad = get_all(&store, "TopicA", 0, max + 5);
    assert_eq!(
        (bad.status, bad.next_begin_offset),
        (GetStatus::OffsetOverflowBadly, max)
    );
    let empty = get_all(&store, "NoSuchTopic", 0, 7);
    assert_eq!(
        (empty.status, empty.next_begin_offset, empty.max_offset),
        (GetStatus::NoMessageInQueue, 0, 0)
    );
    let stats = store.stats();
    assert_eq!(stats.put_messages, 120);
    assert!(stats.get_found >= 1 && stats.get_miss >= 4);
    store.shutdown().await.unwrap();
}

async fn batch_put_is_contiguous(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(&config(dir.path(), mode, FlushDiskType::Sync), 2)
        .await
        .unwrap();
    let p = props("T", "k", "u");
    let bodies: Vec<Vec<u8>> = (0..5).map(body_of).collect();
    store.put(&draft("TopicA", 1, b"first", &p)).await;
    let drafts: Vec<MessageDraft<'_>> = bodies.iter().map(|b| draft("TopicA", 1, b, &p)).collect();
    let out = store.put_batch(&drafts).await;
    assert_eq!(out.status, PutStatus::PutOk);
    assert_eq!(out.stored.len(), 5);
    for (i, at) in out.stored.iter().enumerate() {
        assert_eq!(at.queue_offset, 1 + i as i64);
        assert_eq!(at.msg_id.shard(), 2);
        if let Some(next) = out.stored.get(i + 1) {
            assert_eq!(at.phys_offset + at.size as u64, next.phys_offset);
        }
    }
    assert!(
        store.flushed_phys_offset() >= store.max_phys_offset(),
        "SYNC_FLUSH waited"
    );
    let got = get_all(&store, "TopicA", 1, 1);
    assert_eq!(got.messages.len(), 5);
    store.shutdown().await.unwrap();
}

async fn lookups(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(&config(dir.path(), mode, FlushDiskType::Async), 0)
        .await
        .unwrap();
    let p = props("TagX", "order-1 shared", "UNIQ-A");
    let first = store.put(&draft("TopicA", 0, b"hello", &p)).await;
    let at = first.stored.unwrap();
    fill(&store, 30).await;

    let range = store.read_message(at.phys_offset).await.unwrap();
    let rec_bytes = bytes_of(&range);
    assert_eq!(StoredMessage::decode(&rec_bytes).unwrap().body, b"hello");
    assert!(store.read_message(at.phys_offset + 1).await.is_none());
    assert!(store.read_message(u64::MAX - 10).await.is_none());

    let by_key = store
        .query_by_key("TopicA", "order-1", 10, 0, i64::MAX)
        .await;
    assert_eq!(by_key.len(), 1);
    let by_uniq = store
        .query_by_key("TopicA", "UNIQ-A", 10, 0, i64::MAX)
        .await;
    assert_eq!(by_uniq.len(), 1);
    let shared = store
        .query_by_key("TopicA", "shared", 100, 0, i64::MAX)
        .await;
    assert_eq!(shared.len(), 1 + 15, "only TopicA's messages");
    assert!(store
        .query_by_key("TopicB", "order-1", 10, 0, i64::MAX)
        .await
        .is_empty());

    let ts = first.store_timestamp;
    assert_eq!(store.earliest_message_time("TopicA", 0), Some(ts));
    assert_eq!(store.search_offset_by_time("TopicA", 0, ts), 0);
    assert_eq!(
        store.search_offset_by_time("TopicA", 0, i64::MAX),
        store.max_offset("TopicA", 0)
    );

    let queues = store.topics_and_queues();
    assert_eq!(queues.len(), 6);
    assert_eq!(
        (
            queues[0].topic.as_str(),
            queues[0].queue_id,
            queues[0].max_offset
        ),
        ("TopicA", 0, 1 + 5)
    );
    assert!(store.delete_topic("TopicB").unwrap());
    assert!(!store.delete_topic("TopicB").unwrap());
    assert_eq!(store.topics_and_queues().len(), 3);
    assert_eq!(
        get_all(&store, "TopicB", 0, 0).status,
        GetStatus::NoMessageInQueue
    );
    store.shutdown().await.unwrap();
}

async fn illegal_messages(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(&config(dir.path(), mode, FlushDiskType::Async), 0)
        .await
        .unwrap();
    let big = vec![0u8; SEGMENT as usize];
    for d in [
        draft("bad/topic", 0, b"x", b""),
        draft("", 0, b"x", b""),
        draft("TopicA", -1, b"x", b""),
        draft("TopicA", 0, &big, b""),
    ] {
        let out = store.put(&d).await;
        assert_eq!(out.status, PutStatus::MessageIllegal);
        assert!(out.stored.is_none());
    }
    assert_eq!(store.put_batch(&[]).await.status, PutStatus::MessageIllegal);
    assert_eq!(store.stats().put_failures, 5);
    assert_eq!(store.max_offset("TopicA", 0), 0);
    store.shutdown().await.unwrap();
}

async fn clean_shutdown_then_reopen(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), mode, FlushDiskType::Async);
    let store = MessageStore::open(&cfg, 0).await.unwrap();
    let root = store.root().to_path_buf();
    let sent = fill(&store, 200).await;
    let max_phys = store.max_phys_offset();
    store.shutdown().await.unwrap();
    assert!(!abort_file_exists(&root));
    let cp = Checkpoint::open(&root.join("checkpoint")).unwrap();
    assert_eq!(cp.state(), CheckpointState::Intact);
    assert!(cp.values().physic_msg_timestamp > 1_600_000_000_000);
    assert_eq!(
        cp.values().physic_msg_timestamp,
        cp.values().logics_msg_timestamp
    );

    let store = MessageStore::open(&cfg, 0).await.unwrap();
    assert_eq!(store.recovery_report().mode, RecoveryMode::Clean);
    assert_eq!(store.recovery_report().cq_entries_rebuilt, 0);
    assert_eq!(store.max_phys_offset(), max_phys);
    for topic in TOPICS {
        for qid in 0..3 {
            let want: Vec<&Vec<u8>> = sent
                .iter()
                .filter(|(t, q, _)| *t == topic && *q == qid)
                .map(|(_, _, b)| b)
                .collect();
            let got = get_all(&store, topic, qid, 0);
            assert_eq!(got.messages.len(), want.len());
            for (m, body) in got.messages.iter().zip(want) {
                let bytes = bytes_of(&m.range);
                assert_eq!(StoredMessage::decode(&bytes).unwrap().body, &body[..]);
            }
        }
    }
    // New puts continue the queues.
    let out = store.put(&draft("TopicA", 0, b"after", b"")).await;
    assert_eq!(
        out.stored.unwrap().queue_offset,
        store.max_offset("TopicA", 0) - 1
    );
    store.shutdown().await.unwrap();
}

#[derive(Clone)]
struct FakeClock(Rc<Cell<(i64, u8)>>);

impl Clock for FakeClock {
    fn now_millis(&self) -> i64 {
        self.0.get().0
    }
    fn local_hour(&self) -> u8 {
        self.0.get().1
    }
}

#[derive(Clone)]
struct FakeDisk(Rc<Cell<f64>>);

impl DiskUsageProbe for FakeDisk {
    fn used_ratio(&self, _: &Path) -> Option<f64> {
        Some(self.0.get())
    }
}

async fn retention_removes_old_segments(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = Rc::new(Cell::new((now, 12u8)));
    let disk = Rc::new(Cell::new(0.10));
    let env = StoreEnv {
        clock: Box::new(FakeClock(clock.clone())),
        disk_probe: Box::new(FakeDisk(disk.clone())),
    };
    // SYNC_FLUSH: retention deletes only durable segments, and every put here waits for that.
    let cfg = config(dir.path(), mode, FlushDiskType::Sync);
    let store = MessageStore::open_with(&cfg, 0, env).await.unwrap();
    fill(&store, 300).await;
    store.flush_metadata().await.unwrap();
    let segments_before = (store.max_phys_offset() - store.min_phys_offset()).div_ceil(SEGMENT);
    assert!(segments_before >= 4);

    // Not the delete hour, disk fine: nothing happens.
    let r = store.run_retention().await.unwrap();
    assert!(r.deleted_segments.is_empty() && !r.disk_full);
    // Delete hour but files are younger than fileReservedTime (72 h): nothing.
    clock.set((now, 4));
    assert!(store
        .run_retention()
        .await
        .unwrap()
        .deleted_segments
        .is_empty());
    // 73 hours later at the delete hour: every segment but the active one goes (up to 10).
    clock.set((now + 73 * HOUR_MS, 4));
    let r = store.run_retention().await.unwrap();
    assert_eq!(r.deleted_segments.len() as u64, segments_before - 1);
    let min_phys = store.min_phys_offset();
    assert_eq!(min_phys, r.deleted_segments.last().unwrap() + SEGMENT);
    for topic in TOPICS {
        for qid in 0..3 {
            let min = store.min_offset(topic, qid);
            let got = get_all(&store, topic, qid, 0);
            if min > 0 {
                assert_eq!(
                    (got.status, got.next_begin_offset),
                    (GetStatus::OffsetTooSmall, min)
                );
            }
            let from_min = get_all(&store, topic, qid, min);
            if from_min.max_offset > min {
                assert_eq!(from_min.status, GetStatus::Found);
                for m in &from_min.messages {
                    let bytes = bytes_of(&m.range);
                    let rec = StoredMessage::decode(&bytes).unwrap();
                    assert!(rec.physical_offset as u64 >= min_phys);
                }
            }
        }
    }
    assert!((0..3).any(|q| store.min_offset("TopicA", q) > 0));

    // Disk past the warning ratio: writes refused, then accepted once space frees.
    disk.set(0.95);
    clock.set((now + 73 * HOUR_MS, 12));
    assert!(store.run_retention().await.unwrap().disk_full);
    assert!(store.is_disk_full());
    let refused = store.put(&draft("TopicA", 0, b"x", b"")).await;
    assert_eq!(refused.status, PutStatus::ServiceNotAvailable);
    disk.set(0.40);
    assert!(!store.run_retention().await.unwrap().disk_full);
    let ok = store.put(&draft("TopicA", 0, b"x", b"")).await;
    assert_eq!(ok.status, PutStatus::PutOk);
    store.shutdown().await.unwrap();

    // Reopen: minimum offsets are re-derived from the CommitLog.
    let store = MessageStore::open(&cfg, 0).await.unwrap();
    assert_eq!(store.min_phys_offset(), min_phys);
    assert!((0..3).any(|q| store.min_offset("TopicA", q) > 0));
    store.shutdown().await.unwrap();
}

macro_rules! backend_suite {
    ($($name:ident),* $(,)?) => {
        mod mmap {
            use super::*;
            $( #[test] fn $name() { run(super::$name(IoMode::Mmap)); } )*
        }
        mod direct {
            use super::*;
            $( #[test] fn $name() { run(super::$name(IoMode::Direct)); } )*
        }
    };
}

backend_suite!(
    round_trips_across_segment_rolls,
    tag_filter_and_statuses,
    batch_put_is_contiguous,
    lookups,
    illegal_messages,
    clean_shutdown_then_reopen,
    retention_removes_old_segments,
);
