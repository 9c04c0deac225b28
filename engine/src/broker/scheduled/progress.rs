//! `<storePathRootDir>/config/delayOffset.json`: per delay level, the next ConsumeQueue offset of
//! `SCHEDULE_TOPIC_XXXX` queue `level - 1` to deliver (RocketMQ's `ScheduleMessageService` shape).
//!
//! | JSON path | type | meaning |
//! |---|---|---|
//! | `offsetTable` | object | level (decimal string key, 1-based) → offset |
//! | `offsetTable.<level>` | integer | every entry below this offset has been re-put to its real topic |
//!
//! Example: `{"offsetTable":{"1":12,"3":4}}`. Levels never delivered are absent (offset 0).
//!
//! One table serves every core (each delivers the levels whose queue it owns); writes are
//! serialised by a lock and go through [`persist::write_atomic`], so the file is always a whole
//! old or new table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::broker::persist::{self, PersistError};

/// File name under `<storePathRootDir>/config/`.
pub const DELAY_OFFSET_FILE: &str = "delayOffset.json";

/// The persisted shape (see the module table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayOffsetFile {
    /// Level → next offset to deliver.
    #[serde(default)]
    pub offset_table: BTreeMap<i32, i64>,
}

/// The shared, persisted delivery progress of every delay level.
pub struct DelayProgress {
    path: PathBuf,
    table: Mutex<DelayOffsetFile>,
    /// Held while a write is in progress (the temp file name is shared).
    write: Mutex<()>,
}

impl DelayProgress {
    /// Loads `<config_dir>/delayOffset.json` (an empty table when absent).
    pub fn load(config_dir: &Path) -> Result<Self, PersistError> {
        let path = config_dir.join(DELAY_OFFSET_FILE);
        let table = persist::load_json(&path)?.unwrap_or_default();
        Ok(DelayProgress {
            path,
            table: Mutex::new(table),
            write: Mutex::new(()),
        })
    }

    /// The next offset of `level` to deliver (0 when never delivered).
    pub fn get(&self, level: i32) -> i64 {
        self.table
            .lock()
            .map_or(0, |t| t.offset_table.get(&level).copied().unwrap_or(0))
    }

    /// Records that every entry of `level` below `offset` was delivered (in memory; see
    /// [`Self::persist`]).
    pub fn set(&self, level: i32, offset: i64) {
        if let Ok(mut t) = self.table.lock() {
            t.offset_table.insert(level, offset);
        }
    }

    /// Writes the whole table to disk (atomically and durably) off the executor.
    pub async fn persist(self: &Arc<Self>) -> Result<(), PersistError> {
        let me = Arc::clone(self);
        tern_runtime::spawn_blocking(move || me.persist_now()).await
    }

    /// Writes the whole table now, blocking.
    pub fn persist_now(&self) -> Result<(), PersistError> {
        let _writing = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            serde_json::to_vec_pretty(&*t).unwrap_or_default()
        };
        persist::write_atomic(&self.path, &bytes)
    }
}

/// The table as last written to `<config_dir>/delayOffset.json` (empty when absent). The delivery
/// tasks write it after every batch, so it lags memory only while a batch is being delivered;
/// this is what GET_ALL_DELAY_OFFSET (45) answers a slave.
pub fn read_file(config_dir: &Path) -> Result<DelayOffsetFile, PersistError> {
    Ok(persist::load_json(&config_dir.join(DELAY_OFFSET_FILE))?.unwrap_or_default())
}

/// Replaces `<config_dir>/delayOffset.json` with `table` (atomically and durably). Only for a
/// slave copying its master's table: a slave runs no delivery tasks, so nothing else writes the
/// file there, and the table takes effect when the broker next starts as a master.
pub fn replace_file(config_dir: &Path, table: &DelayOffsetFile) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(table).unwrap_or_default();
    persist::write_atomic(&config_dir.join(DELAY_OFFSET_FILE), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_shape_is_rocketmqs_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = DelayProgress::load(dir.path()).unwrap();
        assert_eq!(p.get(1), 0);
        p.set(1, 12);
        p.set(3, 4);
        p.persist_now().unwrap();
        let text = std::fs::read_to_string(dir.path().join(DELAY_OFFSET_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, serde_json::json!({"offsetTable": {"1": 12, "3": 4}}));
        let again = DelayProgress::load(dir.path()).unwrap();
        assert_eq!((again.get(1), again.get(2), again.get(3)), (12, 0, 4));
    }

    #[test]
    fn a_copied_table_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_file(dir.path()).unwrap(), DelayOffsetFile::default());
        let copied: DelayOffsetFile =
            serde_json::from_slice(br#"{"offsetTable":{"2":7,"18":1}}"#).unwrap();
        replace_file(dir.path(), &copied).unwrap();
        assert_eq!(read_file(dir.path()).unwrap(), copied);
        let loaded = DelayProgress::load(dir.path()).unwrap();
        assert_eq!((loaded.get(2), loaded.get(18), loaded.get(1)), (7, 1, 0));
    }
}
