//! Timed messages (RocketMQ 5's timer): each core keeps the timers of its own
//! `rmq_sys_wheel_timer` queue ([`super::divert::timer_queue_of`]) in a
//! [`TimerWheel`] and puts each message back to its real queue when due.
//!
//! The queue itself is the durable store: a timer is a message in the CommitLog, and its
//! ConsumeQueue entry's `tagsCode` is the deliver time, so the wheel is rebuilt from 20-byte
//! entries without reading messages. Progress, per timer queue, in `config/timerProgress.json`:
//!
//! | field | meaning |
//! |---|---|
//! | `queues.<queueId>.scanFrom` | every entry below it was delivered (a restart re-reads from here) |
//! | `queues.<queueId>.ingestedEnd` | entries below it had been loaded into the wheel |
//! | `queues.<queueId>.deliveredThrough` | every loaded entry due at or before this time (ms) was delivered |
//!
//! A pass takes `t0 = now`, loads new entries, delivers everything due at or before `t0` in due
//! order, then records `deliveredThrough = t0` (or just before the first due time it could not
//! deliver) and writes the file. On restart an entry in `[scanFrom, ingestedEnd)` due at or before
//! `deliveredThrough` is known delivered and skipped; every other one goes back into the wheel. A
//! crash between a re-put and the file write repeats that pass's deliveries (at-least-once).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tern_store::message::StoredMessage;
use tern_store::schedule::TIMER_TOPIC;
use tern_store::timer_wheel::{TimerEntry, TimerWheel};

use super::divert::{now_ms, timer_queue_of};
use super::repute::{repute, ReputError};
use super::Scheduler;
use crate::broker::core::Core;
use crate::broker::persist::{self, PersistError};

/// File name under `<storePathRootDir>/config/`.
pub const TIMER_PROGRESS_FILE: &str = "timerProgress.json";
/// Entries loaded per read.
const LOAD_BATCH: usize = 1024;
/// Queue offsets per pending-count bucket (for `scanFrom`).
const BUCKET: i64 = 4096;
/// Wait after a failed re-put.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest sleep with nothing pending.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Progress of one timer queue (see the module table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerQueueProgress {
    /// Entries below are all delivered.
    pub scan_from: i64,
    /// Entries below were loaded.
    pub ingested_end: i64,
    /// Loaded entries due at or before this were delivered.
    pub delivered_through: i64,
}

/// The persisted shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerProgressFile {
    /// Timer queue id → progress.
    #[serde(default)]
    pub queues: BTreeMap<i32, TimerQueueProgress>,
}

/// The table as last written to `<config_dir>/timerProgress.json` (empty when absent): what
/// GET_TIMER_CHECK_POINT (60) answers a slave.
pub fn read_file(config_dir: &Path) -> Result<TimerProgressFile, PersistError> {
    Ok(persist::load_json(&config_dir.join(TIMER_PROGRESS_FILE))?.unwrap_or_default())
}

/// Replaces `<config_dir>/timerProgress.json` with `table` (atomically and durably). Only for a
/// slave copying its master's progress: a slave runs no timer task, so nothing else writes the
/// file there, and the progress takes effect when the broker next starts as a master.
pub fn replace_file(config_dir: &Path, table: &TimerProgressFile) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(table).unwrap_or_default();
    persist::write_atomic(&config_dir.join(TIMER_PROGRESS_FILE), &bytes)
}

/// Shared by every core; each writes its own queue's entry.
pub struct TimerProgress {
    path: PathBuf,
    table: Mutex<TimerProgressFile>,
    write: Mutex<()>,
}

impl TimerProgress {
    /// Loads `<config_dir>/timerProgress.json` (empty when absent).
    pub fn load(config_dir: &Path) -> Result<Self, PersistError> {
        let path = config_dir.join(TIMER_PROGRESS_FILE);
        let table = persist::load_json(&path)?.unwrap_or_default();
        Ok(TimerProgress {
            path,
            table: Mutex::new(table),
            write: Mutex::new(()),
        })
    }

    fn get(&self, queue_id: i32) -> TimerQueueProgress {
        self.table
            .lock()
            .map(|t| t.queues.get(&queue_id).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    async fn save(self: &Arc<Self>, queue_id: i32, p: TimerQueueProgress) {
        if let Ok(mut t) = self.table.lock() {
            t.queues.insert(queue_id, p);
        }
        let me = Arc::clone(self);
        let written = tern_runtime::spawn_blocking(move || {
            let _writing = me.write.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = {
                let t = me.table.lock().unwrap_or_else(|e| e.into_inner());
                serde_json::to_vec_pretty(&*t).unwrap_or_default()
            };
            persist::write_atomic(&me.path, &bytes)
        })
        .await;
        if let Err(e) = written {
            tracing::error!("cannot persist timer progress: {e}");
        }
    }
}

/// One core's timers.
struct CoreTimers {
    queue_id: i32,
    wheel: TimerWheel,
    progress: TimerQueueProgress,
    /// Pending timers per bucket of queue offsets.
    pending: BTreeMap<i64, u32>,
    /// Loaded entries that failed to deliver, retried first.
    retry: Vec<TimerEntry>,
}

impl CoreTimers {
    fn add(&mut self, e: TimerEntry) {
        *self.pending.entry(e.id as i64 / BUCKET).or_default() += 1;
        self.wheel.insert(e);
    }

    fn done(&mut self, e: &TimerEntry) {
        let b = e.id as i64 / BUCKET;
        if let Some(n) = self.pending.get_mut(&b) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&b);
            }
        }
    }

    /// Loads entries `[progress.ingested_end or scan start, max)` into the wheel.
    fn load(&mut self, core: &Core, restart: Option<TimerQueueProgress>) {
        let max = core.store.max_offset(TIMER_TOPIC, self.queue_id);
        let min = core.store.min_offset(TIMER_TOPIC, self.queue_id);
        let mut offset = match restart {
            Some(p) => p.scan_from,
            None => self.progress.ingested_end,
        }
        .clamp(min, max);
        while offset < max {
            let Ok((entries, next)) =
                core.store
                    .entries(TIMER_TOPIC, self.queue_id, offset, LOAD_BATCH)
            else {
                break;
            };
            for f in &entries {
                let due = u64::try_from(f.tag_hash).unwrap_or(0);
                if let Some(p) = restart {
                    if f.queue_offset < p.ingested_end && f.tag_hash <= p.delivered_through {
                        continue; // delivered before the restart
                    }
                }
                self.add(TimerEntry {
                    due_ms: due,
                    id: f.queue_offset as u64,
                });
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        self.progress.ingested_end = offset.max(self.progress.ingested_end);
    }
}

/// Starts this core's timer task.
pub(super) fn start(core: &Rc<Core>, sched: &Rc<Scheduler>, progress: Arc<TimerProgress>) {
    let queue_id = timer_queue_of(core.index, core.cores);
    let saved = progress.get(queue_id);
    let now = u64::try_from(now_ms()).unwrap_or(0);
    let mut timers = CoreTimers {
        queue_id,
        wheel: TimerWheel::new(now),
        progress: saved,
        pending: BTreeMap::new(),
        retry: Vec::new(),
    };
    timers.progress.ingested_end = 0;
    timers.load(core, Some(saved));
    tracing::info!(
        core = core.index,
        pending = timers.wheel.len(),
        "timer wheel rebuilt"
    );
    tern_runtime::spawn_local(run(
        Rc::clone(core),
        Rc::clone(sched),
        progress,
        Rc::new(RefCell::new(timers)),
    ))
    .detach();
}

async fn run(
    core: Rc<Core>,
    sched: Rc<Scheduler>,
    progress: Arc<TimerProgress>,
    timers: Rc<RefCell<CoreTimers>>,
) {
    let queue_id = timers.borrow().queue_id;
    let arrivals = core.arrivals.signal(TIMER_TOPIC, queue_id);
    loop {
        let seen = arrivals.generation();
        let wake = sched.wake.generation();
        let Some(failed) = sched.run_batch(pass(&core, &progress, &timers)).await else {
            return;
        };
        let wait = if failed {
            RETRY_AFTER
        } else {
            match timers.borrow().wheel.next_wakeup() {
                Some(at) => Duration::from_millis(
                    at.saturating_sub(u64::try_from(now_ms()).unwrap_or(0))
                        .max(1),
                ),
                None => IDLE_WAIT,
            }
        };
        tern_runtime::timeout(
            wait,
            futures_lite::future::or(arrivals.changed_since(seen), sched.wake.changed_since(wake)),
        )
        .await;
    }
}

/// One pass (see the module docs); returns whether a delivery failed.
async fn pass(
    core: &Rc<Core>,
    progress: &Arc<TimerProgress>,
    timers: &Rc<RefCell<CoreTimers>>,
) -> bool {
    let t0 = now_ms();
    let mut due = {
        let mut t = timers.borrow_mut();
        t.load(core, None);
        let mut due = std::mem::take(&mut t.retry);
        t.wheel.advance(u64::try_from(t0).unwrap_or(0), &mut due);
        due
    };
    due.sort_by_key(|e| e.due_ms);
    let before = timers.borrow().progress;
    let mut through = t0;
    let mut failed = false;
    let queue_id = timers.borrow().queue_id;
    // Only a pass that delivered (or failed) writes the file: a stale `ingestedEnd` /
    // `deliveredThrough` pair is still true, it only makes a restart reload more entries.
    let write = !due.is_empty();
    let mut rest = due.into_iter();
    for e in rest.by_ref() {
        match deliver(core, queue_id, e.id as i64).await {
            Ok(()) | Err(ReputError::NoDestination) => timers.borrow_mut().done(&e),
            Err(err) => {
                tracing::warn!(offset = e.id, "timer delivery failed: {err}");
                through = i64::try_from(e.due_ms).unwrap_or(0) - 1;
                timers.borrow_mut().retry.push(e);
                failed = true;
                break;
            }
        }
    }
    let p = {
        let mut t = timers.borrow_mut();
        t.retry.extend(rest);
        // Failed entries stay counted in `pending`, so they keep `scanFrom` below them.
        t.progress.scan_from = t
            .pending
            .keys()
            .next()
            .map_or(t.progress.ingested_end, |b| b * BUCKET);
        t.progress.delivered_through = through;
        t.progress
    };
    if write && p != before {
        progress.save(queue_id, p).await;
    }
    failed
}

async fn deliver(core: &Rc<Core>, queue_id: i32, offset: i64) -> Result<(), ReputError> {
    let refused = |remark: String| ReputError::Refused { code: 1, remark };
    let (entries, _) = core
        .store
        .entries(TIMER_TOPIC, queue_id, offset, 1)
        .map_err(|e| refused(e.to_string()))?;
    let Some(f) = entries.into_iter().find(|f| f.queue_offset == offset) else {
        return Err(ReputError::NoDestination); // removed by retention
    };
    let bytes = core
        .store
        .read_range(&f.range)
        .map_err(|e| refused(e.to_string()))?;
    let msg = StoredMessage::decode(&bytes).map_err(|_| ReputError::NoDestination)?;
    repute(core, &msg, true).await
}
