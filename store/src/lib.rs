//! # tern-store
//!
//! Tern's storage engine. It keeps Apache RocketMQ's on-disk layouts (see `docs/storage-format.md`):
//! a segmented CommitLog of stored messages, one ConsumeQueue per (topic, queueId), an Index of message
//! keys, and a checkpoint + abort file for crash recovery.
//!
//! ## Thread-per-core ownership
//! A store instance ([`message_store::MessageStore`]) is owned by exactly one core (one glommio
//! executor) and is never shared between threads: it is `!Send`, its methods take `&self`, and the
//! tasks of that core share it. The broker runs one instance per core, shard `k` under
//! `<storePathRootDir>/core-<k>/`, and routes each (topic, queueId) to one core, so a queue's
//! ConsumeQueue, its queue offsets and its messages all live on one core and need no locks.
//!
//! ## Physical offsets and message ids
//! Core `k`'s CommitLog starts at physical offset `k << 56` (see [`message_id::SHARD_SHIFT`]), so
//! physical offsets of different cores never collide and each stays a plain RocketMQ offset within
//! its own log. The broker-assigned offset message id (store host + physical offset, RocketMQ's
//! `createMessageId`) therefore names its owner: `offset >> 56` is the core whose store answers
//! VIEW_MESSAGE_BY_ID ([`message_id::MessageId::shard`]).
//!
//! ## Crash safety
//! Each shard keeps RocketMQ's `checkpoint` file and `abort` marker; [`recovery`] describes how a
//! store reopens after a clean shutdown or a crash, and [`retention`] when old segments go.
pub mod checkpoint;
pub mod civil_time;
pub mod commit_log;
pub mod config;
pub mod consume_queue;
pub mod error;
pub mod flush;
pub mod index;
pub mod message;
pub mod message_id;
pub mod message_store;
pub mod properties;
pub mod recovery;
pub mod retention;
pub mod schedule;
pub mod segment;
pub mod timer_wheel;
