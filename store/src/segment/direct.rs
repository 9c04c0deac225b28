//! The `direct` backend: O_DIRECT writes through glommio's `DmaFile` (io_uring) from an in-memory tail.
//!
//! The tail is a list of chunks, each a shared buffer holding the bytes of `[start, start + len)` of
//! the segment. Together they cover `[tail_start, write_pos)` without gaps (apart from the zeros after
//! a closing blank record, which are implied), and `tail_start <= align_down(durable_pos)`, so every
//! byte a flush may need to (re)write is in memory.
//!
//! * Append copies into the last chunk; if it is full or shared (a reader or a flush holds it), a new
//!   chunk starts at the write position. A record never spans chunks, so record reads from the tail
//!   are zero-copy [`ReadRange::Memory`] views.
//! * Flush clones the chunk handles (no copy), then copies the dirty pages
//!   `[align_down(durable_pos), align_up(write_pos))` into aligned DMA buffers, writes them (the partial
//!   last page is rewritten on every flush as it grows, zero-padded), and calls fdatasync.
//! * When a flush completed, chunks that end at or below `align_down(durable_pos)` are dropped;
//!   unshared full-size ones are kept for reuse.
//! * Bytes below `tail_start` are read from the file: through io_uring for internal reads, and as a
//!   [`ReadRange::File`] of a second, buffered descriptor for sendfile (O_DIRECT writes invalidate the
//!   page cache, and those pages are never rewritten, so the buffered view is coherent).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile};

use super::{preallocate, zero_file_range, PendingRead, ReadRange};
use crate::config::PAGE_SIZE;
use crate::error::{StoreError, StoreResult};

/// Capacity of a tail chunk (a larger record gets a chunk of its own size).
const CHUNK_SIZE: usize = 1 << 20;
/// Largest single O_DIRECT write a flush issues (a round issues its pieces concurrently).
const WRITE_PIECE: usize = 1 << 20;
/// Full-size tail chunks and write pieces kept for reuse, per CommitLog.
const POOLED_BUFFERS: usize = 32;

const PAGE: u64 = PAGE_SIZE as u64;

fn align_down(v: u64) -> u64 {
    v - v % PAGE
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(PAGE) * PAGE
}

#[derive(Clone)]
struct Chunk {
    start: u64,
    buf: Rc<[u8]>,
    len: usize,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// Fills the next `len` bytes if they fit and the buffer is not shared; gives `fill` back otherwise.
    fn try_fill<R, F: FnOnce(&mut [u8]) -> R>(&mut self, len: usize, fill: F) -> Result<R, F> {
        if self.buf.len() - self.len < len {
            return Err(fill);
        }
        match Rc::get_mut(&mut self.buf) {
            Some(bytes) => {
                let r = fill(&mut bytes[self.len..self.len + len]);
                self.len += len;
                Ok(r)
            }
            None => Err(fill),
        }
    }
}

/// Copies the chunks' bytes of `[pos, pos + out.len())` into `out`; bytes no chunk holds are zero.
/// `chunks` are sorted by start and do not overlap.
fn overlay<'a>(chunks: impl IntoIterator<Item = &'a Chunk>, pos: u64, out: &mut [u8]) {
    let end = pos + out.len() as u64;
    let mut cursor = pos;
    for c in chunks {
        let from = c.start.max(cursor);
        let to = c.end().min(end);
        if from < to {
            out[(cursor - pos) as usize..(from - pos) as usize].fill(0);
            let src = &c.buf[(from - c.start) as usize..(to - c.start) as usize];
            out[(from - pos) as usize..(to - pos) as usize].copy_from_slice(src);
            cursor = to;
        }
    }
    out[(cursor - pos) as usize..].fill(0);
}

/// Buffers reused across flush rounds and segments of one CommitLog: allocating fresh megabytes
/// for every round costs more (page faults) than the copies themselves.
#[derive(Default)]
pub(crate) struct BufferPool {
    chunks: RefCell<Vec<Rc<[u8]>>>,
    pieces: RefCell<Vec<DmaBuffer>>,
}

impl BufferPool {
    /// A tail chunk that can hold `len` bytes, unshared.
    fn take_chunk(&self, len: usize) -> Rc<[u8]> {
        if len <= CHUNK_SIZE {
            if let Some(buf) = self.chunks.borrow_mut().pop() {
                return buf;
            }
        }
        std::iter::repeat_n(0u8, len.max(CHUNK_SIZE)).collect()
    }

    fn put_chunk(&self, buf: Rc<[u8]>) {
        let mut chunks = self.chunks.borrow_mut();
        if buf.len() == CHUNK_SIZE && Rc::strong_count(&buf) == 1 && chunks.len() < POOLED_BUFFERS {
            chunks.push(buf);
        }
    }

    /// An aligned buffer of exactly `len` bytes for one write.
    fn take_piece(&self, dma: &DmaFile, len: usize) -> DmaBuffer {
        if len == WRITE_PIECE {
            if let Some(buf) = self.pieces.borrow_mut().pop() {
                return buf;
            }
        }
        dma.alloc_dma_buffer(len)
    }

    fn put_piece(&self, buf: DmaBuffer) {
        let mut pieces = self.pieces.borrow_mut();
        if buf.len() == WRITE_PIECE && pieces.len() < POOLED_BUFFERS {
            pieces.push(buf);
        }
    }
}

pub(crate) struct DirectIo {
    path: PathBuf,
    dma: Rc<DmaFile>,
    file: Rc<File>,
    chunks: VecDeque<Chunk>,
    pool: Rc<BufferPool>,
}

/// Dirty pages of one segment and the chunk handles that hold them.
pub(crate) struct DirectFlush {
    dma: Rc<DmaFile>,
    path: PathBuf,
    from: u64,
    to: u64,
    chunks: VecDeque<Chunk>,
    pool: Rc<BufferPool>,
}

impl DirectFlush {
    pub(crate) async fn run(self) -> StoreResult<()> {
        // All pieces are copied first and written concurrently; they cover disjoint pages, and no
        // other flush of this segment runs meanwhile, so their order does not matter.
        let mut writes = Vec::new();
        let mut pos = self.from;
        while pos < self.to {
            let n = ((self.to - pos) as usize).min(WRITE_PIECE);
            let mut buf = self.pool.take_piece(&self.dma, n);
            overlay(&self.chunks, pos, buf.as_bytes_mut());
            let dma = Rc::clone(&self.dma);
            let write = async move {
                let buf = Rc::new(buf);
                let result = dma.write_rc_at(Rc::clone(&buf), pos).await;
                (result, n, Rc::try_unwrap(buf).ok())
            };
            writes.push(tern_runtime::spawn_local(write));
            pos += n as u64;
        }
        drop(self.chunks);
        for write in writes {
            let (result, n, buf) = write.await;
            if let Some(buf) = buf {
                self.pool.put_piece(buf);
            }
            let written = result.map_err(|e| StoreError::io("writing", &self.path, e.into()))?;
            if written != n {
                // A short O_DIRECT write means the filesystem ran out of blocks.
                return Err(StoreError::DiskFull {
                    op: "writing",
                    path: self.path,
                });
            }
        }
        self.dma
            .fdatasync()
            .await
            .map_err(|e| StoreError::io("syncing", &self.path, e.into()))
    }
}

/// Creates and preallocates a segment file, and writes its first page.
///
/// The written first page matters: when glommio opens the first O_DIRECT file of a device on a
/// thread it probes io_uring polling support with a read of the file's first block. On an empty or
/// unwritten block the kernel answers without touching the device, the probe wrongly reports
/// support, and every later O_DIRECT read on that device fails with EOPNOTSUPP (seen on virtio).
fn create_file(path: &Path, size: u64) -> StoreResult<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StoreError::io("creating", path, e))?;
    preallocate(&file, path, size)?;
    file.write_all_at(&[0u8; PAGE_SIZE], 0)
        .map_err(|e| StoreError::io("writing", path, e))?;
    file.sync_all()
        .map_err(|e| StoreError::io("syncing", path, e))
}

impl DirectIo {
    /// Opens (or creates and preallocates) the segment file for O_DIRECT I/O, plus a buffered
    /// descriptor for [`ReadRange::File`] views and recovery-time reads.
    pub(crate) async fn open(
        path: &Path,
        size: u64,
        create: bool,
        pool: &Rc<BufferPool>,
    ) -> StoreResult<DirectIo> {
        if create {
            let owned = path.to_path_buf();
            tern_runtime::spawn_blocking(move || create_file(&owned, size)).await?;
        }
        let dma = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(|e| StoreError::io("opening", path, e.into()))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("opening", path, e))?;
        Ok(DirectIo {
            path: path.to_path_buf(),
            dma: Rc::new(dma),
            file: Rc::new(file),
            chunks: VecDeque::new(),
            pool: Rc::clone(pool),
        })
    }

    /// First byte held in memory; everything below it is on disk.
    fn mem_start(&self) -> u64 {
        self.chunks.front().map_or(u64::MAX, |c| c.start)
    }

    pub(crate) fn write_with<R>(
        &mut self,
        pos: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        let fill = match self.chunks.back_mut() {
            Some(last) if last.end() == pos => match last.try_fill(len, fill) {
                Ok(r) => return r,
                Err(fill) => fill,
            },
            _ => fill,
        };
        let buf = self.pool.take_chunk(len);
        self.chunks.push_back(Chunk {
            start: pos,
            buf,
            len: 0,
        });
        match self.chunks.back_mut().map(|c| c.try_fill(len, fill)) {
            Some(Ok(r)) => r,
            _ => unreachable!("a fresh, unshared chunk holds any record"),
        }
    }

    pub(crate) fn read_range(&self, pos: u64, len: usize) -> StoreResult<ReadRange> {
        let end = pos + len as u64;
        if end <= self.mem_start() {
            return Ok(ReadRange::File {
                file: Rc::clone(&self.file),
                offset: pos,
                len,
            });
        }
        if let Some(c) = self
            .chunks
            .iter()
            .find(|c| c.start <= pos && end <= c.end())
        {
            let from = (pos - c.start) as usize;
            return Ok(ReadRange::Memory {
                bytes: Rc::clone(&c.buf),
                range: from..from + len,
            });
        }
        // Straddles the file and the tail, or two chunks: copy (rare; records never straddle).
        let mut copy = vec![0u8; len];
        self.read_sync(pos, &mut copy)?;
        Ok(ReadRange::Memory {
            bytes: Rc::from(copy),
            range: 0..len,
        })
    }

    /// Reads `[pos, pos + out.len())` from memory and, blocking, from the buffered descriptor.
    fn read_sync(&self, pos: u64, out: &mut [u8]) -> StoreResult<()> {
        let end = pos + out.len() as u64;
        let mem_start = self.mem_start().max(pos);
        let file_len = (end.min(mem_start) - pos) as usize;
        let (file_part, mem_part) = out.split_at_mut(file_len);
        overlay(&self.chunks, mem_start, mem_part);
        self.file
            .read_exact_at(file_part, pos)
            .map_err(|e| StoreError::io("reading", &self.path, e))
    }

    pub(crate) fn read_into(&self, pos: u64, out: &mut [u8], path: &Path) -> PendingRead {
        let end = pos + out.len() as u64;
        let mem_start = self.mem_start().max(pos);
        let file_len = (end.min(mem_start) - pos) as usize;
        overlay(&self.chunks, mem_start, &mut out[file_len..]);
        if file_len == 0 {
            return PendingRead::Done;
        }
        PendingRead::File {
            file: Rc::clone(&self.dma),
            buffered: Rc::clone(&self.file),
            path: path.to_path_buf(),
            file_pos: pos,
            len: file_len,
        }
    }

    pub(crate) fn flush_job(&self, path: &Path, from: u64, to: u64) -> DirectFlush {
        let from = align_down(from);
        debug_assert!(self.mem_start() <= from || self.chunks.is_empty());
        DirectFlush {
            dma: Rc::clone(&self.dma),
            path: path.to_path_buf(),
            from,
            to: align_up(to),
            chunks: self
                .chunks
                .iter()
                .filter(|c| c.end() > from)
                .cloned()
                .collect(),
            pool: Rc::clone(&self.pool),
        }
    }

    /// Drops the chunks a later flush will never need again (all below `align_down(durable)`).
    pub(crate) fn release_durable(&mut self, durable: u64) {
        let keep_from = align_down(durable);
        while self.chunks.front().is_some_and(|c| c.end() <= keep_from) {
            if let Some(c) = self.chunks.pop_front() {
                self.pool.put_chunk(c.buf);
            }
        }
    }

    /// Zeroes `[pos, size)` on disk and rebuilds the tail as the partial page before `pos`.
    pub(crate) fn zero_from(&mut self, path: &Path, pos: u64, size: u64) -> StoreResult<()> {
        let page_start = align_down(pos);
        let mut head = vec![0u8; (pos - page_start) as usize];
        self.read_sync(page_start, &mut head)?;
        zero_file_range(&self.file, path, pos, size)?;
        self.chunks.clear();
        if !head.is_empty() {
            let mut buf = self.pool.take_chunk(head.len());
            if let Some(bytes) = Rc::get_mut(&mut buf) {
                bytes[..head.len()].copy_from_slice(&head);
            }
            self.chunks.push_back(Chunk {
                start: page_start,
                buf,
                len: head.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, bytes: &[u8]) -> Chunk {
        Chunk {
            start,
            buf: Rc::from(bytes),
            len: bytes.len(),
        }
    }

    #[test]
    fn overlay_copies_chunks_and_zeroes_gaps() {
        let chunks = VecDeque::from([chunk(2, b"abc"), chunk(5, b"de"), chunk(9, b"xy")]);
        let mut out = [0xffu8; 10];
        overlay(&chunks, 1, &mut out);
        assert_eq!(&out, b"\0abcde\0\0xy");
        let mut out = [0xffu8; 3];
        overlay(&chunks, 3, &mut out);
        assert_eq!(&out, b"bcd");
        let mut out = [0xffu8; 4];
        overlay(&chunks, 20, &mut out);
        assert_eq!(out, [0; 4]);
    }

    #[test]
    fn alignment_helpers() {
        assert_eq!((align_down(4095), align_up(4095)), (0, 4096));
        assert_eq!((align_down(4096), align_up(4096)), (4096, 4096));
        assert_eq!((align_down(0), align_up(0)), (0, 0));
    }
}
