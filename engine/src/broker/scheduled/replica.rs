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

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

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
    /// `timerProgress.json` (see [`adopt_table`]).
    pub(crate) async fn adopt_timer_progress(&self, body: &[u8]) -> Result<(), String> {
        let dir = self.config.config_dir();
        adopt_table(
            dir,
            body,
            "timer progress",
            timer::read_file,
            timer::replace_file,
        )
        .await
    }

    /// Slave side: stores the master's GET_ALL_DELAY_OFFSET answer `body` as this broker's
    /// `delayOffset.json` (see [`adopt_table`]).
    pub(crate) async fn adopt_delay_offsets(&self, body: &[u8]) -> Result<(), String> {
        let dir = self.config.config_dir();
        adopt_table(
            dir,
            body,
            "delay offsets",
            progress::read_file,
            progress::replace_file,
        )
        .await
    }
}

/// Parses `body` as a table and writes it with `replace` (off the executor) unless `read` finds
/// the same table there already. A body that is not the table is an error (named by `what`) and
/// leaves the file alone.
async fn adopt_table<T>(
    dir: PathBuf,
    body: &[u8],
    what: &str,
    read: fn(&Path) -> Result<T, PersistError>,
    replace: fn(&Path, &T) -> Result<(), PersistError>,
) -> Result<(), String>
where
    T: DeserializeOwned + PartialEq + Send + 'static,
{
    let table: T = serde_json::from_slice(body).map_err(|e| format!("{what}: {e}"))?;
    tern_runtime::spawn_blocking(move || {
        if read(&dir).ok().as_ref() == Some(&table) {
            return Ok(());
        }
        replace(&dir, &table)
    })
    .await
    .map_err(|e| e.to_string())
}
