//! Crash-safe JSON state files under `<storePathRootDir>/config/`.
//!
//! A write goes to `<name>.tmp`, is fsynced, renamed over `<name>`, and the directory is fsynced, so
//! after a crash the file holds either the old or the new content, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file exists but is not the expected JSON.
    #[error("malformed {path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PersistError {
    let path = path.to_path_buf();
    move |source| PersistError::Io { op, path, source }
}

/// Replaces `path` with `bytes` atomically and durably (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io("rename", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(())
}

/// Reads and parses `path`; `Ok(None)` when it does not exist.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, PersistError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PersistError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("x.json");
        assert!(load_json::<serde_json::Value>(&path).unwrap().is_none());
        write_atomic(&path, b"{\"a\":1}").unwrap();
        write_atomic(&path, b"{\"a\":2}").unwrap();
        let v: serde_json::Value = load_json(&path).unwrap().unwrap();
        assert_eq!(v["a"], 2);
        assert!(!path.with_extension("json.tmp").exists());
        fs::write(&path, b"{nope").unwrap();
        assert!(matches!(
            load_json::<serde_json::Value>(&path),
            Err(PersistError::Malformed { .. })
        ));
    }
}
