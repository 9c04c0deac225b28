//! Scheduled delivery as the store sees it: the delay-level table (`messageDelayLevel`) and the
//! ConsumeQueue `tagsCode` of the two system topics that hold messages until they are due.
//!
//! For ordinary topics an entry's `tagsCode` is the hash of the message's TAGS. For the two
//! schedule topics it is the message's **deliver time** (ms since the epoch), so a delivery task
//! learns when the head of a queue is due from the 20-byte ConsumeQueue entry alone:
//!
//! | topic | queue | `tagsCode` |
//! |---|---|---|
//! | `SCHEDULE_TOPIC_XXXX` | `level - 1` | `storeTimestamp + delay(level)`, level from the `DELAY` property, capped at the highest level |
//! | `rmq_sys_wheel_timer` | any | the `TIMER_OUT_MS` property |
//!
//! Dispatch at put time and recovery's rebuild both call [`tags_code`], so an entry rebuilt after a
//! crash equals the one written at put time (as long as `messageDelayLevel` is unchanged, as in
//! RocketMQ, whose CommitLog computes the same value from the same table).

use std::fmt;

use crate::consume_queue::tag_hash_code;
use crate::properties;

/// RocketMQ's delay-level topic (`TopicValidator.RMQ_SYS_SCHEDULE_TOPIC`).
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// RocketMQ 5's timer topic (`TimerMessageStore.TIMER_TOPIC`).
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// Property with a timer message's deliver time in ms (set by the broker).
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
/// RocketMQ's default `messageDelayLevel`.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// A `messageDelayLevel` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad delay level {item:?}: {reason}")]
pub struct DelayLevelError {
    /// The offending item.
    pub item: String,
    /// What was expected.
    pub reason: &'static str,
}

/// The delay of each level, level 1 first. Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct DelayLevels {
    millis: Vec<u64>,
}

impl Default for DelayLevels {
    fn default() -> Self {
        DelayLevels {
            millis: vec![
                1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000,
                420_000, 480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
            ],
        }
    }
}

impl fmt::Debug for DelayLevels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DelayLevels({self})")
    }
}

impl fmt::Display for DelayLevels {
    /// Prints the table the way `messageDelayLevel` spells it (largest exact unit per item).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ms) in self.millis.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let (n, unit) = [
                (86_400_000, "d"),
                (3_600_000, "h"),
                (60_000, "m"),
                (1_000, "s"),
            ]
            .into_iter()
            .find(|(u, _)| ms % u == 0 && *ms >= *u)
            .map_or((*ms / 1000, "s"), |(u, s)| (ms / u, s));
            write!(f, "{n}{unit}")?;
        }
        Ok(())
    }
}

impl DelayLevels {
    /// Parses RocketMQ's format: items separated by spaces, each a positive integer followed by
    /// `s`, `m`, `h` or `d`.
    pub fn parse(value: &str) -> Result<Self, DelayLevelError> {
        let mut millis = Vec::new();
        for item in value.split_whitespace() {
            let bad = |reason| DelayLevelError {
                item: item.to_string(),
                reason,
            };
            let split = item.len().saturating_sub(1);
            let (num, unit) = (
                item.get(..split).unwrap_or(""),
                item.get(split..).unwrap_or(""),
            );
            let unit_ms: u64 = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad("expected a unit s, m, h or d")),
            };
            let n: u64 = num.parse().map_err(|_| bad("expected a whole number"))?;
            if n == 0 {
                return Err(bad("a delay must be positive"));
            }
            millis.push(n.checked_mul(unit_ms).ok_or_else(|| bad("too large"))?);
        }
        if millis.is_empty() {
            return Err(DelayLevelError {
                item: value.to_string(),
                reason: "no levels",
            });
        }
        Ok(DelayLevels { millis })
    }

    /// The highest level (levels are 1-based).
    pub fn max_level(&self) -> i32 {
        i32::try_from(self.millis.len()).unwrap_or(i32::MAX)
    }

    /// `level` capped to `1..=max_level()`.
    pub fn clamp(&self, level: i32) -> i32 {
        level.clamp(1, self.max_level())
    }

    /// The delay of `level` (capped like [`Self::clamp`]) in ms.
    pub fn delay_ms(&self, level: i32) -> u64 {
        let i = usize::try_from(self.clamp(level) - 1).unwrap_or(0);
        self.millis.get(i).copied().unwrap_or(1_000)
    }

    /// When a message of `level` stored at `store_ts` is due.
    pub fn deliver_at(&self, level: i32, store_ts: i64) -> i64 {
        store_ts.saturating_add(i64::try_from(self.delay_ms(level)).unwrap_or(i64::MAX))
    }
}

/// The ConsumeQueue `tagsCode` of a record (see the module table): the deliver time for the
/// schedule topics, the TAGS hash (0 without tags) otherwise.
pub fn tags_code(topic: &str, props: &[u8], store_ts: i64, levels: &DelayLevels) -> i64 {
    if topic == SCHEDULE_TOPIC {
        if let Some(level) = properties::get(props, properties::DELAY).and_then(|d| d.parse().ok())
        {
            return levels.deliver_at(level, store_ts);
        }
    } else if topic == TIMER_TOPIC {
        if let Some(due) = properties::get(props, TIMER_OUT_MS).and_then(|d| d.parse().ok()) {
            return due;
        }
    }
    properties::get(props, properties::TAGS)
        .map(tag_hash_code)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rocketmq_default_and_prints_it_back() {
        let levels = DelayLevels::parse(DEFAULT_DELAY_LEVELS).unwrap();
        assert_eq!(levels, DelayLevels::default());
        assert_eq!(levels.to_string(), DEFAULT_DELAY_LEVELS);
        assert_eq!(levels.max_level(), 18);
        assert_eq!(levels.delay_ms(1), 1_000);
        assert_eq!(levels.delay_ms(18), 7_200_000);
        assert_eq!(
            levels.delay_ms(99),
            7_200_000,
            "capped at the highest level"
        );
        assert_eq!(DelayLevels::parse("2d 90s").unwrap().to_string(), "2d 90s");
    }

    #[test]
    fn rejects_bad_items() {
        for bad in ["", "1x", "s", "0s", "-1s", "1.5s", "1ms"] {
            assert!(DelayLevels::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags_code_is_deliver_time_for_schedule_topics() {
        let levels = DelayLevels::parse("1s 2s 3s").unwrap();
        let mut props = Vec::new();
        properties::encode([("TAGS", "A"), ("DELAY", "2")], &mut props);
        assert_eq!(tags_code(SCHEDULE_TOPIC, &props, 10_000, &levels), 12_000);
        assert_eq!(tags_code("T", &props, 10_000, &levels), tag_hash_code("A"));
        let mut timer = Vec::new();
        properties::encode([("TAGS", "A"), (TIMER_OUT_MS, "123456")], &mut timer);
        assert_eq!(tags_code(TIMER_TOPIC, &timer, 1, &levels), 123_456);
        // Level above the table: the highest level's delay.
        let mut high = Vec::new();
        properties::encode([("DELAY", "9")], &mut high);
        assert_eq!(tags_code(SCHEDULE_TOPIC, &high, 0, &levels), 3_000);
    }
}
