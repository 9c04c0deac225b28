//! The CommitLog: every stored message of one core, appended to a chain of fixed-size segment files.
//!
//! Offsets are physical: a message's offset is its byte position in the log, and the segment holding
//! offset `o` is the one whose file is named by a start `s <= o < s + size`. A new (empty) log starts at
//! the `first_offset` given to [`CommitLog::open`]; the broker gives core `k` the base `k << 56` so the
//! offsets of different cores never collide and a message's core can be read from its offset.
//!
//! Layout of a segment (RocketMQ's):
//!
//! | bytes                         | content                                                        |
//! |-------------------------------|----------------------------------------------------------------|
//! | `[0, w)`                      | stored records back to back ([`crate::message`] layout)        |
//! | `[w, w + 8)`                  | blank record once the segment is closed: TOTALSIZE = size − w, |
//! |                               | MAGICCODE = [`BLANK_MAGIC_CODE`]                               |
//! | `[w + 8, size)`               | zeros                                                          |
//!
//! A record is appended only if it leaves at least [`BLANK_RECORD_LEN`] (8) bytes in the segment, so a
//! closed segment always ends with a blank record and a record never spans two segments; the largest
//! record is therefore `segment size − 8` bytes (and at most `maxMessageSize`).
//!
//! Ownership: a `CommitLog` belongs to one executor (`!Send`); its methods take `&self` and may be
//! called from many tasks of that executor. A background flusher task ([`crate::flush`]) makes
//! appends durable.
//!
//! Failure: an I/O error in a flush (or a write) poisons the log: appends then fail with
//! [`StoreError::Poisoned`] until the log is reopened and recovered, because what reached the disk is
//! unknown. Reads keep working. A full disk while creating a segment fails that append with
//! [`StoreError::DiskFull`] without poisoning (nothing was written).
//!
//! [`BLANK_MAGIC_CODE`]: crate::message::BLANK_MAGIC_CODE

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{IoMode, StoreConfig};
use crate::error::{StoreError, StoreResult};
use crate::flush::{run_flusher, FlushOutcome, FlushPolicy, FlushState, FlushStats, Notify};
use crate::message::{encode_blank, MessageDraft, BLANK_RECORD_LEN};
use crate::segment::{check_segment_size, parse_segment_file_name, BufferPool, ReadRange, Segment};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Physical offset of the record's first byte.
    pub phys_offset: u64,
    /// Stored size of the record.
    pub size: usize,
    /// The STORETIMESTAMP written into the record (ms since the epoch).
    pub store_timestamp: i64,
}

impl AppendResult {
    /// Offset one past the record: what to pass to [`CommitLog::wait_durable`].
    pub fn end(&self) -> u64 {
        self.phys_offset + self.size as u64
    }
}

/// One segment file as listed by [`CommitLog::segments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Physical offset of the segment's first byte (also its file name).
    pub start_offset: u64,
    /// Bytes in the file.
    pub size: u64,
    /// Bytes appended so far (the whole size once closed).
    pub written: u64,
    /// The file.
    pub path: PathBuf,
}

struct LogState {
    /// Open segments, oldest first, contiguous.
    segments: VecDeque<Segment>,
    /// A segment created ahead of need, starting where the last one ends.
    next: Option<Segment>,
    /// A task is creating `next`.
    creating: bool,
    poisoned: bool,
    /// Start of the first segment of an empty log.
    first_offset: u64,
    /// Appends so far, and how many of them a completed flush covered.
    appends: u64,
    synced_appends: u64,
}

impl LogState {
    fn max_offset(&self) -> u64 {
        self.segments
            .back()
            .map_or(self.first_offset, |s| s.start() + s.write_pos())
    }

    fn min_offset(&self) -> u64 {
        self.segments
            .front()
            .map_or(self.first_offset, |s| s.start())
    }

    /// Start of the segment after the last one.
    fn next_start(&self) -> u64 {
        self.segments.back().map_or(self.first_offset, |s| s.end())
    }

    fn segment_index(&self, offset: u64) -> Option<usize> {
        let idx = self.segments.partition_point(|s| s.start() <= offset);
        let i = idx.checked_sub(1)?;
        let seg = self.segments.get(i)?;
        (offset < seg.end()).then_some(i)
    }
}

enum Step<T> {
    Done(T),
    NeedSegment,
}

/// State shared between the [`CommitLog`] handle and its flusher task.
pub(crate) struct LogShared {
    dir: PathBuf,
    mode: IoMode,
    segment_size: u64,
    max_record: usize,
    state: RefCell<LogState>,
    segment_ready: Notify,
    /// Buffers shared by the direct backend's segments.
    pool: Rc<BufferPool>,
    flush: FlushState,
    write_pos: Cell<u64>,
}

/// The CommitLog of one core. See the module docs for the layout and the failure model.
pub struct CommitLog {
    shared: Rc<LogShared>,
    flusher: RefCell<Option<tern_runtime::Task<()>>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl CommitLog {
    /// Opens the CommitLog in `config.commit_log_dir()` (created if missing) and starts its flusher.
    ///
    /// An empty directory gives an empty log whose first segment will start at `first_offset`
    /// (core `k` uses `k << 56`); otherwise `first_offset` is ignored and the existing segments,
    /// which must be contiguous, are opened. Until recovery calls [`CommitLog::truncate`] with the
    /// end of the last valid record, the write position is the end of the last segment (appends
    /// would go to a new segment) and everything counts as flushed.
    pub async fn open(config: &StoreConfig, first_offset: u64) -> StoreResult<CommitLog> {
        let dir = config.commit_log_dir();
        check_segment_size(&dir, config.mapped_file_size_commit_log)?;
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("creating", &dir, e))?;
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("listing", &dir, e))?;
            if let Some(start) = entry.file_name().to_str().and_then(parse_segment_file_name) {
                found.push((start, entry.path()));
            }
        }
        found.sort();
        let mode = config.commit_log_io_mode;
        let pool = Rc::new(BufferPool::default());
        let mut segments: VecDeque<Segment> = VecDeque::new();
        for (start, path) in found {
            if let Some(prev) = segments.back() {
                if prev.end() != start {
                    return Err(StoreError::BadSegment {
                        path,
                        reason: "segment does not start where the previous one ends",
                    });
                }
            }
            segments.push_back(Segment::open(mode, path, start, &pool).await?);
        }
        let state = LogState {
            segments,
            next: None,
            creating: false,
            poisoned: false,
            first_offset,
            appends: 0,
            synced_appends: 0,
        };
        let max = state.max_offset();
        let shared = Rc::new(LogShared {
            dir,
            mode,
            segment_size: config.mapped_file_size_commit_log,
            max_record: usize::try_from(config.max_message_size).unwrap_or(usize::MAX),
            state: RefCell::new(state),
            segment_ready: Notify::default(),
            pool,
            flush: FlushState::new(FlushPolicy::from_config(config), max),
            write_pos: Cell::new(max),
        });
        let flusher = tern_runtime::spawn_local(run_flusher(Rc::clone(&shared)));
        Ok(CommitLog {
            shared,
            flusher: RefCell::new(Some(flusher)),
        })
    }

    /// The directory holding the segment files.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The write position: offset of the next record.
    pub fn max_offset(&self) -> u64 {
        self.shared.write_pos.get()
    }

    /// The first readable offset (start of the oldest segment).
    pub fn min_offset(&self) -> u64 {
        self.shared.state.borrow().min_offset()
    }

    /// Everything below this offset is durable (a completed fdatasync/msync covers it).
    pub fn flushed_offset(&self) -> u64 {
        self.shared.flush.flushed()
    }

    /// Flush counters (rounds, appends and bytes they covered).
    pub fn flush_stats(&self) -> FlushStats {
        self.shared.flush.stats()
    }

    /// The segment files, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| SegmentInfo {
                start_offset: s.start(),
                size: s.size(),
                written: s.write_pos(),
                path: s.path().to_path_buf(),
            })
            .collect()
    }

    /// Appends one message with the given ConsumeQueue offset; the CommitLog assigns the physical
    /// offset and the store timestamp and encodes the record straight into the segment.
    pub async fn append(
        &self,
        draft: &MessageDraft<'_>,
        queue_offset: i64,
    ) -> StoreResult<AppendResult> {
        let len = draft.stored_len()?;
        self.append_with(len, |out, phys, ts| {
            let written = draft.encode_into(queue_offset, phys as i64, ts, out);
            debug_assert_eq!(written.ok(), Some(len), "stored_len was checked above");
        })
        .await
    }

    /// Appends a record of exactly `len` bytes that `encode(out, phys_offset, store_timestamp)` writes
    /// into `out` (`out.len() == len`; bytes it leaves unwritten are unspecified). `encode` runs
    /// once, synchronously, after the offset was assigned.
    ///
    /// Errors: [`StoreError::RecordTooLarge`] above `maxMessageSize` or `segment size − 8`;
    /// [`StoreError::Poisoned`] after an I/O error; errors creating a new segment.
    pub async fn append_with(
        &self,
        len: usize,
        encode: impl FnOnce(&mut [u8], u64, i64),
    ) -> StoreResult<AppendResult> {
        let limit = self
            .shared
            .max_record
            .min((self.shared.segment_size as usize).saturating_sub(BLANK_RECORD_LEN));
        if len > limit {
            return Err(StoreError::RecordTooLarge { size: len, limit });
        }
        let shared = &self.shared;
        shared.flush.throttle(|| shared.write_pos.get()).await;
        let mut encode = Some(encode);
        loop {
            match shared.try_append(len, &mut encode)? {
                Step::Done(r) => {
                    shared.flush.on_append(shared.write_pos.get());
                    return Ok(r);
                }
                Step::NeedSegment => shared.ensure_next_segment().await?,
            }
        }
    }

    /// Replication: appends one record the master already encoded (`record`, a whole message
    /// record) at exactly `phys`, the offset the master stored it at. The bytes are copied as they
    /// are (the master's STORETIMESTAMP stays). Fails with [`StoreError::ReplicaMisplaced`] when
    /// `phys` is not the write position or the record would not fit the current segment the way it
    /// did on the master (then nothing is written).
    pub async fn append_replicated(&self, phys: u64, record: &[u8]) -> StoreResult<AppendResult> {
        self.check_replica_position(phys, Some(record.len()))?;
        let result = self
            .append_with(record.len(), |out, _, _| out.copy_from_slice(record))
            .await?;
        // Only the replication task appends to a slave's log, so nothing moved the position since
        // the check above; the record is therefore where the master put it.
        debug_assert_eq!(result.phys_offset, phys);
        Ok(result)
    }

    /// Replication: closes the segment being written at `phys` with a blank record, as the master
    /// did (its blank record starts at `phys`), so the next replicated record starts the next
    /// segment. Fails with [`StoreError::ReplicaMisplaced`] when `phys` is not the write position.
    pub fn seal_replicated(&self, phys: u64) -> StoreResult<()> {
        self.check_replica_position(phys, None)?;
        let shared = &self.shared;
        let mut st = shared.state.borrow_mut();
        if st.poisoned {
            return Err(StoreError::Poisoned);
        }
        if let Some(cur) = st.segments.back_mut() {
            let remaining = cur.remaining();
            if remaining > 0 {
                if remaining >= BLANK_RECORD_LEN as u64 {
                    cur.append_with(BLANK_RECORD_LEN, |out| {
                        encode_blank(remaining as usize, out)
                    });
                }
                cur.seal();
                shared.write_pos.set(cur.end());
                st.appends += 1;
            }
        }
        drop(st);
        shared.flush.on_append(shared.write_pos.get());
        Ok(())
    }

    /// Checks that a replicated record (of `len` bytes; `None` for a blank record) would land at
    /// `phys`.
    fn check_replica_position(&self, phys: u64, len: Option<usize>) -> StoreResult<()> {
        let st = self.shared.state.borrow();
        let write_pos = self.shared.write_pos.get();
        let room = st.segments.back().map_or(0, Segment::remaining);
        // A record goes into the current segment when it leaves room for a blank record; a full
        // (sealed) or missing segment means a new one starting at the write position.
        let fits = match len {
            Some(len) => room == 0 || (len + BLANK_RECORD_LEN) as u64 <= room,
            None => true,
        };
        if phys != write_pos || !fits {
            return Err(StoreError::ReplicaMisplaced {
                offset: phys,
                write_pos,
                room,
            });
        }
        Ok(())
    }

    /// Waits until everything below `offset` (use [`AppendResult::end`]) is durable, for at most
    /// `syncFlushTimeout`. Appends waiting at the same time share one fdatasync.
    pub async fn wait_durable(&self, offset: u64) -> FlushOutcome {
        self.shared.flush.wait_durable(offset).await
    }

    /// Copies `out.len()` bytes starting at `phys` into `out`; the range may span segments but must
    /// lie within `[min_offset, max_offset)`.
    pub async fn read_into(&self, phys: u64, out: &mut [u8]) -> StoreResult<()> {
        let end = self.shared.check_range(phys, out.len())?;
        let mut pos = phys;
        while pos < end {
            let done = (pos - phys) as usize;
            let (pending, n) = {
                let st = self.shared.state.borrow();
                let seg = st
                    .segment_index(pos)
                    .and_then(|i| st.segments.get(i))
                    .ok_or_else(|| self.shared.out_of_range(pos))?;
                let n = ((seg.end() - pos) as usize).min(out.len() - done);
                let dst = &mut out[done..done + n];
                (seg.read_into(pos - seg.start(), dst), n)
            };
            pending.finish(&mut out[done..done + n]).await?;
            pos += n as u64;
        }
        Ok(())
    }

    /// A zero-copy view of `len` bytes at `phys` for sending to a client; the range must lie within
    /// one segment and below `max_offset` (a record always does).
    pub fn read_range(&self, phys: u64, len: usize) -> StoreResult<ReadRange> {
        let end = self.shared.check_range(phys, len)?;
        let st = self.shared.state.borrow();
        let seg = st
            .segment_index(phys)
            .and_then(|i| st.segments.get(i))
            .ok_or_else(|| self.shared.out_of_range(phys))?;
        if end > seg.end() {
            return Err(StoreError::CrossesSegment { offset: phys, len });
        }
        seg.read_range(phys - seg.start(), len)
    }

    /// Recovery: makes `phys` the write position. Segments starting at or after `phys` are deleted
    /// (except that a log truncated to its very start keeps its first segment), and the rest of the
    /// segment holding `phys` is zeroed on disk. Everything kept counts as durable. Waits for a flush
    /// round in progress to finish first.
    pub async fn truncate(&self, phys: u64) -> StoreResult<()> {
        let shared = &self.shared;
        let _guard = shared.flush.lock.lock().await;
        let removed = {
            let mut st = shared.state.borrow_mut();
            let min = st.min_offset();
            if phys < min || phys > st.max_offset() {
                return Err(StoreError::OffsetOutOfRange {
                    offset: phys,
                    min,
                    max: st.max_offset(),
                });
            }
            let mut removed = Vec::new();
            if let Some(next) = st.next.take() {
                removed.push(next.path().to_path_buf());
            }
            while st.segments.len() > 1 && st.segments.back().is_some_and(|s| s.start() >= phys) {
                if let Some(s) = st.segments.pop_back() {
                    removed.push(s.path().to_path_buf());
                }
            }
            if let Some(last) = st.segments.back_mut() {
                let rel = phys.saturating_sub(last.start()).min(last.size());
                last.truncate(rel)?;
            }
            let max = st.max_offset();
            shared.write_pos.set(max);
            shared.flush.reset(max);
            removed
        };
        remove_files(removed).await
    }

    /// Retention hook: deletes the oldest segments that end at or below `offset`, are fully durable,
    /// and are not the segment being written. Returns the deleted segments. Readers holding a
    /// [`ReadRange`] of a deleted segment keep a valid descriptor.
    pub async fn delete_segments_before(&self, offset: u64) -> StoreResult<Vec<SegmentInfo>> {
        let removed: Vec<SegmentInfo> = {
            let mut st = self.shared.state.borrow_mut();
            let mut removed = Vec::new();
            while st.segments.len() > 1
                && st.segments.front().is_some_and(|s| {
                    s.end() <= offset && s.durable_pos() == s.size() && s.write_pos() == s.size()
                })
            {
                if let Some(s) = st.segments.pop_front() {
                    removed.push(SegmentInfo {
                        start_offset: s.start(),
                        size: s.size(),
                        written: s.write_pos(),
                        path: s.path().to_path_buf(),
                    });
                }
            }
            removed
        };
        remove_files(removed.iter().map(|s| s.path.clone()).collect()).await?;
        Ok(removed)
    }

    /// Stops the flusher after a final flush round. Appends after this are not flushed in the
    /// background.
    pub async fn shutdown(&self) -> StoreResult<()> {
        self.shared.flush.stop();
        let task = self.flusher.borrow_mut().take();
        if let Some(task) = task {
            task.await;
        }
        if self.shared.flush.has_failed() {
            return Err(StoreError::Poisoned);
        }
        Ok(())
    }
}

async fn remove_files(paths: Vec<PathBuf>) -> StoreResult<()> {
    if paths.is_empty() {
        return Ok(());
    }
    tern_runtime::spawn_blocking(move || {
        for p in paths {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("deleting", p, e)),
            }
        }
        Ok(())
    })
    .await
}

impl LogShared {
    pub(crate) fn flush_state(&self) -> &FlushState {
        &self.flush
    }

    pub(crate) fn write_position(&self) -> u64 {
        self.write_pos.get()
    }

    fn out_of_range(&self, offset: u64) -> StoreError {
        let st = self.state.borrow();
        StoreError::OffsetOutOfRange {
            offset,
            min: st.min_offset(),
            max: st.max_offset(),
        }
    }

    /// Checks `[phys, phys + len)` lies within the log; returns its end.
    fn check_range(&self, phys: u64, len: usize) -> StoreResult<u64> {
        let st = self.state.borrow();
        let (min, max) = (st.min_offset(), st.max_offset());
        match phys.checked_add(len as u64) {
            Some(end) if phys >= min && end <= max => Ok(end),
            _ => Err(StoreError::OffsetOutOfRange {
                offset: phys,
                min,
                max,
            }),
        }
    }

    /// Appends if the current segment (or a ready next one) has room; closes a full segment with a
    /// blank record on the way.
    fn try_append<F: FnOnce(&mut [u8], u64, i64)>(
        &self,
        len: usize,
        encode: &mut Option<F>,
    ) -> StoreResult<Step<AppendResult>> {
        let mut st = self.state.borrow_mut();
        if st.poisoned {
            return Err(StoreError::Poisoned);
        }
        loop {
            let next_start = st.next_start();
            if let Some(cur) = st.segments.back_mut() {
                let remaining = cur.remaining();
                if (len + BLANK_RECORD_LEN) as u64 <= remaining {
                    let Some(encode) = encode.take() else {
                        unreachable!("encode is consumed only by a successful append");
                    };
                    let phys = cur.start() + cur.write_pos();
                    let ts = now_ms();
                    cur.append_with(len, |out| encode(out, phys, ts));
                    let max = cur.start() + cur.write_pos();
                    st.appends += 1;
                    self.write_pos.set(max);
                    return Ok(Step::Done(AppendResult {
                        phys_offset: phys,
                        size: len,
                        store_timestamp: ts,
                    }));
                }
                if remaining > 0 {
                    if remaining >= BLANK_RECORD_LEN as u64 {
                        cur.append_with(BLANK_RECORD_LEN, |out| {
                            encode_blank(remaining as usize, out);
                        });
                    }
                    cur.seal();
                    self.write_pos.set(cur.end());
                }
            }
            match st.next.take() {
                Some(seg) if seg.start() == next_start => st.segments.push_back(seg),
                other => {
                    st.next = other;
                    return Ok(Step::NeedSegment);
                }
            }
        }
    }

    /// Makes sure `next` holds the segment after the last one, creating it if no other task is.
    async fn ensure_next_segment(&self) -> StoreResult<()> {
        let start = loop {
            {
                let mut st = self.state.borrow_mut();
                if st.next.is_some() {
                    return Ok(());
                }
                if !st.creating {
                    st.creating = true;
                    break st.next_start();
                }
            }
            self.segment_ready.notified().await;
        };
        let created =
            Segment::create(self.mode, &self.dir, start, self.segment_size, &self.pool).await;
        let result = {
            let mut st = self.state.borrow_mut();
            st.creating = false;
            match created {
                Ok(seg) if seg.start() == st.next_start() => {
                    st.next = Some(seg);
                    Ok(())
                }
                Ok(seg) => {
                    // The log was truncated meanwhile; this file no longer fits the chain.
                    let stale = seg.path().to_path_buf();
                    drop(seg);
                    let _ = std::fs::remove_file(stale);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        self.segment_ready.notify_all();
        result
    }

    /// Creates the next segment ahead of need once the current one is half full.
    pub(crate) async fn precreate_next_segment(&self) {
        let due = {
            let st = self.state.borrow();
            st.next.is_none()
                && !st.creating
                && !st.poisoned
                && st
                    .segments
                    .back()
                    .is_some_and(|s| s.write_pos() >= s.size() / 2)
        };
        if due {
            if let Err(e) = self.ensure_next_segment().await {
                tracing::warn!(error = %e, "cannot create the next CommitLog segment ahead of need");
            }
        }
    }

    /// One flush round: snapshot the dirty ranges, run their writes and syncs, then (only after
    /// the syscalls returned) advance the flushed offset and release the waiters it covers.
    pub(crate) async fn flush_round(&self) -> StoreResult<()> {
        let _guard = self.flush.lock.lock().await;
        let (jobs, target, appends) = {
            let mut st = self.state.borrow_mut();
            if st.poisoned {
                return Err(StoreError::Poisoned);
            }
            let mut jobs = Vec::new();
            for seg in st.segments.iter_mut().rev() {
                if seg.durable_pos() == seg.write_pos() && seg.write_pos() == seg.size() {
                    break;
                }
                if let Some((job, pos)) = seg.flush_job() {
                    jobs.push((seg.start(), job, pos));
                }
            }
            (jobs, st.max_offset(), st.appends)
        };
        if jobs.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut done = Vec::with_capacity(jobs.len());
        for (start, job, pos) in jobs {
            if let Err(e) = job.run().await {
                self.state.borrow_mut().poisoned = true;
                self.flush.failed();
                return Err(e);
            }
            done.push((start, pos));
        }
        // Every write and sync of the round has returned: the bytes below `target` are durable.
        let (covered, bytes) = {
            let mut st = self.state.borrow_mut();
            for (start, pos) in done {
                if let Some(seg) = st.segments.iter_mut().find(|s| s.start() == start) {
                    seg.flush_completed(pos);
                }
            }
            let covered = appends - st.synced_appends;
            st.synced_appends = appends;
            (covered, target - self.flush.flushed().min(target))
        };
        self.flush
            .completed(target, covered, bytes, started.elapsed());
        Ok(())
    }
}
