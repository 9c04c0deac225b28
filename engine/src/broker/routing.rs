//! Which core owns a queue shard `(topic, queueId)`.
//!
//! `owner = (fnv1a32(topic bytes) + (queueId as u32)) mod cores`, with FNV-1a's 32-bit parameters
//! (offset basis `0x811c9dc5`, prime `0x01000193`) and the sum taken in 64 bits. Consecutive queue
//! ids of one topic land on consecutive cores, so a topic's queues spread evenly; the function never
//! changes between runs, so a restart with the same `--cores` finds every queue where it left it.
//! (Changing `--cores` moves queues to other shards' stores: their history stays readable only
//! through the old shard, which Tern does not yet migrate.)

/// Core holding broker-wide state that is not per queue: consumer group membership (heartbeats),
/// consumer offsets, and the persisted topic and subscription group files.
pub const STATE_CORE: usize = 0;

/// True for the requests answered only on [`STATE_CORE`], which holds the committed offsets,
/// the delay offsets and consumer group membership; [`super::core::Core::handle`] forwards them
/// there, as they came, from any other core.
pub(crate) fn answered_on_state_core(code: i32) -> bool {
    use tern_net::code::request;
    matches!(
        code,
        request::QUERY_CONSUMER_OFFSET
            | request::UPDATE_CONSUMER_OFFSET
            | request::GET_CONSUMER_LIST_BY_GROUP
            | request::GET_CONSUMER_CONNECTION_LIST
            | request::GET_ALL_DELAY_OFFSET
            | request::QUERY_TOPIC_CONSUME_BY_WHO
            | request::CLONE_GROUP_OFFSET
            | request::INVOKE_BROKER_TO_RESET_OFFSET
            | request::GET_ALL_CONSUMER_OFFSET
    )
}

/// FNV-1a, 32 bits.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The core (0..`cores`) that owns `(topic, queue_id)`. `cores` of 0 is treated as 1.
pub fn owner_core(topic: &str, queue_id: i32, cores: usize) -> usize {
    let cores = cores.max(1) as u64;
    let sum = u64::from(fnv1a32(topic.as_bytes())) + u64::from(queue_id as u32);
    (sum % cores) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn owner_is_stable_and_spreads_queues() {
        assert_eq!(owner_core("TopicTest", 3, 1), 0);
        let base = owner_core("TopicTest", 0, 4);
        for q in 0..8 {
            assert_eq!(owner_core("TopicTest", q, 4), (base + q as usize) % 4);
        }
        // Fixed value: must never change between releases.
        assert_eq!(
            owner_core("TopicTest", 0, 2),
            (fnv1a32(b"TopicTest") % 2) as usize
        );
        assert_eq!(owner_core("t", 0, 0), 0);
    }
}
