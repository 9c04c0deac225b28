//! Store configuration: every storage knob under Apache RocketMQ's `broker.properties` key names and
//! with RocketMQ's defaults, plus Tern's own `commitLogIoMode`.
//!
//! [`StoreConfig::set`] applies one properties-file entry so the broker can load `broker.properties`,
//! apply what it knows and report the keys nobody knows. Both the 3.x spelling `mapedFileSize…` and
//! the 4.x spelling `mappedFileSize…` are accepted for the segment sizes.

use crate::schedule::DelayLevels;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Bytes in one page, the unit of `flushCommitLogLeastPages`.
pub const PAGE_SIZE: usize = 4096;

/// Size of one ConsumeQueue entry (offset 8 + size 4 + tag hash 8), used by the default ConsumeQueue
/// segment size of 300 000 entries.
const CONSUME_QUEUE_UNIT_SIZE: u64 = 20;

/// When a CommitLog append counts as done (RocketMQ `flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    /// `ASYNC_FLUSH`: appends return once the bytes are in memory; a background task makes them
    /// durable every `flushIntervalCommitLog` ms (RocketMQ's default).
    Async,
    /// `SYNC_FLUSH`: a producer waits until an fdatasync covering its message completed (group commit).
    Sync,
}

/// How CommitLog segments are written (Tern's `commitLogIoMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// `mmap`: a shared memory map of each preallocated segment; appends copy into the map and a flush
    /// is an msync of the dirty range on a helper thread.
    Mmap,
    /// `direct`: O_DIRECT writes through io_uring from an in-memory tail buffer, then fdatasync.
    Direct,
}

/// An invalid value for a known key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value {value:?} for store setting {key}: {reason}")]
pub struct ConfigError {
    /// The properties key.
    pub key: String,
    /// The rejected value.
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Every store setting. Field docs name the properties key and the RocketMQ default.
///
/// Default I/O mode: [`IoMode::Mmap`], chosen by measurement. On the development VM (ext4 on
/// virtio, 1 KiB messages, `store-bench`) mmap appended at 330–1140 MiB/s under ASYNC_FLUSH against
/// 440–590 MiB/s for direct, while under SYNC_FLUSH both are bound by the ~3.5 ms device flush and
/// within 10% of each other (direct slightly ahead). mmap also leaves recent messages in the page
/// cache, where sendfile serves every consumer; `direct` keeps the page cache free of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `storePathRootDir` (default `$HOME/store`).
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog` (default `<storePathRootDir>/commitlog`); `None` means the default.
    pub store_path_commit_log: Option<PathBuf>,
    /// `mappedFileSizeCommitLog` / `mapedFileSizeCommitLog`: bytes per CommitLog segment (1 GiB).
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue` / `mapedFileSizeConsumeQueue`: bytes per ConsumeQueue file
    /// (300 000 × 20).
    pub mapped_file_size_consume_queue: u64,
    /// `flushDiskType` (`ASYNC_FLUSH`).
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog`: how often the async flusher checks for dirty pages (500 ms).
    pub flush_interval_commit_log: Duration,
    /// `flushCommitLogLeastPages`: dirty 4 KiB pages that trigger an async flush (4).
    pub flush_commit_log_least_pages: u32,
    /// `flushCommitLogThoroughInterval`: an async flush of everything happens at least this often (10 s).
    pub flush_commit_log_thorough_interval: Duration,
    /// `flushIntervalConsumeQueue` (1000 ms).
    pub flush_interval_consume_queue: Duration,
    /// `flushConsumeQueueLeastPages` (2).
    pub flush_consume_queue_least_pages: u32,
    /// `flushConsumeQueueThoroughInterval` (60 s).
    pub flush_consume_queue_thorough_interval: Duration,
    /// `syncFlushTimeout`: how long a SYNC_FLUSH producer waits before FLUSH_DISK_TIMEOUT (5 s).
    pub sync_flush_timeout: Duration,
    /// `maxMessageSize`: largest message body accepted (4 MiB).
    pub max_message_size: u32,
    /// `deleteWhen`: hours of the day (`"04"`, or `"04;16"`) when expired files are deleted.
    pub delete_when: String,
    /// `fileReservedTime`: hours a CommitLog segment is kept after its last write (72).
    pub file_reserved_time_hours: u32,
    /// `diskMaxUsedSpaceRatio`: percent of the disk the store may fill before forced cleanup (75).
    pub disk_max_used_space_ratio: u32,
    /// `diskSpaceWarningLevelRatio` (RocketMQ's system property
    /// `rocketmq.broker.diskSpaceWarningLevelRatio`, here a percentage): past it writes are
    /// refused until retention frees space (90; clamped to 35..=90 as RocketMQ does).
    pub disk_space_warning_level_ratio: u32,
    /// `diskSpaceCleanForciblyRatio` (RocketMQ's `rocketmq.broker.diskSpaceCleanForciblyRatio`, a
    /// percentage): past it segments are deleted regardless of age (85; clamped to 30..=85).
    pub disk_space_clean_forcibly_ratio: u32,
    /// `diskUsageOverrideFile` (Tern; drills and tests): a file holding a used-space percentage
    /// that the disk guard reads instead of the filesystem's while it exists and parses.
    pub disk_usage_override_file: Option<PathBuf>,
    /// `maxHashSlotNum`: hash slots per index file (5 000 000).
    pub max_hash_slot_num: u32,
    /// `maxIndexNum`: entries per index file (20 000 000).
    pub max_index_num: u32,
    /// `commitLogIoMode` (Tern): `mmap` or `direct` (default `mmap`, see the type docs).
    pub commit_log_io_mode: IoMode,
    /// `messageDelayLevel`: the delay of each level of scheduled delivery (RocketMQ's default
    /// `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`).
    pub message_delay_level: DelayLevels,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        StoreConfig {
            store_path_root_dir: home.join("store"),
            store_path_commit_log: None,
            mapped_file_size_commit_log: 1024 * 1024 * 1024,
            mapped_file_size_consume_queue: 300_000 * CONSUME_QUEUE_UNIT_SIZE,
            flush_disk_type: FlushDiskType::Async,
            flush_interval_commit_log: Duration::from_millis(500),
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval: Duration::from_secs(10),
            flush_interval_consume_queue: Duration::from_millis(1000),
            flush_consume_queue_least_pages: 2,
            flush_consume_queue_thorough_interval: Duration::from_secs(60),
            sync_flush_timeout: Duration::from_secs(5),
            max_message_size: 4 * 1024 * 1024,
            delete_when: "04".to_string(),
            file_reserved_time_hours: 72,
            disk_max_used_space_ratio: 75,
            disk_space_warning_level_ratio: 90,
            disk_space_clean_forcibly_ratio: 85,
            disk_usage_override_file: None,
            max_hash_slot_num: 5_000_000,
            max_index_num: 5_000_000 * 4,
            commit_log_io_mode: IoMode::Mmap,
            message_delay_level: DelayLevels::default(),
        }
    }
}

/// A percentage, 0..=100.
fn percent(key: &str, value: &str) -> Result<u32, ConfigError> {
    let ratio: u32 = parse(key, value, "expected a percentage")?;
    if ratio > 100 {
        return Err(ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            reason: "percentage above 100",
        });
    }
    Ok(ratio)
}

fn parse<T: FromStr>(key: &str, value: &str, reason: &'static str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    })
}

fn millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    parse::<u64>(key, value, "expected milliseconds").map(Duration::from_millis)
}

fn positive_size(key: &str, value: &str) -> Result<u64, ConfigError> {
    match parse::<u64>(key, value, "expected a size in bytes")? {
        0 => Err(ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            reason: "size must be positive",
        }),
        n => Ok(n),
    }
}

impl StoreConfig {
    /// The CommitLog directory: `storePathCommitLog`, or `<storePathRootDir>/commitlog`.
    pub fn commit_log_dir(&self) -> PathBuf {
        self.store_path_commit_log
            .clone()
            .unwrap_or_else(|| self.store_path_root_dir.join("commitlog"))
    }

    /// Applies one `broker.properties` entry. Returns `Ok(true)` if `key` is a store key (and the
    /// value was applied), `Ok(false)` if the key is not a store key (nothing changed), and an error
    /// if the key is known but the value is invalid (nothing changed).
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let v = value.trim();
        match key {
            "storePathRootDir" => self.store_path_root_dir = PathBuf::from(v),
            "messageDelayLevel" => {
                self.message_delay_level = DelayLevels::parse(v).map_err(|e| ConfigError {
                    key: key.to_string(),
                    value: value.to_string(),
                    reason: e.reason,
                })?
            }
            "storePathCommitLog" => self.store_path_commit_log = Some(PathBuf::from(v)),
            "mapedFileSizeCommitLog" | "mappedFileSizeCommitLog" => {
                self.mapped_file_size_commit_log = positive_size(key, v)?
            }
            "mapedFileSizeConsumeQueue" | "mappedFileSizeConsumeQueue" => {
                self.mapped_file_size_consume_queue = positive_size(key, v)?
            }
            "flushDiskType" => {
                self.flush_disk_type = match v {
                    "ASYNC_FLUSH" => FlushDiskType::Async,
                    "SYNC_FLUSH" => FlushDiskType::Sync,
                    _ => {
                        return Err(ConfigError {
                            key: key.to_string(),
                            value: value.to_string(),
                            reason: "expected ASYNC_FLUSH or SYNC_FLUSH",
                        })
                    }
                }
            }
            "flushIntervalCommitLog" => self.flush_interval_commit_log = millis(key, v)?,
            "flushCommitLogLeastPages" => {
                self.flush_commit_log_least_pages = parse(key, v, "expected a page count")?
            }
            "flushCommitLogThoroughInterval" => {
                self.flush_commit_log_thorough_interval = millis(key, v)?
            }
            "flushIntervalConsumeQueue" => self.flush_interval_consume_queue = millis(key, v)?,
            "flushConsumeQueueLeastPages" => {
                self.flush_consume_queue_least_pages = parse(key, v, "expected a page count")?
            }
            "flushConsumeQueueThoroughInterval" => {
                self.flush_consume_queue_thorough_interval = millis(key, v)?
            }
            "syncFlushTimeout" => self.sync_flush_timeout = millis(key, v)?,
            "maxMessageSize" => self.max_message_size = parse(key, v, "expected bytes")?,
            "deleteWhen" => self.delete_when = v.to_string(),
            "fileReservedTime" => self.file_reserved_time_hours = parse(key, v, "expected hours")?,
            "diskMaxUsedSpaceRatio" => self.disk_max_used_space_ratio = percent(key, v)?,
            "diskSpaceWarningLevelRatio" => self.disk_space_warning_level_ratio = percent(key, v)?,
            "diskSpaceCleanForciblyRatio" => {
                self.disk_space_clean_forcibly_ratio = percent(key, v)?
            }
            "diskUsageOverrideFile" => self.disk_usage_override_file = Some(PathBuf::from(v)),
            "maxHashSlotNum" => self.max_hash_slot_num = parse(key, v, "expected a count")?,
            "maxIndexNum" => self.max_index_num = parse(key, v, "expected a count")?,
            "commitLogIoMode" => {
                self.commit_log_io_mode = match v {
                    "mmap" => IoMode::Mmap,
                    "direct" => IoMode::Direct,
                    _ => {
                        return Err(ConfigError {
                            key: key.to_string(),
                            value: value.to_string(),
                            reason: "expected mmap or direct",
                        })
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_rocketmq() {
        let c = StoreConfig::default();
        assert_eq!(c.mapped_file_size_commit_log, 1 << 30);
        assert_eq!(c.mapped_file_size_consume_queue, 6_000_000);
        assert_eq!(c.flush_disk_type, FlushDiskType::Async);
        assert_eq!(c.flush_interval_commit_log, Duration::from_millis(500));
        assert_eq!(c.flush_commit_log_least_pages, 4);
        assert_eq!(
            c.flush_commit_log_thorough_interval,
            Duration::from_secs(10)
        );
        assert_eq!(c.sync_flush_timeout, Duration::from_secs(5));
        assert_eq!(c.disk_space_warning_level_ratio, 90);
        assert_eq!(c.disk_space_clean_forcibly_ratio, 85);
        assert_eq!(c.max_message_size, 4 << 20);
        assert_eq!(c.delete_when, "04");
        assert_eq!(c.file_reserved_time_hours, 72);
        assert_eq!(c.disk_max_used_space_ratio, 75);
        assert_eq!(c.max_hash_slot_num, 5_000_000);
        assert_eq!(c.max_index_num, 20_000_000);
        assert_eq!(c.commit_log_dir(), c.store_path_root_dir.join("commitlog"));
    }

    #[test]
    fn both_spellings_and_unknown_keys() {
        let mut c = StoreConfig::default();
        assert_eq!(c.set("mapedFileSizeCommitLog", "65536"), Ok(true));
        assert_eq!(c.mapped_file_size_commit_log, 65536);
        assert_eq!(c.set("mappedFileSizeCommitLog", " 131072 "), Ok(true));
        assert_eq!(c.mapped_file_size_commit_log, 131072);
        assert_eq!(c.set("mapedFileSizeConsumeQueue", "2000"), Ok(true));
        assert_eq!(c.mapped_file_size_consume_queue, 2000);
        assert_eq!(c.set("brokerName", "b0"), Ok(false));
        assert_eq!(c.set("flushDiskType", "SYNC_FLUSH"), Ok(true));
        assert_eq!(c.flush_disk_type, FlushDiskType::Sync);
        assert_eq!(c.set("commitLogIoMode", "direct"), Ok(true));
        assert_eq!(c.commit_log_io_mode, IoMode::Direct);
        assert_eq!(c.set("syncFlushTimeout", "250"), Ok(true));
        assert_eq!(c.sync_flush_timeout, Duration::from_millis(250));
        assert_eq!(c.set("storePathRootDir", "/data/x"), Ok(true));
        assert_eq!(c.commit_log_dir(), PathBuf::from("/data/x/commitlog"));
        assert_eq!(c.set("storePathCommitLog", "/data/cl"), Ok(true));
        assert_eq!(c.commit_log_dir(), PathBuf::from("/data/cl"));
    }

    #[test]
    fn bad_values_are_typed_errors_and_change_nothing() {
        let mut c = StoreConfig::default();
        for (k, v) in [
            ("mappedFileSizeCommitLog", "lots"),
            ("mappedFileSizeCommitLog", "0"),
            ("flushDiskType", "SOMETIMES"),
            ("commitLogIoMode", "tape"),
            ("diskMaxUsedSpaceRatio", "101"),
            ("diskSpaceWarningLevelRatio", "101"),
            ("diskSpaceCleanForciblyRatio", "x"),
            ("flushIntervalCommitLog", "-1"),
        ] {
            let e = c.set(k, v).unwrap_err();
            assert_eq!(e.key, k);
        }
        assert_eq!(c, StoreConfig::default());
    }
}
