//! Replication between a master's and a slave's store of the same shard.
//!
//! The master reads whole records from its CommitLog ([`MessageStore::read_for_replica`]); the
//! slave appends them at the same physical offsets ([`MessageStore::append_replicated`]) and
//! dispatches them to its ConsumeQueues and Index with the functions recovery uses. So the slave's
//! CommitLog is a byte-identical prefix of the master's (STORETIMESTAMP included) and its max
//! physical offset is its replication progress: a restarted slave recovers its CommitLog as usual
//! and asks the master to continue from there, with nothing copied twice and no gap.
//!
//! ## What a chunk holds
//! A chunk starts at a record boundary and holds whole records of one segment, in order. When the
//! segment's end is reached it ends with the 8-byte header of the segment's blank record (not the
//! zero padding after it); the slave then closes its own segment the same way, and the next chunk
//! starts at the next segment. The slave checks every record as recovery does (magic code, sizes,
//! body CRC, physical offset) before writing it.
//!
//! ## Durability
//! The slave's appends become durable through its CommitLog's own flusher (its `flushDiskType`);
//! what it reports to the master is its write position, as RocketMQ's slave does.

use crate::error::StoreError;
use crate::message::{check_record, DecodeError, RecordCheck, BLANK_RECORD_LEN};

use super::dispatch::{index_record, replay_into, Dispatch, Replay};
use super::queues::is_valid_topic;
use super::{AppendMark, MessageStore, MessageStoreError};

/// Why replicated bytes could not be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The requested offset is below the master's first retained offset.
    #[error("offset {offset} is below the CommitLog's first offset {min}")]
    Behind {
        /// Requested offset.
        offset: u64,
        /// First retained offset.
        min: u64,
    },
    /// The requested offset is past the master's write position (the slave holds data the master
    /// does not).
    #[error("offset {offset} is past the CommitLog's end {max}")]
    Ahead {
        /// Requested offset.
        offset: u64,
        /// Write position.
        max: u64,
    },
    /// The bytes at `offset` are not a valid record (not a record boundary, torn or corrupt data).
    #[error("no valid record at offset {offset}: {reason}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What the record check found.
        reason: DecodeError,
    },
    /// A record's PHYSICALOFFSET field differs from where it is in the stream.
    #[error("record at offset {offset} says it belongs at {claimed}")]
    Misplaced {
        /// Where it is in the stream.
        offset: u64,
        /// Its PHYSICALOFFSET field.
        claimed: i64,
    },
    /// A record's topic is not a valid topic name or its queue offset does not continue its
    /// ConsumeQueue (a gap or a different entry at that slot).
    #[error("record at offset {offset} does not fit its consume queue: {reason}")]
    QueueMismatch {
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The store is shut down or refuses writes after a dispatch failure.
    #[error("the store does not accept writes")]
    NotWritable,
    /// The CommitLog, a ConsumeQueue or the Index failed.
    #[error(transparent)]
    Store(#[from] MessageStoreError),
}

impl From<StoreError> for ReplicaError {
    fn from(e: StoreError) -> Self {
        ReplicaError::Store(e.into())
    }
}

impl MessageStore {
    /// Master side: whole records starting at `from` (a record boundary), about `max_bytes` of
    /// them (at least one record when any exists), all from one segment; ends with the segment's
    /// blank record header when the segment's end is reached. Empty when `from` is the write
    /// position.
    pub async fn read_for_replica(
        &self,
        from: u64,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ReplicaError> {
        let (min, max) = (self.commit_log.min_offset(), self.commit_log.max_offset());
        if from > max {
            return Err(ReplicaError::Ahead { offset: from, max });
        }
        if from < min {
            return Err(ReplicaError::Behind { offset: from, min });
        }
        if from == max {
            return Ok(Vec::new());
        }
        let segment_end = self
            .commit_log
            .segments()
            .iter()
            .find(|s| s.start_offset <= from && from < s.start_offset + s.size)
            .map_or(max, |s| s.start_offset + s.size);
        let limit = max.min(segment_end);
        let available = usize::try_from(limit - from).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; available.min(max_bytes.max(BLANK_RECORD_LEN))];
        self.commit_log.read_into(from, &mut buf).await?;
        let mut pos = 0usize;
        loop {
            let at = from + pos as u64;
            let Some(rest) = buf.get(pos..) else { break };
            if rest.is_empty() {
                break;
            }
            let (total, magic) = match (rest.get(0..4), rest.get(4..8)) {
                (Some(t), Some(m)) => (be_i32(t), be_i32(m)),
                _ => break, // a record header cut by the chunk size: the next chunk starts here
            };
            if magic == crate::message::BLANK_MAGIC_CODE {
                pos += BLANK_RECORD_LEN;
                break;
            }
            let size = match usize::try_from(total) {
                Ok(s) if s > BLANK_RECORD_LEN && magic == crate::message::MESSAGE_MAGIC_CODE => s,
                _ => {
                    return Err(ReplicaError::Corrupt {
                        offset: at,
                        reason: DecodeError::BadMagic(magic),
                    })
                }
            };
            if size > rest.len() {
                if pos == 0 && size <= available {
                    // One record larger than `max_bytes`: send it alone.
                    buf.resize(size, 0);
                    self.commit_log.read_into(from, &mut buf).await?;
                    pos = size;
                }
                break;
            }
            pos += size;
        }
        buf.truncate(pos);
        Ok(buf)
    }

    /// Slave side: checks and appends `bytes` (a chunk from [`MessageStore::read_for_replica`])
    /// at physical offset `from`, which must be this store's write position, dispatching each
    /// record to its ConsumeQueue and the Index. Returns the new write position. On an error the
    /// records before the bad one stay appended (each is complete and dispatched).
    /// `on_record(topic, queue_id)` sees each dispatched record (to wake pulls waiting on it).
    pub async fn append_replicated(
        &self,
        from: u64,
        bytes: &[u8],
        mut on_record: impl FnMut(&str, i32),
    ) -> Result<u64, ReplicaError> {
        if self.shut_down.get() || self.dispatch_failed.get() {
            return Err(ReplicaError::NotWritable);
        }
        let mut pos = 0usize;
        while let Some(rest) = bytes.get(pos..).filter(|r| !r.is_empty()) {
            let at = from + pos as u64;
            match check_record(rest, true) {
                RecordCheck::Message(m) => {
                    if u64::try_from(m.physical_offset).ok() != Some(at) {
                        return Err(ReplicaError::Misplaced {
                            offset: at,
                            claimed: m.physical_offset,
                        });
                    }
                    let record = rest.get(..m.total_size).ok_or(ReplicaError::Corrupt {
                        offset: at,
                        reason: DecodeError::BadTotalSize(m.total_size as i32),
                    })?;
                    self.commit_log.append_replicated(at, record).await?;
                    self.dispatch_replicated(at, m.queue_id, &Dispatch::of(&m))?;
                    on_record(m.topic, m.queue_id);
                    self.last_append.set(AppendMark {
                        end: at + m.total_size as u64,
                        store_timestamp: m.store_timestamp,
                    });
                    let mut stats = self.stats.get();
                    stats.put_messages += 1;
                    stats.put_bytes += m.total_size as u64;
                    self.stats.set(stats);
                    pos += m.total_size;
                }
                RecordCheck::Blank { .. } => {
                    self.commit_log.seal_replicated(at)?;
                    break;
                }
                RecordCheck::Invalid(reason) => {
                    return Err(ReplicaError::Corrupt { offset: at, reason })
                }
            }
        }
        Ok(self.commit_log.max_offset())
    }

    /// Adds one replicated record to its ConsumeQueue and the Index; a failure stops further
    /// writes (a restart re-dispatches from the CommitLog, as after a crash).
    fn dispatch_replicated(
        &self,
        at: u64,
        queue_id: i32,
        d: &Dispatch<'_>,
    ) -> Result<(), ReplicaError> {
        let result = (|| {
            if !is_valid_topic(d.topic) || queue_id < 0 {
                return Err(ReplicaError::QueueMismatch {
                    offset: at,
                    reason: "invalid topic or queue id",
                });
            }
            let mut queues = self.queues.borrow_mut();
            let cq = queues
                .get_or_create(d.topic, queue_id)
                .map_err(MessageStoreError::from)?;
            match replay_into(cq, d, &self.delay_levels).map_err(MessageStoreError::from)? {
                Replay::Appended | Replay::AlreadyPresent => {}
                Replay::Gap => {
                    return Err(ReplicaError::QueueMismatch {
                        offset: at,
                        reason: "queue offset past the queue's end",
                    })
                }
                Replay::Inconsistent => {
                    return Err(ReplicaError::QueueMismatch {
                        offset: at,
                        reason: "a different entry holds its queue offset",
                    })
                }
            }
            let mut key_buf = self.key_buf.borrow_mut();
            index_record(&mut self.index.borrow_mut(), d, &mut key_buf)
                .map_err(MessageStoreError::from)?;
            Ok(())
        })();
        if result.is_err() {
            self.dispatch_failed.set(true);
        }
        result
    }
}

fn be_i32(b: &[u8]) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    i32::from_be_bytes(a)
}
