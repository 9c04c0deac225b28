//! Consumer offsets kept in a local file (broadcasting mode, where every consumer has its own
//! progress; RocketMQ's `LocalFileOffsetStore`).
//!
//! The file is JSON, one entry per queue:
//!
//! ```text
//! {"offsetTable":[{"brokerName":"broker-a","offset":42,"queueId":0,"topic":"T"}]}
//! ```
//!
//! Crash safety: a save writes `<file>.tmp`, fsyncs it, renames it over `<file>` and fsyncs the
//! directory; the rename is the write that makes the new offsets durable, so the file always
//! holds either the previous or the new table, never a torn one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::route::MessageQueue;

/// The offset file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("offset file {path}: {reason}")]
pub struct OffsetFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OffsetFile {
    offset_table: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    broker_name: String,
    offset: i64,
    queue_id: i32,
    topic: String,
}

/// Reads the offsets in `path`; a missing file is an empty table.
pub(crate) fn load(path: &Path) -> Result<HashMap<MessageQueue, i64>, OffsetFileError> {
    let err = |reason: String| OffsetFileError {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(err(e.to_string())),
    };
    let file: OffsetFile = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    Ok(file
        .offset_table
        .into_iter()
        .map(|e| {
            (
                MessageQueue::new(e.topic, e.broker_name, e.queue_id),
                e.offset,
            )
        })
        .collect())
}

/// Replaces the offsets in `path` with `table` atomically (see the module docs), creating the
/// directory if needed. Blocking: call it from a helper thread.
pub(crate) fn save(path: &Path, table: &HashMap<MessageQueue, i64>) -> Result<(), OffsetFileError> {
    let err = |e: std::io::Error| OffsetFileError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut entries: Vec<Entry> = table
        .iter()
        .map(|(q, o)| Entry {
            broker_name: q.broker_name.clone(),
            offset: *o,
            queue_id: q.queue_id,
            topic: q.topic.clone(),
        })
        .collect();
    entries.sort_by(|a, b| {
        (&a.topic, &a.broker_name, a.queue_id).cmp(&(&b.topic, &b.broker_name, b.queue_id))
    });
    let json = serde_json::to_vec(&OffsetFile {
        offset_table: entries,
    })
    .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&json).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g").join("offsets.json");
        assert!(load(&path).unwrap().is_empty());
        let table = HashMap::from([
            (MessageQueue::new("T", "b", 1), 7),
            (MessageQueue::new("T", "b", 0), 42),
        ]);
        save(&path, &table).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            concat!(
                r#"{"offsetTable":[{"brokerName":"b","offset":42,"queueId":0,"topic":"T"},"#,
                r#"{"brokerName":"b","offset":7,"queueId":1,"topic":"T"}]}"#
            )
        );
        assert_eq!(load(&path).unwrap(), table);
        assert!(!path.with_extension("json.tmp").exists());
        // A second save replaces the table.
        save(
            &path,
            &HashMap::from([(MessageQueue::new("T", "b", 0), 43)]),
        )
        .unwrap();
        assert_eq!(load(&path).unwrap().len(), 1);
    }

    #[test]
    fn a_corrupt_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        std::fs::write(&path, b"{\"offsetTable\":[").unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!(e.path, path);
    }
}
