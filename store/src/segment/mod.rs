//! CommitLog segments: one preallocated file each, named by its 20-digit zero-padded start offset,
//! written through one of two backends behind a single interface.
//!
//! | backend            | append                         | flush                                       | read of recent bytes |
//! |--------------------|--------------------------------|---------------------------------------------|----------------------|
//! | [`IoMode::Mmap`]   | copy into a shared memory map  | msync of the dirty range on a helper thread | page cache (file)    |
//! | [`IoMode::Direct`] | copy into the in-memory tail   | O_DIRECT writes of dirty pages + fdatasync  | tail memory          |
//!
//! Positions inside a segment are relative to its start. A segment tracks two of them: `write_pos`
//! (bytes appended) and `durable_pos` (bytes covered by a completed flush); `durable_pos <= write_pos`.
//!
//! [`IoMode::Mmap`]: crate::config::IoMode::Mmap
//! [`IoMode::Direct`]: crate::config::IoMode::Direct

mod direct;
mod mmap;
mod page_warmer;

pub(crate) use direct::BufferPool;

use std::fs::File;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::{IoMode, PAGE_SIZE};
use crate::error::{StoreError, StoreResult};

/// Width of a segment file name: the start offset, zero-padded to 20 decimal digits.
pub const SEGMENT_NAME_LEN: usize = 20;

/// The file name of the segment starting at `start_offset`.
pub fn segment_file_name(start_offset: u64) -> String {
    format!("{start_offset:0width$}", width = SEGMENT_NAME_LEN)
}

/// Parses a segment file name back into its start offset; `None` for anything else.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    if name.len() != SEGMENT_NAME_LEN || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Bytes of the CommitLog ready to be sent to a client without copying.
///
/// * `File`: `len` bytes at `offset` of an open file; the `Rc` keeps the descriptor open for as long
///   as the range lives, so the transport can `sendfile` from [`ReadRange::raw_fd`].
/// * `Memory`: bytes still in the direct backend's in-memory tail (not yet, or only just, written),
///   shared with the tail without copying.
#[derive(Debug, Clone)]
pub enum ReadRange {
    /// A range of an open file.
    File {
        /// The open file (its descriptor stays valid while this lives).
        file: Rc<File>,
        /// Byte offset in the file.
        offset: u64,
        /// Number of bytes.
        len: usize,
    },
    /// A range of an in-memory buffer.
    Memory {
        /// The shared buffer.
        bytes: Rc<[u8]>,
        /// The range of `bytes` that holds the data.
        range: Range<usize>,
    },
}

impl ReadRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> usize {
        match self {
            ReadRange::File { len, .. } => *len,
            ReadRange::Memory { range, .. } => range.len(),
        }
    }

    /// True if the range holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file descriptor of a `File` range (valid while `self` lives).
    pub fn raw_fd(&self) -> Option<RawFd> {
        match self {
            ReadRange::File { file, .. } => Some(file.as_raw_fd()),
            ReadRange::Memory { .. } => None,
        }
    }

    /// The bytes of a `Memory` range.
    pub fn as_memory(&self) -> Option<&[u8]> {
        match self {
            ReadRange::File { .. } => None,
            ReadRange::Memory { bytes, range } => bytes.get(range.clone()),
        }
    }

    /// Copies the range's bytes into `out` (which must be exactly `len()` bytes); for `File` ranges
    /// this is a blocking `pread`, meant for tests and tools, not for the serving path.
    pub fn copy_to(&self, out: &mut [u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if out.len() != self.len() {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        match self {
            ReadRange::File { file, offset, .. } => file.read_exact_at(out, *offset),
            ReadRange::Memory { .. } => {
                let src = self.as_memory().ok_or(std::io::ErrorKind::InvalidData)?;
                out.copy_from_slice(src);
                Ok(())
            }
        }
    }
}

/// Where the rest of a read has to come from after the in-memory part was copied.
pub(crate) enum PendingRead {
    /// Everything was copied.
    Done,
    /// `len` bytes at `file_pos` of the segment file go to the start of the caller's buffer.
    File {
        file: Rc<glommio::io::DmaFile>,
        /// A buffered descriptor of the same file, for when O_DIRECT reads are refused.
        buffered: Rc<File>,
        path: PathBuf,
        file_pos: u64,
        len: usize,
    },
}

impl PendingRead {
    /// Completes the read into `out[..len]`.
    pub(crate) async fn finish(self, out: &mut [u8]) -> StoreResult<()> {
        use std::os::unix::fs::FileExt;
        let PendingRead::File {
            file,
            buffered,
            path,
            file_pos,
            len,
        } = self
        else {
            return Ok(());
        };
        let Some(dst) = out.get_mut(..len) else {
            return Err(StoreError::BadSegment {
                path,
                reason: "read buffer shorter than requested",
            });
        };
        match file.read_at(file_pos, len).await {
            Ok(got) => match got.get(..len) {
                Some(src) => {
                    dst.copy_from_slice(src);
                    Ok(())
                }
                None => Err(StoreError::BadSegment {
                    path,
                    reason: "segment file shorter than its size",
                }),
            },
            Err(e) => {
                let e: std::io::Error = e.into();
                if e.kind() != std::io::ErrorKind::Unsupported {
                    return Err(StoreError::io("reading", path, e));
                }
                // glommio misdetected io_uring polling support for the device (see
                // `direct::create_file`); a blocking buffered read still gets the bytes, which
                // are durable and never rewritten.
                buffered
                    .read_exact_at(dst, file_pos)
                    .map_err(|e| StoreError::io("reading", path, e))
            }
        }
    }
}

/// The I/O needed to make a segment durable up to some position, detached from the segment so it can
/// run while appends continue.
pub(crate) enum FlushJob {
    Mmap(mmap::MmapFlush),
    Direct(direct::DirectFlush),
}

impl FlushJob {
    /// Performs the writes and the sync. Returns only after the sync syscall returned.
    pub(crate) async fn run(self) -> StoreResult<()> {
        match self {
            FlushJob::Mmap(j) => j.run().await,
            FlushJob::Direct(j) => j.run().await,
        }
    }
}

enum Backend {
    Mmap(mmap::MmapIo),
    Direct(direct::DirectIo),
}

/// One CommitLog file.
pub(crate) struct Segment {
    start: u64,
    size: u64,
    path: PathBuf,
    write_pos: u64,
    durable_pos: u64,
    io: Backend,
}

/// Checks a segment size: positive and a whole number of pages (O_DIRECT needs page-aligned writes).
pub(crate) fn check_segment_size(path: &Path, size: u64) -> StoreResult<()> {
    if size == 0 || !size.is_multiple_of(PAGE_SIZE as u64) {
        return Err(StoreError::BadSegment {
            path: path.to_path_buf(),
            reason: "segment size is not a positive multiple of 4096",
        });
    }
    Ok(())
}

impl Segment {
    /// Creates and preallocates the segment file starting at `start` (it must not exist yet).
    /// Preallocation is what turns a full disk into [`StoreError::DiskFull`] here instead of a
    /// SIGBUS or a short write later.
    pub(crate) async fn create(
        mode: IoMode,
        dir: &Path,
        start: u64,
        size: u64,
        pool: &Rc<BufferPool>,
    ) -> StoreResult<Self> {
        let path = dir.join(segment_file_name(start));
        check_segment_size(&path, size)?;
        let io = match mode {
            IoMode::Mmap => Backend::Mmap(mmap::MmapIo::open(&path, size, true).await?),
            IoMode::Direct => {
                Backend::Direct(direct::DirectIo::open(&path, size, true, pool).await?)
            }
        };
        // Make the new file's directory entry durable, so synced records can be found after a crash.
        let dir_path = dir.to_path_buf();
        tern_runtime::spawn_blocking(move || {
            File::open(&dir_path)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::io("syncing", dir_path, e))
        })
        .await?;
        Ok(Segment {
            start,
            size,
            path,
            write_pos: 0,
            durable_pos: 0,
            io,
        })
    }

    /// Opens an existing segment file. Its size is the file's length; reads may reach all of it and
    /// the write position is the end of the file until [`Segment::truncate`] moves it back.
    pub(crate) async fn open(
        mode: IoMode,
        path: PathBuf,
        start: u64,
        pool: &Rc<BufferPool>,
    ) -> StoreResult<Self> {
        let size = std::fs::metadata(&path)
            .map_err(|e| StoreError::io("inspecting", &path, e))?
            .len();
        check_segment_size(&path, size)?;
        let io = match mode {
            IoMode::Mmap => Backend::Mmap(mmap::MmapIo::open(&path, size, false).await?),
            IoMode::Direct => {
                Backend::Direct(direct::DirectIo::open(&path, size, false, pool).await?)
            }
        };
        Ok(Segment {
            start,
            size,
            path,
            write_pos: size,
            durable_pos: size,
            io,
        })
    }

    /// Absolute offset of the segment's first byte.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Bytes in the segment file.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Absolute offset one past the segment's last byte.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.size
    }

    /// The segment file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes appended (relative).
    pub(crate) fn write_pos(&self) -> u64 {
        self.write_pos
    }

    /// Bytes left for appends.
    pub(crate) fn remaining(&self) -> u64 {
        self.size - self.write_pos
    }

    /// Bytes made durable by completed flushes (relative).
    pub(crate) fn durable_pos(&self) -> u64 {
        self.durable_pos
    }

    /// Appends `len` bytes written by `fill` at the write position. The caller checked that they fit.
    pub(crate) fn append_with<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
        debug_assert!(len as u64 <= self.remaining());
        let pos = self.write_pos;
        let r = match &mut self.io {
            Backend::Mmap(io) => io.write_with(pos, len, fill),
            Backend::Direct(io) => io.write_with(pos, len, fill),
        };
        self.write_pos += len as u64;
        r
    }

    /// Marks the rest of the segment as used (after its blank record); the bytes stay zero.
    pub(crate) fn seal(&mut self) {
        self.write_pos = self.size;
    }

    /// A zero-copy view of `len` bytes at relative `pos` (`pos + len <= write_pos`).
    pub(crate) fn read_range(&self, pos: u64, len: usize) -> StoreResult<ReadRange> {
        debug_assert!(pos + len as u64 <= self.write_pos);
        match &self.io {
            Backend::Mmap(io) => Ok(io.read_range(pos, len)),
            Backend::Direct(io) => io.read_range(pos, len),
        }
    }

    /// Copies what is in memory of `[pos, pos + out.len())` into `out`; returns what remains to be
    /// read from the file (always a prefix of `out`).
    pub(crate) fn read_into(&self, pos: u64, out: &mut [u8]) -> PendingRead {
        debug_assert!(pos + out.len() as u64 <= self.size);
        match &self.io {
            Backend::Mmap(io) => {
                io.read_into(pos, out);
                PendingRead::Done
            }
            Backend::Direct(io) => io.read_into(pos, out, &self.path),
        }
    }

    /// The I/O that makes `[durable_pos, write_pos)` durable, or `None` if nothing is dirty.
    /// Returns the job and the relative position it makes durable.
    pub(crate) fn flush_job(&mut self) -> Option<(FlushJob, u64)> {
        if self.durable_pos == self.write_pos {
            return None;
        }
        let (from, to) = (self.durable_pos, self.write_pos);
        let job = match &mut self.io {
            Backend::Mmap(io) => FlushJob::Mmap(io.flush_job(&self.path, from, to)),
            Backend::Direct(io) => FlushJob::Direct(io.flush_job(&self.path, from, to)),
        };
        Some((job, to))
    }

    /// Records that a flush job covering `[.., pos)` completed.
    pub(crate) fn flush_completed(&mut self, pos: u64) {
        if pos > self.durable_pos && pos <= self.write_pos {
            self.durable_pos = pos;
            if let Backend::Direct(io) = &mut self.io {
                io.release_durable(pos);
            }
        }
    }

    /// Moves the write position back to `pos` and zeroes `[pos, size)` on disk and in memory, so a
    /// later scan never mistakes old bytes for records. The kept bytes count as durable.
    /// Must not run while a flush job of this segment is in flight.
    pub(crate) fn truncate(&mut self, pos: u64) -> StoreResult<()> {
        assert!(pos <= self.size, "truncate past the segment end");
        match &mut self.io {
            Backend::Mmap(io) => io.zero_from(&self.path, pos, self.size)?,
            Backend::Direct(io) => io.zero_from(&self.path, pos, self.size)?,
        }
        self.write_pos = pos;
        self.durable_pos = pos;
        Ok(())
    }
}

/// Zeroes `[from, to)` of `file` on disk: whole pages with `fallocate(FALLOC_FL_ZERO_RANGE)` (the
/// extents stay allocated), falling back to writing zeros where the filesystem lacks it. Blocking.
pub(crate) fn zero_file_range(file: &File, path: &Path, from: u64, to: u64) -> StoreResult<()> {
    use std::os::unix::fs::FileExt;
    if from >= to {
        return Ok(());
    }
    let (Ok(off), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(to - from),
    ) else {
        return Err(StoreError::BadSegment {
            path: path.to_path_buf(),
            reason: "range beyond off_t",
        });
    };
    if from < PAGE_SIZE as u64 {
        // The first page is written, never deallocated: glommio probes O_DIRECT polling support
        // by reading it (see `direct::create_file`).
        let end = to.min(PAGE_SIZE as u64);
        let zeros = [0u8; PAGE_SIZE];
        file.write_all_at(&zeros[from as usize..end as usize], from)
            .map_err(|e| StoreError::io("zeroing", path, e))?;
        return zero_file_range(file, path, end, to);
    }
    // SAFETY: fallocate only reads its integer arguments; the descriptor is open for the call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_ZERO_RANGE, off, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(StoreError::io("zeroing", path, err));
    }
    let zeros = vec![0u8; 1 << 20];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], pos)
            .map_err(|e| StoreError::io("zeroing", path, e))?;
        pos += n as u64;
    }
    Ok(())
}

/// Preallocates `size` bytes of `file` (blocking); ENOSPC becomes [`StoreError::DiskFull`].
pub(crate) fn preallocate(file: &File, path: &Path, size: u64) -> StoreResult<()> {
    let Ok(len) = libc::off_t::try_from(size) else {
        return Err(StoreError::BadSegment {
            path: path.to_path_buf(),
            reason: "segment size beyond off_t",
        });
    };
    // SAFETY: fallocate only reads its integer arguments; the descriptor is open for the call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return file
            .set_len(size)
            .map_err(|e| StoreError::io("sizing", path, e));
    }
    Err(StoreError::io("preallocating", path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digits() {
        assert_eq!(segment_file_name(0), "00000000000000000000");
        assert_eq!(segment_file_name(1 << 30), "00000000001073741824");
        assert_eq!(segment_file_name(3 << 56), "00216172782113783808");
        assert_eq!(
            parse_segment_file_name("00000000001073741824"),
            Some(1 << 30)
        );
        assert_eq!(parse_segment_file_name("0000000000107374182"), None);
        assert_eq!(parse_segment_file_name("0000000000107374182x"), None);
        assert_eq!(parse_segment_file_name("99999999999999999999"), None);
    }
}
