//! The system topics of scheduled delivery and transactions, present in every broker's topic table
//! from the start (as RocketMQ's `TopicConfigManager` creates them), so `topicList`, `statsAll` and
//! the nameserver's routes show them.
//!
//! | topic | read/write queues | perm | RocketMQ |
//! |---|---|---|---|
//! | `SCHEDULE_TOPIC_XXXX` | `max(18, delay levels)` | 6 (read + write) | 18 (`SCHEDULE_TOPIC_QUEUE_NUM`) |
//! | `rmq_sys_wheel_timer` | 1 + the highest timer queue a core uses | 6 | 1 (queue 0 only) |
//! | `RMQ_SYS_TRANS_HALF_TOPIC` | 1 | 6 | 1 |
//! | `RMQ_SYS_TRANS_OP_HALF_TOPIC` | 1 | 6 | 1 |
//!
//! Tern keeps one timer queue per core ([`timer_queue_of`]), so its timer topic has as many queues
//! as needed to name each core's queue. Producers still may not send to them
//! ([`topics::is_send_forbidden`] for the schedule and transaction topics).

use tern_net::body::TopicConfig;
use tern_store::schedule::{DelayLevels, SCHEDULE_TOPIC, TIMER_TOPIC};

use super::divert::timer_queue_of;
use crate::broker::topics::{self, perm};
use crate::broker::transaction::{HALF_TOPIC, OP_TOPIC};

/// Queues of RocketMQ's schedule topic (one per default delay level).
pub(crate) const SCHEDULE_TOPIC_QUEUES: i32 = 18;

/// The system topic configs of a broker with `cores` cores and delay levels `levels` (see the
/// module table).
pub(crate) fn system_topics(levels: &DelayLevels, cores: usize) -> Vec<TopicConfig> {
    let rw = perm::READ | perm::WRITE;
    let timer_queues = (0..cores.max(1))
        .map(|c| timer_queue_of(c, cores.max(1)))
        .max()
        .unwrap_or(0)
        + 1;
    vec![
        topics::topic_config(
            SCHEDULE_TOPIC,
            SCHEDULE_TOPIC_QUEUES.max(levels.max_level()),
            rw,
        ),
        topics::topic_config(TIMER_TOPIC, timer_queues, rw),
        topics::topic_config(HALF_TOPIC, 1, rw),
        topics::topic_config(OP_TOPIC, 1, rw),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::routing::owner_core;

    #[test]
    fn rocketmq_queue_counts_and_every_timer_queue_named() {
        let levels = DelayLevels::parse("1s 2s").unwrap();
        for cores in 1..=8 {
            let t = system_topics(&levels, cores);
            let names: Vec<&str> = t.iter().map(|c| c.topic_name.as_str()).collect();
            assert_eq!(names, [SCHEDULE_TOPIC, TIMER_TOPIC, HALF_TOPIC, OP_TOPIC]);
            assert!(t.iter().all(|c| c.perm == 6));
            assert_eq!(t[0].read_queue_nums, 18);
            assert_eq!((t[2].write_queue_nums, t[3].read_queue_nums), (1, 1));
            for core in 0..cores {
                let q = timer_queue_of(core, cores);
                assert!(q < t[1].read_queue_nums);
                assert_eq!(owner_core(TIMER_TOPIC, q, cores), core);
            }
        }
        let many = DelayLevels::parse("1s ".repeat(20).trim()).unwrap();
        assert_eq!(system_topics(&many, 1)[0].write_queue_nums, 20);
    }
}
