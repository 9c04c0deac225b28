//! What the send path does before routing a message (RocketMQ's `HookUtils.handleScheduleMessage`
//! and `SendMessageProcessor.handleRetryAndDLQ`):
//!
//! - `DELAY = n > 0` (and not a prepared transaction half): stored in `SCHEDULE_TOPIC_XXXX` queue
//!   `min(n, maxLevel) - 1` with `REAL_TOPIC` / `REAL_QID` recording the destination; any timer
//!   property is dropped (a delay level wins over a timer, as in RocketMQ 5).
//! - `TIMER_DELIVER_MS` / `TIMER_DELAY_SEC` / `TIMER_DELAY_MS` with a deliver time in the future:
//!   stored in `rmq_sys_wheel_timer` with `TIMER_OUT_MS` (the deliver time) and `REAL_TOPIC` /
//!   `REAL_QID`; the timer queue is the one owned by the core that owns the real queue
//!   ([`timer_queue_of`]), so the timer lives on the real queue's shard. A deliver time already
//!   past means an ordinary send. An unparsable value or one more than [`TIMER_MAX_DELAY_MS`] ahead
//!   is refused with MESSAGE_ILLEGAL (RocketMQ's `WHEEL_TIMER_MSG_ILLEGAL`).
//! - A send to `%RETRY%<group>` whose `reconsumeTimes` exceeds the group's `retryMaxTimes` (or the
//!   header's `maxReconsumeTimes`) goes to `%DLQ%<group>` (1 queue, read + write) with `DELAY=-1`.

use tern_net::code::response;
use tern_net::header::SendMessageRequestHeader;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::message::sys_flag;
use tern_store::properties;
use tern_store::schedule::{SCHEDULE_TOPIC, TIMER_OUT_MS, TIMER_TOPIC};

use crate::broker::core::{reply, Core};
use crate::broker::routing::owner_core;
use crate::broker::topics::{self, perm};

/// RocketMQ's `PROPERTY_TIMER_DELIVER_MS`: absolute deliver time, ms since the epoch.
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// RocketMQ's `PROPERTY_TIMER_DELAY_SEC`: delay from arrival, seconds.
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// RocketMQ's `PROPERTY_TIMER_DELAY_MS`: delay from arrival, ms.
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// Longest accepted timer delay (RocketMQ's `timerMaxDelaySec` default, 3 days).
pub const TIMER_MAX_DELAY_MS: i64 = 3 * 24 * 3600 * 1000;
/// Queues of a dead-letter topic (RocketMQ's `DLQ_NUMS_PER_GROUP`).
pub const DLQ_QUEUES: i32 = 1;

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `props` without the properties named in `drop`, followed by `add`.
pub(crate) fn rewrite(props: &[u8], drop: &[&str], add: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(props.len() + 64);
    let names: Vec<&str> = add.iter().map(|(n, _)| *n).collect();
    properties::encode(
        properties::parse(props).filter(|(n, _)| !drop.contains(n) && !names.contains(n)),
        &mut out,
    );
    properties::encode(add.iter().copied(), &mut out);
    out
}

/// The timer queue owned by core `core` of `cores`: the smallest queue id of
/// `rmq_sys_wheel_timer` that [`owner_core`] maps there (each core has exactly one).
pub fn timer_queue_of(core: usize, cores: usize) -> i32 {
    (0..4096)
        .find(|&q| owner_core(TIMER_TOPIC, q, cores) == core)
        .unwrap_or(0)
}

/// The queue id a send response reports: for a message held in a schedule topic, the queue it
/// was sent to (`REAL_QID`), as RocketMQ answers with the request's queue, not the schedule
/// topic's; the stored queue otherwise. The response's queue offset stays the stored one.
pub(crate) fn reported_queue_id(header: &SendMessageRequestHeader) -> i32 {
    if header.topic != SCHEDULE_TOPIC && header.topic != TIMER_TOPIC {
        return header.queue_id;
    }
    properties::get(props_of(header), properties::REAL_QUEUE_ID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(header.queue_id)
}

fn props_of(header: &SendMessageRequestHeader) -> &[u8] {
    header.properties.as_deref().unwrap_or("").as_bytes()
}

fn set_props(header: &mut SendMessageRequestHeader, props: Vec<u8>) {
    header.properties = Some(String::from_utf8_lossy(&props).into_owned());
}

/// The deliver time a timer message asks for: `None` without timer properties, `Err` when one
/// does not parse.
fn timer_deliver_ms(props: &[u8], now: i64) -> Option<Result<i64, String>> {
    let num = |name: &str| {
        properties::get(props, name).map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("timer message illegal: {name}={v}"))
        })
    };
    if let Some(sec) = num(TIMER_DELAY_SEC) {
        return Some(sec.map(|s| now.saturating_add(s.saturating_mul(1000))));
    }
    if let Some(ms) = num(TIMER_DELAY_MS) {
        return Some(ms.map(|m| now.saturating_add(m)));
    }
    num(TIMER_DELIVER_MS)
}

impl Core {
    /// Sends a delay-level or timer message to its schedule topic instead (see the module docs).
    /// Returns whether the header now names a schedule topic; `Err` is the refusal to send.
    pub(crate) fn divert_scheduled(
        &self,
        req: &RemotingCommand,
        header: &mut SendMessageRequestHeader,
    ) -> Result<bool, Box<Reply>> {
        let tran = sys_flag::transaction_type(header.sys_flag);
        if tran != sys_flag::TRANSACTION_NOT_TYPE && tran != sys_flag::TRANSACTION_COMMIT_TYPE {
            return Ok(false);
        }
        if header.topic == SCHEDULE_TOPIC || header.topic == TIMER_TOPIC {
            return Ok(false);
        }
        let props = props_of(header);
        let level = properties::get(props, properties::DELAY)
            .and_then(|d| d.trim().parse::<i32>().ok())
            .unwrap_or(0);
        if level > 0 {
            let real_qid = header.queue_id.to_string();
            let level = self.config.store.message_delay_level.clamp(level);
            let new = rewrite(
                props,
                &[TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS],
                &[
                    (properties::DELAY, &level.to_string()),
                    (properties::REAL_TOPIC, &header.topic),
                    (properties::REAL_QUEUE_ID, &real_qid),
                ],
            );
            set_props(header, new);
            header.topic = SCHEDULE_TOPIC.to_string();
            header.queue_id = level - 1;
            return Ok(true);
        }
        if properties::get(props, TIMER_OUT_MS).is_some() {
            return Ok(false);
        }
        let now = now_ms();
        let due = match timer_deliver_ms(props, now) {
            None => return Ok(false),
            Some(Ok(due)) => due,
            Some(Err(why)) => return Err(Box::new(reply(req, response::MESSAGE_ILLEGAL, why))),
        };
        if due <= now {
            return Ok(false);
        }
        if due - now > TIMER_MAX_DELAY_MS {
            return Err(Box::new(reply(
                req,
                response::MESSAGE_ILLEGAL,
                format!("timer message illegal: deliver time {due} is more than {TIMER_MAX_DELAY_MS} ms ahead"),
            )));
        }
        let new = rewrite(
            props,
            &[],
            &[
                (TIMER_OUT_MS, &due.to_string()),
                (properties::REAL_TOPIC, &header.topic),
                (properties::REAL_QUEUE_ID, &header.queue_id.to_string()),
            ],
        );
        let owner = owner_core(&header.topic, header.queue_id, self.cores);
        set_props(header, new);
        header.topic = TIMER_TOPIC.to_string();
        header.queue_id = timer_queue_of(owner, self.cores);
        Ok(true)
    }

    /// A producer's send to `%RETRY%<group>` past the group's retry limit goes to the group's DLQ
    /// (see the module docs). So does any such send from a client (`from_client`) while the group
    /// holds an unexpired queue lock: an orderly consumer sends a message back through its producer
    /// only once it gave up on it (RocketMQ's `isLockAllExpired` check).
    pub(crate) fn retry_or_dead_letter(
        &self,
        req: &RemotingCommand,
        header: &mut SendMessageRequestHeader,
        from_client: bool,
    ) -> Result<(), Box<Reply>> {
        let Some(group) = header.topic.strip_prefix(topics::RETRY_PREFIX) else {
            return Ok(());
        };
        let group = group.to_string();
        let Some(limits) = self.group_or_create(&group) else {
            return Err(Box::new(reply(
                req,
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group not exist, {group}"),
            )));
        };
        let max = header.max_reconsume_times.unwrap_or(limits.retry_max_times);
        let orderly = from_client
            && self
                .locks
                .borrow()
                .group_has_live_lock(&group, std::time::Instant::now());
        if header.reconsume_times.unwrap_or(0) <= max && !orderly {
            return Ok(());
        }
        let dlq = format!("{}{group}", topics::DLQ_PREFIX);
        self.ensure_dlq_topic(&dlq);
        let new = rewrite(props_of(header), &[], &[(properties::DELAY, "-1")]);
        set_props(header, new);
        header.topic = dlq;
        header.queue_id = 0;
        Ok(())
    }

    /// RocketMQ stores no batch with a delay level (`CommitLog.asyncPutMessages`): a
    /// SEND_BATCH_MESSAGE whose own properties carry `DELAY > 0` is refused with MESSAGE_ILLEGAL.
    /// A `DELAY` inside one packed message is stored as given and not scheduled, as there.
    pub(crate) fn refuse_delayed_batch(
        &self,
        req: &RemotingCommand,
        header: &SendMessageRequestHeader,
    ) -> Option<Reply> {
        let level = properties::get(props_of(header), properties::DELAY)
            .and_then(|d| d.trim().parse::<i32>().ok())
            .unwrap_or(0);
        (level > 0).then(|| {
            reply(
                req,
                response::MESSAGE_ILLEGAL,
                format!("batch messages do not support delay levels (DELAY={level})"),
            )
        })
    }

    /// Where a committed transactional message goes: a `DELAY = n > 0` in `props` sends it to
    /// `SCHEDULE_TOPIC_XXXX` like any delayed send (RocketMQ applies its schedule hook to the
    /// commit's put); `None` when it is not delayed. Returns the topic, queue and properties.
    pub(crate) fn delay_committed(
        &self,
        props: &[u8],
        topic: &str,
        queue_id: i32,
    ) -> Option<(&'static str, i32, Vec<u8>)> {
        let level = properties::get(props, properties::DELAY)
            .and_then(|d| d.trim().parse::<i32>().ok())
            .filter(|&l| l > 0)?;
        let level = self.config.store.message_delay_level.clamp(level);
        let new = rewrite(
            props,
            &[TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS],
            &[
                (properties::DELAY, &level.to_string()),
                (properties::REAL_TOPIC, topic),
                (properties::REAL_QUEUE_ID, &queue_id.to_string()),
            ],
        );
        Some((SCHEDULE_TOPIC, level - 1, new))
    }

    /// Creates `%DLQ%<group>` (1 queue, read + write, as RocketMQ) when it does not exist.
    pub(crate) fn ensure_dlq_topic(&self, dlq: &str) {
        if self.topics.borrow().limits(dlq).is_none() {
            self.upsert_topic(topics::topic_config(
                dlq,
                DLQ_QUEUES,
                perm::READ | perm::WRITE,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_replaces_and_drops() {
        let mut p = Vec::new();
        properties::encode([("TAGS", "A"), ("DELAY", "3"), ("KEYS", "k")], &mut p);
        let out = rewrite(&p, &["KEYS"], &[("DELAY", "2"), ("REAL_QID", "1")]);
        let pairs: Vec<_> = properties::parse(&out).collect();
        assert_eq!(
            pairs,
            vec![("TAGS", "A"), ("DELAY", "2"), ("REAL_QID", "1")]
        );
    }

    #[test]
    fn timer_properties_in_rocketmqs_order() {
        let mut p = Vec::new();
        properties::encode([(TIMER_DELIVER_MS, "5000"), (TIMER_DELAY_MS, "7")], &mut p);
        assert_eq!(timer_deliver_ms(&p, 100), Some(Ok(107)));
        let mut p = Vec::new();
        properties::encode([(TIMER_DELIVER_MS, "5000")], &mut p);
        assert_eq!(timer_deliver_ms(&p, 100), Some(Ok(5000)));
        let mut p = Vec::new();
        properties::encode([(TIMER_DELAY_SEC, "x")], &mut p);
        assert!(matches!(timer_deliver_ms(&p, 100), Some(Err(_))));
        assert_eq!(timer_deliver_ms(b"", 100), None);
    }

    #[test]
    fn each_core_has_its_own_timer_queue() {
        for cores in 1..=8 {
            for core in 0..cores {
                let q = timer_queue_of(core, cores);
                assert_eq!(owner_core(TIMER_TOPIC, q, cores), core);
            }
        }
    }
}
