//! The master side: answering a slave's HA_FETCH on the core owning the shard, tracking what the
//! slave confirmed, and making SYNC_MASTER sends wait for it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_net::code::response;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::fetch::{FetchAnswer, FetchRequest};
use crate::broker::config::BrokerRole;
use crate::broker::core::{reply, Core, Origin};
use crate::broker::groups::GroupLimits;
use crate::broker::local_sync::Signal;

/// Largest answer a slave may ask for (well below the 16 MiB frame limit).
const MAX_FETCH_BYTES: u32 = 4 * 1024 * 1024;
/// A master holds a fetch at most this long, whatever the slave asks.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

/// The replication state of one shard on the master core that owns it.
#[derive(Default)]
pub(crate) struct HaShard {
    /// Everything below this offset is in the slave's CommitLog.
    acked: Cell<u64>,
    /// When a slave last asked (start or end of a fetch); `None` before the first.
    last_seen: Cell<Option<Instant>>,
    /// Fetches being held right now.
    holding: Cell<u32>,
    /// Fired when `acked` grows.
    ack_changed: Signal,
}

/// Why a SYNC_MASTER send could not be confirmed by the slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlaveWait {
    /// The slave holds the bytes.
    Confirmed,
    /// The slave did not confirm within `syncFlushTimeout` (FLUSH_SLAVE_TIMEOUT).
    Timeout,
    /// No slave is connected or it is too far behind (SLAVE_NOT_AVAILABLE).
    NotAvailable,
}

impl HaShard {
    fn heard_from_slave(&self) {
        self.last_seen.set(Some(Instant::now()));
    }

    fn confirm(&self, offset: u64) {
        if offset > self.acked.get() {
            self.acked.set(offset);
            self.ack_changed.fire();
        }
    }

    /// Whether a slave is connected (holding a fetch, or heard from within twice its heartbeat
    /// interval) and no more than `max_gap` behind `master_max`.
    fn slave_available(&self, master_max: u64, heartbeat: Duration, max_gap: u64) -> bool {
        let recent = self
            .last_seen
            .get()
            .is_some_and(|t| t.elapsed() < heartbeat * 2);
        (self.holding.get() > 0 || recent) && master_max.saturating_sub(self.acked.get()) < max_gap
    }
}

/// Counts a held fetch for as long as it lives (also when the request's future is dropped).
struct Holding<'a>(&'a HaShard);

impl<'a> Holding<'a> {
    fn start(ha: &'a HaShard) -> Self {
        ha.holding.set(ha.holding.get() + 1);
        Holding(ha)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        let held = self.0.holding.get();
        debug_assert!(held > 0);
        self.0.holding.set(held.saturating_sub(1));
    }
}

impl Core {
    /// HA_FETCH: forwarded to the shard's core, which records the slave's confirmation and
    /// answers with the records that follow (holding the request while there are none).
    pub(crate) async fn on_ha_fetch(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let fetch = match FetchRequest::from_command(&req) {
            Ok(f) => f,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        if fetch.cores as usize != self.cores {
            tracing::error!(
                slave_cores = fetch.cores,
                master_cores = self.cores,
                "a slave with a different core count asked to replicate; refused"
            );
            return Some(reply(
                &req,
                response::SYSTEM_ERROR,
                format!(
                    "core count mismatch: the master runs {} cores, the slave {}; start the slave with --cores {}",
                    self.cores, fetch.cores, self.cores
                ),
            ));
        }
        if self.config.broker_role == BrokerRole::Slave {
            return Some(reply(
                &req,
                response::SYSTEM_ERROR,
                "this broker is a slave",
            ));
        }
        let shard = fetch.shard as usize;
        if shard != self.index {
            return self.run_on(shard, req, origin).await;
        }
        Some(self.answer_fetch(&req, fetch).await)
    }

    async fn answer_fetch(&self, req: &RemotingCommand, fetch: FetchRequest) -> Reply {
        let ha = &self.ha;
        ha.heard_from_slave();
        ha.confirm(fetch.offset);
        let wait = Duration::from_millis(fetch.wait_millis).min(MAX_FETCH_WAIT);
        let deadline = Instant::now() + wait;
        let hold = Holding::start(ha);
        let result = loop {
            let seen = self.store.appended.generation();
            let max_bytes = fetch.max_bytes.clamp(1, MAX_FETCH_BYTES) as usize;
            match self.store.read_for_replica(fetch.offset, max_bytes).await {
                Ok(bytes) if bytes.is_empty() && Instant::now() < deadline => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    tern_runtime::timeout(left, self.store.appended.changed_since(seen)).await;
                }
                other => break other,
            }
        };
        drop(hold);
        ha.heard_from_slave();
        match result {
            Ok(bytes) => Reply::new(
                FetchAnswer {
                    offset: fetch.offset,
                    master_max_offset: self.store.commit_log_max_offset(),
                }
                .to_command(req, bytes),
            ),
            Err(e) => {
                tracing::error!(
                    shard = self.index,
                    offset = fetch.offset,
                    "replication refused: {e}"
                );
                reply(req, response::SYSTEM_ERROR, e.to_string())
            }
        }
    }

    /// SYNC_MASTER: waits until the slave confirmed everything below `end` (at most
    /// `syncFlushTimeout`). Other roles return `Confirmed` at once.
    pub(crate) async fn wait_for_slave(&self, end: u64) -> SlaveWait {
        if self.config.broker_role != BrokerRole::SyncMaster {
            return SlaveWait::Confirmed;
        }
        let ha = &self.ha;
        let cfg = &self.config.ha;
        if !ha.slave_available(end, cfg.heartbeat_interval, cfg.max_gap_not_in_sync) {
            return SlaveWait::NotAvailable;
        }
        let wait = async {
            while ha.acked.get() < end {
                ha.ack_changed
                    .changed_since(ha.ack_changed.generation())
                    .await;
            }
        };
        match tern_runtime::timeout(self.config.store.sync_flush_timeout, wait).await {
            Some(()) => SlaveWait::Confirmed,
            None => SlaveWait::Timeout,
        }
    }

    /// The response code of a stored send once replication is accounted for: `code` itself, or
    /// FLUSH_SLAVE_TIMEOUT / SLAVE_NOT_AVAILABLE on a SYNC_MASTER (the message stays stored, as
    /// in RocketMQ).
    pub(crate) async fn replicated_code(&self, code: i32) -> i32 {
        if self.config.broker_role != BrokerRole::SyncMaster {
            return code;
        }
        let end = self.store.commit_log_max_offset();
        match self.wait_for_slave(end).await {
            SlaveWait::Confirmed => code,
            SlaveWait::Timeout => response::FLUSH_SLAVE_TIMEOUT,
            SlaveWait::NotAvailable => response::SLAVE_NOT_AVAILABLE,
        }
    }

    /// A slave refuses producers (RocketMQ's store answers SERVICE_NOT_AVAILABLE for a put on a
    /// slave).
    pub(crate) fn refuse_if_slave(&self, req: &RemotingCommand) -> Option<Reply> {
        if self.config.broker_role != BrokerRole::Slave {
            return None;
        }
        tracing::warn!("message store is in slave mode; a send was refused");
        Some(reply(
            req,
            response::SERVICE_NOT_AVAILABLE,
            "service not available now: this broker is a slave (brokerRole=SLAVE), messages are put to the master",
        ))
    }

    /// `suggestWhichBrokerId` of `group`'s pull answered here after reading up to physical offset
    /// `pulled_phys` (RocketMQ's `PullMessageProcessor` with `DefaultMessageStore.getMessage`'s
    /// `suggestPullingFromSlave`):
    ///
    /// | broker | `slaveReadEnable` | reader lags > `accessMessageInMemoryMaxRatio` % of RAM | suggests |
    /// |---|---|---|---|
    /// | master | false | any | 0 (the master) |
    /// | master | true | yes | the group's `whichBrokerWhenConsumeSlowly` (1) |
    /// | master | true | no | the group's `brokerId` (0) |
    /// | slave | any | any | 0: back to the master once it is listed again |
    pub(crate) fn suggest_broker_id(&self, pulled_phys: Option<u64>, group: &GroupLimits) -> i64 {
        let Some(pulled) = pulled_phys else { return 0 };
        if self.config.broker_role == BrokerRole::Slave || !self.config.ha.slave_read_enable {
            return 0;
        }
        let lag = self.store.commit_log_max_offset().saturating_sub(pulled);
        let in_memory =
            total_memory() / 100 * u64::from(self.config.ha.access_message_in_memory_max_ratio);
        if lag > in_memory {
            group.which_broker_when_consume_slowly
        } else {
            group.broker_id
        }
    }
}

/// Physical memory in bytes (`MemTotal` of /proc/meminfo; 8 GiB when unreadable).
fn total_memory() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(8 << 30)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEAT: Duration = Duration::from_secs(5);

    #[test]
    fn a_slave_is_available_when_recent_and_close_enough() {
        let ha = HaShard::default();
        assert!(!ha.slave_available(0, BEAT, 100), "never heard from");
        ha.heard_from_slave();
        ha.confirm(1000);
        assert!(ha.slave_available(1050, BEAT, 100));
        assert!(!ha.slave_available(1100, BEAT, 100), "too far behind");
        ha.last_seen.set(Instant::now().checked_sub(BEAT * 3));
        assert!(!ha.slave_available(1000, BEAT, 100), "silent too long");
        ha.holding.set(1);
        assert!(ha.slave_available(1000, BEAT, 100), "a held fetch counts");
    }

    #[test]
    fn confirmations_only_grow_and_wake_waiters() {
        let ha = HaShard::default();
        let seen = ha.ack_changed.generation();
        ha.confirm(10);
        assert_eq!(ha.acked.get(), 10);
        assert_ne!(ha.ack_changed.generation(), seen);
        let seen = ha.ack_changed.generation();
        ha.confirm(5);
        assert_eq!(ha.acked.get(), 10);
        assert_eq!(ha.ack_changed.generation(), seen);
    }
}
