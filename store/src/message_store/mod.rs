//! The MessageStore of one core: CommitLog + ConsumeQueues + Index + checkpoint, with put, get,
//! lookups, recovery at open, retention and clean shutdown.
//!
//! ## Ownership
//! A `MessageStore` belongs to one executor and is `!Send`. Every method takes `&self` so many
//! tasks of that executor can share it (e.g. through an `Rc`); state is in `Cell`/`RefCell`s whose
//! borrows never span an `.await`.
//!
//! ## Directory
//! Shard `k` keeps its files under `<storePathRootDir>/core-<k>/` (`commitlog/`, `consumequeue/`,
//! `index/`, `checkpoint`, `abort`); a custom `storePathCommitLog` gets the same `core-<k>`
//! suffix. Its CommitLog starts at physical offset `k << 56`.
//!
//! ## Put and dispatch
//! A put assigns the queue offset, encodes the record into the CommitLog and dispatches it to its
//! ConsumeQueue and the Index in one synchronous step on this core (RocketMQ dispatches later, from
//! a background thread; see [`dispatch`]). So the queue offset in the record always equals the
//! ConsumeQueue slot, and a message is pullable once `put` returns. Under SYNC_FLUSH `put` then
//! waits for durability (group commit in the CommitLog); a message whose `WAIT` property is
//! `"false"` does not wait.

pub(crate) mod dispatch;
mod error;
pub(crate) mod queues;
mod replica;
mod status;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

pub use error::MessageStoreError;
pub use replica::ReplicaError;
pub use status::{GetStatus, PutStatus};

use crate::checkpoint::{
    abort_file_exists, create_abort_file, remove_abort_file, Checkpoint, CheckpointValues,
    CHECKPOINT_FILE_NAME,
};
use crate::commit_log::CommitLog;
use crate::config::{FlushDiskType, StoreConfig};
use crate::consume_queue::{CqEntry, CQ_ENTRY_SIZE};
use crate::error::StoreError;
use crate::flush::FlushOutcome;
use crate::index::{build_key, IndexService};
use crate::message::{
    check_record, store_timestamp_pos, EncodeError, MessageDraft, RecordCheck, MESSAGE_MAGIC_CODE,
};
use crate::message_id::{MessageId, SHARD_SHIFT};
use crate::properties;
pub use crate::recovery::{RecoveryMode, RecoveryReport};
use crate::retention::{
    Clock, DiskUsageProbe, RetentionPolicy, SegmentAge, StatvfsProbe, SystemClock,
};
use crate::schedule::DelayLevels;
use crate::segment::ReadRange;
use dispatch::{index_record, takes_queue_slot, Dispatch};
use queues::{is_valid_topic, QueueTable};

/// RocketMQ's default `diskSpaceWarningLevelRatio` (percent): past it writes are refused (the
/// default of [`StoreConfig::disk_space_warning_level_ratio`]).
pub const DISK_SPACE_WARNING_LEVEL_RATIO: u32 = 90;
/// RocketMQ's default `diskSpaceCleanForciblyRatio` (percent): past it segments are deleted
/// regardless of age (the default of [`StoreConfig::disk_space_clean_forcibly_ratio`]).
pub const DISK_SPACE_CLEAN_FORCIBLY_RATIO: u32 = 85;
/// RocketMQ's default `deleteFileBatchMax`: segments deleted per retention pass.
pub const DELETE_FILE_BATCH_MAX: usize = 10;
/// Entries a get examines at most when its filter rejects them (RocketMQ's `maxFilterMessageSize`
/// of 16 000 bytes divided by the 20-byte entry).
const MAX_FILTER_SCAN_ENTRIES: i64 = 800;
/// Bytes of a record header that always contain STORETIMESTAMP (IPv6 born host included).
const STORE_TS_PROBE_LEN: usize = 80;

/// Where a stored message landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredAt {
    /// CommitLog physical offset of the record.
    pub phys_offset: u64,
    /// Queue offset assigned (0 for prepared / rolled-back transactional messages, which take no
    /// queue slot).
    pub queue_offset: i64,
    /// Stored record size in bytes.
    pub size: usize,
    /// The offset message id (store host + physical offset).
    pub msg_id: MessageId,
}

/// Result of [`MessageStore::put`]. `stored` is `Some` exactly when `status.is_stored()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// How the put ended.
    pub status: PutStatus,
    /// Where the message went, when it was stored.
    pub stored: Option<StoredAt>,
    /// The STORETIMESTAMP written (0 when not stored).
    pub store_timestamp: i64,
}

/// Result of [`MessageStore::put_batch`]: the messages are stored contiguously with consecutive
/// queue offsets, or none is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPutOutcome {
    /// How the put ended.
    pub status: PutStatus,
    /// One entry per message, in order, when stored; empty otherwise.
    pub stored: Vec<StoredAt>,
    /// The STORETIMESTAMP written (0 when not stored).
    pub store_timestamp: i64,
}

/// One message returned by [`MessageStore::get_messages`].
#[derive(Clone, Debug)]
pub struct FoundMessage {
    /// Its queue offset.
    pub queue_offset: i64,
    /// Tag hash from the ConsumeQueue (Java `String.hashCode` of TAGS, 0 without tags); the
    /// broker or client compares tag strings exactly.
    pub tag_hash: i64,
    /// The stored record, zero-copy.
    pub range: ReadRange,
    /// The record's physical offset in the CommitLog (for [`MessageStore::read_into`]).
    pub phys_offset: u64,
}

/// Result of [`MessageStore::get_messages`], with RocketMQ's next-offset rule per status (see
/// [`GetStatus`]).
#[derive(Clone, Debug)]
pub struct GetResult {
    /// How the get ended.
    pub status: GetStatus,
    /// Where the consumer should pull next.
    pub next_begin_offset: i64,
    /// The queue's first offset.
    pub min_offset: i64,
    /// The queue's next offset (one past the last message).
    pub max_offset: i64,
    /// The messages found, in queue order.
    pub messages: Vec<FoundMessage>,
}

impl GetResult {
    /// Total bytes of the returned records.
    pub fn total_bytes(&self) -> usize {
        self.messages.iter().map(|m| m.range.len()).sum()
    }
}

/// One ConsumeQueue as listed by [`MessageStore::topics_and_queues`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: i32,
    /// First offset held.
    pub min_offset: i64,
    /// Next offset to assign.
    pub max_offset: i64,
}

/// Counters since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Messages stored.
    pub put_messages: u64,
    /// Bytes of stored records.
    pub put_bytes: u64,
    /// Puts refused or failed (any status that did not store).
    pub put_failures: u64,
    /// Puts stored but not confirmed durable in time (FLUSH_DISK_TIMEOUT).
    pub flush_timeouts: u64,
    /// Gets that returned messages.
    pub get_found: u64,
    /// Gets that returned none.
    pub get_miss: u64,
}

/// What a retention pass did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Start offsets of the CommitLog segments deleted.
    pub deleted_segments: Vec<u64>,
    /// Whether the store now refuses writes because the disk is past the warning ratio.
    pub disk_full: bool,
}

/// Injected time and disk-usage sources (real ones by default).
pub struct StoreEnv {
    /// Wall clock for `deleteWhen` and `fileReservedTime`.
    pub clock: Box<dyn Clock>,
    /// Disk usage of the CommitLog's filesystem.
    pub disk_probe: Box<dyn DiskUsageProbe>,
}

impl Default for StoreEnv {
    fn default() -> Self {
        StoreEnv {
            clock: Box::new(SystemClock),
            disk_probe: Box::new(StatvfsProbe),
        }
    }
}

/// Store time (ms) of the newest appended message and where it ends, for checkpointing.
#[derive(Clone, Copy, Debug, Default)]
struct AppendMark {
    end: u64,
    store_timestamp: i64,
}

/// The store of one core. See the module docs.
pub struct MessageStore {
    root: PathBuf,
    shard: u32,
    sync_flush: bool,
    commit_log: CommitLog,
    queues: RefCell<QueueTable>,
    index: RefCell<IndexService>,
    key_buf: RefCell<String>,
    checkpoint: RefCell<Checkpoint>,
    retention: RetentionPolicy,
    env: StoreEnv,
    disk_full: Cell<bool>,
    dispatch_failed: Cell<bool>,
    shut_down: Cell<bool>,
    last_append: Cell<AppendMark>,
    /// The newest append seen by the previous [`MessageStore::flush_metadata`] call.
    previous_mark: Cell<AppendMark>,
    stats: Cell<StoreStats>,
    recovery: RecoveryReport,
    /// `messageDelayLevel`, for the schedule topic's `tagsCode` ([`crate::schedule::tags_code`]).
    delay_levels: DelayLevels,
}

impl MessageStore {
    /// Opens shard `shard`'s store with the real clock and disk probe. See [`MessageStore::open_with`].
    /// With `diskUsageOverrideFile` set, the disk guard reads that file first
    /// ([`crate::retention::FileOverrideProbe`]).
    pub async fn open(config: &StoreConfig, shard: u32) -> Result<Self, MessageStoreError> {
        let mut env = StoreEnv::default();
        if let Some(path) = &config.disk_usage_override_file {
            env.disk_probe = Box::new(crate::retention::FileOverrideProbe { path: path.clone() });
        }
        Self::open_with(config, shard, env).await
    }

    /// Opens (creating if needed) shard `shard`'s store under `config`, recovering it: a clean
    /// recovery when the last run shut down cleanly, a crash recovery when the abort file is
    /// present (see [`crate::recovery`]). Then creates the abort file, which stays until
    /// [`MessageStore::shutdown`].
    pub async fn open_with(
        config: &StoreConfig,
        shard: u32,
        env: StoreEnv,
    ) -> Result<Self, MessageStoreError> {
        if shard > 0xff {
            return Err(MessageStoreError::Shard(shard));
        }
        let config = shard_config(config, shard);
        let root = config.store_path_root_dir.clone();
        std::fs::create_dir_all(&root).map_err(|source| MessageStoreError::Metadata {
            path: root.clone(),
            source,
        })?;
        let retention = RetentionPolicy::new(
            &config.delete_when,
            config.file_reserved_time_hours,
            config.disk_max_used_space_ratio,
            config.disk_space_warning_level_ratio,
            config.disk_space_clean_forcibly_ratio,
            DELETE_FILE_BATCH_MAX,
        )?;
        let mode = if abort_file_exists(&root) {
            RecoveryMode::Crash
        } else {
            RecoveryMode::Clean
        };
        let cp_path = root.join(CHECKPOINT_FILE_NAME);
        let checkpoint =
            Checkpoint::open(&cp_path).map_err(|source| MessageStoreError::Metadata {
                path: cp_path.clone(),
                source,
            })?;
        let commit_log = CommitLog::open(&config, u64::from(shard) << SHARD_SHIFT).await?;
        let entries_per_file =
            usize::try_from(config.mapped_file_size_consume_queue / CQ_ENTRY_SIZE as u64)
                .unwrap_or(usize::MAX)
                .max(1);
        let mut queues = QueueTable::load(&root, entries_per_file)?;
        let mut index = IndexService::open(&root, config.max_hash_slot_num, config.max_index_num)?;
        let report = crate::recovery::recover(
            &commit_log,
            &mut queues,
            &mut index,
            &checkpoint.values(),
            mode,
            true,
            &config.message_delay_level,
        )
        .await?;
        tracing::info!(shard, ?report, "message store recovered");
        create_abort_file(&root).map_err(|source| MessageStoreError::Metadata {
            path: root.clone(),
            source,
        })?;
        let mark = AppendMark {
            end: commit_log.max_offset(),
            store_timestamp: report.last_store_timestamp,
        };
        Ok(MessageStore {
            root,
            shard,
            sync_flush: config.flush_disk_type == FlushDiskType::Sync,
            commit_log,
            queues: RefCell::new(queues),
            index: RefCell::new(index),
            key_buf: RefCell::new(String::new()),
            checkpoint: RefCell::new(checkpoint),
            retention,
            env,
            disk_full: Cell::new(false),
            dispatch_failed: Cell::new(false),
            shut_down: Cell::new(false),
            last_append: Cell::new(mark),
            previous_mark: Cell::new(mark),
            stats: Cell::new(StoreStats::default()),
            delay_levels: config.message_delay_level.clone(),
            recovery: report,
        })
    }

    /// This store's shard (core) number.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The shard's store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What recovery found at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Counters since open.
    pub fn stats(&self) -> StoreStats {
        self.stats.get()
    }

    /// The CommitLog's completed flush rounds (count, appends, bytes, time).
    pub fn flush_stats(&self) -> crate::flush::FlushStats {
        self.commit_log.flush_stats()
    }

    /// The CommitLog's first readable physical offset.
    pub fn min_phys_offset(&self) -> u64 {
        self.commit_log.min_offset()
    }

    /// The CommitLog's write position.
    pub fn max_phys_offset(&self) -> u64 {
        self.commit_log.max_offset()
    }

    /// Everything below this physical offset is durable.
    pub fn flushed_phys_offset(&self) -> u64 {
        self.commit_log.flushed_offset()
    }

    /// Whether writes are currently refused because the disk is past the warning ratio.
    pub fn is_disk_full(&self) -> bool {
        self.disk_full.get()
    }

    /// Stores one message. See the module docs for dispatch and durability.
    pub async fn put(&self, draft: &MessageDraft<'_>) -> PutOutcome {
        let mut stored = None;
        let (status, ts) = self
            .append(std::slice::from_ref(draft), |at| stored = Some(at))
            .await;
        PutOutcome {
            status,
            stored: stored.filter(|_| status.is_stored()),
            store_timestamp: ts,
        }
    }

    /// Stores several messages as one contiguous append with consecutive queue offsets per queue
    /// (SEND_BATCH_MESSAGE); all or none are stored. The batch as a whole must fit
    /// `maxMessageSize` and a segment.
    pub async fn put_batch(&self, drafts: &[MessageDraft<'_>]) -> BatchPutOutcome {
        let mut stored = Vec::with_capacity(drafts.len());
        let (status, ts) = self.append(drafts, |at| stored.push(at)).await;
        if !status.is_stored() {
            stored.clear();
        }
        BatchPutOutcome {
            status,
            stored,
            store_timestamp: ts,
        }
    }

    /// Checks, appends and dispatches `drafts` as one record run; `on_stored` sees each placement.
    async fn append(
        &self,
        drafts: &[MessageDraft<'_>],
        mut on_stored: impl FnMut(StoredAt),
    ) -> (PutStatus, i64) {
        let (status, total) = self.check_writable(drafts);
        if status != PutStatus::PutOk {
            self.count_failure();
            return (status, 0);
        }
        let mut dispatch_error = None;
        let mut placed = 0u64;
        let appended = self
            .commit_log
            .append_with(total, |out, phys, ts| {
                let mut queues = self.queues.borrow_mut();
                let mut index = self.index.borrow_mut();
                let mut key_buf = self.key_buf.borrow_mut();
                let mut pos = 0usize;
                for draft in drafts {
                    let Ok(len) = draft.stored_len() else {
                        continue; // checked in check_writable
                    };
                    let slot = takes_queue_slot(draft.sys_flag);
                    let cq = match queues.get_or_create(draft.topic, draft.queue_id) {
                        Ok(cq) => cq,
                        Err(e) => {
                            dispatch_error.get_or_insert(MessageStoreError::from(e));
                            pos += len;
                            continue;
                        }
                    };
                    let queue_offset = if slot { cq.max_offset() } else { 0 };
                    let rec_phys = phys + pos as u64;
                    let Some(dst) = out.get_mut(pos..pos + len) else {
                        break;
                    };
                    let written = draft.encode_into(queue_offset, rec_phys as i64, ts, dst);
                    debug_assert_eq!(written.ok(), Some(len));
                    let d = Dispatch {
                        topic: draft.topic,
                        queue_offset,
                        phys_offset: rec_phys as i64,
                        size: len as i32,
                        sys_flag: draft.sys_flag,
                        store_timestamp: ts,
                        properties: draft.properties,
                    };
                    if slot {
                        if let Err(e) = cq.append(queue_offset, d.cq_entry(&self.delay_levels)) {
                            dispatch_error.get_or_insert(e.into());
                        }
                    }
                    if let Err(e) = index_record(&mut index, &d, &mut key_buf) {
                        dispatch_error.get_or_insert(e.into());
                    }
                    on_stored(StoredAt {
                        phys_offset: rec_phys,
                        queue_offset,
                        size: len,
                        msg_id: MessageId::new(draft.store_host, rec_phys as i64),
                    });
                    placed += 1;
                    pos += len;
                }
            })
            .await;
        let result = match appended {
            Ok(r) => r,
            Err(e) => {
                self.count_failure();
                return (put_status_of(&e), 0);
            }
        };
        self.last_append.set(AppendMark {
            end: result.end(),
            store_timestamp: result.store_timestamp,
        });
        if let Some(e) = dispatch_error {
            // The record is in the CommitLog but not (fully) in its ConsumeQueue or the Index:
            // stop taking writes; a restart re-dispatches it.
            tracing::error!(error = %e, "dispatch failed; the store refuses writes until restarted");
            self.dispatch_failed.set(true);
            self.count_failure();
            return (PutStatus::UnknownError, result.store_timestamp);
        }
        let mut stats = self.stats.get();
        stats.put_messages += placed;
        stats.put_bytes += result.size as u64;
        self.stats.set(stats);
        let waits = drafts
            .iter()
            .any(|d| properties::get(d.properties, properties::WAIT) != Some("false"));
        if self.sync_flush && waits {
            match self.commit_log.wait_durable(result.end()).await {
                FlushOutcome::Durable => {}
                FlushOutcome::Timeout | FlushOutcome::Failed => {
                    let mut stats = self.stats.get();
                    stats.flush_timeouts += 1;
                    self.stats.set(stats);
                    return (PutStatus::FlushDiskTimeout, result.store_timestamp);
                }
            }
        }
        (PutStatus::PutOk, result.store_timestamp)
    }

    /// Refusals that need no I/O: store state, then each draft's shape. Returns the total record
    /// length when writable.
    fn check_writable(&self, drafts: &[MessageDraft<'_>]) -> (PutStatus, usize) {
        if self.shut_down.get() || self.disk_full.get() || self.dispatch_failed.get() {
            if self.disk_full.get() {
                tracing::warn!("disk full: refusing writes until retention frees space");
            }
            return (PutStatus::ServiceNotAvailable, 0);
        }
        if drafts.is_empty() {
            return (PutStatus::MessageIllegal, 0);
        }
        let mut total = 0usize;
        for d in drafts {
            if !is_valid_topic(d.topic) || d.queue_id < 0 {
                return (PutStatus::MessageIllegal, 0);
            }
            match d.stored_len() {
                Ok(len) => total = total.saturating_add(len),
                Err(EncodeError::PropertiesTooLong(_)) => {
                    return (PutStatus::PropertiesSizeExceeded, 0)
                }
                Err(_) => return (PutStatus::MessageIllegal, 0),
            }
        }
        (PutStatus::PutOk, total)
    }

    fn count_failure(&self) {
        let mut stats = self.stats.get();
        stats.put_failures += 1;
        self.stats.set(stats);
    }

    /// Reads up to `max_msgs` messages (and about `max_bytes`; at least one if any matches) from
    /// `topic`/`queue_id` starting at queue offset `offset`, skipping entries whose tag hash
    /// `filter` rejects. Statuses and next offsets follow RocketMQ (see [`GetStatus`]).
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_msgs: usize,
        max_bytes: usize,
        filter: impl Fn(i64) -> bool,
    ) -> GetResult {
        let queues = self.queues.borrow();
        let (min, max) = queues
            .get(topic, queue_id)
            .map_or((0, 0), |cq| (cq.min_offset(), cq.max_offset()));
        let mut result = GetResult {
            status: GetStatus::NoMessageInQueue,
            next_begin_offset: 0,
            min_offset: min,
            max_offset: max,
            messages: Vec::new(),
        };
        let cq = match queues.get(topic, queue_id) {
            Some(cq) if max > 0 => cq,
            _ => return self.finish_get(result),
        };
        if offset < min {
            result.status = GetStatus::OffsetTooSmall;
            result.next_begin_offset = min;
        } else if offset == max {
            result.status = GetStatus::OffsetOverflowOne;
            result.next_begin_offset = offset;
        } else if offset > max {
            result.status = GetStatus::OffsetOverflowBadly;
            result.next_begin_offset = max;
        } else {
            result.status = GetStatus::NoMatchedMessage;
            let scan_end = max.min(offset.saturating_add(
                MAX_FILTER_SCAN_ENTRIES.max(i64::try_from(max_msgs).unwrap_or(i64::MAX)),
            ));
            let mut next = offset;
            let mut bytes = 0usize;
            while next < scan_end && result.messages.len() < max_msgs {
                let Some(entry) = cq.get(next) else {
                    if result.messages.is_empty() {
                        result.status = GetStatus::OffsetFoundNull;
                    }
                    next += 1;
                    continue;
                };
                let size = usize::try_from(entry.size).unwrap_or(0);
                if !result.messages.is_empty() && bytes + size > max_bytes {
                    break;
                }
                let queue_offset = next;
                next += 1;
                if !filter(entry.tag_hash) {
                    continue;
                }
                match self.range_of(entry) {
                    Some(range) => {
                        bytes += range.len();
                        result.messages.push(FoundMessage {
                            queue_offset,
                            tag_hash: entry.tag_hash,
                            range,
                            phys_offset: entry.phys_offset as u64,
                        });
                        result.status = GetStatus::Found;
                    }
                    None if result.messages.is_empty() => {
                        result.status = GetStatus::MessageWasRemoving;
                    }
                    None => {}
                }
            }
            result.next_begin_offset = next;
        }
        self.finish_get(result)
    }

    fn finish_get(&self, result: GetResult) -> GetResult {
        let mut stats = self.stats.get();
        if result.status == GetStatus::Found {
            stats.get_found += 1;
        } else {
            stats.get_miss += 1;
        }
        self.stats.set(stats);
        result
    }

    /// The zero-copy range of a ConsumeQueue entry's record, or `None` if retention removed it.
    fn range_of(&self, entry: CqEntry) -> Option<ReadRange> {
        let phys = u64::try_from(entry.phys_offset).ok()?;
        let size = usize::try_from(entry.size).ok()?;
        self.commit_log.read_range(phys, size).ok()
    }

    /// The store timestamp of the record at `phys` (`size` bytes), read from its header.
    fn store_timestamp_at(&self, phys: i64, size: i32) -> Option<i64> {
        let phys = u64::try_from(phys).ok()?;
        let size = usize::try_from(size).ok()?;
        let range = self
            .commit_log
            .read_range(phys, size.min(STORE_TS_PROBE_LEN))
            .ok()?;
        let mut head = [0u8; STORE_TS_PROBE_LEN];
        let head = head.get_mut(..range.len())?;
        range.copy_to(head).ok()?;
        let flags = i32::from_be_bytes(head.get(36..40)?.try_into().ok()?);
        let pos = store_timestamp_pos(flags);
        Some(i64::from_be_bytes(head.get(pos..pos + 8)?.try_into().ok()?))
    }

    /// The queue's first offset (0 for an unknown queue).
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queues
            .borrow()
            .get(topic, queue_id)
            .map_or(0, |cq| cq.min_offset())
    }

    /// The queue's next offset (0 for an unknown queue).
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queues
            .borrow()
            .get(topic, queue_id)
            .map_or(0, |cq| cq.max_offset())
    }

    /// The first queue offset whose message was stored at or after `timestamp_ms`; the max offset
    /// if all are older; 0 for an unknown queue.
    pub fn search_offset_by_time(&self, topic: &str, queue_id: i32, timestamp_ms: i64) -> i64 {
        let queues = self.queues.borrow();
        queues.get(topic, queue_id).map_or(0, |cq| {
            cq.search_by_time(timestamp_ms, |phys, size| {
                self.store_timestamp_at(phys, size)
            })
        })
    }

    /// Store timestamp of the queue's oldest retained message, if any.
    pub fn earliest_message_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let queues = self.queues.borrow();
        let cq = queues.get(topic, queue_id)?;
        let entry = cq.get(cq.min_offset())?;
        self.store_timestamp_at(entry.phys_offset, entry.size)
    }

    /// Copies the CommitLog bytes at `phys` into `out` without blocking the executor: the direct
    /// backend reads its hot tail from memory and the rest with an O_DIRECT read through io_uring;
    /// the mmap backend copies from the map. Fails when the range is not stored.
    pub async fn read_into(&self, phys: u64, out: &mut [u8]) -> Result<(), StoreError> {
        self.commit_log.read_into(phys, out).await
    }

    /// The record stored at physical offset `phys` (VIEW_MESSAGE_BY_ID), or `None` if no valid
    /// message starts there (wrong shard, removed by retention, not a record boundary).
    pub async fn read_message(&self, phys: u64) -> Option<ReadRange> {
        let mut head = [0u8; 8];
        self.commit_log.read_into(phys, &mut head).await.ok()?;
        let total = i32::from_be_bytes(head.get(..4)?.try_into().ok()?);
        let magic = i32::from_be_bytes(head.get(4..8)?.try_into().ok()?);
        if magic != MESSAGE_MAGIC_CODE {
            return None;
        }
        let size = usize::try_from(total).ok()?;
        let range = self.commit_log.read_range(phys, size).ok()?;
        let mut record = vec![0u8; size];
        self.commit_log.read_into(phys, &mut record).await.ok()?;
        match check_record(&record, false) {
            RecordCheck::Message(m) if m.physical_offset == phys as i64 => Some(range),
            _ => None,
        }
    }

    /// Messages of `topic` indexed under `key` (a KEYS entry or the UNIQ_KEY) stored within
    /// `[begin_ms, end_ms]`, newest first, at most `max`. Hash collisions are filtered out by
    /// reading each candidate.
    pub async fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Vec<ReadRange> {
        let candidates = {
            let mut full_key = String::new();
            build_key(topic, key, &mut full_key);
            // Collisions are dropped below, so ask for a few more than needed.
            self.index
                .borrow()
                .query(&full_key, max.saturating_mul(2), begin_ms, end_ms)
        };
        let mut found = Vec::new();
        let mut record = Vec::new();
        for phys in candidates {
            if found.len() >= max {
                break;
            }
            let Ok(phys) = u64::try_from(phys) else {
                continue;
            };
            let Some(range) = self.read_message(phys).await else {
                continue;
            };
            record.resize(range.len(), 0);
            if self.commit_log.read_into(phys, &mut record).await.is_err() {
                continue;
            }
            if let RecordCheck::Message(m) = check_record(&record, false) {
                if m.topic == topic && (m.uniq_key() == Some(key) || m.keys().any(|k| k == key)) {
                    found.push(range);
                }
            }
        }
        found
    }

    /// Every ConsumeQueue with its offsets, sorted by topic then queue id.
    pub fn topics_and_queues(&self) -> Vec<QueueInfo> {
        let mut out: Vec<QueueInfo> = self
            .queues
            .borrow()
            .iter()
            .map(|(topic, queue_id, cq)| QueueInfo {
                topic: topic.to_string(),
                queue_id,
                min_offset: cq.min_offset(),
                max_offset: cq.max_offset(),
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
        out
    }

    /// Deletes a topic's ConsumeQueues (its CommitLog records age out with retention). Returns
    /// whether the topic had queues.
    pub fn delete_topic(&self, topic: &str) -> Result<bool, MessageStoreError> {
        Ok(self.queues.borrow_mut().remove_topic(topic)?)
    }

    /// Flushes ConsumeQueues and the Index and records durable progress in the checkpoint. The
    /// broker calls this every `flushIntervalConsumeQueue`.
    pub async fn flush_metadata(&self) -> Result<(), MessageStoreError> {
        let mark = self.last_append.get();
        for (_, _, cq) in self.queues.borrow_mut().iter_mut() {
            cq.flush()?;
        }
        self.index.borrow_mut().flush()?;
        let flushed = self.commit_log.flushed_offset();
        let previous = self.previous_mark.replace(mark);
        let mut values = self.checkpoint.borrow().values();
        // Physical time: the newest append known to be below the CommitLog's durable offset.
        if flushed >= mark.end {
            values.physic_msg_timestamp = mark.store_timestamp;
        } else if flushed >= previous.end {
            values.physic_msg_timestamp = previous.store_timestamp;
        }
        values.logics_msg_timestamp = mark.store_timestamp;
        values.index_msg_timestamp = mark.store_timestamp;
        self.write_checkpoint(values).await
    }

    async fn write_checkpoint(&self, values: CheckpointValues) -> Result<(), MessageStoreError> {
        let path = self.root.join(CHECKPOINT_FILE_NAME);
        let detached = {
            let mut cp = self.checkpoint.borrow_mut();
            cp.set_values(values);
            cp.try_clone()
        }
        .map_err(|source| MessageStoreError::Metadata {
            path: path.clone(),
            source,
        })?;
        tern_runtime::spawn_blocking(move || detached.flush())
            .await
            .map_err(|source| MessageStoreError::Metadata { path, source })
    }

    /// One retention pass (the broker calls it every `cleanResourceInterval`, 10 s by default):
    /// re-evaluates disk fullness (refusing or re-allowing writes), deletes expired or
    /// space-reclaimable CommitLog segments, then advances ConsumeQueue minimum offsets and drops
    /// Index files below the new CommitLog minimum.
    pub async fn run_retention(&self) -> Result<RetentionOutcome, MessageStoreError> {
        let log_dir = self.commit_log.dir().to_path_buf();
        let decision = self.retention.evaluate(
            self.env.clock.local_hour(),
            self.env.disk_probe.used_ratio(&log_dir),
        );
        if decision.disk_full != self.disk_full.get() {
            if decision.disk_full {
                tracing::error!(dir = %log_dir.display(), "disk full: refusing writes");
            } else {
                tracing::info!(dir = %log_dir.display(), "disk space OK again: accepting writes");
            }
            self.disk_full.set(decision.disk_full);
        }
        let segments = self.commit_log.segments();
        let ages: Vec<SegmentAge> = segments
            .iter()
            .map(|s| SegmentAge {
                base_offset: s.start_offset,
                modified_ms: modified_ms(&s.path).unwrap_or(i64::MAX),
            })
            .collect();
        let chosen = self
            .retention
            .select_segments(&ages, decision, self.env.clock.now_millis());
        let mut outcome = RetentionOutcome {
            deleted_segments: Vec::new(),
            disk_full: decision.disk_full,
        };
        let Some(last) = chosen.last() else {
            return Ok(outcome);
        };
        let upto = segments
            .iter()
            .find(|s| s.start_offset == last.base_offset)
            .map_or(last.base_offset, |s| s.start_offset + s.size);
        let deleted = self.commit_log.delete_segments_before(upto).await?;
        outcome.deleted_segments = deleted.iter().map(|s| s.start_offset).collect();
        let min = self.commit_log.min_offset() as i64;
        for (_, _, cq) in self.queues.borrow_mut().iter_mut() {
            cq.set_min_phys(min)?;
        }
        self.index.borrow_mut().delete_files_before_phys(min)?;
        tracing::info!(deleted = ?outcome.deleted_segments, min_phys = min, "retention pass");
        Ok(outcome)
    }

    /// Clean shutdown: refuses further writes, flushes the CommitLog, ConsumeQueues and Index,
    /// writes the checkpoint and removes the abort file (so the next open does a clean recovery).
    pub async fn shutdown(self) -> Result<(), MessageStoreError> {
        self.shut_down.set(true);
        self.commit_log.shutdown().await?;
        for (_, _, cq) in self.queues.borrow_mut().iter_mut() {
            cq.flush()?;
        }
        self.index.borrow_mut().flush()?;
        let ts = self.last_append.get().store_timestamp;
        let mut values = self.checkpoint.borrow().values();
        values.physic_msg_timestamp = ts;
        values.logics_msg_timestamp = ts;
        values.index_msg_timestamp = ts;
        self.write_checkpoint(values).await?;
        remove_abort_file(&self.root).map_err(|source| MessageStoreError::Metadata {
            path: self.root.clone(),
            source,
        })
    }
}

/// The per-shard view of `config`: root and CommitLog directories get a `core-<k>` component.
fn shard_config(config: &StoreConfig, shard: u32) -> StoreConfig {
    let dir = format!("core-{shard}");
    let mut c = config.clone();
    c.store_path_root_dir = config.store_path_root_dir.join(&dir);
    c.store_path_commit_log = config.store_path_commit_log.as_ref().map(|p| p.join(&dir));
    c
}

/// A file's modification time in ms since the epoch.
fn modified_ms(path: &Path) -> Option<i64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// The put status for a CommitLog append error.
fn put_status_of(e: &StoreError) -> PutStatus {
    match e {
        StoreError::RecordTooLarge { .. } => PutStatus::MessageIllegal,
        StoreError::Encode(EncodeError::PropertiesTooLong(_)) => PutStatus::PropertiesSizeExceeded,
        StoreError::Encode(_) => PutStatus::MessageIllegal,
        StoreError::DiskFull { .. } => PutStatus::CreateMappedFileFailed,
        StoreError::Poisoned => PutStatus::ServiceNotAvailable,
        _ => PutStatus::UnknownError,
    }
}
