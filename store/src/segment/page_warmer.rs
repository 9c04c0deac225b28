//! Makes a segment map's pages resident ahead of the writer, on a thread of its own.
//!
//! The first write to each page of a freshly preallocated segment faults, and for a preallocated
//! (unwritten) extent the kernel zero-fills the page, and readahead its neighbours, inside that
//! fault: on the executor's thread, in the middle of an append. Under a 64-sender load this was 14%
//! of a 2-core broker's samples (`perf record`: `filemap_fault` → `ext4_mpage_readpages` →
//! `__pi_memset`). The mmap backend asks this thread to populate the next chunk of the map
//! (`MADV_POPULATE_READ`, or `MADV_WILLNEED` where the kernel lacks it, before Linux 5.14) while it
//! is still ahead of the write position, so the append finds the page in the page cache.
//!
//! Populating only reads: no page is dirtied and nothing extra is written to disk, so it changes
//! neither durability nor recovery. A job that fails is logged and dropped; the writer then
//! faults as it would have anyway.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock};

use memmap2::{Advice, MmapRaw};

/// Bytes the writer keeps populated ahead of its position.
pub(crate) const AHEAD: u64 = 8 << 20;
/// Bytes populated by one job.
pub(crate) const CHUNK: u64 = 4 << 20;

/// Populate `[from, from + len)` of `map`.
struct Job {
    map: Arc<MmapRaw>,
    from: usize,
    len: usize,
}

/// Queues a job to populate `[from, from + len)` of `map`; never blocks. The job holds the map,
/// so it stays mapped until the job is done.
pub(crate) fn populate(map: Arc<MmapRaw>, from: u64, len: u64) {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let started = std::thread::Builder::new()
            .name("tern-page-warmer".into())
            .spawn(move || {
                let mut advice = Advice::PopulateRead;
                for job in rx {
                    let mut result = job.map.advise_range(advice, job.from, job.len);
                    if advice == Advice::PopulateRead
                        && result
                            .as_ref()
                            .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
                    {
                        // Before Linux 5.14: start the readahead instead.
                        advice = Advice::WillNeed;
                        result = job.map.advise_range(advice, job.from, job.len);
                    }
                    if let Err(e) = result {
                        tracing::debug!(error = %e, from = job.from, len = job.len,
                            "could not populate segment pages ahead of the writer");
                    }
                }
            });
        match started {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no page-warmer thread: appends fault their pages in");
                None
            }
        }
    });
    if let Some(tx) = queue {
        let (Ok(from), Ok(len)) = (usize::try_from(from), usize::try_from(len)) else {
            return;
        };
        let _ = tx.send(Job { map, from, len });
    }
}

/// Where the writer of one map has asked for pages up to, and what to ask for next.
#[derive(Debug, Default)]
pub(crate) struct WarmMark {
    /// Pages before this offset were queued for population (or written).
    queued_to: u64,
}

impl WarmMark {
    /// The writer now ends at `end` in a map of `size` bytes: returns the range to populate next
    /// when the queued range is less than [`AHEAD`] in front of it (at most [`CHUNK`] bytes,
    /// never past `size`), and records it as queued.
    pub(crate) fn next(&mut self, end: u64, size: u64) -> Option<(u64, u64)> {
        if self.queued_to < end {
            // Opened mid-file (recovery) or overtaken: start at the writer's page.
            self.queued_to = end - end % crate::config::PAGE_SIZE as u64;
        }
        if self.queued_to >= size || self.queued_to >= end + AHEAD {
            return None;
        }
        let from = self.queued_to;
        let len = CHUNK.min(size - from);
        self.queued_to = from + len;
        Some((from, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queued_range_stays_ahead_of_the_writer_in_chunks() {
        let size = 64 << 20;
        let mut mark = WarmMark::default();
        // One chunk per call until AHEAD bytes are queued in front of the writer.
        assert_eq!(mark.next(100, size), Some((0, CHUNK)));
        assert_eq!(mark.next(200, size), Some((CHUNK, CHUNK)));
        assert_eq!(mark.next(300, size), Some((2 * CHUNK, CHUNK)));
        assert_eq!(mark.next(400, size), None);
        assert_eq!(mark.next(CHUNK + 1, size), Some((3 * CHUNK, CHUNK)));
        // Near the end: the last chunk stops at the map's size, then nothing more.
        let mut tail = WarmMark::default();
        assert_eq!(tail.next(size - 4096 - 10, size), Some((size - 8192, 8192)));
        assert_eq!(tail.next(size - 10, size), None);
    }

    #[test]
    fn a_writer_opened_mid_file_starts_at_its_own_page() {
        let mut mark = WarmMark::default();
        let end = 300 << 20;
        assert_eq!(mark.next(end + 5, 1 << 30), Some((end, CHUNK)));
    }

    #[test]
    fn populated_pages_of_a_preallocated_file_become_resident() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let size: u64 = 8 << 20;
        super::super::preallocate(&file, &path, size).unwrap();
        let map = Arc::new(
            memmap2::MmapOptions::new()
                .len(size as usize)
                .map_raw(&file)
                .unwrap(),
        );
        populate(Arc::clone(&map), 0, CHUNK);
        let page = crate::config::PAGE_SIZE;
        let pages = CHUNK as usize / page;
        let resident = || {
            let mut vec = vec![0u8; pages];
            // SAFETY: the range lies inside the live mapping and `vec` has one byte per page.
            let rc =
                unsafe { libc::mincore(map.as_mut_ptr().cast(), CHUNK as usize, vec.as_mut_ptr()) };
            assert_eq!(rc, 0);
            vec.iter().filter(|b| **b & 1 == 1).count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while resident() < pages && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(resident(), pages, "pages of the populated chunk in memory");
    }
}
