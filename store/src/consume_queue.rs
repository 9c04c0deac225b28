//! ConsumeQueue: the per-(topic, queueId) index from queue offset to CommitLog position.
//!
//! Each entry is 20 bytes, big-endian (RocketMQ's `ConsumeQueue` store unit):
//!
//! | offset | size | field         | meaning                                              |
//! |-------:|-----:|---------------|------------------------------------------------------|
//! | 0      | 8    | phys_offset   | CommitLog position of the message record (>= 0)     |
//! | 8      | 4    | size          | record length (> 0)                                  |
//! | 12     | 8    | tag_hash      | [`tag_hash_code`] of the TAGS property (0 if none)   |
//!
//! Entry `n` of the queue (queue offset `n`) lives at byte `n * 20` of the queue's logical byte space,
//! which is cut into files of `entries_per_file * 20` bytes under `<root>/consumequeue/<topic>/<queueId>/`,
//! each named by its first byte's logical position as 20 zero-padded decimal digits. An entry with
//! `size <= 0` or `phys_offset < 0` (in particular an all-zero one) marks the end of the written data.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

/// Size of one ConsumeQueue entry in bytes.
pub const CQ_ENTRY_SIZE: usize = 20;
/// RocketMQ's default number of entries per ConsumeQueue file (`mappedFileSizeConsumeQueue / 20`).
pub const DEFAULT_ENTRIES_PER_FILE: usize = 300_000;

/// One ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// CommitLog position of the message record.
    pub phys_offset: i64,
    /// Record length in bytes.
    pub size: i32,
    /// [`tag_hash_code`] of the message's TAGS (0 without tags).
    pub tag_hash: i64,
}

impl CqEntry {
    /// Whether the entry marks written data (`phys_offset >= 0 && size > 0`).
    pub fn is_valid(&self) -> bool {
        self.phys_offset >= 0 && self.size > 0
    }

    /// CommitLog position just past the record.
    pub fn phys_end(&self) -> i64 {
        self.phys_offset + i64::from(self.size)
    }

    fn read(bytes: &[u8]) -> Self {
        let mut phys = [0u8; 8];
        let mut size = [0u8; 4];
        let mut tag = [0u8; 8];
        phys.copy_from_slice(&bytes[0..8]);
        size.copy_from_slice(&bytes[8..12]);
        tag.copy_from_slice(&bytes[12..20]);
        Self {
            phys_offset: i64::from_be_bytes(phys),
            size: i32::from_be_bytes(size),
            tag_hash: i64::from_be_bytes(tag),
        }
    }

    /// The 20 stored bytes of this entry.
    pub fn to_bytes(&self) -> [u8; CQ_ENTRY_SIZE] {
        let mut out = [0u8; CQ_ENTRY_SIZE];
        out[0..8].copy_from_slice(&self.phys_offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out[12..20].copy_from_slice(&self.tag_hash.to_be_bytes());
        out
    }
}

/// Java's `String.hashCode` of `tag` (over UTF-16 code units, wrapping 32-bit arithmetic), widened to
/// i64: the tag hash stored in ConsumeQueue entries and compared by tag filters.
pub fn tag_hash_code(tag: &str) -> i64 {
    i64::from(java_string_hash(tag))
}

/// Java's `String.hashCode` of `s`: `h = 31 * h + unit` over its UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Errors from [`ConsumeQueue`].
#[derive(Debug, thiserror::Error)]
pub enum CqError {
    /// A file operation failed.
    #[error("consume queue I/O on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The topic is empty or has a character outside RocketMQ's `[%|a-zA-Z0-9_-]` (which also keeps
    /// it a single, safe path component).
    #[error("invalid topic name {0:?}")]
    InvalidTopic(String),
    /// `entries_per_file` is zero or too large for a file.
    #[error("invalid entries per file {0}")]
    EntriesPerFile(usize),
    /// A file is larger than the configured file size, or shorter without being the newest.
    #[error("consume queue file {path} has {len} bytes, the file size is {expected}")]
    FileSize {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// Configured file size.
        expected: u64,
    },
    /// The files on disk do not form a contiguous range (a file is missing or misnamed).
    #[error("consume queue file {path} does not follow its predecessor")]
    NotContiguous {
        /// The first file out of sequence.
        path: PathBuf,
    },
    /// An append skipped ahead of the next queue offset.
    #[error("append at queue offset {got}, next offset is {expected}")]
    Gap {
        /// `max_offset()`.
        expected: i64,
        /// The offset given.
        got: i64,
    },
    /// A replayed append disagrees with the stored entry.
    #[error("append at queue offset {offset} conflicts with the stored entry")]
    Conflict {
        /// The offset given.
        offset: i64,
    },
    /// An append below the first retained offset.
    #[error("append at queue offset {offset} is below the minimum offset {min}")]
    BelowMin {
        /// The offset given.
        offset: i64,
        /// `min_offset()`.
        min: i64,
    },
    /// The entry would read back as end-of-data (`size <= 0` or `phys_offset < 0`).
    #[error("invalid entry {0:?}")]
    InvalidEntry(CqEntry),
}

/// One mapped ConsumeQueue file.
struct CqFile {
    /// Queue offset of the file's first entry.
    first: i64,
    path: PathBuf,
    map: MmapMut,
    dirty: bool,
}

impl CqFile {
    fn entry(&self, index: usize) -> CqEntry {
        let at = index * CQ_ENTRY_SIZE;
        CqEntry::read(&self.map[at..at + CQ_ENTRY_SIZE])
    }

    fn write(&mut self, index: usize, entry: &CqEntry) {
        let at = index * CQ_ENTRY_SIZE;
        self.map[at..at + CQ_ENTRY_SIZE].copy_from_slice(&entry.to_bytes());
        self.dirty = true;
    }

    /// Zeroes entries from `index` to the end of the file.
    fn clear_from(&mut self, index: usize) {
        let at = index * CQ_ENTRY_SIZE;
        if self.map[at..].iter().any(|&b| b != 0) {
            self.map[at..].fill(0);
            self.dirty = true;
        }
    }
}

/// The ConsumeQueue of one (topic, queueId), owned by one core.
///
/// Guarantees: entries are dense from [`min_offset`](Self::min_offset) to
/// [`max_offset`](Self::max_offset) (exclusive); every stored entry is valid; after
/// [`flush`](Self::flush) returns, appended entries survive a crash. The minimum offset is not persisted
/// inside a file: after reopening, call [`set_min_phys`](Self::set_min_phys) with the CommitLog's
/// minimum offset to skip entries whose messages are gone.
pub struct ConsumeQueue {
    dir: PathBuf,
    entries_per_file: usize,
    files: VecDeque<CqFile>,
    min_offset: i64,
    max_offset: i64,
}

impl std::fmt::Debug for ConsumeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueue")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .field("min_offset", &self.min_offset)
            .field("max_offset", &self.max_offset)
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CqError + '_ {
    move |source| CqError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses a 20-digit file name into its number.
pub(crate) fn parse_offset_name(name: &str) -> Option<i64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Whether `topic` is a legal RocketMQ topic name: non-empty, only `[%|a-zA-Z0-9_-]`.
pub fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
}

/// The directory of a queue's files: `<root>/consumequeue/<topic>/<queueId>`.
pub fn queue_dir(root: &Path, topic: &str, queue_id: i32) -> PathBuf {
    root.join("consumequeue")
        .join(topic)
        .join(queue_id.to_string())
}

impl ConsumeQueue {
    /// Opens (creating if needed) the queue's directory and maps its existing files (`entries_per_file`
    /// must match the one the files were written with). A torn tail (a
    /// partial entry at the end of a short file, or invalid/zeroed entries after the last valid one) is
    /// dropped and zeroed, with a log line.
    pub fn open(
        root: &Path,
        topic: &str,
        queue_id: i32,
        entries_per_file: usize,
    ) -> Result<Self, CqError> {
        if entries_per_file == 0 || entries_per_file > (i32::MAX as usize) / CQ_ENTRY_SIZE {
            return Err(CqError::EntriesPerFile(entries_per_file));
        }
        if !is_valid_topic(topic) {
            return Err(CqError::InvalidTopic(topic.to_owned()));
        }
        let dir = queue_dir(root, topic, queue_id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut names = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let item = item.map_err(io_err(&dir))?;
            match item.file_name().to_str().and_then(parse_offset_name) {
                Some(start) => names.push((start, item.path())),
                None => {
                    tracing::warn!(path = %item.path().display(), "ignoring stray file in consume queue directory")
                }
            }
        }
        names.sort_unstable_by_key(|(start, _)| *start);

        let file_bytes = (entries_per_file * CQ_ENTRY_SIZE) as i64;
        let mut cq = Self {
            dir,
            entries_per_file,
            files: VecDeque::with_capacity(names.len()),
            min_offset: 0,
            max_offset: 0,
        };
        let mut last_len = 0u64;
        let count = names.len();
        for (i, (start, path)) in names.into_iter().enumerate() {
            if start % file_bytes != 0
                || cq.files.back().is_some_and(|prev| {
                    prev.first + entries_per_file as i64 != start / CQ_ENTRY_SIZE as i64
                })
            {
                return Err(CqError::NotContiguous { path });
            }
            // Only the newest file may be short (a crash while it was being created or written).
            let (map, len) = map_file(&path, file_bytes as u64, i + 1 == count)?;
            last_len = len;
            cq.files.push_back(CqFile {
                first: start / CQ_ENTRY_SIZE as i64,
                path,
                map,
                dirty: false,
            });
        }
        cq.recover_tail(last_len)?;
        Ok(cq)
    }

    /// Finds the end of the written entries, dropping a torn tail and trailing empty files.
    fn recover_tail(&mut self, last_len: u64) -> Result<(), CqError> {
        let Some(first) = self.files.front() else {
            return Ok(());
        };
        self.min_offset = first.first;
        // Entries wholly inside the last file's on-disk length; a short file ends mid-entry.
        let mut limit = ((last_len as usize) / CQ_ENTRY_SIZE).min(self.entries_per_file);
        if !(last_len as usize).is_multiple_of(CQ_ENTRY_SIZE) {
            tracing::warn!(dir = %self.dir.display(), "consume queue file ends mid-entry; dropping the partial entry");
        }
        loop {
            let Some(last) = self.files.back_mut() else {
                return Ok(());
            };
            let valid = (0..limit)
                .find(|&i| !last.entry(i).is_valid())
                .unwrap_or(limit);
            let has_garbage = (valid..self.entries_per_file).any(|i| last.entry(i) != ZERO_ENTRY);
            if has_garbage {
                tracing::warn!(
                    path = %last.path.display(),
                    kept = valid,
                    "dropping torn entries at the end of a consume queue file"
                );
                last.clear_from(valid);
            }
            self.max_offset = last.first + valid as i64;
            if valid > 0 || self.files.len() == 1 {
                return Ok(());
            }
            // An empty last file behind an earlier one: remove it and look at its predecessor.
            if let Some(empty) = self.files.pop_back() {
                drop(empty.map);
                fs::remove_file(&empty.path).map_err(io_err(&empty.path))?;
            }
            limit = self.entries_per_file;
        }
    }

    /// Appends `entry` at `queue_offset`, which must equal [`max_offset`](Self::max_offset). An offset
    /// below the maximum whose stored entry is identical is accepted as a replay (recovery re-dispatch)
    /// and changes nothing; anything else is an error.
    pub fn append(&mut self, queue_offset: i64, entry: CqEntry) -> Result<(), CqError> {
        if !entry.is_valid() {
            return Err(CqError::InvalidEntry(entry));
        }
        if queue_offset < self.max_offset {
            if queue_offset < self.min_offset {
                return Err(CqError::BelowMin {
                    offset: queue_offset,
                    min: self.min_offset,
                });
            }
            return match self.get(queue_offset) {
                Some(stored) if stored == entry => Ok(()),
                _ => Err(CqError::Conflict {
                    offset: queue_offset,
                }),
            };
        }
        if queue_offset > self.max_offset {
            return Err(CqError::Gap {
                expected: self.max_offset,
                got: queue_offset,
            });
        }
        let needs_file = match self.files.back() {
            None => true,
            Some(last) => queue_offset >= last.first + self.entries_per_file as i64,
        };
        if needs_file {
            self.create_file(queue_offset)?;
        }
        let epf = self.entries_per_file as i64;
        let last = self.files.back_mut().ok_or(CqError::Gap {
            expected: self.max_offset,
            got: queue_offset,
        })?;
        debug_assert!(queue_offset >= last.first && queue_offset < last.first + epf);
        last.write((queue_offset - last.first) as usize, &entry);
        self.max_offset = queue_offset + 1;
        Ok(())
    }

    /// Creates and maps the file whose first entry is `first` (a multiple of entries per file).
    fn create_file(&mut self, first: i64) -> Result<(), CqError> {
        debug_assert_eq!(first % self.entries_per_file as i64, 0);
        let path = self
            .dir
            .join(format!("{:020}", first * CQ_ENTRY_SIZE as i64));
        let file_bytes = (self.entries_per_file * CQ_ENTRY_SIZE) as u64;
        let (mut map, _) = map_file_sized(&path, file_bytes).map_err(io_err(&path))?;
        // A leftover file at this name (e.g. from before a truncation) must not leak old entries.
        if map.iter().any(|&b| b != 0) {
            map.fill(0);
        }
        if self.files.is_empty() {
            self.min_offset = first;
        }
        self.files.push_back(CqFile {
            first,
            path,
            map,
            dirty: true,
        });
        Ok(())
    }

    /// The entry at `queue_offset`, or `None` outside `min_offset()..max_offset()`.
    pub fn get(&self, queue_offset: i64) -> Option<CqEntry> {
        if queue_offset < self.min_offset || queue_offset >= self.max_offset {
            return None;
        }
        let (file, index) = self.locate(queue_offset)?;
        Some(file.entry(index))
    }

    fn locate(&self, queue_offset: i64) -> Option<(&CqFile, usize)> {
        let first = self.files.front()?.first;
        let epf = self.entries_per_file as i64;
        let rel = queue_offset.checked_sub(first)?;
        let file = self.files.get(usize::try_from(rel / epf).ok()?)?;
        Some((file, (rel % epf) as usize))
    }

    /// The first queue offset still held.
    pub fn min_offset(&self) -> i64 {
        self.min_offset
    }

    /// The next queue offset to assign (one past the last entry).
    pub fn max_offset(&self) -> i64 {
        self.max_offset
    }

    /// `phys_offset + size` of the last entry, or `None` when the queue holds no entry.
    pub fn last_phys_end(&self) -> Option<i64> {
        self.get(self.max_offset - 1).map(|e| e.phys_end())
    }

    /// The first queue offset in `min_offset()..max_offset()` whose entry satisfies `pred`, given that
    /// `pred` is false then true along the queue (binary search); `max_offset()` if none.
    fn partition_point(&self, mut pred: impl FnMut(i64, CqEntry) -> bool) -> i64 {
        let (mut lo, mut hi) = (self.min_offset, self.max_offset);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid) {
                Some(entry) if pred(mid, entry) => hi = mid,
                _ => lo = mid + 1,
            }
        }
        lo
    }

    /// Drops every entry whose `phys_offset >= phys` (CommitLog truncated there), deleting files that
    /// become empty and zeroing the dropped entries of the file that keeps some.
    pub fn truncate_from_phys(&mut self, phys: i64) -> Result<(), CqError> {
        let cut = self.partition_point(|_, e| e.phys_offset >= phys);
        if cut >= self.max_offset {
            return Ok(());
        }
        while self.files.len() > 1 && self.files.back().is_some_and(|f| f.first >= cut) {
            if let Some(file) = self.files.pop_back() {
                let CqFile { path, map, .. } = file;
                drop(map);
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        if let Some(last) = self.files.back_mut() {
            let index = usize::try_from(cut - last.first).unwrap_or(0);
            last.clear_from(index.min(self.entries_per_file));
        }
        tracing::info!(dir = %self.dir.display(), from = cut, to = self.max_offset, "truncated consume queue");
        self.max_offset = cut;
        self.min_offset = self.min_offset.min(cut);
        Ok(())
    }

    /// Retention: advances the minimum offset to the first entry with `phys_offset >= phys` and deletes
    /// whole files below it (the newest file is always kept).
    pub fn set_min_phys(&mut self, phys: i64) -> Result<(), CqError> {
        let new_min = self.partition_point(|_, e| e.phys_offset >= phys);
        if new_min <= self.min_offset {
            return Ok(());
        }
        self.min_offset = new_min;
        let epf = self.entries_per_file as i64;
        while self.files.len() > 1 && self.files.front().is_some_and(|f| f.first + epf <= new_min) {
            if let Some(file) = self.files.pop_front() {
                let CqFile { path, map, .. } = file;
                drop(map);
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }

    /// The first queue offset whose message was stored at or after `ts` (ms), found by binary search;
    /// `max_offset()` if every message is older. `store_ts_of(phys_offset, size)` reads a message's store
    /// timestamp from the CommitLog; a message it cannot read counts as older than `ts`.
    pub fn search_by_time(
        &self,
        ts: i64,
        mut store_ts_of: impl FnMut(i64, i32) -> Option<i64>,
    ) -> i64 {
        self.partition_point(|_, e| store_ts_of(e.phys_offset, e.size).is_some_and(|t| t >= ts))
    }

    /// Writes dirty files to disk (msync).
    pub fn flush(&mut self) -> Result<(), CqError> {
        for file in self.files.iter_mut().filter(|f| f.dirty) {
            file.map.flush().map_err(io_err(&file.path))?;
            file.dirty = false;
        }
        Ok(())
    }
}

const ZERO_ENTRY: CqEntry = CqEntry {
    phys_offset: 0,
    size: 0,
    tag_hash: 0,
};

/// Opens or creates `path`, sets its length to `size` bytes and maps it. Returns the map and the
/// file's length before.
fn map_file_sized(path: &Path, size: u64) -> io::Result<(MmapMut, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    if len != size {
        file.set_len(size)?;
    }
    let map = map_mut(&file)?;
    Ok((map, len))
}

/// Maps an existing queue file of `size` bytes, extending it first if it is short and `allow_short`.
fn map_file(path: &Path, size: u64, allow_short: bool) -> Result<(MmapMut, u64), CqError> {
    let file_len = fs::metadata(path).map_err(io_err(path))?.len();
    if file_len > size || (file_len < size && !allow_short) {
        return Err(CqError::FileSize {
            path: path.to_path_buf(),
            len: file_len,
            expected: size,
        });
    }
    map_file_sized(path, size).map_err(io_err(path))
}

/// Maps `file` read-write.
pub(crate) fn map_mut(file: &File) -> io::Result<MmapMut> {
    // SAFETY: store files are owned by exactly one core of this process, which never shrinks a file
    // while it is mapped; the map is dropped before the file is removed or truncated.
    unsafe { MmapMut::map_mut(file) }
}
