//! Pull results and the PULL_MESSAGE request flags.
//!
//! `sysFlag` bits of PULL_MESSAGE (RocketMQ's `PullSysFlag`):
//!
//! | bit | name | meaning |
//! |---:|---|---|
//! | 0x1 | FLAG_COMMIT_OFFSET | `commitOffset` holds the consumer's offset for the broker to store |
//! | 0x2 | FLAG_SUSPEND | hold the request (long polling) until messages arrive or `suspendTimeoutMillis` |
//! | 0x4 | FLAG_SUBSCRIPTION | `subscription` holds the expression to filter with |
//! | 0x8 | FLAG_CLASS_FILTER | class filter mode (not used) |

use super::message::MessageExt;

/// `commitOffset` is valid.
pub(crate) const FLAG_COMMIT_OFFSET: i32 = 0x1;
/// Long polling.
pub(crate) const FLAG_SUSPEND: i32 = 0x2;
/// The request carries its subscription expression.
pub(crate) const FLAG_SUBSCRIPTION: i32 = 0x4;

/// What a pull found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Messages were found (SUCCESS).
    Found,
    /// Nothing at or after the offset yet (PULL_NOT_FOUND).
    NoNewMsg,
    /// Messages exist but none matched the expression (PULL_RETRY_IMMEDIATELY).
    NoMatchedMsg,
    /// The offset is outside the queue (PULL_OFFSET_MOVED); continue from `next_begin_offset`.
    OffsetIllegal,
}

/// The answer to a pull.
#[derive(Debug, Clone)]
pub struct PullResult {
    /// What was found.
    pub status: PullStatus,
    /// Where the next pull should start.
    pub next_begin_offset: i64,
    /// The queue's smallest offset.
    pub min_offset: i64,
    /// The queue's next offset to be written.
    pub max_offset: i64,
    /// The messages found that match the expression (empty unless `Found`).
    pub messages: Vec<MessageExt>,
}
