//! A latency histogram with fixed Prometheus buckets, written by one core and read by any.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (`le` labels are printed in seconds). The last,
/// implicit bucket is `+Inf`.
pub const BUCKETS_MICROS: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Observations of one core. `observe` is wait-free: two relaxed adds and one relaxed increment.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts; index `BUCKETS_MICROS.len()` is the `+Inf` overflow bucket.
    counts: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

/// A point-in-time copy of one or more [`Histogram`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Non-cumulative counts per bucket, `+Inf` last.
    pub counts: [u64; BUCKETS_MICROS.len() + 1],
    /// Sum of all observations, microseconds.
    pub sum_micros: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let idx = BUCKETS_MICROS.partition_point(|&b| b < micros);
        debug_assert!(idx < self.counts.len());
        if let Some(c) = self.counts.get(idx) {
            c.fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Adds this histogram's current values to `into`.
    pub fn add_to(&self, into: &mut Snapshot) {
        for (acc, c) in into.counts.iter_mut().zip(&self.counts) {
            *acc += c.load(Relaxed);
        }
        into.sum_micros += self.sum_micros.load(Relaxed);
    }
}

impl Snapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges_are_inclusive_and_overflow_goes_to_inf() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // le=0.0001
        h.observe(Duration::from_micros(101)); // le=0.00025
        h.observe(Duration::from_secs(11)); // +Inf
        let mut s = Snapshot::default();
        h.add_to(&mut s);
        h.add_to(&mut s);
        assert_eq!(s.counts[0], 2);
        assert_eq!(s.counts[1], 2);
        assert_eq!(s.counts[BUCKETS_MICROS.len()], 2);
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum_micros, 2 * (100 + 101 + 11_000_000));
    }
}
