//! The nameserver's KV configuration: namespace → key → value (ordered-topic layouts live in
//! namespace `ORDER_TOPIC_CONFIG`), persisted as RocketMQ's `kvConfig.json`:
//!
//! ```text
//! {"configTable":{"ORDER_TOPIC_CONFIG":{"TopicA":"broker-a:4;broker-b:4"}}}
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tern_net::body::KvTable;

/// The namespace whose entries give a topic's ordered-queue layout.
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

/// Errors loading or saving the KV file.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The file could not be read or written.
    #[error("kv config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not RocketMQ's kvConfig.json layout.
    #[error("kv config {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct KvFile {
    config_table: BTreeMap<String, BTreeMap<String, String>>,
}

/// The KV configuration in memory.
#[derive(Debug, Default)]
pub struct KvConfig {
    table: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    /// Loads `path`; a missing file gives an empty configuration.
    pub fn load(path: &Path) -> Result<Self, KvError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(KvError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let file: KvFile = serde_json::from_slice(&bytes).map_err(|e| KvError::Malformed {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(KvConfig {
            table: file.config_table,
        })
    }

    /// Sets `key` in `namespace`.
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) {
        self.table
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// The value of `key` in `namespace`.
    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// Removes `key` from `namespace` (an emptied namespace remains, as in RocketMQ).
    pub fn delete(&mut self, namespace: &str, key: &str) {
        if let Some(ns) = self.table.get_mut(namespace) {
            ns.remove(key);
        }
    }

    /// Every entry of `namespace`, or `None` when the namespace was never written.
    pub fn namespace(&self, namespace: &str) -> Option<KvTable> {
        self.table
            .get(namespace)
            .map(|t| KvTable { table: t.clone() })
    }

    /// The file contents for the current state.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let file = KvFile {
            config_table: self.table.clone(),
        };
        serde_json::to_vec_pretty(&file).unwrap_or_default()
    }
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it), creating parent
/// directories. Blocking: run it off the executor.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), KvError> {
    let io_err = |source| KvError::Io {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("namesrv/kvConfig.json");
        let mut kv = KvConfig::load(&path).unwrap();
        assert!(kv.namespace(NAMESPACE_ORDER_TOPIC_CONFIG).is_none());
        kv.put(NAMESPACE_ORDER_TOPIC_CONFIG, "T", "broker-a:4");
        kv.put("ns", "k", "v");
        kv.delete("ns", "k");
        assert_eq!(
            kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, "T"),
            Some("broker-a:4")
        );
        assert_eq!(kv.get("ns", "k"), None);
        write_file(&path, &kv.to_file_bytes()).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["configTable"]["ORDER_TOPIC_CONFIG"]["T"], "broker-a:4");
        let again = KvConfig::load(&path).unwrap();
        assert_eq!(
            again.get(NAMESPACE_ORDER_TOPIC_CONFIG, "T"),
            Some("broker-a:4")
        );
        assert!(again.namespace("ns").unwrap().table.is_empty());
    }

    #[test]
    fn malformed_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            KvConfig::load(&path),
            Err(KvError::Malformed { .. })
        ));
    }
}
