//! The MessageStore's error type: what can stop a store from opening, recovering or shutting down.
//! Per-message problems are not errors: they are [`super::PutStatus`] / [`super::GetStatus`] values.

use std::path::PathBuf;

use crate::consume_queue::CqError;
use crate::error::StoreError;
use crate::index::IndexError;
use crate::retention::RetentionError;

/// Errors from [`super::MessageStore`].
#[derive(Debug, thiserror::Error)]
pub enum MessageStoreError {
    /// The CommitLog failed (I/O, bad segment files, poisoned after a failed flush).
    #[error("commit log: {0}")]
    CommitLog(#[from] StoreError),
    /// A ConsumeQueue failed.
    #[error("consume queue: {0}")]
    ConsumeQueue(#[from] CqError),
    /// The Index failed.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// The checkpoint or abort file could not be read or written.
    #[error("store metadata file {path}: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The retention settings are invalid.
    #[error("retention settings: {0}")]
    Retention(#[from] RetentionError),
    /// The shard number does not fit the top byte of a physical offset.
    #[error("shard {0} is above 255")]
    Shard(u32),
}
