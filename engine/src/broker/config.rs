//! Broker configuration: RocketMQ's `broker.properties` keys with Tern's defaults, applied one entry
//! at a time so a file can be loaded, overridden by flags and printed back.
//!
//! Keys are routed in this order: broker keys below, then [`StoreConfig::set`] for the storage keys,
//! then the keys RocketMQ knows whose paths Tern derives per shard (accepted with a log line), and
//! anything else is reported back as unknown (the caller warns with its line number).
//!
//! | key | field | default |
//! |---|---|---|
//! | brokerClusterName | `cluster_name` | DefaultCluster |
//! | brokerName | `broker_name` | broker-a |
//! | brokerId | `broker_id` | 0 |
//! | namesrvAddr | `namesrv_addrs` (`;`-separated) | 127.0.0.1:9876 |
//! | brokerIP1 | `broker_ip` | first non-loopback IPv4, else 127.0.0.1 |
//! | listenPort | `listen_port` | 10911 |
//! | defaultTopicQueueNums | `default_topic_queue_nums` | 8 |
//! | autoCreateTopicEnable | `auto_create_topic_enable` | true |
//! | autoCreateSubscriptionGroup | `auto_create_subscription_group` | true |
//! | brokerPermission | `broker_permission` | 6 (read, write) |
//! | brokerRole | `broker_role` | ASYNC_MASTER |
//! | longPollingEnable | `long_polling_enable` | true |
//! | shortPollingTimeMills | `short_polling_time` | 1000 ms |
//! | registerNameServerPeriod | `register_period` | 30000 ms |
//! | flushConsumerOffsetInterval | `flush_offset_interval` | 5000 ms |
//! | cleanResourceInterval | `clean_resource_interval` (retention passes) | 10000 ms |
//! | transactionTimeOut | `transaction_timeout` (a half message is checked once this old) | 6000 ms |
//! | transactionCheckMax | `transaction_check_max` (checks before a half is given up) | 15 |
//! | transactionCheckInterval | `transaction_check_interval` | 30000 ms |
//! | rebalanceLockMaxLiveTime | `rebalance_lock_max_live_time` (RocketMQ's system property `rocketmq.broker.rebalance.lockMaxLiveTime`) | 60000 ms |
//! | metricsPort | `metrics_port` (Prometheus `/metrics`, 0 = off) | 0 |
//! | serverChannelMaxIdleTimeSeconds | `server_channel_max_idle` (0 = never) | 120 s |
//! | storePathRootDir, maxMessageSize, … | `store` ([`StoreConfig`]) | store root `./data/broker` |
//! | haListenPort, haSendHeartbeatInterval, … | `ha` ([`super::ha::config`]) | RocketMQ's |
//!
//! Each core's store lives under `<storePathRootDir>/core-<k>/` (the store's own layout).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_store::config::StoreConfig;

use crate::properties::{self, PropertiesError};

/// Keys RocketMQ accepts whose values Tern computes itself (each shard has its own consume queue,
/// index, checkpoint and abort file under `<storePathRootDir>/core-<k>/`).
pub const DERIVED_KEYS: &[&str] = &[
    "storePathConsumeQueue",
    "storePathIndex",
    "storeCheckpoint",
    "abortFile",
];

/// A broker's role (RocketMQ `BrokerRole`); Tern runs masters only and records the role for
/// registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    /// `ASYNC_MASTER`.
    AsyncMaster,
    /// `SYNC_MASTER`.
    SyncMaster,
    /// `SLAVE`.
    Slave,
}

impl BrokerRole {
    /// RocketMQ's spelling.
    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

/// A value that does not fit its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {key}: {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What was expected.
    pub reason: String,
}

/// Errors loading a properties file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] PropertiesError),
    /// An entry has a bad value.
    #[error("{path}:{line}: {source}")]
    Value {
        /// The file.
        path: String,
        /// The entry's line.
        line: usize,
        /// The problem.
        source: ConfigError,
    },
}

/// How [`BrokerConfig::set`] used a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// A broker or store setting, applied.
    Applied,
    /// A RocketMQ key Tern derives by itself ([`DERIVED_KEYS`]); ignored.
    Derived,
    /// A RocketMQ key with no counterpart in Tern ([`super::knob_table::NO_EFFECT_KEYS`]); ignored.
    NoEffect,
    /// Not a key Tern knows.
    Unknown,
}

/// A key of a loaded file that Tern does not know, with its location (for a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// The key.
    pub key: String,
    /// Its 1-based line.
    pub line: usize,
}

/// Everything the broker needs to start. See the module table for keys and defaults.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Cluster the broker registers in.
    pub cluster_name: String,
    /// Broker name (shared by a master and its slaves).
    pub broker_name: String,
    /// 0 for a master.
    pub broker_id: i64,
    /// Nameservers to register with.
    pub namesrv_addrs: Vec<String>,
    /// Address advertised to the nameserver and stamped into stored messages.
    pub broker_ip: IpAddr,
    /// TCP port the broker listens on (all interfaces).
    pub listen_port: u16,
    /// Queue count of auto-created topics (capped by TBW102's).
    pub default_topic_queue_nums: i32,
    /// Whether sending to an unknown topic creates it from TBW102.
    pub auto_create_topic_enable: bool,
    /// Whether an unknown consumer group is created on first use.
    pub auto_create_subscription_group: bool,
    /// Broker-wide permission bits (PermName).
    pub broker_permission: i32,
    /// Role registered with the nameserver.
    pub broker_role: BrokerRole,
    /// Whether pulls may be suspended until a message arrives.
    pub long_polling_enable: bool,
    /// Suspension of a pull when long polling is off.
    pub short_polling_time: Duration,
    /// Interval between registrations with the nameservers.
    pub register_period: Duration,
    /// Interval between consumer offset persists.
    pub flush_offset_interval: Duration,
    /// Interval between retention passes on each core.
    pub clean_resource_interval: Duration,
    /// Age (since birth) from which an unresolved half message is checked back with its producer.
    pub transaction_timeout: Duration,
    /// Checks of one half message before it is moved to `TRANS_CHECK_MAX_TIME_TOPIC`.
    pub transaction_check_max: u32,
    /// Interval between rounds of the transaction check service.
    pub transaction_check_interval: Duration,
    /// How long an orderly-consumption queue lock lives without renewal.
    pub rebalance_lock_max_live_time: Duration,
    /// Port of the Prometheus `/metrics` endpoint (all interfaces); 0 turns it off.
    pub metrics_port: u16,
    /// A client connection with no complete frame for this long is closed; zero never closes.
    pub server_channel_max_idle: Duration,
    /// Storage settings; each core opens shard `k` under `store_path_root_dir/core-<k>`.
    pub store: StoreConfig,
    /// Replication settings (keys in [`super::ha::config`]).
    pub ha: super::ha::HaConfig,
    /// The file UPDATE_BROKER_CONFIG persists the effective settings to (the `-c` file); `None`:
    /// `<storePathRootDir>/config/broker.properties`. Not a properties key.
    pub config_file: Option<PathBuf>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let store = StoreConfig {
            store_path_root_dir: PathBuf::from("./data/broker"),
            ..StoreConfig::default()
        };
        BrokerConfig {
            cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            namesrv_addrs: vec!["127.0.0.1:9876".into()],
            broker_ip: local_ipv4(),
            listen_port: 10911,
            default_topic_queue_nums: 8,
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            broker_permission: 6,
            broker_role: BrokerRole::AsyncMaster,
            long_polling_enable: true,
            short_polling_time: Duration::from_millis(1000),
            register_period: Duration::from_secs(30),
            flush_offset_interval: Duration::from_secs(5),
            clean_resource_interval: Duration::from_secs(10),
            transaction_timeout: Duration::from_secs(6),
            transaction_check_max: 15,
            transaction_check_interval: Duration::from_secs(30),
            rebalance_lock_max_live_time: Duration::from_secs(60),
            metrics_port: 0,
            server_channel_max_idle: tern_net::transport::DEFAULT_IDLE_TIMEOUT,
            store,
            ha: super::ha::HaConfig::default(),
            config_file: None,
        }
    }
}

/// The first non-loopback IPv4 address of this host, or 127.0.0.1 (found by the route a UDP socket
/// would take; nothing is sent).
fn local_ipv4() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.255.255.255:1")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn bad(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| bad(key, value, what))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, value, "expected true or false")),
    }
}

fn millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    parse::<u64>(key, value, "expected milliseconds").map(Duration::from_millis)
}

/// Splits RocketMQ's `;`-separated address list, dropping empty items.
pub fn split_addrs(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl BrokerConfig {
    /// Applies one `key = value` entry. A bad value for a known key is an error and changes nothing.
    pub fn set(&mut self, key: &str, value: &str) -> Result<KeyUse, ConfigError> {
        let v = value.trim();
        match key {
            "brokerClusterName" => self.cluster_name = v.to_string(),
            "brokerName" => self.broker_name = v.to_string(),
            "brokerId" => self.broker_id = parse(key, v, "expected an integer")?,
            "namesrvAddr" => self.namesrv_addrs = split_addrs(v),
            "brokerIP1" => self.broker_ip = parse(key, v, "expected an IP address")?,
            "listenPort" => self.listen_port = parse(key, v, "expected a TCP port")?,
            "defaultTopicQueueNums" => {
                let n: i32 = parse(key, v, "expected a queue count")?;
                if !(1..=1024).contains(&n) {
                    return Err(bad(key, v, "expected 1..=1024"));
                }
                self.default_topic_queue_nums = n
            }
            "autoCreateTopicEnable" => self.auto_create_topic_enable = parse_bool(key, v)?,
            "autoCreateSubscriptionGroup" => {
                self.auto_create_subscription_group = parse_bool(key, v)?
            }
            "brokerPermission" => self.broker_permission = parse(key, v, "expected perm bits")?,
            "brokerRole" => {
                self.broker_role = match v {
                    "ASYNC_MASTER" => BrokerRole::AsyncMaster,
                    "SYNC_MASTER" => BrokerRole::SyncMaster,
                    "SLAVE" => BrokerRole::Slave,
                    _ => return Err(bad(key, v, "expected ASYNC_MASTER, SYNC_MASTER or SLAVE")),
                }
            }
            "longPollingEnable" => self.long_polling_enable = parse_bool(key, v)?,
            "shortPollingTimeMills" => self.short_polling_time = millis(key, v)?,
            "registerNameServerPeriod" => self.register_period = millis(key, v)?,
            "flushConsumerOffsetInterval" => self.flush_offset_interval = millis(key, v)?,
            "cleanResourceInterval" => self.clean_resource_interval = millis(key, v)?,
            "transactionTimeOut" => self.transaction_timeout = millis(key, v)?,
            "transactionCheckMax" => {
                self.transaction_check_max = parse(key, v, "expected a check count")?
            }
            "transactionCheckInterval" => self.transaction_check_interval = millis(key, v)?,
            "rebalanceLockMaxLiveTime" => self.rebalance_lock_max_live_time = millis(key, v)?,
            _ if self.ha.set(key, v).map_err(|reason| bad(key, v, reason))? => {}
            "metricsPort" => self.metrics_port = parse(key, v, "expected a TCP port")?,
            "serverChannelMaxIdleTimeSeconds" => {
                self.server_channel_max_idle =
                    Duration::from_secs(parse(key, v, "expected whole seconds")?)
            }
            _ => {
                return match self.store.set(key, v) {
                    Ok(true) => Ok(KeyUse::Applied),
                    Ok(false) if DERIVED_KEYS.contains(&key) => Ok(KeyUse::Derived),
                    Ok(false) if super::knob_table::NO_EFFECT_KEYS.contains(&key) => {
                        Ok(KeyUse::NoEffect)
                    }
                    Ok(false) => Ok(KeyUse::Unknown),
                    Err(e) => Err(bad(&e.key, &e.value, e.reason)),
                }
            }
        }
        Ok(KeyUse::Applied)
    }

    /// Applies every entry of the properties file at `path` over `self`; returns the unknown keys.
    pub fn load_file(&mut self, path: &Path) -> Result<Vec<UnknownKey>, LoadError> {
        let entries = properties::load(path)?;
        let mut unknown = Vec::new();
        for p in entries {
            match self.set(&p.key, &p.value) {
                Ok(KeyUse::Applied) => {}
                Ok(KeyUse::Derived) => {
                    tracing::info!(key = %p.key, line = p.line, "ignored: Tern derives this path per shard")
                }
                Ok(KeyUse::NoEffect) => {
                    tracing::info!(key = %p.key, line = p.line, "ignored: no effect in Tern")
                }
                Ok(KeyUse::Unknown) => unknown.push(UnknownKey {
                    key: p.key,
                    line: p.line,
                }),
                Err(source) => {
                    return Err(LoadError::Value {
                        path: path.display().to_string(),
                        line: p.line,
                        source,
                    })
                }
            }
        }
        Ok(unknown)
    }

    /// Directory of the broker's JSON state files (`topics.json`, …).
    pub fn config_dir(&self) -> PathBuf {
        self.store.store_path_root_dir.join("config")
    }

    /// `ip:port` as registered with nameservers and written into stored messages.
    pub fn broker_addr(&self) -> String {
        std::net::SocketAddr::new(self.broker_ip, self.listen_port).to_string()
    }

    /// The settings as `key=value` lines (for `-p`), values escaped so the text loads back as the
    /// same settings.
    pub fn to_properties(&self) -> String {
        let s = &self.store;
        let lines = [
            ("brokerClusterName", self.cluster_name.clone()),
            ("brokerName", self.broker_name.clone()),
            ("brokerId", self.broker_id.to_string()),
            ("namesrvAddr", self.namesrv_addrs.join(";")),
            ("brokerIP1", self.broker_ip.to_string()),
            ("listenPort", self.listen_port.to_string()),
            (
                "defaultTopicQueueNums",
                self.default_topic_queue_nums.to_string(),
            ),
            (
                "autoCreateTopicEnable",
                self.auto_create_topic_enable.to_string(),
            ),
            (
                "autoCreateSubscriptionGroup",
                self.auto_create_subscription_group.to_string(),
            ),
            ("brokerPermission", self.broker_permission.to_string()),
            ("brokerRole", self.broker_role.name().to_string()),
            ("longPollingEnable", self.long_polling_enable.to_string()),
            (
                "shortPollingTimeMills",
                self.short_polling_time.as_millis().to_string(),
            ),
            (
                "registerNameServerPeriod",
                self.register_period.as_millis().to_string(),
            ),
            (
                "flushConsumerOffsetInterval",
                self.flush_offset_interval.as_millis().to_string(),
            ),
            (
                "cleanResourceInterval",
                self.clean_resource_interval.as_millis().to_string(),
            ),
            ("transactionTimeOut", ms(self.transaction_timeout)),
            (
                "transactionCheckMax",
                self.transaction_check_max.to_string(),
            ),
            (
                "transactionCheckInterval",
                ms(self.transaction_check_interval),
            ),
            (
                "rebalanceLockMaxLiveTime",
                ms(self.rebalance_lock_max_live_time),
            ),
            ("metricsPort", self.metrics_port.to_string()),
            (
                "serverChannelMaxIdleTimeSeconds",
                self.server_channel_max_idle.as_secs().to_string(),
            ),
            (
                "storePathRootDir",
                s.store_path_root_dir.display().to_string(),
            ),
            (
                "mappedFileSizeCommitLog",
                s.mapped_file_size_commit_log.to_string(),
            ),
            (
                "mappedFileSizeConsumeQueue",
                s.mapped_file_size_consume_queue.to_string(),
            ),
            (
                "flushDiskType",
                match s.flush_disk_type {
                    tern_store::config::FlushDiskType::Sync => "SYNC_FLUSH",
                    _ => "ASYNC_FLUSH",
                }
                .to_string(),
            ),
            ("maxMessageSize", s.max_message_size.to_string()),
            ("deleteWhen", s.delete_when.clone()),
            ("fileReservedTime", s.file_reserved_time_hours.to_string()),
            (
                "diskMaxUsedSpaceRatio",
                s.disk_max_used_space_ratio.to_string(),
            ),
            (
                "diskSpaceWarningLevelRatio",
                s.disk_space_warning_level_ratio.to_string(),
            ),
            (
                "diskSpaceCleanForciblyRatio",
                s.disk_space_clean_forcibly_ratio.to_string(),
            ),
            ("flushIntervalCommitLog", ms(s.flush_interval_commit_log)),
            (
                "flushCommitLogLeastPages",
                s.flush_commit_log_least_pages.to_string(),
            ),
            (
                "flushCommitLogThoroughInterval",
                ms(s.flush_commit_log_thorough_interval),
            ),
            (
                "flushIntervalConsumeQueue",
                ms(s.flush_interval_consume_queue),
            ),
            (
                "flushConsumeQueueLeastPages",
                s.flush_consume_queue_least_pages.to_string(),
            ),
            (
                "flushConsumeQueueThoroughInterval",
                ms(s.flush_consume_queue_thorough_interval),
            ),
            ("syncFlushTimeout", ms(s.sync_flush_timeout)),
            ("maxHashSlotNum", s.max_hash_slot_num.to_string()),
            ("maxIndexNum", s.max_index_num.to_string()),
            ("messageDelayLevel", s.message_delay_level.to_string()),
            (
                "commitLogIoMode",
                match s.commit_log_io_mode {
                    tern_store::config::IoMode::Direct => "direct",
                    _ => "mmap",
                }
                .to_string(),
            ),
        ];
        let mut lines = Vec::from(lines);
        self.ha.print(self.listen_port, &mut lines);
        let mut out = String::new();
        let commit_log = s
            .store_path_commit_log
            .as_ref()
            .map(|p| ("storePathCommitLog", p.display().to_string()));
        for (k, v) in lines.into_iter().chain(commit_log) {
            out.push_str(k);
            out.push('=');
            out.push_str(&properties::escape_value(&v));
            out.push('\n');
        }
        out
    }
}

/// A duration as RocketMQ's millisecond settings print it.
fn ms(d: std::time::Duration) -> String {
    d.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_BROKER_A: &str = "\
#所属集群名字
brokerClusterName=rocketmq-cluster
brokerName=broker-a
brokerId=0
namesrvAddr=rocketmq-nameserver1:9876;rocketmq-nameserver2:9876
defaultTopicQueueNums=4
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
listenPort=10911
deleteWhen=04
fileReservedTime=120
mapedFileSizeCommitLog=1073741824
mapedFileSizeConsumeQueue=300000
#destroyMapedFileIntervalForcibly=120000
diskMaxUsedSpaceRatio=88
storePathRootDir=/usr/local/rocketmq/store
storePathCommitLog=/usr/local/rocketmq/store/commitlog
storePathConsumeQueue=/usr/local/rocketmq/store/consumequeue
storePathIndex=/usr/local/rocketmq/store/index
storeCheckpoint=/usr/local/rocketmq/store/checkpoint
abortFile=/usr/local/rocketmq/store/abort
maxMessageSize=65536
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
sendMessageThreadPoolNums=128
noSuchKey=1
";

    #[test]
    fn defaults() {
        let c = BrokerConfig::default();
        assert_eq!(c.listen_port, 10911);
        assert_eq!(c.namesrv_addrs, vec!["127.0.0.1:9876"]);
        assert_eq!(c.broker_name, "broker-a");
        assert_eq!(c.cluster_name, "DefaultCluster");
        assert_eq!(c.broker_id, 0);
        assert_eq!(c.store.store_path_root_dir, PathBuf::from("./data/broker"));
        assert_eq!(c.config_dir(), PathBuf::from("./data/broker/config"));
    }

    #[test]
    fn seed_file_loads_unchanged_and_reports_unknown_keys_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker-a.properties");
        std::fs::write(&path, SEED_BROKER_A).unwrap();
        let mut c = BrokerConfig::default();
        let unknown = c.load_file(&path).unwrap();
        assert_eq!(
            unknown,
            vec![UnknownKey {
                key: "noSuchKey".into(),
                line: 26
            }]
        );
        assert_eq!(c.cluster_name, "rocketmq-cluster");
        assert_eq!(
            c.namesrv_addrs,
            vec!["rocketmq-nameserver1:9876", "rocketmq-nameserver2:9876"]
        );
        assert_eq!(c.default_topic_queue_nums, 4);
        assert_eq!(c.store.max_message_size, 65536);
        assert_eq!(c.store.mapped_file_size_consume_queue, 300000);
        assert_eq!(c.store.file_reserved_time_hours, 120);
        assert_eq!(c.store.disk_max_used_space_ratio, 88);
        assert_eq!(
            c.store.commit_log_dir(),
            PathBuf::from("/usr/local/rocketmq/store/commitlog")
        );
        // Printing and re-reading gives the same settings.
        let printed = c.to_properties();
        let mut again = BrokerConfig::default();
        for p in properties::parse(&printed) {
            assert_eq!(
                again.set(&p.key, &p.value),
                Ok(KeyUse::Applied),
                "{}",
                p.key
            );
        }
        assert_eq!(again.to_properties(), printed);
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.properties");
        std::fs::write(&path, "brokerName=x\nlistenPort=ninety\n").unwrap();
        let mut c = BrokerConfig::default();
        match c.load_file(&path) {
            Err(LoadError::Value { line, source, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(source.key, "listenPort");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(c.set("maxMessageSize", "big").is_err());
        assert!(c.set("brokerRole", "LEADER").is_err());
        assert!(c.set("autoCreateTopicEnable", "yes").is_err());
    }
}
