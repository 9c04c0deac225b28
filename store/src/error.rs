//! The CommitLog's error type.

use std::path::PathBuf;

/// Errors from the CommitLog and its segments. None of them is a panic: bad input and failing disks
/// both come back as one of these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the quota) is full: a segment could not be preallocated or a write came up short.
    #[error("disk full while {op} {path}")]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A record larger than `maxMessageSize` or than a segment can hold (a segment keeps 8 bytes
    /// for its closing blank record).
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// The record's stored size.
        size: usize,
        /// The largest accepted size.
        limit: usize,
    },
    /// A physical offset outside `[min_offset, max_offset)` of the log.
    #[error("offset {offset} outside the CommitLog range [{min}, {max})")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: u64,
        /// The log's first readable offset.
        min: u64,
        /// The log's write position.
        max: u64,
    },
    /// A zero-copy read range that would cross a segment boundary.
    #[error("range of {len} bytes at offset {offset} crosses a segment boundary")]
    CrossesSegment {
        /// The requested offset.
        offset: u64,
        /// The requested length.
        len: usize,
    },
    /// The message cannot be encoded in the stored layout.
    #[error(transparent)]
    Encode(#[from] crate::message::EncodeError),
    /// An earlier write or flush failed; the log refuses appends until it is reopened (the state of
    /// the unflushed tail is unknown, so recovery must decide what survived).
    #[error("the CommitLog is read-only after an I/O error; reopen it to recover")]
    Poisoned,
    /// Replicated bytes that cannot be placed at the physical offset the master wrote them at: the
    /// local write position differs, or the record does not fit the current segment (the master
    /// and the slave use different segment sizes).
    #[error("replicated record at offset {offset} cannot be placed: local write position {write_pos}, {room} bytes left in the segment")]
    ReplicaMisplaced {
        /// The master's offset of the record.
        offset: u64,
        /// The local write position.
        write_pos: u64,
        /// Bytes left in the local segment being written.
        room: u64,
    },
    /// A file in the CommitLog directory is not what the CommitLog wrote (bad name, wrong size, gap).
    #[error("unexpected CommitLog file {path}: {reason}")]
    BadSegment {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl StoreError {
    /// Wraps an OS error, mapping ENOSPC and EDQUOT to [`StoreError::DiskFull`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::DiskFull { op, path },
            _ => StoreError::Io { op, path, source },
        }
    }
}

/// Result alias for the CommitLog.
pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_becomes_disk_full() {
        let e = StoreError::io(
            "writing",
            "/x",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(matches!(e, StoreError::DiskFull { op: "writing", .. }));
        let e = StoreError::io(
            "writing",
            "/x",
            std::io::Error::from_raw_os_error(libc::EIO),
        );
        assert!(matches!(e, StoreError::Io { .. }));
    }
}
