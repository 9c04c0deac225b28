//! Dispatch: turning one stored record into its ConsumeQueue entry and Index keys.
//!
//! RocketMQ dispatches asynchronously (its ReputMessageService tails the CommitLog). Tern dispatches
//! synchronously on the owning core, inside the CommitLog append, right after the record's bytes
//! are written: a message is visible to consumers as soon as its put returns, and the queue offset
//! written into the record is, by construction, the ConsumeQueue's next offset. Recovery uses the
//! same functions to re-dispatch records a crash left without entries.

use crate::consume_queue::{ConsumeQueue, CqEntry, CqError};
use crate::index::{build_key, IndexError, IndexService};
use crate::message::{sys_flag, StoredMessage};
use crate::properties;
use crate::schedule::{self, DelayLevels};

/// What dispatch needs to know about one record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dispatch<'a> {
    pub(crate) topic: &'a str,
    pub(crate) queue_offset: i64,
    pub(crate) phys_offset: i64,
    pub(crate) size: i32,
    pub(crate) sys_flag: i32,
    pub(crate) store_timestamp: i64,
    pub(crate) properties: &'a [u8],
}

impl<'a> Dispatch<'a> {
    /// The dispatch view of a decoded record.
    pub(crate) fn of(msg: &StoredMessage<'a>) -> Self {
        Dispatch {
            topic: msg.topic,
            queue_offset: msg.queue_offset,
            phys_offset: msg.physical_offset,
            size: i32::try_from(msg.total_size).unwrap_or(i32::MAX),
            sys_flag: msg.sys_flag,
            store_timestamp: msg.store_timestamp,
            properties: msg.properties,
        }
    }

    /// The ConsumeQueue entry for this record; its `tagsCode` is [`schedule::tags_code`].
    pub(crate) fn cq_entry(&self, levels: &DelayLevels) -> CqEntry {
        CqEntry {
            phys_offset: self.phys_offset,
            size: self.size,
            tag_hash: schedule::tags_code(
                self.topic,
                self.properties,
                self.store_timestamp,
                levels,
            ),
        }
    }
}

/// Whether a message with these sys flags takes a ConsumeQueue slot. Prepared and rolled-back
/// transactional messages do not (RocketMQ stores them with queue offset 0 and no entry).
pub(crate) fn takes_queue_slot(flags: i32) -> bool {
    matches!(
        sys_flag::transaction_type(flags),
        sys_flag::TRANSACTION_NOT_TYPE | sys_flag::TRANSACTION_COMMIT_TYPE
    )
}

/// Indexes the record's UNIQ_KEY and each of its KEYS as `topic#key`. Rolled-back transactional
/// messages are not indexed (as in RocketMQ). `key_buf` is reused scratch space.
pub(crate) fn index_record(
    index: &mut IndexService,
    d: &Dispatch<'_>,
    key_buf: &mut String,
) -> Result<(), IndexError> {
    if sys_flag::transaction_type(d.sys_flag) == sys_flag::TRANSACTION_ROLLBACK_TYPE {
        return Ok(());
    }
    if let Some(uniq) = properties::get(d.properties, properties::UNIQ_KEY) {
        build_key(d.topic, uniq, key_buf);
        index.put(key_buf, d.phys_offset, d.store_timestamp)?;
    }
    if let Some(keys) = properties::get(d.properties, properties::KEYS) {
        for key in keys
            .split(properties::KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
        {
            build_key(d.topic, key, key_buf);
            index.put(key_buf, d.phys_offset, d.store_timestamp)?;
        }
    }
    Ok(())
}

/// What happened when a record was replayed into its ConsumeQueue during recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// The entry was appended.
    Appended,
    /// The queue already held this exact entry, or the record is below the queue's minimum, or it
    /// takes no queue slot.
    AlreadyPresent,
    /// The record's queue offset is past the queue's next offset: either the queue lost entries
    /// older than the scan start, or the record's queue offset is corrupt.
    Gap,
    /// The queue holds a different entry at the record's queue offset: the record's queue offset
    /// is corrupt (entries from the scan start on were rebuilt from earlier valid records).
    Inconsistent,
}

/// Replays one record into `cq`.
pub(crate) fn replay_into(
    cq: &mut ConsumeQueue,
    d: &Dispatch<'_>,
    levels: &DelayLevels,
) -> Result<Replay, CqError> {
    if !takes_queue_slot(d.sys_flag) {
        return Ok(Replay::AlreadyPresent);
    }
    let before = cq.max_offset();
    match cq.append(d.queue_offset, d.cq_entry(levels)) {
        Ok(()) if cq.max_offset() > before => Ok(Replay::Appended),
        Ok(()) | Err(CqError::BelowMin { .. }) => Ok(Replay::AlreadyPresent),
        Err(CqError::Gap { .. }) => Ok(Replay::Gap),
        Err(CqError::Conflict { .. }) => Ok(Replay::Inconsistent),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consume_queue::tag_hash_code;

    #[test]
    fn transaction_types_and_queue_slots() {
        assert!(takes_queue_slot(0));
        assert!(takes_queue_slot(sys_flag::TRANSACTION_COMMIT_TYPE));
        assert!(!takes_queue_slot(sys_flag::TRANSACTION_PREPARED_TYPE));
        assert!(!takes_queue_slot(
            sys_flag::TRANSACTION_ROLLBACK_TYPE | sys_flag::MULTI_TAGS
        ));
    }

    #[test]
    fn tag_hash_reads_tags_property() {
        let mut props = Vec::new();
        properties::encode([("KEYS", "k1"), ("TAGS", "TagA")], &mut props);
        let levels = DelayLevels::default();
        assert_eq!(
            schedule::tags_code("T", &props, 0, &levels),
            tag_hash_code("TagA")
        );
        assert_eq!(schedule::tags_code("T", b"", 0, &levels), 0);
    }
}
