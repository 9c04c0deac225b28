//! Latency-based avoidance of slow or failing brokers (RocketMQ's `MQFaultStrategy` and
//! `LatencyFaultToleranceImpl`): each send's latency marks its broker unavailable for a while.
//!
//! | send latency at least (ms) | 50 | 100 | 550 | 1800 | 3000 | 5000 | 15000 |
//! |---|---:|---:|---:|---:|---:|---:|---:|
//! | broker avoided for (ms) | 0 | 0 | 2000 | 5000 | 6000 | 10000 | 30000 |
//!
//! A failed send counts as a latency of 10 000 ms (avoided for 10 s), as the Java client's
//! "isolation" does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Latency thresholds (ms), ascending.
const LATENCY_MAX: [u64; 7] = [50, 100, 550, 1800, 3000, 5000, 15000];
/// How long a broker is avoided after a latency at each threshold (ms).
const NOT_AVAILABLE: [u64; 7] = [0, 0, 2000, 5000, 6000, 10000, 30000];
/// The latency a failed send counts as.
pub(crate) const ISOLATION_LATENCY: Duration = Duration::from_millis(10_000);

/// How long a broker is avoided after a send that took `latency`.
pub(crate) fn not_available_for(latency: Duration) -> Duration {
    let ms = latency.as_millis() as u64;
    LATENCY_MAX
        .iter()
        .zip(NOT_AVAILABLE)
        .rev()
        .find(|(max, _)| ms >= **max)
        .map(|(_, d)| Duration::from_millis(d))
        .unwrap_or(Duration::ZERO)
}

/// Per broker name: when it becomes available again.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    available_at: HashMap<String, Instant>,
}

impl FaultTable {
    /// Records a send to `broker` that took `latency` (or failed, with [`ISOLATION_LATENCY`]).
    pub(crate) fn record(&mut self, broker: &str, latency: Duration, now: Instant) {
        let until = now + not_available_for(latency);
        self.available_at.insert(broker.to_string(), until);
    }

    /// True unless `broker` is in its avoidance window.
    pub(crate) fn is_available(&self, broker: &str, now: Instant) -> bool {
        self.available_at.get(broker).is_none_or(|t| now >= *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_the_java_table() {
        let ms = Duration::from_millis;
        assert_eq!(not_available_for(ms(10)), Duration::ZERO);
        assert_eq!(not_available_for(ms(549)), Duration::ZERO);
        assert_eq!(not_available_for(ms(550)), ms(2000));
        assert_eq!(not_available_for(ms(1800)), ms(5000));
        assert_eq!(not_available_for(ms(3000)), ms(6000));
        assert_eq!(not_available_for(ISOLATION_LATENCY), ms(10_000));
        assert_eq!(not_available_for(ms(15_000)), ms(30_000));
    }

    #[test]
    fn a_failed_broker_is_avoided_until_its_window_ends() {
        let mut t = FaultTable::default();
        let now = Instant::now();
        t.record("a", ISOLATION_LATENCY, now);
        t.record("b", Duration::from_millis(3), now);
        assert!(!t.is_available("a", now));
        assert!(t.is_available("b", now));
        assert!(t.is_available("c", now));
        assert!(t.is_available("a", now + Duration::from_secs(10)));
    }
}
