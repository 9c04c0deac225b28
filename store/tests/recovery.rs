//! Crash recovery on real files, for both CommitLog backends.
//!
//! One template store is written per backend; every case copies it to a work directory, damages
//! the copy (cuts the CommitLog at a byte offset, flips a byte, tears a ConsumeQueue entry) and
//! reopens it, then checks that exactly the valid prefix survives byte-exact and that the
//! ConsumeQueues and the Index agree with the CommitLog.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tern_store::checkpoint::{
    abort_file_exists, create_abort_file, remove_abort_file, Checkpoint, CheckpointValues,
};
use tern_store::config::{FlushDiskType, IoMode, StoreConfig};
use tern_store::message::{MessageDraft, StoredMessage};
use tern_store::message_store::{GetStatus, MessageStore, PutStatus, RecoveryMode};
use tern_store::properties;

const SEGMENT: u64 = 16 * 1024;
const CQ_ENTRIES_PER_FILE: u64 = 128;
const TOPICS: [&str; 2] = ["TopicA", "TopicB"];
const QUEUES: i32 = 2;

fn config(dir: &Path, mode: IoMode) -> StoreConfig {
    let mut c = StoreConfig {
        store_path_root_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    c.mapped_file_size_commit_log = SEGMENT;
    c.mapped_file_size_consume_queue = CQ_ENTRIES_PER_FILE * 20;
    c.max_hash_slot_num = 128;
    c.max_index_num = 2048;
    c.commit_log_io_mode = mode;
    c.flush_disk_type = FlushDiskType::Async;
    c
}

fn host() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 7], 10911))
}

/// One message of the template, as stored.
struct Rec {
    topic: &'static str,
    queue_id: i32,
    queue_offset: i64,
    phys: u64,
    bytes: Vec<u8>,
    uniq: String,
}

impl Rec {
    fn end(&self) -> u64 {
        self.phys + self.bytes.len() as u64
    }
}

struct Template {
    _dir: tempfile::TempDir,
    /// The shard directory (`<root>/core-0`).
    shard_dir: PathBuf,
    recs: Vec<Rec>,
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tern_runtime::block_on("recovery-test", f).expect("executor")
}

/// Writes messages until a segment roll falls among the last three records, shuts down cleanly,
/// then recreates the abort file so the template looks crashed.
async fn build_template(mode: IoMode) -> Template {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(&config(dir.path(), mode), 0)
        .await
        .unwrap();
    let mut recs = Vec::new();
    let mut roll_at = None;
    let mut i = 0usize;
    while roll_at.is_none_or(|r| i < r + 2) {
        let topic = TOPICS[i % 2];
        let queue_id = (i / 2 % QUEUES as usize) as i32;
        let uniq = format!("U{i:06}");
        let mut props = Vec::new();
        let keys = format!("k{i}");
        properties::encode(
            [
                (properties::TAGS, "Tag"),
                (properties::KEYS, keys.as_str()),
                (properties::UNIQ_KEY, uniq.as_str()),
            ],
            &mut props,
        );
        // The records around the final segment roll are tiny, so the byte-by-byte loops stay short.
        let tiny = i >= 300;
        let body_len = if tiny { 1 + i % 3 } else { 20 + (i * 37) % 200 };
        let body: Vec<u8> = (0..body_len).map(|j| (i ^ j) as u8).collect();
        if tiny {
            props.clear();
            properties::encode([(properties::UNIQ_KEY, uniq.as_str())], &mut props);
        }
        let out = store
            .put(&MessageDraft {
                topic,
                queue_id,
                flag: 0,
                body: &body,
                properties: &props,
                sys_flag: 0,
                born_timestamp: 1_700_000_000_000 + i as i64,
                born_host: host(),
                store_host: host(),
                reconsume_times: 0,
                prepared_transaction_offset: 0,
            })
            .await;
        assert_eq!(out.status, PutStatus::PutOk);
        let at = out.stored.unwrap();
        if i >= 300 && roll_at.is_none() && at.phys_offset % SEGMENT == 0 {
            roll_at = Some(i);
        }
        let range = store.read_message(at.phys_offset).await.unwrap();
        let mut bytes = vec![0u8; range.len()];
        range.copy_to(&mut bytes).unwrap();
        recs.push(Rec {
            topic,
            queue_id,
            queue_offset: at.queue_offset,
            phys: at.phys_offset,
            bytes,
            uniq,
        });
        i += 1;
    }
    let shard_dir = store.root().to_path_buf();
    store.shutdown().await.unwrap();
    create_abort_file(&shard_dir).unwrap();
    Template {
        _dir: dir,
        shard_dir,
        recs,
    }
}

/// Makes `to` an exact copy of `from`, rewriting files in place (cheaper than deleting and
/// recreating the tree on every iteration) and removing files `from` does not have.
fn sync_dir_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            sync_dir_tree(&entry.path(), &target);
        } else {
            fs::write(&target, fs::read(entry.path()).unwrap()).unwrap();
        }
    }
    for entry in fs::read_dir(to).unwrap() {
        let entry = entry.unwrap();
        if !from.join(entry.file_name()).exists() {
            if entry.file_type().unwrap().is_dir() {
                fs::remove_dir_all(entry.path()).unwrap();
            } else {
                fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

/// A fresh copy of the template's shard directory under `work`; returns the store root to open.
fn fresh_copy(t: &Template, work: &Path) -> PathBuf {
    sync_dir_tree(&t.shard_dir, &work.join("core-0"));
    work.to_path_buf()
}

fn commit_log_files(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(root.join("core-0/commitlog"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_str().unwrap().parse().unwrap(), e.path())
        })
        .collect();
    v.sort();
    v
}

/// Simulates a crash that lost every CommitLog byte from `cut` on: zeroes them in place.
fn zero_commit_log_from(root: &Path, cut: u64) {
    for (start, path) in commit_log_files(root) {
        let len = fs::metadata(&path).unwrap().len();
        if start + len <= cut {
            continue;
        }
        let from = cut.saturating_sub(start);
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&vec![0u8; (len - from) as usize], from)
            .unwrap();
    }
}

fn flip_commit_log_byte(root: &Path, phys: u64) {
    for (start, path) in commit_log_files(root) {
        let len = fs::metadata(&path).unwrap().len();
        if (start..start + len).contains(&phys) {
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let mut b = [0u8];
            f.read_exact_at(&mut b, phys - start).unwrap();
            b[0] ^= 0xff;
            f.write_all_at(&b, phys - start).unwrap();
        }
    }
}

/// Every ConsumeQueue entry points at a valid record of its own queue and offset, below the
/// CommitLog's end; returns the number of entries.
fn check_queues_agree(store: &MessageStore) -> usize {
    let mut total = 0;
    for q in store.topics_and_queues() {
        let got = store.get_messages(
            &q.topic,
            q.queue_id,
            q.min_offset,
            100_000,
            usize::MAX,
            |_| true,
        );
        let expect_status = if q.max_offset == 0 {
            GetStatus::NoMessageInQueue
        } else if q.max_offset == q.min_offset {
            GetStatus::OffsetOverflowOne
        } else {
            GetStatus::Found
        };
        assert_eq!(got.status, expect_status, "{}/{}", q.topic, q.queue_id);
        assert_eq!(
            got.messages.len() as i64,
            q.max_offset - q.min_offset,
            "no holes"
        );
        for (n, m) in got.messages.iter().enumerate() {
            assert_eq!(m.queue_offset, q.min_offset + n as i64);
            let mut bytes = vec![0u8; m.range.len()];
            m.range.copy_to(&mut bytes).unwrap();
            let rec = StoredMessage::decode(&bytes).expect("entry points at a valid record");
            assert_eq!(
                (rec.topic, rec.queue_id, rec.queue_offset),
                (q.topic.as_str(), q.queue_id, m.queue_offset)
            );
            assert!(rec.physical_offset as u64 + bytes.len() as u64 <= store.max_phys_offset());
        }
        total += got.messages.len();
    }
    total
}

/// The first `k` template records are present byte-exact at their queue offsets, in the Index,
/// and the records after them are in neither.
async fn check_prefix(store: &MessageStore, recs: &[Rec], k: usize) {
    for topic in TOPICS {
        for qid in 0..QUEUES {
            let mine: Vec<&Rec> = recs[..k]
                .iter()
                .filter(|r| r.topic == topic && r.queue_id == qid)
                .collect();
            let got = store.get_messages(topic, qid, 0, 100_000, usize::MAX, |_| true);
            assert!(got.messages.len() >= mine.len());
            for (m, r) in got.messages.iter().zip(&mine) {
                assert_eq!(m.queue_offset, r.queue_offset);
                let mut bytes = vec![0u8; m.range.len()];
                m.range.copy_to(&mut bytes).unwrap();
                assert!(bytes == r.bytes, "record at {} differs", r.phys);
            }
        }
    }
    // The cut cannot reach records far before it; check the Index for the last few only.
    for r in &recs[k.saturating_sub(8)..k] {
        let hits = store.query_by_key(r.topic, &r.uniq, 4, 0, i64::MAX).await;
        assert_eq!(hits.len(), 1, "index lost {}", r.uniq);
    }
}

/// Every cut within the last three records keeps exactly the records that end at or before it.
async fn cut_anywhere_in_the_tail(mode: IoMode) {
    let t = build_template(mode).await;
    let work = tempfile::tempdir().unwrap();
    let recs = &t.recs;
    let n = recs.len();
    let first = recs[n - 3].phys;
    let last_end = recs[n - 1].end();
    assert!(
        recs[n - 2].phys % SEGMENT == 0 || recs[n - 1].phys % SEGMENT == 0,
        "a segment roll lies among the last three records"
    );
    for cut in first..=last_end {
        let root = fresh_copy(&t, work.path());
        zero_commit_log_from(&root, cut);
        let store = MessageStore::open(&config(&root, mode), 0).await.unwrap();
        assert_eq!(store.recovery_report().mode, RecoveryMode::Crash);
        let k = recs.iter().take_while(|r| r.end() <= cut).count();
        let max = store.max_phys_offset();
        assert!(max >= recs[k - 1].end(), "cut {cut}: lost valid data");
        if let Some(next) = recs.get(k) {
            assert!(
                max <= next.phys,
                "cut {cut}: kept a torn record: max {max}, next {} (k {k} of {n}) {:?}",
                next.phys,
                store.recovery_report()
            );
        }
        assert_eq!(check_queues_agree(&store), k, "cut {cut}");
        check_prefix(&store, recs, k).await;
        for r in &recs[k..] {
            assert!(
                store
                    .query_by_key(r.topic, &r.uniq, 4, 0, i64::MAX)
                    .await
                    .is_empty(),
                "cut {cut}: index still has {}",
                r.uniq
            );
        }
        if cut == first + 7 || cut == last_end {
            // Writing resumes with dense queue offsets.
            let r = &recs[n - 1];
            let before = store.max_offset(r.topic, r.queue_id);
            let out = store
                .put(&MessageDraft {
                    topic: r.topic,
                    queue_id: r.queue_id,
                    flag: 0,
                    body: b"after",
                    properties: b"",
                    sys_flag: 0,
                    born_timestamp: 0,
                    born_host: host(),
                    store_host: host(),
                    reconsume_times: 0,
                    prepared_transaction_offset: 0,
                })
                .await;
            assert_eq!(out.stored.unwrap().queue_offset, before);
            check_queues_agree(&store);
        }
        drop(store);
    }
}

/// Flipping any byte of the last record keeps every earlier record and leaves the queues
/// consistent, whether or not the damage is detectable.
async fn flip_every_byte_of_the_last_record(mode: IoMode) {
    let t = build_template(mode).await;
    let work = tempfile::tempdir().unwrap();
    let recs = &t.recs;
    let n = recs.len();
    let last = &recs[n - 1];
    let mut dropped = Vec::new();
    for i in 0..last.bytes.len() as u64 {
        let root = fresh_copy(&t, work.path());
        flip_commit_log_byte(&root, last.phys + i);
        let store = MessageStore::open(&config(&root, mode), 0).await.unwrap();
        let max = store.max_phys_offset();
        assert!(max == last.phys || max == last.end(), "byte {i}: max {max}");
        if max == last.phys {
            dropped.push(i);
        }
        let entries = check_queues_agree(&store);
        assert!(
            entries == n - 1 || entries == n,
            "byte {i}: {entries} entries"
        );
        check_prefix(&store, recs, n - 1).await;
        drop(store);
    }
    // TOTALSIZE, MAGICCODE, BODYCRC and PHYSICALOFFSET damage is always caught (fields the format
    // does not protect, such as FLAG or BORNTIMESTAMP, may survive: the record then stays).
    for i in (0..12).chain(28..36) {
        assert!(dropped.contains(&i), "flip of byte {i} went unnoticed");
    }
}

/// A torn last ConsumeQueue entry is repaired, after a crash and after a clean shutdown.
async fn torn_consume_queue_entry_is_repaired(mode: IoMode) {
    let t = build_template(mode).await;
    let work = tempfile::tempdir().unwrap();
    let r = &t.recs[t.recs.len() - 1];
    let count = t
        .recs
        .iter()
        .filter(|x| x.topic == r.topic && x.queue_id == r.queue_id)
        .count() as u64;
    for crashed in [true, false] {
        let root = fresh_copy(&t, work.path());
        if !crashed {
            remove_abort_file(&root.join("core-0")).unwrap();
        }
        let cq_dir = root.join(format!("core-0/consumequeue/{}/{}", r.topic, r.queue_id));
        let last_file_start = (count - 1) / CQ_ENTRIES_PER_FILE * CQ_ENTRIES_PER_FILE * 20;
        let path = cq_dir.join(format!("{last_file_start:020}"));
        let entry_pos = (count - 1) * 20 - last_file_start;
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xab; 9], entry_pos + 11).unwrap();
        f.set_len(entry_pos + 13).unwrap();
        drop(f);
        let store = MessageStore::open(&config(&root, mode), 0).await.unwrap();
        assert_eq!(store.max_offset(r.topic, r.queue_id), count as i64);
        check_queues_agree(&store);
        check_prefix(&store, &t.recs, t.recs.len()).await;
        drop(store);
    }
}

/// A queue that lost entries older than the clean-start scan window is rebuilt from its own last
/// valid entry (second pass); clean shutdown leaves no abort file behind.
async fn queue_missing_old_entries_is_rebuilt_deep(mode: IoMode) {
    let t = build_template(mode).await;
    let work = tempfile::tempdir().unwrap();
    let root = fresh_copy(&t, work.path());
    remove_abort_file(&root.join("core-0")).unwrap();
    let cq_dir = root.join("core-0/consumequeue/TopicA/0");
    let mut files: Vec<PathBuf> = fs::read_dir(&cq_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for extra in &files[1..] {
        fs::remove_file(extra).unwrap();
    }
    let f = fs::OpenOptions::new().write(true).open(&files[0]).unwrap();
    f.set_len(5 * 20).unwrap();
    drop(f);
    let cfg = config(&root, mode);
    let store = MessageStore::open(&cfg, 0).await.unwrap();
    assert_eq!(store.recovery_report().mode, RecoveryMode::Clean);
    assert!(store.recovery_report().queues_rebuilt_deep >= 1);
    let want = t
        .recs
        .iter()
        .filter(|x| x.topic == "TopicA" && x.queue_id == 0)
        .count();
    assert_eq!(store.max_offset("TopicA", 0), want as i64);
    check_queues_agree(&store);
    check_prefix(&store, &t.recs, t.recs.len()).await;
    store.shutdown().await.unwrap();
    assert!(!abort_file_exists(&root.join("core-0")));
}

/// After a crash, validation starts at the newest segment the checkpoint vouches for; entries
/// before it are kept, entries from it on are rebuilt.
async fn crash_recovery_starts_where_the_checkpoint_allows(mode: IoMode) {
    let t = build_template(mode).await;
    let work = tempfile::tempdir().unwrap();
    let root = fresh_copy(&t, work.path());
    let n = t.recs.len();
    let last = &t.recs[n - 1];
    let last_ts = StoredMessage::decode(&last.bytes).unwrap().store_timestamp;
    let mut cp = Checkpoint::open(&root.join("core-0/checkpoint")).unwrap();
    cp.set_values(CheckpointValues {
        physic_msg_timestamp: last_ts + 3_000,
        logics_msg_timestamp: last_ts + 3_000,
        index_msg_timestamp: last_ts + 3_000,
        ..CheckpointValues::default()
    });
    cp.flush().unwrap();
    drop(cp);
    zero_commit_log_from(&root, last.phys + 5);
    let store = MessageStore::open(&config(&root, mode), 0).await.unwrap();
    let report = store.recovery_report().clone();
    assert_eq!(report.mode, RecoveryMode::Crash);
    assert_eq!(report.scan_from, last.phys / SEGMENT * SEGMENT);
    assert!(report.scan_from > 0, "earlier segments were not rescanned");
    assert_eq!(store.max_phys_offset(), last.phys);
    assert_eq!(check_queues_agree(&store), n - 1);
    check_prefix(&store, &t.recs, n - 1).await;
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
    cut_anywhere_in_the_tail,
    flip_every_byte_of_the_last_record,
    torn_consume_queue_entry_is_repaired,
    queue_missing_old_entries_is_rebuilt_deep,
    crash_recovery_starts_where_the_checkpoint_allows,
);

/// The schedule topics' `tagsCode` (deliver time) rebuilt after a crash equals the one written at
/// put time.
#[test]
fn schedule_tags_code_is_rebuilt_identically() {
    use tern_store::schedule::{DelayLevels, SCHEDULE_TOPIC, TIMER_OUT_MS, TIMER_TOPIC};
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), IoMode::Mmap);
        cfg.message_delay_level = DelayLevels::parse("1s 2s").unwrap();
        /// (topic, queue, properties) of each put.
        type Put = (&'static str, i32, Vec<(&'static str, &'static str)>);
        let puts: [Put; 3] = [
            (SCHEDULE_TOPIC, 1, vec![("DELAY", "2"), ("TAGS", "A")]),
            (SCHEDULE_TOPIC, 1, vec![("DELAY", "5")]),
            (TIMER_TOPIC, 0, vec![(TIMER_OUT_MS, "1700000000123")]),
        ];
        let codes = |store: &MessageStore| -> Vec<(i64, i64)> {
            puts.iter()
                .enumerate()
                .map(|(i, (t, q, _))| {
                    let off = if i == 1 { 1 } else { 0 };
                    let r = store.get_messages(t, *q, off, 1, 1 << 20, |_| true);
                    let m = &r.messages[0];
                    let mut b = vec![0; m.range.len()];
                    m.range.copy_to(&mut b).unwrap();
                    (
                        m.tag_hash,
                        StoredMessage::decode(&b).unwrap().store_timestamp,
                    )
                })
                .collect()
        };
        let store = MessageStore::open(&cfg, 0).await.unwrap();
        for (topic, q, pairs) in &puts {
            let mut props = Vec::new();
            properties::encode(pairs.iter().copied(), &mut props);
            let d = MessageDraft {
                topic,
                queue_id: *q,
                flag: 0,
                body: b"x",
                properties: &props,
                sys_flag: 0,
                born_timestamp: 1,
                born_host: host(),
                store_host: host(),
                reconsume_times: 0,
                prepared_transaction_offset: 0,
            };
            assert_eq!(store.put(&d).await.status, PutStatus::PutOk);
        }
        let before = codes(&store);
        assert_eq!(before[0].0, before[0].1 + 2000);
        assert_eq!(
            before[1].0,
            before[1].1 + 2000,
            "capped at the highest level"
        );
        assert_eq!(before[2].0, 1_700_000_000_123);
        store.shutdown().await.unwrap();
        // Crash with the schedule queues lost: recovery rebuilds them from the CommitLog.
        let shard = dir.path().join("core-0");
        fs::remove_dir_all(shard.join("consumequeue")).unwrap();
        create_abort_file(&shard).unwrap();
        let store = MessageStore::open(&cfg, 0).await.unwrap();
        assert_eq!(store.recovery_report().mode, RecoveryMode::Crash);
        assert_eq!(codes(&store), before);
        store.shutdown().await.unwrap();
    });
}
