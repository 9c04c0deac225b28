//! What each broker key means (for `--help`), which keys `-m` prints, and the RocketMQ keys Tern
//! accepts without acting on them.
//!
//! The flags themselves are generated from the keys [`BrokerConfig::to_properties`] prints (see
//! [`crate::knobs`]), so a key added to the config gets a flag and an environment variable without
//! an entry here; an entry only adds its help text.

use super::config::BrokerConfig;
use crate::knobs::Knob;

/// Environment prefix of the broker's knobs: `TERN_BROKER_LISTEN_PORT`, ….
pub const ENV_PREFIX: &str = "TERN_BROKER_";

/// `(key, help with unit, printed by -m)`.
const HELP: &[(&str, &str, bool)] = &[
    ("brokerClusterName", "cluster the broker registers in", true),
    (
        "brokerName",
        "broker name, shared by a master and its slaves",
        true,
    ),
    ("brokerId", "0 for a master, >0 for a slave", true),
    (
        "namesrvAddr",
        "nameserver addresses, ';'-separated host:port",
        true,
    ),
    (
        "brokerIP1",
        "IP advertised to nameservers and stamped into messages",
        true,
    ),
    ("listenPort", "TCP port for clients (all interfaces)", true),
    (
        "defaultTopicQueueNums",
        "queues of an auto-created topic (1..=1024)",
        false,
    ),
    (
        "autoCreateTopicEnable",
        "create unknown topics on first send (true|false)",
        true,
    ),
    (
        "autoCreateSubscriptionGroup",
        "create unknown consumer groups on first use (true|false)",
        true,
    ),
    (
        "brokerPermission",
        "permission bits: 2 write, 4 read, 6 both",
        false,
    ),
    ("brokerRole", "ASYNC_MASTER, SYNC_MASTER or SLAVE", true),
    (
        "longPollingEnable",
        "hold pulls until a message arrives (true|false)",
        false,
    ),
    (
        "shortPollingTimeMills",
        "pull suspension without long polling, milliseconds",
        false,
    ),
    (
        "registerNameServerPeriod",
        "re-registration period with nameservers, milliseconds",
        false,
    ),
    (
        "flushConsumerOffsetInterval",
        "consumer offset persist period, milliseconds",
        false,
    ),
    (
        "cleanResourceInterval",
        "retention pass period, milliseconds",
        false,
    ),
    (
        "storePathRootDir",
        "store root; core k uses <dir>/core-<k>",
        true,
    ),
    (
        "storePathCommitLog",
        "CommitLog directory (default <storePathRootDir>/commitlog)",
        true,
    ),
    (
        "mappedFileSizeCommitLog",
        "bytes per CommitLog segment",
        true,
    ),
    (
        "mappedFileSizeConsumeQueue",
        "bytes per ConsumeQueue file (20 bytes per entry)",
        false,
    ),
    (
        "flushDiskType",
        "ASYNC_FLUSH (ack from memory) or SYNC_FLUSH (ack after fdatasync)",
        true,
    ),
    ("maxMessageSize", "largest message body, bytes", true),
    (
        "deleteWhen",
        "hours of day expired files are deleted, e.g. 04 or 04;16",
        true,
    ),
    (
        "fileReservedTime",
        "hours a CommitLog segment is kept after its last write",
        true,
    ),
    (
        "diskMaxUsedSpaceRatio",
        "disk use percent that forces cleanup",
        true,
    ),
    (
        "flushIntervalCommitLog",
        "async CommitLog flusher period, milliseconds",
        true,
    ),
    (
        "flushCommitLogLeastPages",
        "dirty 4 KiB pages that trigger an async flush",
        false,
    ),
    (
        "flushCommitLogThoroughInterval",
        "full async flush at least this often, milliseconds",
        false,
    ),
    (
        "flushIntervalConsumeQueue",
        "ConsumeQueue/index flush period, milliseconds",
        false,
    ),
    (
        "flushConsumeQueueLeastPages",
        "dirty 4 KiB ConsumeQueue pages that trigger a flush",
        false,
    ),
    (
        "flushConsumeQueueThoroughInterval",
        "full ConsumeQueue flush at least this often, milliseconds",
        false,
    ),
    (
        "syncFlushTimeout",
        "SYNC_FLUSH wait before FLUSH_DISK_TIMEOUT, milliseconds",
        false,
    ),
    ("maxHashSlotNum", "hash slots per index file", true),
    ("maxIndexNum", "entries per index file", false),
    (
        "commitLogIoMode",
        "CommitLog writes: mmap (page cache) or direct (O_DIRECT + io_uring)",
        true,
    ),
    (
        "metricsPort",
        "HTTP port of the Prometheus /metrics endpoint, 0 = off",
        true,
    ),
    (
        "serverChannelMaxIdleTimeSeconds",
        "close a client connection after this long without a request, seconds, 0 = never",
        false,
    ),
    (
        "transactionTimeOut",
        "age at which an unresolved half message is checked back, milliseconds",
        false,
    ),
    (
        "transactionCheckMax",
        "checks of one half message before it is given up",
        false,
    ),
    (
        "transactionCheckInterval",
        "period of the transaction check service, milliseconds",
        false,
    ),
    (
        "rebalanceLockMaxLiveTime",
        "life of an orderly queue lock without renewal, milliseconds",
        false,
    ),
    (
        "diskSpaceWarningLevelRatio",
        "disk use percent at which sends are refused",
        false,
    ),
    (
        "diskSpaceCleanForciblyRatio",
        "disk use percent at which retention deletes early",
        false,
    ),
    (
        "messageDelayLevel",
        "delay levels 1..n, space-separated durations (s, m, h, d)",
        true,
    ),
    (
        "haListenPort",
        "replication port a master serves slaves on (default listenPort + 1)",
        true,
    ),
    (
        "haSendHeartbeatInterval",
        "longest wait of a slave's replication fetch, milliseconds",
        false,
    ),
    (
        "haMaxGapNotInSync",
        "bytes a slave may lag before SYNC_MASTER counts it unavailable",
        false,
    ),
    (
        "accessMessageInMemoryMaxRatio",
        "percent of RAM a consumer may lag before pulls are steered to a slave (with slaveReadEnable)",
        false,
    ),
    (
        "slaveReadEnable",
        "whether a master steers lagging consumers to a slave (true/false)",
        false,
    ),
    (
        "slaveSyncConfigInterval",
        "period a slave copies topics, groups and offsets from its master, milliseconds",
        false,
    ),
];

/// RocketMQ broker keys Tern accepts and ignores: JVM thread pools and queues (a Tern core runs
/// everything on its own thread), features of the Java store that have no counterpart, and the
/// keys the seed guide's files carry commented out. Loading them logs an info line, not a warning.
pub const NO_EFFECT_KEYS: &[&str] = &[
    "sendMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "queryMessageThreadPoolNums",
    "adminBrokerThreadPoolNums",
    "clientManageThreadPoolNums",
    "consumerManageThreadPoolNums",
    "heartbeatThreadPoolNums",
    "endTransactionThreadPoolNums",
    "sendThreadPoolQueueCapacity",
    "pullThreadPoolQueueCapacity",
    "useReentrantLockWhenPutMessage",
    "destroyMapedFileIntervalForcibly",
    "destroyMappedFileIntervalForcibly",
    "redeleteHangedFileInterval",
    "checkTransactionMessageEnable",
    "transientStorePoolEnable",
    "warmMapedFileEnable",
    "rocketmqHome",
    "serverWorkerThreads",
    "serverSelectorThreads",
    "serverCallbackExecutorThreads",
    "serverSocketSndBufSize",
    "serverSocketRcvBufSize",
    "useEpollNativeSelector",
];

/// Keys `set` accepts that `to_properties` prints only when set.
const OPTIONAL_KEYS: &[&str] = &["storePathCommitLog"];

/// Splits `to_properties` output into `(key, value)` pairs.
fn pairs(props: &str) -> impl Iterator<Item = (&str, &str)> {
    props.lines().filter_map(|l| l.split_once('='))
}

/// One knob per key the broker prints (plus the optional ones), with help and default.
pub fn knobs() -> Vec<Knob> {
    let printed = BrokerConfig::default().to_properties();
    let mut keys: Vec<(String, String)> = pairs(&printed)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for k in OPTIONAL_KEYS {
        if !keys.iter().any(|(key, _)| key == k) {
            keys.push((k.to_string(), String::new()));
        }
    }
    keys.into_iter()
        .map(|(key, mut default)| {
            if key == "brokerIP1" {
                // The printed value is this host's address; the rule is what holds everywhere.
                default = "this host's first non-loopback IPv4, else 127.0.0.1".into();
            }
            let help = HELP
                .iter()
                .find(|(k, _, _)| *k == key)
                .map_or("broker.properties setting", |(_, h, _)| h)
                .to_string();
            let (aliases, short): (&'static [&'static str], _) = match key.as_str() {
                "namesrvAddr" => (&[], Some('n')),
                "brokerIP1" => (&["broker-ip"], None),
                "brokerClusterName" => (&["cluster-name"], None),
                _ => (&[], None),
            };
            Knob {
                key,
                default,
                help,
                aliases,
                short,
            }
        })
        .collect()
}

/// The lines of `to_properties` output that `-m` prints (RocketMQ's "important" settings).
pub fn important(props: &str) -> String {
    let mut out = String::new();
    for (k, v) in pairs(props) {
        if HELP.iter().any(|(key, _, imp)| *key == k && *imp) {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printed_key_has_help_and_a_knob() {
        let printed = BrokerConfig::default().to_properties();
        let knobs = knobs();
        for (k, _) in pairs(&printed) {
            assert!(HELP.iter().any(|(key, _, _)| *key == k), "no help for {k}");
            assert!(knobs.iter().any(|kn| kn.key == k), "no knob for {k}");
        }
        assert!(knobs.iter().any(|kn| kn.key == "storePathCommitLog"));
    }

    #[test]
    fn important_is_a_subset() {
        let printed = BrokerConfig::default().to_properties();
        let imp = important(&printed);
        assert!(imp.contains("listenPort=10911\n"));
        assert!(!imp.contains("brokerPermission"));
        assert!(imp.lines().count() < printed.lines().count());
    }
}
