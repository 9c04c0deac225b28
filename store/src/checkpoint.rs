//! The store checkpoint file and the abort marker, both under the store root.
//!
//! ## `checkpoint`
//! A 4 KiB file holding RocketMQ's `StoreCheckpoint` fields as big-endian `i64`s, plus a Tern
//! integrity trailer in bytes RocketMQ never reads:
//!
//! | offset | size | field                                                       |
//! |-------:|-----:|-------------------------------------------------------------|
//! |      0 |    8 | `physicMsgTimestamp`: store time of the last durable CommitLog message |
//! |      8 |    8 | `logicsMsgTimestamp`: store time of the last durable ConsumeQueue entry |
//! |     16 |    8 | `indexMsgTimestamp`: store time of the last durable Index entry |
//! |     24 |    8 | `masterFlushedOffset` (kept for compatibility, unused by Tern) |
//! |     32 |    8 | `confirmPhyOffset` (kept for compatibility, unused by Tern) |
//! |     40 |    4 | Tern: CRC32 (IEEE) of bytes 0..40, big-endian                |
//! |     44 |    4 | Tern: magic `b"TCP1"` saying the CRC is present              |
//! |     48 | 4048 | zero                                                        |
//!
//! ### Why a torn write is harmless
//! Every update rewrites bytes 0..48 in place with one `pwrite` and then `fdatasync`s the file.
//! The 48 bytes sit inside the first 512-byte sector, which disks write atomically in practice;
//! if a crash still tears the write, the CRC no longer matches and [`Checkpoint::open`] reports
//! [`CheckpointState::Torn`] and yields all-zero timestamps. Zero timestamps only make crash
//! recovery start validating from the first CommitLog segment: slower, never wrong. A file written
//! by RocketMQ itself has no magic and is trusted as it is ([`CheckpointState::Foreign`]).
//!
//! ## `abort`
//! An empty-ish marker file (it holds the process id, as RocketMQ writes it) created when a store
//! opens and removed after a clean shutdown. Its presence at open means the previous run crashed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Size of the checkpoint file in bytes (one OS page, as RocketMQ maps it).
pub const CHECKPOINT_FILE_SIZE: u64 = 4096;
/// Bytes of the checkpoint record written on every flush.
const RECORD_LEN: usize = 48;
/// Tern's trailer magic at offset 44.
const TRAILER_MAGIC: [u8; 4] = *b"TCP1";
/// RocketMQ subtracts this margin (ms) from the checkpoint time when picking a safe segment.
const SAFETY_MARGIN_MS: i64 = 3_000;

/// File name of the checkpoint under the store root.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoint";
/// File name of the abort marker under the store root.
pub const ABORT_FILE_NAME: &str = "abort";

/// The checkpoint's fields. All timestamps are milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointValues {
    /// Store time of the newest CommitLog message known to be durable.
    pub physic_msg_timestamp: i64,
    /// Store time of the newest message whose ConsumeQueue entry is known to be durable.
    pub logics_msg_timestamp: i64,
    /// Store time of the newest message whose Index entry is known to be durable.
    pub index_msg_timestamp: i64,
    /// RocketMQ HA field, preserved but unused.
    pub master_flushed_offset: i64,
    /// RocketMQ HA field, preserved but unused.
    pub confirm_phy_offset: i64,
}

impl CheckpointValues {
    /// Encodes the 48-byte record (fields plus Tern's CRC trailer) in the layout above.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        let fields = [
            self.physic_msg_timestamp,
            self.logics_msg_timestamp,
            self.index_msg_timestamp,
            self.master_flushed_offset,
            self.confirm_phy_offset,
        ];
        for (slot, v) in out.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
        let crc = crc32fast::hash(&out[..40]);
        out[40..44].copy_from_slice(&crc.to_be_bytes());
        out[44..48].copy_from_slice(&TRAILER_MAGIC);
        out
    }

    /// Decodes a record, saying whether it is intact, torn, or written without Tern's trailer.
    /// A torn record decodes as all zeros. Inputs shorter than 48 bytes are zero-padded.
    pub fn decode(bytes: &[u8]) -> (Self, CheckpointState) {
        let mut rec = [0u8; RECORD_LEN];
        let n = bytes.len().min(RECORD_LEN);
        rec[..n].copy_from_slice(&bytes[..n]);
        let mut fields = [0i64; 5];
        for (f, chunk) in fields.iter_mut().zip(rec.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *f = i64::from_be_bytes(b);
        }
        let values = CheckpointValues {
            physic_msg_timestamp: fields[0],
            logics_msg_timestamp: fields[1],
            index_msg_timestamp: fields[2],
            master_flushed_offset: fields[3],
            confirm_phy_offset: fields[4],
        };
        if rec[44..48] != TRAILER_MAGIC {
            return (values, CheckpointState::Foreign);
        }
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&rec[40..44]);
        if u32::from_be_bytes(crc) == crc32fast::hash(&rec[..40]) {
            (values, CheckpointState::Intact)
        } else {
            (CheckpointValues::default(), CheckpointState::Torn)
        }
    }

    /// The newest store time from which crash recovery may skip validation: the older of the
    /// CommitLog and ConsumeQueue times, less RocketMQ's 3 s margin, and no older than the index
    /// time when `index_safe` (messageIndexSafe) asks for it. Never negative.
    pub fn safe_recovery_timestamp(&self, index_safe: bool) -> i64 {
        let mut t = self.physic_msg_timestamp.min(self.logics_msg_timestamp);
        if index_safe {
            t = t.min(self.index_msg_timestamp);
        }
        (t - SAFETY_MARGIN_MS).max(0)
    }
}

/// How the checkpoint file looked when it was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointState {
    /// There was no file; values are zero.
    Missing,
    /// Tern's trailer was present and its CRC matched.
    Intact,
    /// No Tern trailer (e.g. written by RocketMQ); values are trusted as read.
    Foreign,
    /// Tern's trailer was present but the CRC mismatched; values were reset to zero.
    Torn,
}

/// The open checkpoint file. Updates are kept in memory until [`Checkpoint::flush`].
#[derive(Debug)]
pub struct Checkpoint {
    file: File,
    values: CheckpointValues,
    state: CheckpointState,
}

impl Checkpoint {
    /// Opens (creating, 4 KiB, zeroed) the checkpoint at `path` and loads its values.
    pub fn open(path: &Path) -> io::Result<Self> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() < CHECKPOINT_FILE_SIZE {
            file.set_len(CHECKPOINT_FILE_SIZE)?;
        }
        let (values, state) = if existed {
            let mut buf = [0u8; RECORD_LEN];
            file.read_exact_at(&mut buf, 0)?;
            CheckpointValues::decode(&buf)
        } else {
            (CheckpointValues::default(), CheckpointState::Missing)
        };
        Ok(Checkpoint {
            file,
            values,
            state,
        })
    }

    /// The current in-memory values (loaded, then as updated).
    pub fn values(&self) -> CheckpointValues {
        self.values
    }

    /// How the file looked at open.
    pub fn state(&self) -> CheckpointState {
        self.state
    }

    /// Replaces the in-memory values; they reach disk at the next [`Checkpoint::flush`].
    pub fn set_values(&mut self, values: CheckpointValues) {
        self.values = values;
    }

    /// A second handle on the same file with the same values, so a flush can run on a helper
    /// thread while this one stays with its owner.
    pub fn try_clone(&self) -> io::Result<Checkpoint> {
        Ok(Checkpoint {
            file: self.file.try_clone()?,
            values: self.values,
            state: self.state,
        })
    }

    /// Writes the record in place and `fdatasync`s it. Blocking; callers on an executor run it
    /// where a short stall is acceptable (timer tick, shutdown) or via `spawn_blocking`.
    pub fn flush(&self) -> io::Result<()> {
        self.file.write_all_at(&self.values.encode(), 0)?;
        self.file.sync_data()
    }
}

/// Path of the abort marker under `root`.
pub fn abort_file_path(root: &Path) -> PathBuf {
    root.join(ABORT_FILE_NAME)
}

/// Whether the abort marker exists under `root` (the last run did not shut down cleanly).
pub fn abort_file_exists(root: &Path) -> bool {
    abort_file_path(root).exists()
}

/// Creates (or overwrites) the abort marker under `root`, holding this process id. Only the
/// file's existence carries meaning, so durability needs just its directory entry: the directory
/// is synced when the file is new, and nothing is synced when a previous crash left it in place.
pub fn create_abort_file(root: &Path) -> io::Result<()> {
    let path = abort_file_path(root);
    let existed = path.exists();
    let file = File::create(&path)?;
    file.write_all_at(std::process::id().to_string().as_bytes(), 0)?;
    if existed {
        Ok(())
    } else {
        sync_dir(root)
    }
}

/// Removes the abort marker under `root` (missing is fine) and syncs the directory so the removal
/// is durable.
pub fn remove_abort_file(root: &Path) -> io::Result<()> {
    match std::fs::remove_file(abort_file_path(root)) {
        Ok(()) => sync_dir(root),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointValues {
        CheckpointValues {
            physic_msg_timestamp: 0x0102_0304_0506_0708,
            logics_msg_timestamp: 1_700_000_000_000,
            index_msg_timestamp: 1,
            master_flushed_offset: -1,
            confirm_phy_offset: 0,
        }
    }

    #[test]
    fn encode_is_byte_exact() {
        let bytes = sample().encode();
        assert_eq!(&bytes[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[8..16], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&bytes[16..24], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&bytes[24..32], &[0xff; 8]);
        assert_eq!(&bytes[32..40], &[0; 8]);
        assert_eq!(&bytes[40..44], &crc32fast::hash(&bytes[..40]).to_be_bytes());
        assert_eq!(&bytes[44..48], b"TCP1");
    }

    #[test]
    fn decode_round_trips_and_detects_tearing() {
        let bytes = sample().encode();
        assert_eq!(
            CheckpointValues::decode(&bytes),
            (sample(), CheckpointState::Intact)
        );
        for i in 0..44 {
            let mut torn = bytes;
            torn[i] ^= 0x40;
            let (v, state) = CheckpointValues::decode(&torn);
            assert_eq!(state, CheckpointState::Torn, "byte {i}");
            assert_eq!(v, CheckpointValues::default());
        }
    }

    #[test]
    fn rocketmq_written_record_is_trusted() {
        let mut bytes = [0u8; 40];
        bytes[0..8].copy_from_slice(&5000i64.to_be_bytes());
        bytes[8..16].copy_from_slice(&9000i64.to_be_bytes());
        let (v, state) = CheckpointValues::decode(&bytes);
        assert_eq!(state, CheckpointState::Foreign);
        assert_eq!(v.physic_msg_timestamp, 5000);
        assert_eq!(v.safe_recovery_timestamp(false), 2000);
        assert_eq!(v.safe_recovery_timestamp(true), 0);
    }

    #[test]
    fn file_persists_values_and_is_one_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE_NAME);
        let mut cp = Checkpoint::open(&path).unwrap();
        assert_eq!(cp.state(), CheckpointState::Missing);
        cp.set_values(sample());
        cp.flush().unwrap();
        drop(cp);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            CHECKPOINT_FILE_SIZE
        );
        let cp = Checkpoint::open(&path).unwrap();
        assert_eq!(cp.state(), CheckpointState::Intact);
        assert_eq!(cp.values(), sample());
    }

    #[test]
    fn abort_marker_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!abort_file_exists(dir.path()));
        create_abort_file(dir.path()).unwrap();
        assert!(abort_file_exists(dir.path()));
        let pid = std::fs::read_to_string(abort_file_path(dir.path())).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        remove_abort_file(dir.path()).unwrap();
        assert!(!abort_file_exists(dir.path()));
        remove_abort_file(dir.path()).unwrap();
    }
}
