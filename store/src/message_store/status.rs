//! Outcomes of the store's put and get operations, with RocketMQ's status vocabulary.

/// How a put ended (RocketMQ's `PutMessageStatus`, the subset Tern's store produces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PutStatus {
    /// Stored (and, under SYNC_FLUSH, durable).
    PutOk,
    /// Stored, but SYNC_FLUSH durability was not confirmed within `syncFlushTimeout`.
    FlushDiskTimeout,
    /// The message cannot be stored as given (too large, topic too long, properties too long).
    MessageIllegal,
    /// The properties exceed what the record layout holds.
    PropertiesSizeExceeded,
    /// The store refuses writes: disk full (past the warning ratio), shut down, or read-only after
    /// an I/O error.
    ServiceNotAvailable,
    /// A new CommitLog segment could not be created.
    CreateMappedFileFailed,
    /// Any other failure while appending.
    UnknownError,
}

impl PutStatus {
    /// Whether the message was appended to the CommitLog (consumers will see it).
    pub fn is_stored(self) -> bool {
        matches!(self, PutStatus::PutOk | PutStatus::FlushDiskTimeout)
    }
}

/// How a get ended (RocketMQ's `GetMessageStatus`). The next offset to pull from is part of
/// [`crate::message_store::GetResult`]; its rule per status is documented on each variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GetStatus {
    /// At least one message returned; next = after the last entry examined.
    Found,
    /// Entries were examined but none passed the filter; next = after the last entry examined.
    NoMatchedMessage,
    /// The queue has never held a message (max offset 0); next = 0.
    NoMessageInQueue,
    /// The requested offset equals the max offset (caught up); next = the requested offset.
    OffsetOverflowOne,
    /// The requested offset is past the max offset; next = the max offset.
    OffsetOverflowBadly,
    /// The requested offset is below the min offset (retention removed it); next = the min offset.
    OffsetTooSmall,
    /// The ConsumeQueue has no entry at an offset inside [min, max); next = the requested offset + 1
    /// past the hole.
    OffsetFoundNull,
    /// The entries point at CommitLog data removed by retention; next = after the entries examined.
    MessageWasRemoving,
}
