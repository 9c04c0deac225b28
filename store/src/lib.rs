//! # tern-store
//!
//! Tern's storage engine. It keeps Apache RocketMQ's on-disk layouts (see `docs/storage-format.md`):
//! a segmented CommitLog of stored messages, one ConsumeQueue per (topic, queueId), an Index of message
//! keys, and a checkpoint + abort file for crash recovery.
//!
//! A store instance is owned by exactly one core (one glommio executor) and is never shared between
//! threads; the broker runs one instance per core, each under its own subdirectory.
