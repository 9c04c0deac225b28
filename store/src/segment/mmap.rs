//! The `mmap` backend: a shared, writable memory map over the whole preallocated segment file.
//!
//! Appends copy into the map (the page cache); a flush is `msync(MS_SYNC)` of the dirty range, run on
//! a helper thread through [`tern_runtime::spawn_blocking`] so the executor keeps serving.
//!
//! Sharing with the helper thread: the map is held in an `Arc<MmapRaw>`. The helper only passes the
//! mapping's address range to the kernel (msync) and never forms a Rust reference to the bytes, so it
//! does not alias the slices this thread reads and writes. The map stays mapped until the last `Arc`
//! (possibly the helper's) is dropped. The same holds for the page warmer's thread
//! ([`page_warmer`]), which populates the pages ahead of the writer.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use super::page_warmer::{self, WarmMark};
use super::{preallocate, zero_file_range, ReadRange};
use crate::config::PAGE_SIZE;
use crate::error::{StoreError, StoreResult};

pub(crate) struct MmapIo {
    file: Rc<File>,
    map: Arc<MmapRaw>,
    /// How far ahead of the writer pages were queued for population ([`page_warmer`]).
    warm: WarmMark,
}

/// An msync of `[from, to)` of one segment's map.
pub(crate) struct MmapFlush {
    map: Arc<MmapRaw>,
    path: PathBuf,
    from: u64,
    to: u64,
}

impl MmapFlush {
    pub(crate) async fn run(self) -> StoreResult<()> {
        let MmapFlush {
            map,
            path,
            from,
            to,
        } = self;
        let from = from - from % PAGE_SIZE as u64;
        let result = tern_runtime::spawn_blocking(move || {
            // memmap2 checks the bounds and aligns the start down to a page.
            map.flush_range(from as usize, (to - from) as usize)
        })
        .await;
        result.map_err(|e| StoreError::io("syncing", path, e))
    }
}

impl MmapIo {
    /// Opens (or creates and preallocates) the file and maps `size` bytes of it.
    pub(crate) async fn open(path: &Path, size: u64, create: bool) -> StoreResult<MmapIo> {
        let owned = path.to_path_buf();
        let (file, map) = tern_runtime::spawn_blocking(move || -> StoreResult<(File, MmapRaw)> {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(create)
                .open(&owned)
                .map_err(|e| StoreError::io("opening", &owned, e))?;
            if create {
                preallocate(&file, &owned, size)?;
            }
            let len = usize::try_from(size).map_err(|_| StoreError::BadSegment {
                path: owned.clone(),
                reason: "segment larger than the address space",
            })?;
            let map = MmapOptions::new()
                .len(len)
                .map_raw(&file)
                .map_err(|e| StoreError::io("mapping", &owned, e))?;
            Ok((file, map))
        })
        .await?;
        Ok(MmapIo {
            file: Rc::new(file),
            map: Arc::new(map),
            warm: WarmMark::default(),
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is valid for `len()` bytes while `self.map` lives. This thread is the
        // only one that forms references to it (see the module docs), and `&self` excludes the
        // `&mut` slices handed out by `bytes_mut`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`; `&mut self` makes this the only live slice of the mapping.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr(), self.map.len()) }
    }

    pub(crate) fn write_with<R>(
        &mut self,
        pos: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        let start = pos as usize;
        let dst = &mut self.bytes_mut()[start..start + len];
        let written = fill(dst);
        let end = pos + len as u64;
        if let Some((from, n)) = self.warm.next(end, self.map.len() as u64) {
            page_warmer::populate(Arc::clone(&self.map), from, n);
        }
        written
    }

    pub(crate) fn read_range(&self, pos: u64, len: usize) -> ReadRange {
        ReadRange::File {
            file: Rc::clone(&self.file),
            offset: pos,
            len,
        }
    }

    pub(crate) fn read_into(&self, pos: u64, out: &mut [u8]) {
        let start = pos as usize;
        out.copy_from_slice(&self.bytes()[start..start + out.len()]);
    }

    pub(crate) fn flush_job(&self, path: &Path, from: u64, to: u64) -> MmapFlush {
        MmapFlush {
            map: Arc::clone(&self.map),
            path: path.to_path_buf(),
            from,
            to,
        }
    }

    /// Zeroes `[pos, size)`: the partial page through the map, whole pages on disk.
    pub(crate) fn zero_from(&mut self, path: &Path, pos: u64, size: u64) -> StoreResult<()> {
        let page = PAGE_SIZE as u64;
        let page_end = pos.div_ceil(page).saturating_mul(page).min(size);
        self.bytes_mut()[pos as usize..page_end as usize].fill(0);
        zero_file_range(&self.file, path, page_end, size)
    }
}
