//! Settings of in-process brokers (`Broker::start`) under test.

use std::path::Path;

use tern_engine::broker::BrokerConfig;

/// A broker storing under `dir`, listening on an ephemeral port of 127.0.0.1, with no reachable
/// nameserver (registration fails quietly in the background), 4 MiB commit-log files and 4
/// queues per auto-created topic; then `extra` settings applied in order (any key may be set
/// again). Panics on a key or value the broker refuses.
pub fn broker_config(dir: &Path, extra: &[(&str, &str)]) -> BrokerConfig {
    let mut c = BrokerConfig::default();
    let store = dir.display().to_string();
    let commit_log = (4 << 20).to_string();
    for (k, v) in [
        ("storePathRootDir", store.as_str()),
        ("listenPort", "0"),
        ("brokerIP1", "127.0.0.1"),
        ("namesrvAddr", "127.0.0.1:1"),
        ("mappedFileSizeCommitLog", commit_log.as_str()),
        ("defaultTopicQueueNums", "4"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e:?}"));
    }
    c
}

/// `mappedFileSizeConsumeQueue` of 1000 entries (20 bytes each): small consume-queue files.
pub const SMALL_CONSUME_QUEUE: (&str, &str) = ("mappedFileSizeConsumeQueue", "20000");
