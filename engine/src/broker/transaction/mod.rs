//! Transactional messages (RocketMQ 4.x semantics): half messages, END_TRANSACTION (37), the op log
//! and the check service that sends CHECK_TRANSACTION_STATE (39) to producers.
//!
//! ## Flow
//! 1. A SEND whose properties say `TRAN_MSG=true` is stored as a *half message* in
//!    [`HALF_TOPIC`] queue 0 with `REAL_TOPIC` / `REAL_QID` added and the transaction bits of its
//!    sys flag cleared, so no consumer of the real topic sees it ([`half`]). The answer is a normal
//!    send result: `msgId` the half's offset id, `queueId` the real queue, `queueOffset` the half's
//!    queue offset, `transactionId` the UNIQ_KEY.
//! 2. END_TRANSACTION names the half by `commitLogOffset` / `tranStateTableOffset` ([`end`]).
//!    Commit stores a copy in the real topic and queue with sys flag COMMIT and
//!    `preparedTransactionOffset` = the half's CommitLog offset (TRAN_MSG, REAL_TOPIC and REAL_QID
//!    removed); rollback stores nothing. Both then append an *op* to [`OP_TOPIC`] queue 0: tag `d`,
//!    body the half's queue offset in decimal, property `__transactionId__` the transaction id.
//!    A repeated END for a resolved half answers SUCCESS and changes nothing.
//! 3. Every `transactionCheckInterval` the check service ([`check`]) reads new ops, then walks
//!    the half queue from its progress: a half without op, older than `transactionTimeOut`
//!    (or its `CHECK_IMMUNITY_TIME_IN_SECONDS`), is appended again with `TRANSACTION_CHECK_TIMES`
//!    incremented and the copy is offered to a live producer of its group (PGROUP) as
//!    CHECK_TRANSACTION_STATE (one-way; body = the copy re-encoded with its real topic and queue);
//!    once it was checked `transactionCheckMax` times it goes to [`CHECK_MAX_TOPIC`] instead.
//!    The producer answers END_TRANSACTION with `fromTransactionCheck=true` for the copy.
//!
//! ## Cores
//! The half queue, the check service and the resolution table live on the owner of
//! `(RMQ_SYS_TRANS_HALF_TOPIC, 0)` ([`half_core`], by [`routing::owner_core`]). A SEND with
//! TRAN_MSG is checked by the receiving core and its half stored on the half core; END_TRANSACTION
//! is forwarded whole to the half core, so one table decides every resolution without locks. The op
//! queue is on the owner of `(RMQ_SYS_TRANS_OP_HALF_TOPIC, 0)`, the committed copy on the owner of
//! its real queue: the half core reaches them with internal requests ([`internal`]). Checks go to
//! the state core, which knows the producers (from heartbeats' `producerDataSet`), and from there to
//! the core holding the chosen producer's connection.
//!
//! ## Durability and restart
//! A half is durable when its put returns; a commit is visible and durable when the copy's put
//! returns; the resolution is durable when the op's put returns (so a crash between the two leaves
//! the half unresolved: it is checked again, as in RocketMQ). The check service's progress is kept
//! as consumer offsets of group [`PROGRESS_GROUP`] (half queue: first unsettled half; op queue:
//! first op still needed) in `consumerOffset.json`, committed after each round; a restart re-reads
//! the ops from there and resumes the walk, and put-back copies carry their check count.
//!
//! [`routing::owner_core`]: super::routing::owner_core

mod check;
mod end;
mod half;
pub(crate) mod internal;
pub mod producers;
pub mod state;

pub(crate) use check::start_check_service;

use super::routing::owner_core;

/// Where half messages are stored (queue 0).
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Where ops (resolutions of half messages) are stored (queue 0).
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where half messages checked `transactionCheckMax` times go.
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Consumer group whose offsets of the half and op queues record the check service's progress.
pub const PROGRESS_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Tag of an op that resolves a half.
pub const REMOVE_TAG: &str = "d";
/// Property counting the checks of a half message.
pub const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Property overriding `transactionTimeOut` for one message, in seconds.
pub const CHECK_IMMUNITY_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";

/// The core owning the half queue (and the transaction service).
pub fn half_core(cores: usize) -> usize {
    owner_core(HALF_TOPIC, 0, cores)
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `props` with `name` set to `value` (earlier values of `name` dropped), in stored encoding.
fn with_property(props: &[u8], name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(props.len() + name.len() + value.len() + 2);
    tern_store::properties::encode(
        tern_store::properties::parse(props).filter(|(n, _)| *n != name),
        &mut out,
    );
    tern_store::properties::encode([(name, value)], &mut out);
    out
}

/// `props` without any of `names`.
fn without_properties(props: &[u8], names: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(props.len());
    tern_store::properties::encode(
        tern_store::properties::parse(props).filter(|(n, _)| !names.contains(n)),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_edits_are_byte_exact() {
        let props = b"TAGS\x01a\x02TRANSACTION_CHECK_TIMES\x011\x02PGROUP\x01pg\x02";
        assert_eq!(
            with_property(props, CHECK_TIMES, "2"),
            b"TAGS\x01a\x02PGROUP\x01pg\x02TRANSACTION_CHECK_TIMES\x012\x02".to_vec()
        );
        assert_eq!(
            without_properties(props, &["TAGS", CHECK_TIMES]),
            b"PGROUP\x01pg\x02".to_vec()
        );
    }
}
