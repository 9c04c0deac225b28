//! When the CommitLog is flushed: the background flusher (ASYNC_FLUSH policy), group commit for
//! SYNC_FLUSH producers ([`crate::commit_log::CommitLog::wait_durable`]), and the flushed offset.
//!
//! One flusher task runs per CommitLog. Each round it snapshots the write position, runs the flush
//! jobs (writes + fdatasync/msync) and only after those syscalls returned advances the flushed offset
//! and releases the waiters it covers. Appends that arrive while a round runs are covered by the next
//! round, so one fdatasync serves every producer that was waiting when it started (group commit).
//!
//! The flusher starts a round when:
//! * a producer waits for an offset past the flushed one (both modes);
//! * ASYNC_FLUSH: at least `flushCommitLogLeastPages` dirty 4 KiB pages are counted at a check
//!   (every `flushIntervalCommitLog`), or `flushCommitLogThoroughInterval` passed since the last
//!   round (then any dirty byte counts); SYNC_FLUSH: any dirty byte at a check;
//! * [`EAGER_FLUSH_BYTES`] are dirty (woken by the append), so the tail never grows unbounded between
//!   checks;
//! * the log shuts down (a final round).

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::commit_log::LogShared;
use crate::config::{FlushDiskType, StoreConfig, PAGE_SIZE};

/// Dirty bytes that wake the flusher before its next periodic check.
pub const EAGER_FLUSH_BYTES: u64 = 16 << 20;

/// Dirty bytes past which appends wait for the flusher (bounds the direct backend's tail memory and
/// the mmap backend's dirty page cache).
pub const MAX_DIRTY_BYTES: u64 = 256 << 20;

/// What [`crate::commit_log::CommitLog::wait_durable`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// A completed fdatasync (or msync) covers the requested offset.
    Durable,
    /// `syncFlushTimeout` elapsed first (the broker answers FLUSH_DISK_TIMEOUT); the bytes may still
    /// become durable later.
    Timeout,
    /// A flush failed; the log is read-only until reopened and the bytes' fate is unknown.
    Failed,
}

/// Counters of completed flush rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Completed flush rounds (each ends with one fdatasync/msync per dirty segment, usually one).
    pub syncs: u64,
    /// Appends made durable by those rounds.
    pub synced_appends: u64,
    /// Bytes made durable by those rounds.
    pub synced_bytes: u64,
    /// Time spent in those rounds' writes and syncs, microseconds (mean flush latency is
    /// `sync_micros / syncs`).
    pub sync_micros: u64,
}

impl FlushStats {
    /// Average appends covered by one flush round (0 before the first).
    pub fn appends_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.synced_appends as f64 / self.syncs as f64
        }
    }
}

/// A broadcast wake-up: every future created by [`Notify::notified`] before a
/// [`Notify::notify_all`] completes. A future dropped before that (a flusher's interval timeout)
/// leaves no waker behind ([`tern_runtime::WaitList`]).
#[derive(Default)]
pub(crate) struct Notify {
    epoch: Cell<u64>,
    waiters: tern_runtime::WaitList,
}

impl Notify {
    pub(crate) fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        self.waiters.wake_all();
    }

    pub(crate) async fn notified(&self) {
        let epoch = self.epoch.get();
        self.waiters.wait_until(|| self.epoch.get() != epoch).await
    }
}

/// Mutual exclusion between a flush round and truncation (a round must not write back pages that a
/// truncation just zeroed).
#[derive(Default)]
pub(crate) struct FlushLock {
    busy: Cell<bool>,
    released: Notify,
}

pub(crate) struct FlushGuard<'a>(&'a FlushLock);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.set(false);
        self.0.released.notify_all();
    }
}

impl FlushLock {
    pub(crate) async fn lock(&self) -> FlushGuard<'_> {
        while self.busy.get() {
            self.released.notified().await;
        }
        self.busy.set(true);
        FlushGuard(self)
    }
}

/// The flush policy's inputs, from [`StoreConfig`].
#[derive(Debug, Clone)]
pub(crate) struct FlushPolicy {
    pub(crate) mode: FlushDiskType,
    pub(crate) interval: Duration,
    pub(crate) least_pages: u64,
    pub(crate) thorough_interval: Duration,
    pub(crate) sync_timeout: Duration,
}

impl FlushPolicy {
    pub(crate) fn from_config(c: &StoreConfig) -> FlushPolicy {
        FlushPolicy {
            mode: c.flush_disk_type,
            interval: c.flush_interval_commit_log,
            least_pages: u64::from(c.flush_commit_log_least_pages),
            thorough_interval: c.flush_commit_log_thorough_interval,
            sync_timeout: c.sync_flush_timeout,
        }
    }
}

/// Flush progress shared by the flusher, appenders and waiters.
pub(crate) struct FlushState {
    pub(crate) policy: FlushPolicy,
    /// Everything below this offset is durable. Advanced only after the sync syscalls returned.
    flushed: Cell<u64>,
    /// Highest offset a producer is waiting for.
    requested: Cell<u64>,
    failed: Cell<bool>,
    stopping: Cell<bool>,
    stats: Cell<FlushStats>,
    /// Woken when `flushed` advances or a flush fails.
    progress: Notify,
    /// Wakes the flusher.
    wake: Notify,
    pub(crate) lock: FlushLock,
}

impl FlushState {
    pub(crate) fn new(policy: FlushPolicy, flushed: u64) -> FlushState {
        FlushState {
            policy,
            flushed: Cell::new(flushed),
            requested: Cell::new(flushed),
            failed: Cell::new(false),
            stopping: Cell::new(false),
            stats: Cell::new(FlushStats::default()),
            progress: Notify::default(),
            wake: Notify::default(),
            lock: FlushLock::default(),
        }
    }

    pub(crate) fn flushed(&self) -> u64 {
        self.flushed.get()
    }

    pub(crate) fn stats(&self) -> FlushStats {
        self.stats.get()
    }

    /// Sets the flushed offset after recovery truncated the log (everything kept is on disk).
    pub(crate) fn reset(&self, offset: u64) {
        self.flushed.set(offset);
        self.requested.set(offset);
        self.progress.notify_all();
    }

    /// Records a completed round: called only after its sync syscalls returned.
    pub(crate) fn completed(&self, durable: u64, appends: u64, bytes: u64, took: Duration) {
        debug_assert!(durable >= self.flushed.get());
        self.flushed.set(durable);
        let mut s = self.stats.get();
        s.syncs += 1;
        s.synced_appends += appends;
        s.synced_bytes += bytes;
        s.sync_micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.stats.set(s);
        self.progress.notify_all();
    }

    /// Records a failed round: waiters get [`FlushOutcome::Failed`].
    pub(crate) fn failed(&self) {
        self.failed.set(true);
        self.progress.notify_all();
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.failed.get()
    }

    /// Called after each append with the new write position: wakes the flusher early when enough is
    /// dirty.
    pub(crate) fn on_append(&self, write_pos: u64) {
        if write_pos.saturating_sub(self.flushed.get()) >= EAGER_FLUSH_BYTES {
            self.wake.notify_all();
        }
    }

    /// Waits while more than [`MAX_DIRTY_BYTES`] are dirty (backpressure for appenders).
    pub(crate) async fn throttle(&self, write_pos: impl Fn() -> u64) {
        while !self.failed.get() && write_pos().saturating_sub(self.flushed.get()) > MAX_DIRTY_BYTES
        {
            self.wake.notify_all();
            self.progress.notified().await;
        }
    }

    /// Waits until `offset` is durable, a flush fails, or `syncFlushTimeout` passes.
    pub(crate) async fn wait_durable(&self, offset: u64) -> FlushOutcome {
        if self.flushed.get() >= offset {
            return FlushOutcome::Durable;
        }
        if self.failed.get() {
            return FlushOutcome::Failed;
        }
        if offset > self.requested.get() {
            self.requested.set(offset);
        }
        self.wake.notify_all();
        let wait = async {
            loop {
                if self.flushed.get() >= offset {
                    return FlushOutcome::Durable;
                }
                if self.failed.get() {
                    return FlushOutcome::Failed;
                }
                self.progress.notified().await;
            }
        };
        tern_runtime::timeout(self.policy.sync_timeout, wait)
            .await
            .unwrap_or(FlushOutcome::Timeout)
    }

    /// Asks the flusher to finish: it runs a final round and returns.
    pub(crate) fn stop(&self) {
        self.stopping.set(true);
        self.wake.notify_all();
    }

    /// Whether a round should start now, given the write position and the time since the last one.
    fn due(&self, write_pos: u64, since_last: Duration, at_check: bool) -> bool {
        let flushed = self.flushed.get();
        if write_pos <= flushed {
            return false;
        }
        if self.requested.get() > flushed || write_pos - flushed >= EAGER_FLUSH_BYTES {
            return true;
        }
        if !at_check {
            return false;
        }
        let page = PAGE_SIZE as u64;
        let dirty_pages = write_pos / page - flushed / page;
        match self.policy.mode {
            FlushDiskType::Sync => true,
            FlushDiskType::Async => {
                dirty_pages >= self.policy.least_pages
                    || since_last >= self.policy.thorough_interval
            }
        }
    }
}

/// Returns `Pending` once (after waking itself), letting every other ready task run first.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// The flusher task of one CommitLog; returns after the final round once [`FlushState::stop`] was
/// called.
pub(crate) async fn run_flusher(log: Rc<LogShared>) {
    let fs = log.flush_state();
    let mut last_round = Instant::now();
    let mut at_check = false;
    loop {
        if fs.stopping.get() {
            break;
        }
        if !fs.failed.get() && fs.due(log.write_position(), last_round.elapsed(), at_check) {
            if let Err(e) = log.flush_round().await {
                tracing::error!(error = %e, "CommitLog flush failed; appends are refused until reopen");
            }
            last_round = Instant::now();
            at_check = false;
            // Let the producers just released append their next messages before the next round
            // takes its snapshot, so one fdatasync covers all of them instead of every other one.
            yield_once().await;
            log.precreate_next_segment().await;
            continue;
        }
        let woken = tern_runtime::timeout(fs.policy.interval, fs.wake.notified()).await;
        at_check = woken.is_none();
    }
    if !fs.failed.get() {
        if let Err(e) = log.flush_round().await {
            tracing::error!(error = %e, "final CommitLog flush failed");
        }
    }
}
