//! How much one pull may copy into memory.
//!
//! A pull whose records are sent zero-copy (`sendfile` from the CommitLog, on the core that owns
//! the connection) costs no broker memory beyond the file regions, so it keeps the client's
//! `maxMsgNums` and byte limit. A pull whose body has to be copied (forwarded from another core,
//! or records still in a write buffer) is capped like RocketMQ caps a pull served from memory
//! (`MessageStoreConfig.maxTransferBytesOnMessageInMemory` = 256 KiB and
//! `maxTransferCountOnMessageInMemory` = 32, checked in `DefaultMessageStore.isTheBatchFull`,
//! store/src/main/java/org/apache/rocketmq/store/). The first record is always returned, however
//! large, so a consumer never stalls on a big message.
//!
//! With the transport's bound on queued output this bounds a connection's pull memory by
//! `max_in_flight` × 256 KiB in handlers plus the queued-output bound.

/// Most bytes a copied pull body holds (besides a single larger first record).
pub(crate) const MAX_COPIED_BYTES: i32 = 256 * 1024;
/// Most records a copied pull body holds.
pub(crate) const MAX_COPIED_MSGS: i32 = 32;

/// The `(max_msgs, max_bytes)` of a pull whose body will be copied.
pub(crate) fn capped(max_msgs: i32, max_bytes: i32) -> (i32, i32) {
    (
        max_msgs.min(MAX_COPIED_MSGS),
        max_bytes.min(MAX_COPIED_BYTES),
    )
}

/// True when a copied body of `count` records and `bytes` bytes is over the caps (and so has to be
/// fetched again with [`capped`] limits).
pub(crate) fn over_cap(count: usize, bytes: usize) -> bool {
    count > MAX_COPIED_MSGS as usize || (count > 1 && bytes > MAX_COPIED_BYTES as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_only_lower_the_client_limits() {
        assert_eq!(capped(1000, i32::MAX), (32, 256 * 1024));
        assert_eq!(capped(4, 1024), (4, 1024));
    }

    #[test]
    fn a_single_large_record_is_not_over_the_cap() {
        assert!(!over_cap(1, 4 * 1024 * 1024));
        assert!(over_cap(2, 256 * 1024 + 1));
        assert!(over_cap(33, 33));
        assert!(!over_cap(32, 256 * 1024));
    }
}
