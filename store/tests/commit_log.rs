//! CommitLog behaviour on real files, run once per I/O backend (see `backend_suite!` at the bottom).

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_store::commit_log::{AppendResult, CommitLog};
use tern_store::config::{FlushDiskType, IoMode, StoreConfig};
use tern_store::error::StoreError;
use tern_store::flush::FlushOutcome;
use tern_store::message::{MessageDraft, StoredMessage, BLANK_MAGIC_CODE};
use tern_store::segment::{segment_file_name, ReadRange};

const SEGMENT: u64 = 64 * 1024;

fn config(dir: &Path, mode: IoMode, flush: FlushDiskType) -> StoreConfig {
    let mut c = StoreConfig {
        store_path_root_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    c.mapped_file_size_commit_log = SEGMENT;
    c.commit_log_io_mode = mode;
    c.flush_disk_type = flush;
    c
}

fn host() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10911))
}

fn draft(body: &[u8]) -> MessageDraft<'_> {
    MessageDraft {
        topic: "TopicTest",
        queue_id: 3,
        flag: 0,
        body,
        properties: b"",
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: host(),
        store_host: host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// The bytes the log must hold for `body` appended as `r` with ConsumeQueue offset `qo`.
fn expected(body: &[u8], qo: i64, r: &AppendResult) -> Vec<u8> {
    let d = draft(body);
    let mut v = vec![0u8; d.stored_len().unwrap()];
    d.encode_into(qo, r.phys_offset as i64, r.store_timestamp, &mut v)
        .unwrap();
    v
}

fn body_of(i: usize) -> Vec<u8> {
    // Sizes from 1 to ~3 KiB so records land at every alignment and segments end unevenly.
    let len = 1 + (i * 977) % 3000;
    (0..len).map(|j| (i + j) as u8).collect()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tern_runtime::block_on("commit-log-test", f).expect("executor")
}

async fn read_back(log: &CommitLog, r: &AppendResult) -> (Vec<u8>, Vec<u8>, ReadRange) {
    let mut via_read_into = vec![0u8; r.size];
    log.read_into(r.phys_offset, &mut via_read_into)
        .await
        .unwrap();
    let range = log.read_range(r.phys_offset, r.size).unwrap();
    let mut via_range = vec![0u8; r.size];
    range.copy_to(&mut via_range).unwrap();
    (via_read_into, via_range, range)
}

async fn rolls_segments_and_reads_back(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), mode, FlushDiskType::Async);
    let log = CommitLog::open(&cfg, 0).await.unwrap();
    assert_eq!((log.min_offset(), log.max_offset()), (0, 0));
    let mut appended = Vec::new();
    for i in 0..120 {
        let body = body_of(i);
        let r = log.append(&draft(&body), i as i64).await.unwrap();
        assert_eq!(r.size, draft(&body).stored_len().unwrap());
        assert_eq!(
            r.phys_offset / SEGMENT,
            (r.end() - 1) / SEGMENT,
            "record spans segments"
        );
        appended.push((body, r));
    }
    let segments = log.segments();
    assert!(segments.len() >= 3, "expected several rolls: {segments:?}");
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.start_offset, i as u64 * SEGMENT);
        assert_eq!(
            s.path,
            cfg.commit_log_dir().join(segment_file_name(s.start_offset))
        );
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), SEGMENT);
    }
    // Every closed segment ends with a blank record that fills it exactly.
    for s in &segments[..segments.len() - 1] {
        let end = s.start_offset + SEGMENT;
        let last = appended
            .iter()
            .map(|(_, r)| r.end())
            .filter(|e| *e <= end)
            .max()
            .unwrap();
        let mut blank = [0u8; 8];
        log.read_into(last, &mut blank).await.unwrap();
        assert_eq!(
            i32::from_be_bytes(blank[..4].try_into().unwrap()) as u64,
            end - last
        );
        assert_eq!(
            i32::from_be_bytes(blank[4..].try_into().unwrap()),
            BLANK_MAGIC_CODE
        );
        assert!(end - last >= 8);
    }
    for (i, (body, r)) in appended.iter().enumerate() {
        let want = expected(body, i as i64, r);
        let (a, b, _) = read_back(&log, r).await;
        assert_eq!(a, want, "read_into of record {i}");
        assert_eq!(b, want, "read_range of record {i}");
        let m = StoredMessage::decode(&a).unwrap();
        assert_eq!(m.body, &body[..]);
    }
    let max = log.max_offset();
    log.shutdown().await.unwrap();
    assert_eq!(log.flushed_offset(), max);
    drop(log);

    // Reopen: recovery would find `max` and truncate there; then everything reads back again.
    let log = CommitLog::open(&cfg, 0).await.unwrap();
    assert_eq!(log.segments().len(), segments.len());
    log.truncate(max).await.unwrap();
    assert_eq!(log.max_offset(), max);
    assert_eq!(log.flushed_offset(), max);
    for (i, (body, r)) in appended.iter().enumerate() {
        let want = expected(body, i as i64, r);
        let (a, b, range) = read_back(&log, r).await;
        assert_eq!(a, want);
        assert_eq!(b, want);
        if r.end() <= max - max % 4096 {
            // Durable bytes before the tail page are served from the file (sendfile-able).
            assert!(
                range.raw_fd().is_some(),
                "record {i} should be a file range"
            );
        }
    }
    let body = b"after reopen".to_vec();
    let r = log.append(&draft(&body), 999).await.unwrap();
    assert_eq!(r.phys_offset, max);
    let (a, _, _) = read_back(&log, &r).await;
    assert_eq!(a, expected(&body, 999, &r));
    log.shutdown().await.unwrap();
}

async fn sync_flush_waits_for_fdatasync(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), mode, FlushDiskType::Sync);
    cfg.mapped_file_size_commit_log = 1 << 20;
    let log = Rc::new(CommitLog::open(&cfg, 0).await.unwrap());
    let body = vec![7u8; 100];
    let r = log.append(&draft(&body), 0).await.unwrap();
    assert!(log.flushed_offset() < r.end());
    assert_eq!(log.flush_stats().syncs, 0);
    assert_eq!(log.wait_durable(r.end()).await, FlushOutcome::Durable);
    assert!(log.flushed_offset() >= r.end());
    assert!(log.flush_stats().syncs >= 1);

    // 64 concurrent producers: each waiter is released only once the flushed offset covers it,
    // and the fdatasyncs are shared.
    let before = log.flush_stats();
    let violations = Rc::new(Cell::new(0u32));
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let log = Rc::clone(&log);
            let violations = Rc::clone(&violations);
            tern_runtime::spawn_local(async move {
                for i in 0..10 {
                    let body = vec![(t + i) as u8; 200 + t];
                    let r = log.append(&draft(&body), i as i64).await.unwrap();
                    assert_eq!(log.wait_durable(r.end()).await, FlushOutcome::Durable);
                    if log.flushed_offset() < r.end() {
                        violations.set(violations.get() + 1);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    assert_eq!(violations.get(), 0);
    let after = log.flush_stats();
    let syncs = after.syncs - before.syncs;
    let appends = after.synced_appends - before.synced_appends;
    assert_eq!(appends, 640);
    assert!(
        appends > syncs,
        "no batching: {appends} appends in {syncs} syncs"
    );
    log.shutdown().await.unwrap();
}

async fn async_flush_advances(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), mode, FlushDiskType::Async);
    cfg.flush_interval_commit_log = Duration::from_millis(10);
    cfg.flush_commit_log_least_pages = 4;
    cfg.flush_commit_log_thorough_interval = Duration::from_secs(3600);
    let log = CommitLog::open(&cfg, 0).await.unwrap();

    // One page dirty: below flushCommitLogLeastPages, so checks pass without flushing.
    let r = log.append(&draft(&[1u8; 1000]), 0).await.unwrap();
    let checks = Instant::now();
    while checks.elapsed() < Duration::from_millis(60) {
        tern_runtime::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        log.flushed_offset(),
        0,
        "flushed below flushCommitLogLeastPages"
    );

    // Past four pages the next check flushes everything.
    let mut last = r;
    while last.end() < 5 * 4096 {
        last = log.append(&draft(&[2u8; 1000]), 1).await.unwrap();
    }
    wait_until(|| log.flushed_offset() == last.end()).await;
    assert!(log.flush_stats().syncs >= 1);
    log.shutdown().await.unwrap();

    // The thorough interval flushes even a single dirty page.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), mode, FlushDiskType::Async);
    cfg.flush_interval_commit_log = Duration::from_millis(10);
    cfg.flush_commit_log_least_pages = 1000;
    cfg.flush_commit_log_thorough_interval = Duration::from_millis(50);
    let log = CommitLog::open(&cfg, 0).await.unwrap();
    let r = log.append(&draft(&[3u8; 10]), 0).await.unwrap();
    assert_eq!(log.flushed_offset(), 0);
    wait_until(|| log.flushed_offset() == r.end()).await;
    log.shutdown().await.unwrap();
}

/// Polls an observable condition (bounded, so a broken flusher fails instead of hanging).
async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        tern_runtime::sleep(Duration::from_millis(2)).await;
    }
}

async fn rejects_oversized_records(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), mode, FlushDiskType::Async);
    cfg.max_message_size = 32 * 1024;
    let log = CommitLog::open(&cfg, 0).await.unwrap();
    let big = vec![0u8; 40 * 1024];
    match log.append(&draft(&big), 0).await {
        Err(StoreError::RecordTooLarge { limit, .. }) => assert_eq!(limit, 32 * 1024),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    cfg.max_message_size = 1 << 20;
    log.shutdown().await.unwrap();
    drop(log);
    let log = CommitLog::open(&cfg, 0).await.unwrap();
    log.truncate(0).await.unwrap();
    // Larger than a segment minus its 8-byte blank record.
    let r = log
        .append_with(SEGMENT as usize - 7, |_, _, _| panic!("must not encode"))
        .await;
    match r {
        Err(StoreError::RecordTooLarge { limit, .. }) => assert_eq!(limit, SEGMENT as usize - 8),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // The largest record fits exactly, leaving room for the blank record.
    let r = log
        .append_with(SEGMENT as usize - 8, |out, _, _| out.fill(0xab))
        .await
        .unwrap();
    assert_eq!(r.phys_offset, 0);
    assert_eq!(log.max_offset(), SEGMENT - 8);
    // Nothing else fits: the segment closes with its blank record and the next record rolls over.
    let r = log.append(&draft(b"y"), 1).await.unwrap();
    assert_eq!(r.phys_offset, SEGMENT);
    let mut blank = [0u8; 8];
    log.read_into(SEGMENT - 8, &mut blank).await.unwrap();
    assert_eq!(&blank[..4], &8i32.to_be_bytes());
    assert_eq!(&blank[4..], &BLANK_MAGIC_CODE.to_be_bytes());
    log.shutdown().await.unwrap();
}

async fn truncates_and_tracks_offsets(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), mode, FlushDiskType::Async);
    let base = 3u64 << 56;
    let log = CommitLog::open(&cfg, base).await.unwrap();
    assert_eq!((log.min_offset(), log.max_offset()), (base, base));
    let mut rs = Vec::new();
    for i in 0..100 {
        rs.push(log.append(&draft(&body_of(i)), i as i64).await.unwrap());
    }
    assert_eq!(log.min_offset(), base);
    assert_eq!(log.max_offset(), rs.last().unwrap().end());
    let segments = log.segments();
    assert!(segments.len() >= 3);
    assert_eq!(
        segments[0].path.file_name().unwrap().to_str().unwrap(),
        "00216172782113783808"
    );

    // Out-of-range reads are typed errors.
    let mut buf = [0u8; 16];
    assert!(matches!(
        log.read_into(log.max_offset() - 8, &mut buf).await,
        Err(StoreError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read_range(base - 1, 4),
        Err(StoreError::OffsetOutOfRange { .. })
    ));

    // Truncate into the second segment: the later segment files go, the tail reads as zeros.
    let cut = rs
        .iter()
        .find(|r| r.phys_offset > base + SEGMENT + 100)
        .unwrap()
        .phys_offset;
    log.truncate(cut).await.unwrap();
    assert_eq!(log.max_offset(), cut);
    assert_eq!(log.segments().len(), 2);
    for s in &segments[2..] {
        assert!(!s.path.exists(), "{:?} should be deleted", s.path);
    }
    let on_disk = std::fs::read(&segments[1].path).unwrap();
    let rel = (cut - segments[1].start_offset) as usize;
    assert!(on_disk[rel..].iter().all(|b| *b == 0), "tail not zeroed");
    assert!(matches!(
        log.read_range(cut, 8),
        Err(StoreError::OffsetOutOfRange { .. })
    ));
    let r = log.append(&draft(b"x"), 0).await.unwrap();
    assert_eq!(r.phys_offset, cut);
    let (a, b, _) = read_back(&log, &r).await;
    assert_eq!(a, expected(b"x", 0, &r));
    assert_eq!(a, b);

    // Retention: the first segment is fully durable once flushed and goes; the current one stays.
    log.wait_durable(log.max_offset()).await;
    let deleted = log.delete_segments_before(u64::MAX).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].start_offset, base);
    assert!(!deleted[0].path.exists());
    assert_eq!(log.min_offset(), base + SEGMENT);
    assert!(matches!(
        log.read_into(base, &mut buf).await,
        Err(StoreError::OffsetOutOfRange { .. })
    ));
    log.shutdown().await.unwrap();
}

async fn concurrent_appenders_get_distinct_contiguous_offsets(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), mode, FlushDiskType::Async);
    let log = Rc::new(CommitLog::open(&cfg, 0).await.unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let log = Rc::clone(&log);
            tern_runtime::spawn_local(async move {
                let mut out = Vec::new();
                for i in 0..20 {
                    let body = body_of(t * 100 + i);
                    let r = log.append(&draft(&body), i as i64).await.unwrap();
                    out.push((body, i as i64, r));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await);
    }
    all.sort_by_key(|(_, _, r)| r.phys_offset);
    for w in all.windows(2) {
        let (a, b) = (&w[0].2, &w[1].2);
        // Either adjacent, or the next record starts a new segment.
        assert!(b.phys_offset == a.end() || b.phys_offset % SEGMENT == 0);
    }
    for (body, qo, r) in &all {
        let (a, _, _) = read_back(&log, r).await;
        assert_eq!(a, expected(body, *qo, r));
    }
    log.shutdown().await.unwrap();
}

async fn recent_records_are_served_per_backend(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), mode, FlushDiskType::Sync);
    let log = CommitLog::open(&cfg, 0).await.unwrap();
    let body = b"hot tail".to_vec();
    let r = log.append(&draft(&body), 5).await.unwrap();
    let range = log.read_range(r.phys_offset, r.size).unwrap();
    let want = expected(&body, 5, &r);
    match mode {
        // mmap: the page cache holds the bytes, sendfile serves them.
        IoMode::Mmap => assert!(range.raw_fd().is_some()),
        // direct: unflushed bytes exist only in the tail.
        IoMode::Direct => assert_eq!(range.as_memory(), Some(&want[..])),
    }
    assert_eq!(log.wait_durable(r.end()).await, FlushOutcome::Durable);
    let mut got = vec![0u8; r.size];
    log.read_range(r.phys_offset, r.size)
        .unwrap()
        .copy_to(&mut got)
        .unwrap();
    assert_eq!(got, want);
    assert!(matches!(
        log.read_range(r.phys_offset, r.size + 1),
        Err(StoreError::OffsetOutOfRange { .. })
    ));
    log.shutdown().await.unwrap();
}

#[test]
fn open_rejects_gaps_and_odd_sizes() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), IoMode::Mmap, FlushDiskType::Async);
        let cl = cfg.commit_log_dir();
        std::fs::create_dir_all(&cl).unwrap();
        let seg = |start: u64, len: u64| {
            let f = std::fs::File::create(cl.join(segment_file_name(start))).unwrap();
            f.set_len(len).unwrap();
        };
        seg(0, SEGMENT);
        seg(2 * SEGMENT, SEGMENT);
        std::fs::write(cl.join("not-a-segment.tmp"), b"ignored").unwrap();
        assert!(matches!(
            CommitLog::open(&cfg, 0).await.err(),
            Some(StoreError::BadSegment { .. })
        ));
        seg(SEGMENT, SEGMENT + 1);
        assert!(matches!(
            CommitLog::open(&cfg, 0).await.err(),
            Some(StoreError::BadSegment { .. })
        ));
        seg(SEGMENT, SEGMENT);
        let log = CommitLog::open(&cfg, 0).await.unwrap();
        assert_eq!(log.segments().len(), 3);
        assert_eq!((log.min_offset(), log.max_offset()), (0, 3 * SEGMENT));
        log.shutdown().await.unwrap();
    });
}

macro_rules! backend_suite {
    ($name:ident, $mode:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn rolls_segments_and_reads_back() {
                run(super::rolls_segments_and_reads_back($mode));
            }

            #[test]
            fn sync_flush_waits_for_fdatasync() {
                run(super::sync_flush_waits_for_fdatasync($mode));
            }

            #[test]
            fn async_flush_advances() {
                run(super::async_flush_advances($mode));
            }

            #[test]
            fn rejects_oversized_records() {
                run(super::rejects_oversized_records($mode));
            }

            #[test]
            fn truncates_and_tracks_offsets() {
                run(super::truncates_and_tracks_offsets($mode));
            }

            #[test]
            fn recent_records_are_served_per_backend() {
                run(super::recent_records_are_served_per_backend($mode));
            }

            #[test]
            fn concurrent_appenders_get_distinct_contiguous_offsets() {
                run(super::concurrent_appenders_get_distinct_contiguous_offsets(
                    $mode,
                ));
            }
        }
    };
}

backend_suite!(mmap, IoMode::Mmap);
backend_suite!(direct, IoMode::Direct);
