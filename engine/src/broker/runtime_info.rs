//! GET_BROKER_RUNTIME_INFO (28): the broker's counters summed over every core, plus the settings and
//! figures `mqadmin brokerStatus` and `clusterList` read.
//!
//! The receiving core asks every other core for its own counters (the same request, see
//! [`super::fan_out`], answered with that core's table) and adds them up, so the answer does not depend
//! on which core the admin connection landed on.
//!
//! | key | value |
//! |---|---|
//! | `msgPutTotalTodayNow`, `putMessageTimesTotal` | messages stored since start, all cores |
//! | `putMessageSizeTotal` | body bytes stored since start, all cores |
//! | `msgGetTotalTodayNow`, `getMessageTimesTotal` | messages returned by pulls since start, all cores |
//! | `msg{Put,Get}Total{Yesterday,Today}Morning` | `0`: Tern's counters start with the process |
//! | `pullZeroCopyBytes`, `pullCopiedBytes`, `forwardedRequests` | Tern's transfer counters, all cores |
//! | `commitLogDataBytes` | bytes in the CommitLogs, all cores (each shard starts at `k << 56`) |
//! | `flushDiskType`, `commitLogIoMode`, `brokerRole` | the store settings |
//! | `brokerVersionDesc`, `brokerActive`, `cores`, `topicCount` | identity |
//! | `putTps`, `getTransferredTps`, thread-pool, timer and page-cache keys | constants RocketMQ tools parse (`0`, `0.0`) |
//! | `commitLogDirCapacity` | `Total : <n>, Free : <n>.` of the store's file system |

use std::collections::BTreeMap;
use std::rc::Rc;

use tern_net::body::KvTable;
use tern_net::code::response;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::config::{FlushDiskType, IoMode};
use tern_store::message_id::SHARD_SHIFT;

use super::core::{reply, success, Core, Origin};
use super::fan_out::is_core_part;

/// Tern's version string reported as `brokerVersionDesc`.
const VERSION_DESC: &str = concat!("Tern ", env!("CARGO_PKG_VERSION"));

/// Keys whose values are added up over the cores.
const SUMMED: &[&str] = &[
    "msgPutTotalTodayNow",
    "putMessageTimesTotal",
    "putMessageSizeTotal",
    "msgGetTotalTodayNow",
    "getMessageTimesTotal",
    "pullZeroCopyBytes",
    "pullCopiedBytes",
    "forwardedRequests",
    "commitLogDataBytes",
];

/// Keys RocketMQ's tools parse that Tern has no figure for.
const CONSTANTS: &[(&str, &str)] = &[
    ("msgPutTotalYesterdayMorning", "0"),
    ("msgPutTotalTodayMorning", "0"),
    ("msgGetTotalYesterdayMorning", "0"),
    ("msgGetTotalTodayMorning", "0"),
    ("putTps", "0.0 0.0 0.0"),
    ("getTransferredTps", "0.0 0.0 0.0"),
    ("sendThreadPoolQueueSize", "0"),
    ("pullThreadPoolQueueSize", "0"),
    ("sendThreadPoolQueueHeadWaitTimeMills", "0"),
    ("pullThreadPoolQueueHeadWaitTimeMills", "0"),
    ("pageCacheLockTimeMills", "0"),
    ("dispatchBehindBytes", "0"),
    ("timerReadBehind", "0"),
    ("timerOffsetBehind", "0"),
    ("timerCongestNum", "0"),
    ("timerEnqueueTps", "0.0"),
    ("timerDequeueTps", "0.0"),
];

impl Core {
    /// Answers GET_BROKER_RUNTIME_INFO with every core's counters summed.
    pub(crate) async fn on_runtime_info(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let mut table = self.own_counters();
        if is_core_part(&req) {
            // A core's part (for another core's sum, or for the metrics scrape) also carries its
            // flush counters, which are reported per core.
            super::metrics::add_flush_stats(&mut table, self.store.flush_stats());
            return Some(Reply::new(success(&req).with_body(encode(table))));
        }
        let answers = match self.ask_other_cores(&req, origin).await {
            Ok(a) => a,
            Err(r) => return Some(r),
        };
        for answer in answers {
            match serde_json::from_slice::<KvTable>(&answer.body) {
                Ok(kv) => add_counters(&mut table, &kv.table),
                Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
            }
        }
        self.describe(&mut table);
        Some(Reply::new(success(&req).with_body(encode(table))))
    }

    /// This core's counters (the [`SUMMED`] keys).
    fn own_counters(&self) -> BTreeMap<String, String> {
        let s = &self.stats;
        let base = (self.index as u64) << SHARD_SHIFT;
        let data = self.store.commit_log_max_offset().saturating_sub(base);
        let values = [
            s.puts.get(),
            s.puts.get(),
            s.put_bytes.get(),
            s.pulled_msgs.get(),
            s.pulled_msgs.get(),
            s.zero_copy_bytes.get(),
            s.copied_bytes.get(),
            s.forwarded.get(),
            data,
        ];
        SUMMED
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Adds the settings and identity keys (once, on the answering core).
    fn describe(&self, table: &mut BTreeMap<String, String>) {
        let store = &self.config.store;
        let flush = match store.flush_disk_type {
            FlushDiskType::Sync => "SYNC_FLUSH",
            _ => "ASYNC_FLUSH",
        };
        let io = match store.commit_log_io_mode {
            IoMode::Direct => "direct",
            IoMode::Mmap => "mmap",
        };
        let fixed = [
            ("brokerVersionDesc", VERSION_DESC.to_string()),
            ("brokerActive", "true".to_string()),
            ("brokerRole", self.config.broker_role.name().to_string()),
            ("flushDiskType", flush.to_string()),
            ("commitLogIoMode", io.to_string()),
            ("cores", self.cores.to_string()),
            ("topicCount", self.topics.borrow().len().to_string()),
        ];
        table.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
        table.extend(
            CONSTANTS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        if let Some((total, free)) = disk_space(&store.store_path_root_dir) {
            table.insert(
                "commitLogDirCapacity".into(),
                format!("Total : {total}, Free : {free}."),
            );
        }
    }
}

/// Adds `part`'s [`SUMMED`] values to `table`'s (a value that is not a number counts as 0).
fn add_counters(table: &mut BTreeMap<String, String>, part: &BTreeMap<String, String>) {
    for key in SUMMED {
        let number = |m: &BTreeMap<String, String>| {
            m.get(*key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        let sum = number(table).saturating_add(number(part));
        table.insert(key.to_string(), sum.to_string());
    }
}

fn encode(table: BTreeMap<String, String>) -> Vec<u8> {
    tern_net::body::encode(&KvTable { table })
}

/// Total and free bytes of the file system holding `path`, like RocketMQ's human-readable figures
/// (`12.3 GiB`).
fn disk_space(path: &std::path::Path) -> Option<(String, String)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c_path` is a NUL-terminated string; `stat` is plain data the call fills in.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    let block = stat.f_frsize as u64;
    Some((
        human_bytes(stat.f_blocks as u64 * block),
        human_bytes(stat.f_bavail as u64 * block),
    ))
}

/// Bytes with a binary unit and one decimal, as RocketMQ's `humanReadableByteCount(_, false)`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_bytes_read_like_rocketmq() {
        let mut a: BTreeMap<String, String> = SUMMED
            .iter()
            .map(|k| (k.to_string(), "2".to_string()))
            .collect();
        let mut b = a.clone();
        b.insert("msgPutTotalTodayNow".into(), "40".into());
        b.insert("pullCopiedBytes".into(), "junk".into());
        add_counters(&mut a, &b);
        assert_eq!(a["msgPutTotalTodayNow"], "42");
        assert_eq!(a["pullCopiedBytes"], "2");
        assert_eq!(a["forwardedRequests"], "4");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
