//! The delay offset table between a master and its slave (RocketMQ's `SlaveSynchronize`
//! `syncDelayOffset`): the master answers GET_ALL_DELAY_OFFSET (45) with its `delayOffset.json`
//! table; a slave copies it into its own file every `slaveSyncConfigInterval`, so a slave
//! restarted as master resumes delivery where the master was instead of repeating every pending
//! level from offset 0. A slave runs no delivery tasks ([`super::Scheduler::start`]).
//!
//! The timer progress goes the same way (RocketMQ 5's `syncTimerCheckPoint`): the master answers
//! GET_TIMER_CHECK_POINT (60) with its `timerProgress.json` (Tern's JSON, not RocketMQ's binary
//! checkpoint; only a Tern slave asks), and a slave restarted as master rebuilds its timing wheel
//! from there instead of re-delivering every timer of its queue from offset 0.

use super::progress::{self, DelayOffsetFile};
use super::timer::{self, TimerProgressFile};
use crate::broker::core::Core;
use crate::broker::persist::PersistError;

impl Core {
    /// The delay offset table as persisted (see [`progress::read_file`]), read off the executor.
    pub(crate) async fn delay_offset_table(&self) -> Result<DelayOffsetFile, PersistError> {
        let dir = self.config.config_dir();
        tern_runtime::spawn_blocking(move || progress::read_file(&dir)).await
    }

    /// The timer progress as persisted (see [`timer::read_file`]), read off the executor.
    pub(crate) async fn timer_progress_table(&self) -> Result<TimerProgressFile, PersistError> {
        let dir = self.config.config_dir();
        tern_runtime::spawn_blocking(move || timer::read_file(&dir)).await
    }

    /// Slave side: stores the master's GET_TIMER_CHECK_POINT answer `body` as this broker's
    /// `timerProgress.json` (an unchanged table is not rewritten; a body that is not the table is
    /// an error and leaves the file alone).
    pub(crate) async fn adopt_timer_progress(&self, body: &[u8]) -> Result<(), String> {
        let table: TimerProgressFile =
            serde_json::from_slice(body).map_err(|e| format!("timer progress: {e}"))?;
        let dir = self.config.config_dir();
        tern_runtime::spawn_blocking(move || {
            if timer::read_file(&dir).ok().as_ref() == Some(&table) {
                return Ok(());
            }
            timer::replace_file(&dir, &table)
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Slave side: stores the master's GET_ALL_DELAY_OFFSET answer `body` as this broker's
    /// `delayOffset.json` (unchanged tables are not rewritten). A body that is not the table is an
    /// error and leaves the file alone.
    pub(crate) async fn adopt_delay_offsets(&self, body: &[u8]) -> Result<(), String> {
        let table: DelayOffsetFile =
            serde_json::from_slice(body).map_err(|e| format!("delay offsets: {e}"))?;
        let dir = self.config.config_dir();
        tern_runtime::spawn_blocking(move || {
            if progress::read_file(&dir).ok().as_ref() == Some(&table) {
                return Ok(());
            }
            progress::replace_file(&dir, &table)
        })
        .await
        .map_err(|e| e.to_string())
    }
}
