//! Startup recovery: find the end of the valid CommitLog, cut everything past it, and make the
//! ConsumeQueues and the Index agree with what survived.
//!
//! ## Where validation starts
//! - **Clean start** (no `abort` file): the last shutdown flushed everything, so only the last
//!   [`CLEAN_TAIL_SEGMENTS`] segments are validated, as RocketMQ's `recoverNormally` does.
//! - **Crash** (`abort` file present): from the newest segment whose first record was stored no
//!   later than the checkpoint's safe time ([`CheckpointValues::safe_recovery_timestamp`]): every
//!   record from there on may lack its ConsumeQueue or Index entry. If no segment qualifies
//!   (or the checkpoint was torn) validation starts at the first segment.
//!
//! ## What validation does
//! Records are read in order and each is checked: TOTALSIZE within the segment, magic code, every
//! length field, the body CRC, that its PHYSICALOFFSET field names its own position, and that its
//! topic and properties do not end in a torn write's zeros (see `looks_zero_torn`). A blank
//! record must end exactly at its segment's end and moves the scan to the next segment. The first
//! record failing any check is where the valid log ends; the CommitLog is truncated there
//! ([`crate::commit_log::CommitLog::truncate`] zeroes the rest and deletes later segments).
//!
//! ## Re-dispatch
//! After a crash, ConsumeQueue and Index entries from the scan start on are dropped first and
//! rebuilt from the records, so every entry left afterwards was produced by a valid record (a torn
//! or stale entry cannot survive). After a clean shutdown they are kept and checked instead.
//! Every valid record scanned is replayed into its ConsumeQueue: an identical entry already there
//! is a no-op, a missing one is appended. A record whose queue offset is beyond its queue's next
//! offset shows that the queue lost entries older than the scan start; such queues are rebuilt in
//! a second pass from their own last valid entry's end. A record whose queue offset still
//! contradicts its queue (it names an offset already held by another record, or skips ahead after
//! every earlier record was replayed) is corrupt in an unchecked field: it stays in the CommitLog
//! but gets no ConsumeQueue entry. A queue that does not exist is created only by a record with
//! queue offset 0 (a deleted topic is not resurrected). Records past the Index's newest offset are
//! indexed again. Finally ConsumeQueue and Index entries pointing at or past the end of the valid
//! log are dropped, and the invariants below are `assert!`ed:
//! - every ConsumeQueue's last entry ends at or before the CommitLog's write position;
//! - every ConsumeQueue is dense (`min_offset <= max_offset`, with each entry valid by the
//!   ConsumeQueue's own guarantee).

use std::collections::{BTreeSet, HashMap};

use crate::checkpoint::CheckpointValues;
use crate::commit_log::{CommitLog, SegmentInfo};
use crate::index::IndexService;
use crate::message::{check_record, RecordCheck, StoredMessage, BLANK_RECORD_LEN};
use crate::message_store::dispatch::{index_record, replay_into, Dispatch, Replay};
use crate::message_store::queues::{is_valid_topic, QueueTable};
use crate::message_store::MessageStoreError;
use crate::schedule::DelayLevels;

/// Segments validated on a clean start (RocketMQ validates the last three files).
pub const CLEAN_TAIL_SEGMENTS: usize = 3;
/// Bytes read from the CommitLog at a time while scanning.
const SCAN_WINDOW: usize = 1 << 20;

/// How the previous run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Clean shutdown: no abort file.
    Clean,
    /// Crash: the abort file was present.
    Crash,
}

/// What recovery found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// How the previous run ended.
    pub mode: RecoveryMode,
    /// Physical offset where validation started.
    pub scan_from: u64,
    /// End of the last valid record: the CommitLog's write position after recovery.
    pub valid_end: u64,
    /// CommitLog segments deleted because they lay past the valid end.
    pub segments_dropped: usize,
    /// Valid message records scanned.
    pub records_scanned: u64,
    /// ConsumeQueue entries appended by re-dispatch.
    pub cq_entries_rebuilt: u64,
    /// Queues that needed a second pass from their own last entry.
    pub queues_rebuilt_deep: usize,
    /// Store timestamp of the last valid record (0 if none).
    pub last_store_timestamp: i64,
}

/// A forward reader over the CommitLog that keeps a window of bytes and re-reads only when a
/// record leaves it.
struct Scanner<'a> {
    log: &'a CommitLog,
    buf: Vec<u8>,
    win_start: u64,
    win_len: usize,
}

impl<'a> Scanner<'a> {
    fn new(log: &'a CommitLog) -> Self {
        Scanner {
            log,
            buf: Vec::new(),
            win_start: 0,
            win_len: 0,
        }
    }

    /// Makes `[pos, pos + want)` available (clipped to `limit`); returns the bytes from `pos`.
    async fn bytes_at(
        &mut self,
        pos: u64,
        want: usize,
        limit: u64,
    ) -> Result<&[u8], MessageStoreError> {
        let avail_end = limit.min(pos.saturating_add(want as u64));
        let win_end = self.win_start + self.win_len as u64;
        if pos < self.win_start || avail_end > win_end {
            let len = usize::try_from(limit.saturating_sub(pos))
                .unwrap_or(usize::MAX)
                .min(want.max(SCAN_WINDOW));
            if self.buf.len() < len {
                self.buf.resize(len, 0);
            }
            self.log.read_into(pos, &mut self.buf[..len]).await?;
            self.win_start = pos;
            self.win_len = len;
        }
        let from = (pos - self.win_start) as usize;
        let to = (avail_end - self.win_start) as usize;
        Ok(&self.buf[from..to])
    }
}

/// Reads the record at `pos` of a segment ending at `seg_end`.
enum Step<'b> {
    Message(StoredMessage<'b>),
    Blank,
    End,
}

async fn step<'b>(
    scanner: &'b mut Scanner<'_>,
    pos: u64,
    seg_end: u64,
    verify_crc: bool,
) -> Result<Step<'b>, MessageStoreError> {
    if seg_end.saturating_sub(pos) < BLANK_RECORD_LEN as u64 {
        return Ok(Step::End);
    }
    let head = scanner.bytes_at(pos, BLANK_RECORD_LEN, seg_end).await?;
    let mut total = [0u8; 4];
    total.copy_from_slice(head.get(..4).unwrap_or(&[0; 4]));
    let total = i64::from(i32::from_be_bytes(total));
    if total < BLANK_RECORD_LEN as i64 || pos + total as u64 > seg_end {
        return Ok(Step::End);
    }
    let rec = scanner.bytes_at(pos, total as usize, seg_end).await?;
    Ok(match check_record(rec, verify_crc) {
        RecordCheck::Blank { len } if pos + len as u64 == seg_end => Step::Blank,
        RecordCheck::Message(m)
            if m.total_size as i64 == total
                && m.physical_offset == pos as i64
                && !looks_zero_torn(&m, rec) =>
        {
            Step::Message(m)
        }
        _ => Step::End,
    })
}

/// Whether a record that passed the format checks still shows a torn write's zero tail. The body
/// CRC does not cover the topic and properties that end a record, so zeros there (a page that
/// never reached the disk) would go unnoticed. A real topic never holds a NUL byte, and a record
/// with properties ends with the property separator (every RocketMQ client writes one after each
/// pair), never with 0.
fn looks_zero_torn(m: &StoredMessage<'_>, rec: &[u8]) -> bool {
    m.topic.bytes().any(|b| b == 0)
        || (!m.properties.is_empty() && rec.get(m.total_size.wrapping_sub(1)) == Some(&0))
}

/// Reads the store timestamp of the first record of `seg`, if it is a valid message.
async fn first_store_timestamp(
    scanner: &mut Scanner<'_>,
    seg: &SegmentInfo,
    verify_crc: bool,
) -> Result<Option<i64>, MessageStoreError> {
    let seg_end = seg.start_offset + seg.size;
    Ok(
        match step(scanner, seg.start_offset, seg_end, verify_crc).await? {
            Step::Message(m) if m.store_timestamp != 0 => Some(m.store_timestamp),
            _ => None,
        },
    )
}

/// Index into `segments` where validation starts.
async fn choose_start(
    scanner: &mut Scanner<'_>,
    segments: &[SegmentInfo],
    mode: RecoveryMode,
    checkpoint: &CheckpointValues,
    verify_crc: bool,
) -> Result<usize, MessageStoreError> {
    match mode {
        RecoveryMode::Clean => Ok(segments.len().saturating_sub(CLEAN_TAIL_SEGMENTS)),
        RecoveryMode::Crash => {
            let safe = checkpoint.safe_recovery_timestamp(true);
            for (i, seg) in segments.iter().enumerate().rev() {
                if first_store_timestamp(scanner, seg, verify_crc)
                    .await?
                    .is_some_and(|ts| ts <= safe)
                {
                    return Ok(i);
                }
            }
            Ok(0)
        }
    }
}

/// Walks valid records from `segments[start]` on, calling `visit` for each; returns the end of the
/// last valid record.
async fn scan(
    scanner: &mut Scanner<'_>,
    segments: &[SegmentInfo],
    start: usize,
    from: u64,
    verify_crc: bool,
    mut visit: impl FnMut(&StoredMessage<'_>) -> Result<(), MessageStoreError>,
) -> Result<u64, MessageStoreError> {
    let mut pos = from;
    for seg in segments.iter().skip(start) {
        let seg_end = seg.start_offset + seg.size;
        if pos < seg.start_offset || pos >= seg_end {
            return Ok(pos);
        }
        loop {
            match step(scanner, pos, seg_end, verify_crc).await? {
                Step::Message(m) => {
                    visit(&m)?;
                    pos += m.total_size as u64;
                }
                Step::Blank => {
                    pos = seg_end;
                    break;
                }
                Step::End => return Ok(pos),
            }
            tern_runtime::yield_if_needed().await;
        }
    }
    Ok(pos)
}

/// Recovers the CommitLog, ConsumeQueues and Index of one store. See the module docs.
pub(crate) async fn recover(
    log: &CommitLog,
    queues: &mut QueueTable,
    index: &mut IndexService,
    checkpoint: &CheckpointValues,
    mode: RecoveryMode,
    verify_crc: bool,
    levels: &DelayLevels,
) -> Result<RecoveryReport, MessageStoreError> {
    let segments = log.segments();
    let mut report = RecoveryReport {
        mode,
        scan_from: log.min_offset(),
        valid_end: log.min_offset(),
        segments_dropped: 0,
        records_scanned: 0,
        cq_entries_rebuilt: 0,
        queues_rebuilt_deep: 0,
        last_store_timestamp: 0,
    };
    let mut scanner = Scanner::new(log);
    if !segments.is_empty() {
        let start = choose_start(&mut scanner, &segments, mode, checkpoint, verify_crc).await?;
        let from = segments.get(start).map_or(0, |s| s.start_offset);
        report.scan_from = from;
        if mode == RecoveryMode::Crash {
            // Entries from the scan start on may be stale or torn: rebuild them all from the
            // records, so each one left afterwards was produced by a valid record.
            for (_, _, cq) in queues.iter_mut() {
                cq.truncate_from_phys(from as i64)?;
            }
            index.truncate_from_phys(from as i64)?;
        }
        // First offset the Index lacks: after a crash everything from the scan start (just
        // dropped); after a clean shutdown whatever follows its newest entry.
        let index_from = match mode {
            RecoveryMode::Crash => from as i64,
            RecoveryMode::Clean => index.max_phys_offset() + 1,
        };
        let mut key_buf = String::new();
        let mut deferred = QueueSet::new();
        let end = scan(&mut scanner, &segments, start, from, verify_crc, |m| {
            report.records_scanned += 1;
            report.last_store_timestamp = m.store_timestamp;
            let d = Dispatch::of(m);
            if m.physical_offset >= index_from {
                index_record(index, &d, &mut key_buf)?;
            }
            if contains(&deferred, m.topic, m.queue_id) || !is_valid_topic(m.topic) {
                return Ok(());
            }
            // A queue missing entirely is created only by its first message; a record further
            // along belongs to a deleted topic (or a lost queue directory) and is not resurrected.
            if queues.get(m.topic, m.queue_id).is_none() && m.queue_offset != 0 {
                return Ok(());
            }
            let cq = queues.get_or_create(m.topic, m.queue_id)?;
            match replay_into(cq, &d, levels)? {
                Replay::Appended => report.cq_entries_rebuilt += 1,
                Replay::AlreadyPresent => {}
                Replay::Inconsistent => skip_corrupt(m),
                Replay::Gap => {
                    deferred
                        .entry(m.topic.to_string())
                        .or_default()
                        .insert(m.queue_id);
                }
            }
            Ok(())
        })
        .await?;
        report.valid_end = end;
        if !deferred.is_empty() {
            report.queues_rebuilt_deep = deferred.values().map(BTreeSet::len).sum();
            rebuild_deferred(
                &mut scanner,
                &segments,
                queues,
                deferred,
                end,
                verify_crc,
                &mut report,
                levels,
            )
            .await?;
        }
        log.truncate(end).await?;
        report.segments_dropped = segments.len().saturating_sub(log.segments().len());
    }

    let end = log.max_offset();
    for (_, _, cq) in queues.iter_mut() {
        cq.truncate_from_phys(end as i64)?;
    }
    index.truncate_from_phys(end as i64)?;
    let min = log.min_offset() as i64;
    for (_, _, cq) in queues.iter_mut() {
        cq.set_min_phys(min)?;
    }
    for (topic, qid, cq) in queues.iter() {
        assert!(
            cq.last_phys_end().is_none_or(|e| e <= end as i64),
            "recovered consume queue {topic}/{qid} points past the CommitLog end {end}"
        );
        assert!(
            cq.min_offset() <= cq.max_offset(),
            "recovered consume queue {topic}/{qid} has min {} > max {}",
            cq.min_offset(),
            cq.max_offset()
        );
    }
    assert!(
        index.max_phys_offset() < end as i64 || index.max_phys_offset() == 0,
        "recovered index points past the CommitLog end"
    );
    Ok(report)
}

/// Second pass for queues that lost entries older than the first pass's start: re-dispatches, to
/// those queues only, every record from the earliest of their last valid entries' ends.
#[allow(clippy::too_many_arguments)]
async fn rebuild_deferred(
    scanner: &mut Scanner<'_>,
    segments: &[SegmentInfo],
    queues: &mut QueueTable,
    keys: QueueSet,
    end: u64,
    verify_crc: bool,
    report: &mut RecoveryReport,
    levels: &DelayLevels,
) -> Result<(), MessageStoreError> {
    let first = segments.first().map_or(0, |s| s.start_offset);
    let from = keys
        .iter()
        .flat_map(|(t, qs)| qs.iter().map(move |q| (t, *q)))
        .map(|(t, q)| {
            queues
                .get(t, q)
                .and_then(|cq| cq.last_phys_end())
                .map_or(first, |e| u64::try_from(e).unwrap_or(first))
        })
        .min()
        .unwrap_or(first)
        .max(first);
    // `from` is a record boundary: a queue's last entry ends where the next record starts.
    let start = segments
        .iter()
        .rposition(|s| s.start_offset <= from)
        .unwrap_or(0);
    scan(scanner, segments, start, from, verify_crc, |m| {
        if m.physical_offset as u64 >= end || !contains(&keys, m.topic, m.queue_id) {
            return Ok(());
        }
        let Some(cq) = queues.get_mut(m.topic, m.queue_id) else {
            return Ok(());
        };
        match replay_into(cq, &Dispatch::of(m), levels)? {
            Replay::Appended => report.cq_entries_rebuilt += 1,
            Replay::AlreadyPresent => {}
            // Every record of this queue since its last entry was replayed in order, so a
            // record that still does not fit carries a corrupt queue offset.
            Replay::Gap | Replay::Inconsistent => skip_corrupt(m),
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// Logs and skips a record whose queue offset contradicts its queue.
fn skip_corrupt(m: &StoredMessage<'_>) {
    tracing::warn!(
        topic = m.topic,
        queue_id = m.queue_id,
        queue_offset = m.queue_offset,
        phys = m.physical_offset,
        "record's queue offset contradicts its consume queue; not dispatched"
    );
}

/// A set of (topic, queue id) pairs, looked up by `&str` without allocating.
type QueueSet = HashMap<String, BTreeSet<i32>>;

fn contains(set: &QueueSet, topic: &str, queue_id: i32) -> bool {
    set.get(topic).is_some_and(|qs| qs.contains(&queue_id))
}
