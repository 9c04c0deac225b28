//! What the transaction service knows of the half queue: how far it is settled, which halves have
//! an op (are committed or rolled back), and which transaction ids are resolved.
//!
//! Invariant: every half message below [`Resolutions::half_done`] is settled (resolved, put back
//! for a later check, or given up). Ops are kept only for halves at or above it, so the op queue
//! offset a restart must re-read from is the smallest op offset still kept
//! ([`Resolutions::op_progress`]).

use std::collections::{BTreeMap, HashSet, VecDeque};

/// Resolved transaction ids remembered (oldest forgotten first). A half put back for a later
/// check is recognised as resolved by its id when its producer answered for an older copy.
const MAX_REMEMBERED_IDS: usize = 1 << 20;

/// The transaction service's view of the half and op queues (on the half queue's owner).
#[derive(Debug, Default)]
pub struct Resolutions {
    half_done: i64,
    op_next: i64,
    /// Half queue offset → op queue offset of its op.
    by_half: BTreeMap<i64, i64>,
    /// Half queue offsets, and transaction ids, whose END is being processed.
    pending: HashSet<i64>,
    pending_ids: HashSet<String>,
    ids: HashSet<String>,
    id_order: VecDeque<String>,
}

impl Resolutions {
    /// Resumes from persisted progress: halves below `half_done` are settled, ops are read from
    /// `op_next`. Resolutions recorded meanwhile (an END served during start-up) are kept.
    pub fn resume(&mut self, half_done: i64, op_next: i64) {
        self.half_done = half_done.max(0);
        self.op_next = op_next.max(0);
        self.by_half = self.by_half.split_off(&self.half_done);
    }

    /// Half queue offset below which everything is settled.
    pub fn half_done(&self) -> i64 {
        self.half_done
    }

    /// Op queue offset to read next.
    pub fn op_next(&self) -> i64 {
        self.op_next
    }

    /// Op queue offset a restart must read from (persisted).
    pub fn op_progress(&self) -> i64 {
        self.by_half
            .values()
            .copied()
            .min()
            .unwrap_or(self.op_next)
            .min(self.op_next)
    }

    /// True when the half at `half_offset` (transaction `txid`) is resolved.
    pub fn is_resolved(&self, half_offset: i64, txid: Option<&str>) -> bool {
        self.by_half.contains_key(&half_offset) || txid.is_some_and(|t| self.ids.contains(t))
    }

    /// True while an END for this half (or transaction) is being processed: the check walk
    /// stops there rather than settle a half whose resolution may still fail.
    pub fn is_pending(&self, half_offset: i64, txid: Option<&str>) -> bool {
        self.pending.contains(&half_offset) || txid.is_some_and(|t| self.pending_ids.contains(t))
    }

    /// Starts resolving a half: false (and nothing changes) when it is already resolved or being
    /// resolved, which makes a repeated END_TRANSACTION harmless.
    pub fn claim(&mut self, half_offset: i64, txid: Option<&str>) -> bool {
        if self.is_resolved(half_offset, txid) || self.is_pending(half_offset, txid) {
            return false;
        }
        self.pending.insert(half_offset);
        if let Some(t) = txid {
            self.pending_ids.insert(t.to_string());
        }
        true
    }

    /// Gives up a claim whose resolution failed (the half stays unresolved).
    pub fn release(&mut self, half_offset: i64, txid: Option<&str>) {
        self.pending.remove(&half_offset);
        if let Some(t) = txid {
            self.pending_ids.remove(t);
        }
    }

    /// Records an op (written by END_TRANSACTION or read from the op queue).
    pub fn record_op(&mut self, half_offset: i64, op_offset: i64, txid: Option<&str>) {
        self.pending.remove(&half_offset);
        if half_offset >= self.half_done {
            self.by_half.insert(half_offset, op_offset);
        }
        if let Some(t) = txid {
            self.pending_ids.remove(t);
            self.remember(t);
        }
    }

    /// Ops were read up to `next`.
    pub fn ops_read(&mut self, next: i64) {
        self.op_next = self.op_next.max(next);
    }

    /// Everything below `half_done` is settled: forget its ops.
    pub fn advance(&mut self, half_done: i64) {
        if half_done <= self.half_done {
            return;
        }
        self.half_done = half_done;
        self.by_half = self.by_half.split_off(&half_done);
    }

    fn remember(&mut self, txid: &str) {
        if self.ids.insert(txid.to_string()) {
            self.id_order.push_back(txid.to_string());
        }
        while self.id_order.len() > MAX_REMEMBERED_IDS {
            if let Some(old) = self.id_order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_is_resolved_once() {
        let mut r = Resolutions::default();
        assert!(!r.is_resolved(3, Some("T1")));
        assert!(r.claim(3, Some("T1")));
        assert!(r.is_pending(3, None) && r.is_pending(9, Some("T1")));
        assert!(!r.is_resolved(3, Some("T1")));
        // A second END while the first is in flight, and after it: no-ops.
        assert!(!r.claim(3, Some("T1")));
        r.record_op(3, 0, Some("T1"));
        assert!(!r.is_pending(3, Some("T1")));
        assert!(!r.claim(3, Some("T1")));
        // A put-back copy of the same transaction at another offset is resolved by its id.
        assert!(r.is_resolved(9, Some("T1")));
        assert!(!r.claim(9, Some("T1")));
        // A failed resolution can be retried.
        assert!(r.claim(4, Some("T2")));
        r.release(4, Some("T2"));
        assert!(!r.is_resolved(4, Some("T2")));
        assert!(r.claim(4, Some("T2")));
    }

    #[test]
    fn progress_keeps_ops_of_unsettled_halves() {
        let mut r = Resolutions::default();
        r.record_op(3, 1, None); // served before the progress was loaded
        r.resume(10, 5);
        assert_eq!(r.op_progress(), 5);
        r.record_op(12, 5, None);
        r.record_op(15, 6, None);
        r.record_op(9, 7, None); // below half_done: nothing to keep
        r.ops_read(8);
        assert_eq!(r.op_progress(), 5);
        r.advance(13);
        assert_eq!(r.half_done(), 13);
        assert_eq!(r.op_progress(), 6);
        r.advance(16);
        assert_eq!(r.op_progress(), 8);
        r.advance(2); // never moves back
        assert_eq!(r.half_done(), 16);
    }
}
