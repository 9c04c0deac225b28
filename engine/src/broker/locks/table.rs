//! The lock bodies of LOCK_BATCH_MQ / UNLOCK_BATCH_MQ and the table of queue locks.
//!
//! Bodies (RocketMQ's JSON, `remoting/.../protocol/body/{LockBatchRequestBody,
//! LockBatchResponseBody,UnlockBatchRequestBody}.java`; unknown fields ignored):
//!
//! | body | field | type |
//! |---|---|---|
//! | LockBatchRequestBody, UnlockBatchRequestBody | consumerGroup | string |
//! | | clientId | string |
//! | | onlyThisBroker | bool (ignored: Tern has no slaves to forward to) |
//! | | mqSet | `[{topic, brokerName, queueId}]` |
//! | LockBatchResponseBody | lockOKMQSet | `[{topic, brokerName, queueId}]`: the queues the client holds now |
//!
//! Rules (RocketMQ's `RebalanceLockManager`): a queue is held by at most one client id of a group;
//! a lock not renewed for `rebalanceLockMaxLiveTime` has expired and may be taken by anyone;
//! locking a queue one already holds renews it; unlocking a queue one does not hold does nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A queue as clients name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    /// The topic.
    pub topic: String,
    /// The broker group.
    pub broker_name: String,
    /// The queue id.
    pub queue_id: i32,
}

/// LOCK_BATCH_MQ's and UNLOCK_BATCH_MQ's request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchRequestBody {
    /// The consumer group.
    pub consumer_group: String,
    /// The client asking.
    pub client_id: String,
    /// Whether the broker should not forward to its replicas.
    pub only_this_broker: bool,
    /// The queues.
    pub mq_set: Vec<MessageQueue>,
}

/// LOCK_BATCH_MQ's response body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBatchResponseBody {
    /// The queues the client holds after the request.
    #[serde(rename = "lockOKMQSet", default)]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

/// Who holds a queue, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The client id.
    pub client_id: String,
    /// The address (`ip:port`) of the connection the client locked from; pulls are matched by it.
    pub addr: String,
    /// When the lock expires unless renewed.
    pub expires: Instant,
}

/// One lock change, broadcast from the state core to every core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockChange {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: i32,
    /// The new holder; `None` when unlocked.
    pub holder: Option<Holder>,
}

/// Queue locks by group, topic and queue. The state core decides; other cores hold copies.
#[derive(Debug, Default)]
pub struct LockTable {
    locks: HashMap<(String, String, i32), Holder>,
}

impl LockTable {
    /// Locks (or renews) each queue of `mqs` for `client_id` where possible; returns the queues
    /// the client holds afterwards and the changes to broadcast.
    pub fn try_lock(
        &mut self,
        group: &str,
        client_id: &str,
        addr: &str,
        mqs: &[MessageQueue],
        now: Instant,
        ttl: Duration,
    ) -> (Vec<MessageQueue>, Vec<LockChange>) {
        let mut held = Vec::new();
        let mut changes = Vec::new();
        for mq in mqs {
            let key = (group.to_string(), mq.topic.clone(), mq.queue_id);
            let free = self
                .locks
                .get(&key)
                .is_none_or(|h| h.client_id == client_id || h.expires <= now);
            if !free {
                continue;
            }
            let holder = Holder {
                client_id: client_id.to_string(),
                addr: addr.to_string(),
                expires: now + ttl,
            };
            self.locks.insert(key, holder.clone());
            changes.push(LockChange {
                group: group.to_string(),
                topic: mq.topic.clone(),
                queue_id: mq.queue_id,
                holder: Some(holder),
            });
            held.push(mq.clone());
        }
        (held, changes)
    }

    /// Releases each queue of `mqs` that `client_id` holds; returns the changes to broadcast.
    pub fn unlock(
        &mut self,
        group: &str,
        client_id: &str,
        mqs: &[MessageQueue],
    ) -> Vec<LockChange> {
        let mut changes = Vec::new();
        for mq in mqs {
            let key = (group.to_string(), mq.topic.clone(), mq.queue_id);
            if self
                .locks
                .get(&key)
                .is_some_and(|h| h.client_id == client_id)
            {
                self.locks.remove(&key);
                changes.push(LockChange {
                    group: group.to_string(),
                    topic: mq.topic.clone(),
                    queue_id: mq.queue_id,
                    holder: None,
                });
            }
        }
        changes
    }

    /// Applies a change decided by the state core.
    pub fn apply(&mut self, change: LockChange) {
        let key = (change.group, change.topic, change.queue_id);
        match change.holder {
            Some(h) => {
                self.locks.insert(key, h);
            }
            None => {
                self.locks.remove(&key);
            }
        }
    }

    /// True when no queue is locked (or was, without unlock).
    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    /// True when some queue of `group` has a lock that has not expired at `now` (RocketMQ's
    /// `!isLockAllExpired`: the group consumes orderly).
    pub fn group_has_live_lock(&self, group: &str, now: Instant) -> bool {
        self.locks
            .iter()
            .any(|((g, _, _), h)| g == group && h.expires > now)
    }

    /// The live holder of a queue other than the connection at `addr`, if any: a pull from
    /// `addr` must then be refused.
    pub fn held_by_other(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        addr: &str,
        now: Instant,
    ) -> Option<&Holder> {
        self.locks
            .get(&(group.to_string(), topic.to_string(), queue_id))
            .filter(|h| h.expires > now && h.addr != addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_rocketmq_json() {
        let req: LockBatchRequestBody = serde_json::from_str(
            r#"{"clientId":"c1","consumerGroup":"g","mqSet":[{"brokerName":"broker-a","queueId":1,"topic":"T"}],"onlyThisBroker":false}"#,
        )
        .unwrap();
        assert_eq!(req.client_id, "c1");
        assert_eq!(req.mq_set[0].queue_id, 1);
        let rsp = LockBatchResponseBody {
            lock_ok_mq_set: req.mq_set.clone(),
        };
        assert_eq!(
            serde_json::to_string(&rsp).unwrap(),
            r#"{"lockOKMQSet":[{"topic":"T","brokerName":"broker-a","queueId":1}]}"#
        );
    }

    #[test]
    fn one_holder_per_queue_until_expiry() {
        let mq = |q| MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: q,
        };
        let ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut t = LockTable::default();
        let (held, changes) = t.try_lock("g", "c1", "a1", &[mq(0), mq(1)], t0, ttl);
        assert_eq!(held, [mq(0), mq(1)]);
        assert_eq!(changes.len(), 2);
        // Another client gets only the free queue.
        let (held, _) = t.try_lock("g", "c2", "a2", &[mq(1), mq(2)], t0, ttl);
        assert_eq!(held, [mq(2)]);
        // Another group is independent.
        assert_eq!(t.try_lock("h", "c2", "a2", &[mq(1)], t0, ttl).0, [mq(1)]);
        assert!(t.held_by_other("g", "T", 1, "a2", t0).is_some());
        assert!(t.held_by_other("g", "T", 1, "a1", t0).is_none());
        // Renewal by the holder, then expiry.
        let t1 = t0 + Duration::from_secs(50);
        assert_eq!(t.try_lock("g", "c1", "a1", &[mq(1)], t1, ttl).0, [mq(1)]);
        let t2 = t0 + Duration::from_secs(100);
        assert!(t.try_lock("g", "c2", "a2", &[mq(1)], t2, ttl).0.is_empty());
        assert!(t.held_by_other("g", "T", 0, "a2", t2).is_none(), "expired");
        assert_eq!(t.try_lock("g", "c2", "a2", &[mq(0)], t2, ttl).0, [mq(0)]);
        // Unlock only by the holder.
        assert!(t.unlock("g", "c2", &[mq(1)]).is_empty());
        let changes = t.unlock("g", "c1", &[mq(1)]);
        assert_eq!(changes[0].holder, None);
        let mut replica = LockTable::default();
        for c in changes {
            replica.apply(c);
        }
        assert!(replica.locks.is_empty());
    }
}
