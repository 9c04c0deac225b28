//! Power-loss simulation (in the spirit of ALICE): unlike a process kill, a power cut loses every
//! write the kernel had not yet made durable.
//!
//! The store is driven normally (mmap backend) and, after every put, the whole shard directory is
//! snapshotted together with `flushed_phys_offset()` (everything below it was covered by an
//! fdatasync). A crash image for "power lost right after put k" is built from snapshot k:
//! - CommitLog bytes below the flushed offset are kept (durable);
//! - each 4 KiB page at or above it is independently kept, dropped (zeroed: never written back) or
//!   torn (only a 512-byte-sector prefix reached the disk), so unsynced writes are lost, torn and
//!   reordered;
//! - the ConsumeQueue, Index and checkpoint files come from an arbitrary snapshot j ≤ k (metadata
//!   written back earlier or later than the CommitLog, including entries for CommitLog bytes that
//!   were lost);
//! - the abort marker is present (the broker did not shut down).
//!
//! Recovery then must succeed, keep every record that was durable (under SYNC_FLUSH: every
//! acknowledged record), and yield a valid prefix: records 0..m byte-exact for some m, nothing
//! after, each ConsumeQueue consecutive and pointing at its own records.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_store::checkpoint::create_abort_file;
use tern_store::config::{FlushDiskType, IoMode, StoreConfig};
use tern_store::message::{MessageDraft, StoredMessage};
use tern_store::message_store::{MessageStore, PutStatus};

const SEGMENT: u64 = 16 * 1024;
const PAGE: usize = 4096;
const SECTOR: usize = 512;
const TOPICS: [&str; 2] = ["PowerA", "PowerB"];
const RECORDS: usize = 80;

fn config(dir: &Path, flush: FlushDiskType) -> StoreConfig {
    let mut c = StoreConfig {
        store_path_root_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    c.mapped_file_size_commit_log = SEGMENT;
    c.mapped_file_size_consume_queue = 64 * 20;
    c.max_hash_slot_num = 64;
    c.max_index_num = 1024;
    c.commit_log_io_mode = IoMode::Mmap;
    c.flush_disk_type = flush;
    c.flush_interval_commit_log = Duration::from_millis(5);
    c.flush_commit_log_least_pages = 1;
    c
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tern_runtime::block_on("power-loss-test", f).expect("executor")
}

/// Every file under a directory, by path relative to it.
type Snapshot = BTreeMap<PathBuf, Vec<u8>>;

fn snapshot(root: &Path) -> Snapshot {
    fn walk(base: &Path, dir: &Path, out: &mut Snapshot) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

/// One put: the record as stored and what was durable right after it returned.
struct Step {
    topic: &'static str,
    queue_id: i32,
    queue_offset: i64,
    phys: u64,
    bytes: Vec<u8>,
    flushed: u64,
    files: Snapshot,
}

/// Writes `RECORDS` messages, snapshotting the shard after each put.
async fn record_steps(dir: &Path, flush: FlushDiskType) -> Vec<Step> {
    let store = MessageStore::open(&config(dir, flush), 0).await.unwrap();
    let host = SocketAddr::from(([10, 0, 0, 9], 10911));
    let mut steps = Vec::new();
    for i in 0..RECORDS {
        let body: Vec<u8> = (0..(40 + i * 53 % 500))
            .map(|j| (i * 7 + j) as u8)
            .collect();
        let (topic, queue_id) = (TOPICS[i % 2], (i / 2 % 2) as i32);
        let out = store
            .put(&MessageDraft {
                topic,
                queue_id,
                flag: 0,
                body: &body,
                properties: b"",
                sys_flag: 0,
                born_timestamp: 1_700_000_000_000 + i as i64,
                born_host: host,
                store_host: host,
                reconsume_times: 0,
                prepared_transaction_offset: 0,
            })
            .await;
        assert_eq!(out.status, PutStatus::PutOk);
        let at = out.stored.unwrap();
        let range = store.read_message(at.phys_offset).await.unwrap();
        let mut bytes = vec![0u8; range.len()];
        range.copy_to(&mut bytes).unwrap();
        let flushed = store.flushed_phys_offset();
        if flush == FlushDiskType::Sync {
            assert!(
                flushed >= at.phys_offset + bytes.len() as u64,
                "SYNC_FLUSH acknowledged record {i} before an fdatasync covered it"
            );
        }
        steps.push(Step {
            topic,
            queue_id,
            queue_offset: at.queue_offset,
            phys: at.phys_offset,
            bytes,
            flushed,
            files: snapshot(store.root()),
        });
    }
    store.shutdown().await.unwrap();
    steps
}

/// The CommitLog segment a snapshot path names, as its start offset.
fn segment_start(rel: &Path) -> Option<u64> {
    let mut parts = rel.components();
    if parts.next()?.as_os_str() != "commitlog" {
        return None;
    }
    parts.next()?.as_os_str().to_str()?.parse().ok()
}

/// Builds the crash image for power lost after step `k` with metadata from step `j`, in `shard`.
fn write_image(steps: &[Step], k: usize, j: usize, rng: &mut fastrand::Rng, shard: &Path) {
    if shard.exists() {
        std::fs::remove_dir_all(shard).unwrap();
    }
    let flushed = steps[k].flushed;
    for (rel, bytes) in &steps[k].files {
        let mut bytes = bytes.clone();
        match segment_start(rel) {
            Some(start) => {
                for (p, page) in bytes.chunks_mut(PAGE).enumerate() {
                    let page_start = start + (p * PAGE) as u64;
                    let durable = flushed.saturating_sub(page_start).min(PAGE as u64) as usize;
                    let survives = match rng.u64(..3) {
                        0 => page.len(),                                          // written back
                        1 => 0,                                                   // lost
                        _ => SECTOR * rng.u64(..(PAGE / SECTOR) as u64) as usize, // torn
                    };
                    let keep = durable.max(survives).min(page.len());
                    page[keep..].fill(0);
                }
            }
            None if rel.file_name().is_some_and(|n| n == "abort") => continue,
            None => {
                // Metadata: its state as of step j (written back earlier, or later, than the log).
                match steps[j].files.get(rel) {
                    Some(old) => bytes = old.clone(),
                    None => continue,
                }
            }
        }
        let path = shard.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    create_abort_file(shard).unwrap();
}

/// Opens the image and checks it recovered a valid prefix holding everything durable at step `k`;
/// returns how many records survived.
async fn check_image(root: &Path, flush: FlushDiskType, steps: &[Step], k: usize) -> usize {
    let store = MessageStore::open(&config(root, flush), 0)
        .await
        .unwrap_or_else(|e| panic!("recovery failed for crash after put {k}: {e}"));
    let end = store.max_phys_offset();
    // The surviving records are exactly those ending at or before the recovered end.
    let survivors = steps
        .iter()
        .take_while(|s| s.phys + s.bytes.len() as u64 <= end)
        .count();
    assert!(
        survivors <= k + 1,
        "records after the crash point recovered"
    );
    if survivors <= k {
        assert_eq!(
            steps[survivors].phys, end,
            "the recovered end is not a record boundary"
        );
    }
    let durable = steps[..=k]
        .iter()
        .take_while(|s| s.phys + s.bytes.len() as u64 <= steps[k].flushed)
        .count();
    assert!(
        survivors >= durable,
        "crash after put {k}: {survivors} records survived, {durable} were durable"
    );
    for topic in TOPICS {
        for queue_id in 0..2 {
            let mine: Vec<&Step> = steps[..survivors]
                .iter()
                .filter(|s| s.topic == topic && s.queue_id == queue_id)
                .collect();
            let got = store.get_messages(topic, queue_id, 0, 100_000, usize::MAX, |_| true);
            assert_eq!(
                got.messages.len(),
                mine.len(),
                "crash after put {k}: {topic}/{queue_id} holds other than the surviving records"
            );
            for (m, s) in got.messages.iter().zip(&mine) {
                assert_eq!(m.queue_offset, s.queue_offset);
                let mut bytes = vec![0u8; m.range.len()];
                m.range.copy_to(&mut bytes).unwrap();
                assert!(
                    bytes == s.bytes,
                    "crash after put {k}: record at {} differs",
                    s.phys
                );
                let rec = StoredMessage::decode(&bytes).unwrap();
                assert_eq!((rec.topic, rec.queue_id), (topic, queue_id));
            }
        }
    }
    store.shutdown().await.unwrap();
    survivors
}

/// Crash images for every put, `variants` random ones each; returns (images, records checked, the
/// largest number of acknowledged records an image lost).
fn crash_every_put(flush: FlushDiskType, variants: usize) -> (usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let steps = run(record_steps(dir.path(), flush));
    let work = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let (mut images, mut checked, mut max_lost) = (0, 0, 0);
    for k in 0..steps.len() {
        for _ in 0..variants {
            let j = rng.u64(..k as u64 + 1) as usize;
            write_image(&steps, k, j, &mut rng, &work.path().join("core-0"));
            let survivors = run(check_image(work.path(), flush, &steps, k));
            images += 1;
            checked += survivors;
            max_lost = max_lost.max(k + 1 - survivors);
        }
    }
    (images, checked, max_lost)
}

#[test]
fn sync_flush_keeps_every_acknowledged_record_through_power_loss() {
    let (images, checked, max_lost) = crash_every_put(FlushDiskType::Sync, 2);
    assert_eq!(max_lost, 0, "an acknowledged record was lost");
    eprintln!("SYNC_FLUSH: {images} crash images, {checked} records checked byte-exact");
}

#[test]
fn async_flush_loses_only_what_was_not_yet_flushed() {
    let (images, checked, max_lost) = crash_every_put(FlushDiskType::Async, 1);
    eprintln!(
        "ASYNC_FLUSH: {images} crash images, {checked} records checked, at most {max_lost} \
         acknowledged records lost (all of them beyond the flushed offset)"
    );
}
