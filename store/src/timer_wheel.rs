//! A hierarchical timing wheel: millions of pending timers, O(1) insert, expiry in due order.
//!
//! Time is counted in 1 ms ticks. Four levels of 256 slots each cover 2^32 ms (49.7 days) ahead
//! of the wheel's current tick; a timer lands in the lowest level whose slot span contains its
//! due tick, and moves down ("cascades") when the lower level's position reaches that slot.
//! Timers further ahead than the top level wait in an overflow list that is re-sorted into the
//! wheel when the top level turns over; timers already due go to a ready list.
//!
//! | level | slot span | level span |
//! |---|---|---|
//! | 0 | 1 ms | 256 ms |
//! | 1 | 256 ms | 65.5 s |
//! | 2 | 65.5 s | 4.66 h |
//! | 3 | 4.66 h | 49.7 days |
//!
//! Each pending timer is one [`TimerEntry`] of 16 bytes (due time and a caller id) in a slot's
//! `Vec`; with growth slack a timer costs 16–32 bytes, plus a fixed 24 KiB of slot headers.
//! [`TimerWheel::advance`] returns expired timers in due order (by tick; ties in insertion order
//! within a slot).

/// Slots per level.
const SLOTS: usize = 256;
/// Bits of tick per level.
const BITS: u32 = 8;
/// Levels.
const LEVELS: usize = 4;

/// One pending timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEntry {
    /// When it is due (ms since the epoch).
    pub due_ms: u64,
    /// The caller's id for it (e.g. a queue offset).
    pub id: u64,
}

/// The wheel. See the module docs.
pub struct TimerWheel {
    /// The tick up to which (inclusive) every due timer has been returned.
    now: u64,
    slots: Vec<Vec<TimerEntry>>,
    /// Timers per level.
    counts: [usize; LEVELS],
    overflow: Vec<TimerEntry>,
    ready: Vec<TimerEntry>,
    len: usize,
}

impl TimerWheel {
    /// An empty wheel whose current time is `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        TimerWheel {
            now: now_ms,
            slots: vec![Vec::new(); SLOTS * LEVELS],
            counts: [0; LEVELS],
            overflow: Vec::new(),
            ready: Vec::new(),
            len: 0,
        }
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a timer. One already due (at or before the wheel's time) is returned by the next
    /// [`Self::advance`].
    pub fn insert(&mut self, entry: TimerEntry) {
        self.len += 1;
        self.place(entry);
    }

    fn place(&mut self, entry: TimerEntry) {
        let due = entry.due_ms;
        if due <= self.now {
            self.ready.push(entry);
            return;
        }
        for level in 0..LEVELS {
            let shift = BITS * (level as u32 + 1);
            if due >> shift == self.now >> shift {
                let slot = ((due >> (BITS * level as u32)) as usize) & (SLOTS - 1);
                self.slots[level * SLOTS + slot].push(entry);
                self.counts[level] += 1;
                return;
            }
        }
        self.overflow.push(entry);
    }

    /// Moves the wheel's time to `now_ms` and appends every timer due at or before it to `out`,
    /// in due order. Time never goes back: an earlier `now_ms` only returns the ready list.
    pub fn advance(&mut self, now_ms: u64, out: &mut Vec<TimerEntry>) {
        let start = out.len();
        self.drain_ready(out);
        while self.now < now_ms {
            if self.counts.iter().all(|&c| c == 0) && self.overflow.is_empty() {
                self.now = now_ms;
                break;
            }
            // Step to the next tick, or past whole spans of the empty lowest levels.
            let level = self
                .counts
                .iter()
                .position(|&c| c > 0)
                .unwrap_or(LEVELS - 1);
            let span = 1u64 << (BITS * level as u32);
            let next = ((self.now / span + 1) * span).min(now_ms.max(self.now + 1));
            let before = self.now;
            self.now = next;
            self.cascade(before, next);
            self.drain_ready(out);
            if self.counts[0] > 0 {
                let slot = (next as usize) & (SLOTS - 1);
                let taken = std::mem::take(&mut self.slots[slot]);
                self.counts[0] -= taken.len();
                out.extend(taken);
            }
        }
        self.len -= out.len() - start;
    }

    fn drain_ready(&mut self, out: &mut Vec<TimerEntry>) {
        if !self.ready.is_empty() {
            self.ready.sort_by_key(|e| e.due_ms);
            out.append(&mut self.ready);
        }
    }

    /// Re-places the timers of every higher-level slot whose span starts in `(before, next]`
    /// (at most one per level: a step never crosses two boundaries of a non-empty level).
    fn cascade(&mut self, before: u64, next: u64) {
        for level in (1..LEVELS).rev() {
            let shift = BITS * level as u32;
            if before >> shift != next >> shift && self.counts[level] > 0 {
                let slot = ((next >> shift) as usize) & (SLOTS - 1);
                let taken = std::mem::take(&mut self.slots[level * SLOTS + slot]);
                self.counts[level] -= taken.len();
                for e in taken {
                    self.place(e);
                }
            }
        }
        let top = BITS * LEVELS as u32;
        if before >> top != next >> top && !self.overflow.is_empty() {
            for e in std::mem::take(&mut self.overflow) {
                self.place(e);
            }
        }
    }

    /// A time at or before the earliest pending timer's due time (exact when it is in the lowest
    /// level), or `None` when nothing is pending: sleep until then, then [`Self::advance`].
    pub fn next_wakeup(&self) -> Option<u64> {
        if !self.ready.is_empty() {
            return Some(self.now);
        }
        for level in 0..LEVELS {
            if self.counts[level] == 0 {
                continue;
            }
            let shift = BITS * level as u32;
            let pos = ((self.now >> shift) as usize) & (SLOTS - 1);
            // A level only holds slots after its current position within the current span.
            let found = (pos + 1..SLOTS).find(|&s| !self.slots[level * SLOTS + s].is_empty());
            if let Some(slot) = found {
                let base = (self.now >> (shift + BITS)) << (shift + BITS);
                return Some(base + ((slot as u64) << shift));
            }
        }
        self.overflow.iter().map(|e| e.due_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut TimerWheel, to: u64) -> Vec<u64> {
        let mut out = Vec::new();
        w.advance(to, &mut out);
        out.iter().map(|e| e.due_ms).collect()
    }

    #[test]
    fn expires_in_due_order_and_not_early() {
        let mut w = TimerWheel::new(1_000);
        for (i, due) in [1_300u64, 1_001, 1_255, 1_256, 1_257, 70_000, 1_002]
            .iter()
            .enumerate()
        {
            w.insert(TimerEntry {
                due_ms: *due,
                id: i as u64,
            });
        }
        assert_eq!(w.len(), 7);
        assert_eq!(w.next_wakeup(), Some(1_001));
        assert_eq!(drain(&mut w, 1_000), Vec::<u64>::new());
        assert_eq!(drain(&mut w, 1_001), vec![1_001]);
        assert_eq!(drain(&mut w, 1_256), vec![1_002, 1_255, 1_256]);
        assert_eq!(drain(&mut w, 1_299), vec![1_257]);
        assert_eq!(drain(&mut w, 69_999), vec![1_300]);
        assert_eq!(w.next_wakeup().map(|t| t <= 70_000), Some(true));
        assert_eq!(drain(&mut w, 80_000), vec![70_000]);
        assert!(w.is_empty());
        assert_eq!(w.next_wakeup(), None);
    }

    #[test]
    fn cascades_through_every_level_and_overflow() {
        let start = 5_000_000u64;
        let mut w = TimerWheel::new(start);
        let aheads = [1u64, 300, 70_000, 20_000_000, 5_000_000_000, 1 << 33];
        for (i, a) in aheads.iter().enumerate() {
            w.insert(TimerEntry {
                due_ms: start + a,
                id: i as u64,
            });
        }
        let mut seen = Vec::new();
        let mut t = start;
        while !w.is_empty() {
            let wake = w.next_wakeup().unwrap();
            // The wake-up is never after the earliest due time.
            assert!(wake <= start + aheads[seen.len()]);
            t = wake.max(t + 1);
            let mut out = Vec::new();
            w.advance(t, &mut out);
            for e in out {
                assert!(e.due_ms <= t, "not early");
                seen.push(e.id);
            }
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn past_due_timers_come_out_first() {
        let mut w = TimerWheel::new(10_000);
        w.insert(TimerEntry {
            due_ms: 10_005,
            id: 1,
        });
        w.insert(TimerEntry {
            due_ms: 9_000,
            id: 2,
        });
        w.insert(TimerEntry {
            due_ms: 10_000,
            id: 3,
        });
        assert_eq!(w.next_wakeup(), Some(10_000));
        assert_eq!(drain(&mut w, 10_000), vec![9_000, 10_000]);
        assert_eq!(drain(&mut w, 10_010), vec![10_005]);
    }

    #[test]
    fn many_random_timers_expire_sorted_exactly_once() {
        let mut w = TimerWheel::new(0);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut dues = Vec::new();
        for id in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let due = x % 50_000_000;
            dues.push(due);
            w.insert(TimerEntry { due_ms: due, id });
        }
        let mut got = Vec::new();
        let mut t = 0;
        while let Some(wake) = w.next_wakeup() {
            t = wake.max(t + 1).min(t + 3_000_000);
            let mut out = Vec::new();
            w.advance(t, &mut out);
            assert!(out.iter().all(|e| e.due_ms <= t));
            got.extend(out.iter().map(|e| e.due_ms));
        }
        dues.sort_unstable();
        assert_eq!(got, dues);
    }
}
