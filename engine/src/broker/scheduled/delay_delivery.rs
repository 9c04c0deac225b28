//! The delivery task of one delay level, on the core that owns `SCHEDULE_TOPIC_XXXX` queue
//! `level - 1`.
//!
//! Entries of one level are due in queue order (same delay, store times non-decreasing on the
//! owning core), so the task only looks at the head: it re-puts every entry whose deliver time (the
//! ConsumeQueue `tagsCode`) has come, advances the level's offset in [`DelayProgress`] and writes
//! `delayOffset.json`, then sleeps until the new head is due or a message arrives in the queue
//! (the queue's arrival signal) — no polling. A deliver time further ahead than the level's delay
//! (the clock went back) counts as due now, as RocketMQ corrects it.
//!
//! Crash window: the re-put happens before the offset is persisted, so a crash in between
//! delivers those messages again after restart (at-least-once); a clean shutdown waits for the
//! batch in progress and persists, so nothing is repeated.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tern_store::message::StoredMessage;
use tern_store::schedule::SCHEDULE_TOPIC;

use super::divert::now_ms;
use super::progress::DelayProgress;
use super::repute::{repute, ReputError};
use super::Scheduler;
use crate::broker::core::Core;

/// Entries read per scan.
const BATCH: usize = 64;
/// Wait after a failed re-put before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest sleep when nothing is pending (arrivals wake the task earlier).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// What the task does after a pass.
enum Next {
    /// More entries may be due: scan again.
    Again,
    /// The head is due at this time (ms).
    At(i64),
    /// The queue is drained.
    Idle,
    /// A re-put failed.
    Retry,
}

/// Runs level `level`'s delivery until the scheduler stops.
pub(super) async fn run_level(
    core: Rc<Core>,
    sched: Rc<Scheduler>,
    progress: Arc<DelayProgress>,
    level: i32,
) {
    let queue_id = level - 1;
    let arrivals = core.arrivals.signal(SCHEDULE_TOPIC, queue_id);
    loop {
        let seen = arrivals.generation();
        let wake = sched.wake.generation();
        let Some(next) = sched.run_batch(deliver_due(&core, &progress, level)).await else {
            return;
        };
        let wait = match next {
            Next::Again => continue,
            Next::At(due) => {
                Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0).max(1))
            }
            Next::Idle => IDLE_WAIT,
            Next::Retry => RETRY_AFTER,
        };
        tern_runtime::timeout(
            wait,
            futures_lite::future::or(arrivals.changed_since(seen), sched.wake.changed_since(wake)),
        )
        .await;
    }
}

/// One pass: re-puts the due head entries of the level and persists the progress.
async fn deliver_due(core: &Rc<Core>, progress: &Arc<DelayProgress>, level: i32) -> Next {
    let queue_id = level - 1;
    let delay = i64::try_from(core.config.store.message_delay_level.delay_ms(level)).unwrap_or(0);
    let start = progress.get(level);
    let (min, max) = (
        core.store.min_offset(SCHEDULE_TOPIC, queue_id),
        core.store.max_offset(SCHEDULE_TOPIC, queue_id),
    );
    let mut offset = start.clamp(min, max);
    let mut next = Next::Idle;
    if offset < max {
        next = Next::Again;
        match core.store.entries(SCHEDULE_TOPIC, queue_id, offset, BATCH) {
            Err(e) => {
                tracing::warn!(level, "schedule queue unreadable: {e}");
                return Next::Retry;
            }
            Ok((entries, next_begin)) => {
                let now = now_ms();
                let mut all_done = true;
                for e in &entries {
                    let due = if e.tag_hash > now + delay {
                        now
                    } else {
                        e.tag_hash
                    };
                    if due > now {
                        next = Next::At(due);
                        all_done = false;
                        break;
                    }
                    match deliver_one(core, e).await {
                        Ok(()) => offset = e.queue_offset + 1,
                        Err(ReputError::NoDestination) => {
                            tracing::error!(
                                level,
                                offset = e.queue_offset,
                                "undeliverable scheduled message skipped"
                            );
                            offset = e.queue_offset + 1;
                        }
                        Err(err) => {
                            tracing::warn!(level, offset = e.queue_offset, "{err}");
                            next = Next::Retry;
                            all_done = false;
                            break;
                        }
                    }
                }
                if all_done {
                    // Entries retention removed are skipped too.
                    offset = offset.max(next_begin);
                }
            }
        }
    }
    if offset != start {
        progress.set(level, offset);
        if let Err(e) = progress.persist().await {
            tracing::error!("cannot persist delay progress: {e}");
        }
    }
    next
}

async fn deliver_one(
    core: &Rc<Core>,
    e: &tern_store::message_store::FoundMessage,
) -> Result<(), ReputError> {
    let bytes = core
        .store
        .read_range(&e.range)
        .map_err(|err| ReputError::Refused {
            code: 1,
            remark: err.to_string(),
        })?;
    let msg = StoredMessage::decode(&bytes).map_err(|_| ReputError::NoDestination)?;
    repute(core, &msg, false).await
}
