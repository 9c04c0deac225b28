//! Scheduled delivery: delay levels, consumer retries at their due time and timed messages.
//!
//! A message that must wait is stored in a system topic instead of its own ([`divert`]); a task on
//! the core owning that system queue puts it back to its real topic and queue when it is due
//! ([`delay_delivery`], [`repute`]). Progress is persisted so a restart neither loses nor (after a
//! clean shutdown) repeats deliveries. See `docs/scheduled-delivery.md`.
//!
//! | messages | held in | due time (ConsumeQueue `tagsCode`) | progress file |
//! |---|---|---|---|
//! | `DELAY = n` (also consumer retries) | `SCHEDULE_TOPIC_XXXX` queue `n - 1` | store time + delay of level `n` | `config/delayOffset.json` ([`progress`]) |
//! | `TIMER_DELIVER_MS` / `TIMER_DELAY_SEC` / `TIMER_DELAY_MS` | `rmq_sys_wheel_timer`, one queue per core | `TIMER_OUT_MS` | `config/timerProgress.json` ([`timer`]) |

pub(crate) mod delay_delivery;
pub(crate) mod divert;
pub mod progress;
pub(crate) mod replica;
pub(crate) mod repute;
pub(crate) mod system_topics;
pub mod timer;

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tern_store::schedule::SCHEDULE_TOPIC;

use super::config::BrokerRole;
use super::core::Core;
use super::local_sync::Signal;
use super::routing::owner_core;
use progress::DelayProgress;
use timer::TimerProgress;

/// The progress files of scheduled delivery, loaded once and shared by every core.
pub struct ScheduleFiles {
    /// `delayOffset.json`.
    pub delay: Arc<DelayProgress>,
    /// `timerProgress.json`.
    pub timer: Arc<TimerProgress>,
}

impl ScheduleFiles {
    /// Loads both files from `config_dir` (empty tables when absent).
    pub fn load(config_dir: &std::path::Path) -> Result<Self, super::persist::PersistError> {
        Ok(ScheduleFiles {
            delay: Arc::new(DelayProgress::load(config_dir)?),
            timer: Arc::new(TimerProgress::load(config_dir)?),
        })
    }
}

/// Extension field marking a SEND one core forwards to another for a message already checked
/// (or put back by a delivery task): the owner stores it without producer checks or scheduling.
/// Honoured only on requests that came over the mesh.
pub(crate) const INTERNAL_PUT: &str = "ternInternalPut";

/// The delivery tasks of one core; stop them with [`Scheduler::stop`] before the store closes.
pub(crate) struct Scheduler {
    stopped: Cell<bool>,
    /// Fired at stop, waking idle tasks.
    wake: Signal,
    /// Batches in progress.
    busy: Cell<usize>,
    /// Fired when a batch ends.
    idle: Signal,
}

impl Scheduler {
    /// Starts a delivery task for every delay level whose queue this core owns, and this core's
    /// timer task; none on a slave.
    pub(crate) fn start(core: &Rc<Core>, files: &ScheduleFiles) -> Rc<Scheduler> {
        let delay = &files.delay;
        let sched = Rc::new(Scheduler {
            stopped: Cell::new(false),
            wake: Signal::default(),
            busy: Cell::new(0),
            idle: Signal::default(),
        });
        if core.config.broker_role == BrokerRole::Slave {
            // A slave's store only takes the master's records; it copies the master's progress
            // instead (`replica`). RocketMQ starts its schedule service on masters only.
            return sched;
        }
        for level in 1..=core.config.store.message_delay_level.max_level() {
            if owner_core(SCHEDULE_TOPIC, level - 1, core.cores) == core.index {
                tern_runtime::spawn_local(delay_delivery::run_level(
                    Rc::clone(core),
                    Rc::clone(&sched),
                    Arc::clone(delay),
                    level,
                ))
                .detach();
            }
        }
        timer::start(core, &sched, Arc::clone(&files.timer));
        sched
    }

    /// Stops every task: no batch starts from now on, and this returns once the batches in
    /// progress have finished (and persisted their progress).
    pub(crate) async fn stop(&self) {
        self.stopped.set(true);
        self.wake.fire();
        while self.busy.get() > 0 {
            self.idle.changed_since(self.idle.generation()).await;
        }
    }

    /// Runs one batch unless stopped (`None` then).
    async fn run_batch<T>(&self, batch: impl Future<Output = T>) -> Option<T> {
        if self.stopped.get() {
            return None;
        }
        self.busy.set(self.busy.get() + 1);
        let out = batch.await;
        self.busy.set(self.busy.get() - 1);
        self.idle.fire();
        Some(out)
    }
}
