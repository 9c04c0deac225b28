//! Choosing the queue of an ordered send (RocketMQ's `MessageQueueSelector`): messages that must be
//! consumed in order (one order id's events) go to one queue.

use super::message::Message;
use super::route::MessageQueue;

/// Picks one of a topic's writable `queues` (never empty) for `msg`, given the caller's `arg`
/// (an order id, for example). The result is taken modulo `queues.len()`.
///
/// Closures `Fn(&[MessageQueue], &Message, &A) -> usize` are selectors.
pub trait QueueSelector<A: ?Sized> {
    /// The index of the chosen queue.
    fn select(&self, queues: &[MessageQueue], msg: &Message, arg: &A) -> usize;
}

impl<A: ?Sized, F> QueueSelector<A> for F
where
    F: Fn(&[MessageQueue], &Message, &A) -> usize,
{
    fn select(&self, queues: &[MessageQueue], msg: &Message, arg: &A) -> usize {
        self(queues, msg, arg)
    }
}

/// RocketMQ's `SelectMessageQueueByHash`: `|hash(arg)| % queues`, with Java's hash codes
/// (`String.hashCode` for strings, the value itself for integers), so a Rust and a Java producer
/// put the same order id on the same queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectByHash;

impl QueueSelector<str> for SelectByHash {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, arg: &str) -> usize {
        by_hash(java_string_hash(arg), queues.len())
    }
}

impl QueueSelector<i32> for SelectByHash {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, arg: &i32) -> usize {
        by_hash(*arg, queues.len())
    }
}

impl QueueSelector<i64> for SelectByHash {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, arg: &i64) -> usize {
        // Java's Long.hashCode.
        by_hash((*arg ^ (*arg >> 32)) as i32, queues.len())
    }
}

fn by_hash(hash: i32, n: usize) -> usize {
    // Math.abs(Integer.MIN_VALUE) stays negative in Java; unsigned_abs keeps it in range here.
    (hash.unsigned_abs() as usize) % n.max(1)
}

/// Java's `String.hashCode` (UTF-16 code units, wrapping arithmetic).
pub(crate) fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n).map(|i| MessageQueue::new("T", "b", i)).collect()
    }

    #[test]
    fn java_hash_codes() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("order-42"), 1_234_255_197);
    }

    #[test]
    fn hash_selector_is_stable_per_order_id() {
        let qs = queues(4);
        let m = Message::new("T", "x");
        let a = SelectByHash.select(&qs, &m, "order-42");
        assert_eq!(a, 1_234_255_197 % 4);
        assert_eq!(SelectByHash.select(&qs, &m, "order-42"), a);
        assert_eq!(SelectByHash.select(&qs, &m, &7i32), 3);
        assert_eq!(SelectByHash.select(&qs, &m, &-6i32), 2);
        assert!(SelectByHash.select(&qs, &m, &i32::MIN) < 4);
    }

    #[test]
    fn closures_select_like_the_seed_example() {
        let by_index = |qs: &[MessageQueue], _: &Message, id: &usize| *id % qs.len();
        assert_eq!(by_index.select(&queues(4), &Message::new("T", "x"), &6), 2);
    }
}
