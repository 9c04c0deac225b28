//! The message-key Index: RocketMQ's IndexFile layout, a hash table of linked entries per file.
//!
//! Files live under `<root>/index/`, named by their creation time as `yyyyMMddHHmmssSSS` (UTC in Tern;
//! RocketMQ uses the broker's local time zone). Each file has a fixed size of
//! `40 + slots * 4 + max_entries * 20` bytes, all integers big-endian:
//!
//! Header (40 bytes):
//!
//! | offset | size | field            | meaning                                                 |
//! |-------:|-----:|------------------|---------------------------------------------------------|
//! | 0      | 8    | begin_timestamp  | store timestamp (ms) of the first entry                 |
//! | 8      | 8    | end_timestamp    | store timestamp (ms) of the last entry                  |
//! | 16     | 8    | begin_phys       | CommitLog offset of the first entry                     |
//! | 24     | 8    | end_phys         | CommitLog offset of the last entry                      |
//! | 32     | 4    | hash_slot_count  | number of slots in use                                  |
//! | 36     | 4    | index_count      | next entry number; entries are numbered from 1          |
//!
//! Then `slots` hash slots of 4 bytes, each the number of the newest entry whose key hashes there
//! (0 = empty), then `max_entries` entries of 20 bytes (entry 0 is never used):
//!
//! | offset | size | field      | meaning                                                       |
//! |-------:|-----:|------------|---------------------------------------------------------------|
//! | 0      | 4    | key_hash   | `abs(java_string_hash(key))` (0 for `i32::MIN`)               |
//! | 4      | 8    | phys       | CommitLog offset of the message                               |
//! | 12     | 4    | time_diff  | `(store_timestamp - begin_timestamp) / 1000`, in seconds       |
//! | 16     | 4    | prev       | number of the previous entry in the same slot (0 = none)      |
//!
//! A key's slot is `key_hash % slots`. A file is full when `index_count >= max_entries`; the next put
//! creates a new file whose header starts from the previous file's end timestamp and end offset.
//! Keys are indexed as `topic#key` (see [`build_key`]). Only the 32-bit hash is stored, so a query can
//! return offsets of other keys with the same hash: callers check the key in the message.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::MmapMut;

use crate::consume_queue::{java_string_hash, map_mut};

/// Size of the IndexFile header in bytes.
pub const INDEX_HEADER_SIZE: usize = 40;
/// Size of one hash slot in bytes.
pub const INDEX_SLOT_SIZE: usize = 4;
/// Size of one index entry in bytes.
pub const INDEX_ENTRY_SIZE: usize = 20;
/// RocketMQ's default number of hash slots per file (`maxHashSlotNum`).
pub const DEFAULT_SLOTS: u32 = 5_000_000;
/// RocketMQ's default number of entries per file (`maxIndexNum`).
pub const DEFAULT_MAX_ENTRIES: u32 = 20_000_000;

/// The indexed form of a message key: `topic#key`.
pub fn build_key(topic: &str, key: &str, out: &mut String) {
    out.clear();
    out.push_str(topic);
    out.push('#');
    out.push_str(key);
}

/// The stored key hash: `abs(String.hashCode)`, with `i32::MIN` mapped to 0.
pub fn index_key_hash(key: &str) -> i32 {
    java_string_hash(key).checked_abs().unwrap_or(0)
}

/// Errors from [`IndexService`].
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A file operation failed.
    #[error("index I/O on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The slot or entry count is zero or makes a file larger than the format allows.
    #[error("invalid index geometry: {slots} slots, {max_entries} entries")]
    Geometry {
        /// Hash slots per file.
        slots: u32,
        /// Entries per file.
        max_entries: u32,
    },
    /// An existing file's size does not match the configured geometry.
    #[error("index file {path} has {len} bytes, expected {expected}")]
    FileSize {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// Size implied by the configured slots and entries.
        expected: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The 40-byte header, cached in memory and written through to the map on every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Header {
    begin_timestamp: i64,
    end_timestamp: i64,
    begin_phys: i64,
    end_phys: i64,
    hash_slot_count: i32,
    index_count: i32,
}

impl Header {
    fn read(bytes: &[u8]) -> Self {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let i32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            i32::from_be_bytes(b)
        };
        Self {
            begin_timestamp: i64_at(0),
            end_timestamp: i64_at(8),
            begin_phys: i64_at(16),
            end_phys: i64_at(24),
            hash_slot_count: i32_at(32),
            index_count: i32_at(36),
        }
    }

    fn write(&self, bytes: &mut [u8]) {
        bytes[0..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.end_timestamp.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.begin_phys.to_be_bytes());
        bytes[24..32].copy_from_slice(&self.end_phys.to_be_bytes());
        bytes[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        bytes[36..40].copy_from_slice(&self.index_count.to_be_bytes());
    }
}

/// One entry of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key_hash: i32,
    phys: i64,
    time_diff: i32,
    prev: i32,
}

/// One mapped index file.
struct IndexFile {
    path: PathBuf,
    map: MmapMut,
    header: Header,
    slots: u32,
    max_entries: u32,
    dirty: bool,
}

impl IndexFile {
    fn slot_pos(&self, key_hash: i32) -> usize {
        // key_hash >= 0, so the remainder is a valid slot number.
        INDEX_HEADER_SIZE + (key_hash as u32 % self.slots) as usize * INDEX_SLOT_SIZE
    }

    fn entry_pos(&self, number: i32) -> usize {
        INDEX_HEADER_SIZE
            + self.slots as usize * INDEX_SLOT_SIZE
            + number as usize * INDEX_ENTRY_SIZE
    }

    fn read_i32(&self, at: usize) -> i32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.map[at..at + 4]);
        i32::from_be_bytes(b)
    }

    fn write_i32(&mut self, at: usize, value: i32) {
        self.map[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// Slot head for `key_hash`, or 0 when empty or out of range (torn file).
    fn slot(&self, key_hash: i32) -> i32 {
        let head = self.read_i32(self.slot_pos(key_hash));
        if head <= 0 || head >= self.header.index_count {
            0
        } else {
            head
        }
    }

    /// Entry `number`; callers pass `1..index_count`, which is within the file.
    fn entry(&self, number: i32) -> Entry {
        let at = self.entry_pos(number);
        let mut phys = [0u8; 8];
        phys.copy_from_slice(&self.map[at + 4..at + 12]);
        Entry {
            key_hash: self.read_i32(at),
            phys: i64::from_be_bytes(phys),
            time_diff: self.read_i32(at + 12),
            prev: self.read_i32(at + 16),
        }
    }

    fn is_full(&self) -> bool {
        self.header.index_count as u32 >= self.max_entries
    }

    fn entry_count(&self) -> i32 {
        self.header.index_count - 1
    }

    fn sync_header(&mut self) {
        let header = self.header;
        header.write(&mut self.map[..INDEX_HEADER_SIZE]);
        self.dirty = true;
    }

    fn put(&mut self, key_hash: i32, phys: i64, store_timestamp: i64) {
        debug_assert!(!self.is_full());
        let number = self.header.index_count;
        let slot_pos = self.slot_pos(key_hash);
        let prev = self.slot(key_hash);
        let time_diff = if self.header.begin_timestamp <= 0 || number <= 1 {
            0
        } else {
            ((store_timestamp - self.header.begin_timestamp) / 1000).clamp(0, i64::from(i32::MAX))
                as i32
        };
        let at = self.entry_pos(number);
        self.map[at..at + 4].copy_from_slice(&key_hash.to_be_bytes());
        self.map[at + 4..at + 12].copy_from_slice(&phys.to_be_bytes());
        self.map[at + 12..at + 16].copy_from_slice(&time_diff.to_be_bytes());
        self.map[at + 16..at + 20].copy_from_slice(&prev.to_be_bytes());
        self.write_i32(slot_pos, number);
        if number <= 1 {
            self.header.begin_phys = phys;
            self.header.begin_timestamp = store_timestamp;
        }
        if prev == 0 {
            self.header.hash_slot_count += 1;
        }
        self.header.index_count += 1;
        self.header.end_phys = phys;
        self.header.end_timestamp = store_timestamp;
        self.sync_header();
    }

    /// Whether an entry for `key_hash` at `phys` exists among the entries at or past `phys` (the
    /// newest ones of the slot's chain).
    fn holds(&self, key_hash: i32, phys: i64) -> bool {
        let mut number = self.slot(key_hash);
        while number > 0 {
            let e = self.entry(number);
            if e.phys < phys {
                return false;
            }
            if e.phys == phys && e.key_hash == key_hash {
                return true;
            }
            if e.prev <= 0 || e.prev >= number {
                return false;
            }
            number = e.prev;
        }
        false
    }

    fn time_overlaps(&self, begin: i64, end: i64) -> bool {
        let h = &self.header;
        (begin < h.begin_timestamp && end > h.end_timestamp)
            || (begin >= h.begin_timestamp && begin <= h.end_timestamp)
            || (end >= h.begin_timestamp && end <= h.end_timestamp)
    }

    /// Appends to `out` the offsets of entries with `key_hash` stored within `[begin, end]`, newest
    /// first, until `out` holds `max`.
    fn select(&self, key_hash: i32, max: usize, begin: i64, end: i64, out: &mut Vec<i64>) {
        let mut number = self.slot(key_hash);
        // Each step moves to a strictly older entry, so the walk ends within index_count steps.
        let mut budget = self.header.index_count;
        while number > 0 && out.len() < max && budget > 0 {
            budget -= 1;
            let e = self.entry(number);
            if e.time_diff < 0 {
                break;
            }
            let stored_at = self.header.begin_timestamp + i64::from(e.time_diff) * 1000;
            if e.key_hash == key_hash && stored_at >= begin && stored_at <= end {
                out.push(e.phys);
            }
            if e.prev <= 0 || e.prev >= number || stored_at < begin {
                break;
            }
            number = e.prev;
        }
    }

    /// Removes entries numbered `first_removed` and up (newest first), unlinking each from its slot.
    fn truncate_entries(&mut self, first_removed: i32) {
        while self.header.index_count > first_removed && self.header.index_count > 1 {
            let number = self.header.index_count - 1;
            let e = self.entry(number);
            let slot_pos = self.slot_pos(e.key_hash);
            // The newest entry of its slot is this one; its predecessor becomes the head.
            let prev = if e.prev > 0 && e.prev < number {
                e.prev
            } else {
                0
            };
            if self.read_i32(slot_pos) == number {
                self.write_i32(slot_pos, prev);
                if prev == 0 {
                    self.header.hash_slot_count = (self.header.hash_slot_count - 1).max(0);
                }
            }
            let at = self.entry_pos(number);
            self.map[at..at + INDEX_ENTRY_SIZE].fill(0);
            self.header.index_count -= 1;
        }
        if self.header.index_count > 1 {
            self.header.end_phys = self.entry(self.header.index_count - 1).phys;
        }
        self.sync_header();
    }
}

/// The Index of one store: message keys to CommitLog offsets, across rolling IndexFiles.
///
/// Guarantees: [`query`](Self::query) returns offsets of entries whose key hash matches, newest first;
/// re-putting what is already indexed changes nothing, so recovery can re-dispatch from any offset at
/// or below [`max_phys_offset`](Self::max_phys_offset); after [`flush`](Self::flush) the entries
/// survive a crash.
pub struct IndexService {
    dir: PathBuf,
    slots: u32,
    max_entries: u32,
    files: Vec<IndexFile>,
}

impl std::fmt::Debug for IndexService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexService")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .finish()
    }
}

impl IndexService {
    /// Opens (creating if needed) `<root>/index/` and maps its files, oldest first.
    pub fn open(root: &Path, slots: u32, max_entries: u32) -> Result<Self, IndexError> {
        let file_size =
            file_size(slots, max_entries).ok_or(IndexError::Geometry { slots, max_entries })?;
        let dir = root.join("index");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut names = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let item = item.map_err(io_err(&dir))?;
            let name = item.file_name();
            match name.to_str() {
                Some(n) if n.len() == 17 && n.bytes().all(|b| b.is_ascii_digit()) => {
                    names.push((n.to_owned(), item.path()))
                }
                _ => {
                    tracing::warn!(path = %item.path().display(), "ignoring stray file in index directory")
                }
            }
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for (_, path) in names {
            let len = fs::metadata(&path).map_err(io_err(&path))?.len();
            if len == 0 {
                // A crash between creating a file and sizing it; it never held an entry.
                tracing::warn!(path = %path.display(), "removing empty index file");
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            if len != file_size {
                return Err(IndexError::FileSize {
                    path,
                    len,
                    expected: file_size,
                });
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let map = map_mut(&file).map_err(io_err(&path))?;
            let mut header = Header::read(&map[..INDEX_HEADER_SIZE]);
            // A torn or zeroed header: clamp the count into the file's range.
            if header.index_count <= 0 || header.index_count as u32 > max_entries {
                header.index_count = header.index_count.clamp(1, max_entries as i32);
            }
            files.push(IndexFile {
                path,
                map,
                header,
                slots,
                max_entries,
                dirty: false,
            });
        }
        Ok(Self {
            dir,
            slots,
            max_entries,
            files,
        })
    }

    /// Indexes `key` (already in `topic#key` form) for the message at `phys_offset`. Re-dispatch is
    /// idempotent: an offset below [`max_phys_offset`](Self::max_phys_offset) was indexed before and is
    /// ignored, and so is a key (by hash) already indexed at that offset in the newest file.
    pub fn put(
        &mut self,
        key: &str,
        phys_offset: i64,
        store_timestamp: i64,
    ) -> Result<(), IndexError> {
        let key_hash = index_key_hash(key);
        match self.files.last() {
            Some(_) if phys_offset < self.max_phys_offset() => return Ok(()),
            Some(last)
                if phys_offset == last.header.end_phys && last.holds(key_hash, phys_offset) =>
            {
                return Ok(())
            }
            Some(last) if !last.is_full() => {}
            _ => self.roll()?,
        }
        if let Some(file) = self.files.last_mut() {
            file.put(key_hash, phys_offset, store_timestamp);
        }
        Ok(())
    }

    /// Creates a new newest file, continuing from the previous file's end offset and timestamp.
    fn roll(&mut self) -> Result<(), IndexError> {
        let file_size = file_size(self.slots, self.max_entries).ok_or(IndexError::Geometry {
            slots: self.slots,
            max_entries: self.max_entries,
        })?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        // Names must sort after every existing file even if the clock stepped back or two rolls
        // happen within one millisecond.
        let mut stamp = now_ms;
        let mut name = String::with_capacity(17);
        loop {
            name.clear();
            format_timestamp_name(stamp, &mut name);
            let newer = self.files.last().is_none_or(|f| {
                f.path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n < name.as_str())
            });
            if newer && !self.dir.join(&name).exists() {
                break;
            }
            stamp += 1;
        }
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.set_len(file_size).map_err(io_err(&path))?;
        let map = map_mut(&file).map_err(io_err(&path))?;
        let mut header = Header {
            index_count: 1,
            ..Header::default()
        };
        if let Some(prev) = self.files.last() {
            header.begin_phys = prev.header.end_phys;
            header.end_phys = prev.header.end_phys;
            header.begin_timestamp = prev.header.end_timestamp;
            header.end_timestamp = prev.header.end_timestamp;
        }
        let mut index_file = IndexFile {
            path,
            map,
            header,
            slots: self.slots,
            max_entries: self.max_entries,
            dirty: true,
        };
        index_file.sync_header();
        tracing::info!(path = %index_file.path.display(), "created index file");
        self.files.push(index_file);
        Ok(())
    }

    /// CommitLog offsets of messages indexed under `key` (`topic#key` form) with store timestamps in
    /// `[begin_ts, end_ts]` (second granularity, as stored), newest first, at most `max`.
    pub fn query(&self, key: &str, max: usize, begin_ts: i64, end_ts: i64) -> Vec<i64> {
        let key_hash = index_key_hash(key);
        let mut out = Vec::new();
        for file in self.files.iter().rev() {
            if out.len() >= max {
                break;
            }
            if file.entry_count() > 0 && file.time_overlaps(begin_ts, end_ts) {
                file.select(key_hash, max, begin_ts, end_ts, &mut out);
            }
        }
        out
    }

    /// End offset of the newest file: the CommitLog offset of the last indexed message (0 if none).
    pub fn max_phys_offset(&self) -> i64 {
        self.files.last().map_or(0, |f| f.header.end_phys)
    }

    /// Forgets every entry at or past CommitLog offset `phys`: files that would become empty are
    /// deleted, and the file that straddles `phys` has its newer entries unlinked and zeroed.
    pub fn truncate_from_phys(&mut self, phys: i64) -> Result<(), IndexError> {
        while let Some(file) = self.files.last_mut() {
            if file.entry_count() > 0 && file.header.end_phys < phys {
                break;
            }
            let first_removed = first_entry_at_or_past(file, phys);
            if first_removed > 1 {
                file.truncate_entries(first_removed);
                break;
            }
            // Nothing below `phys` in this file: remove it whole.
            if let Some(file) = self.files.pop() {
                let IndexFile { path, map, .. } = file;
                drop(map);
                fs::remove_file(&path).map_err(io_err(&path))?;
                tracing::info!(path = %path.display(), "deleted index file past the recovered offset");
            }
        }
        Ok(())
    }

    /// Writes dirty files to disk (header included; msync).
    pub fn flush(&mut self) -> Result<(), IndexError> {
        for file in self.files.iter_mut().filter(|f| f.dirty) {
            file.map.flush().map_err(io_err(&file.path))?;
            file.dirty = false;
        }
        Ok(())
    }

    /// Retention: deletes files whose end offset is below `phys` (the newest file is always kept).
    pub fn delete_files_before_phys(&mut self, phys: i64) -> Result<(), IndexError> {
        while self.files.len() > 1 && self.files.first().is_some_and(|f| f.header.end_phys < phys) {
            let IndexFile { path, map, .. } = self.files.remove(0);
            drop(map);
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        Ok(())
    }
}

/// Number of the first entry of `file` whose offset is `>= phys` (entries are in offset order), or
/// `index_count` when every entry is below.
fn first_entry_at_or_past(file: &IndexFile, phys: i64) -> i32 {
    let (mut lo, mut hi) = (1, file.header.index_count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if file.entry(mid).phys >= phys {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// File size for a geometry, or `None` when a count is zero or entry numbers would overflow i32.
fn file_size(slots: u32, max_entries: u32) -> Option<u64> {
    if slots == 0 || max_entries < 2 || max_entries > i32::MAX as u32 {
        return None;
    }
    Some(
        INDEX_HEADER_SIZE as u64
            + u64::from(slots) * INDEX_SLOT_SIZE as u64
            + u64::from(max_entries) * INDEX_ENTRY_SIZE as u64,
    )
}

/// Formats epoch milliseconds (UTC) as `yyyyMMddHHmmssSSS` into `out`.
pub fn format_timestamp_name(epoch_ms: i64, out: &mut String) {
    let t = crate::civil_time::UtcFields::from_epoch_millis(epoch_ms);
    let _ = write!(
        out,
        "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    );
}
