//! # tern-runtime
//!
//! The one place where Tern touches its async runtime's executor API. glommio is little maintained, so
//! everything else in Tern spawns tasks, sleeps and starts executors through this module; swapping the
//! runtime means rewriting this crate (and the glommio-specific I/O: the store's `direct` backend and
//! the net transport's sockets), not the broker.
//!
//! ## Locked memory
//! glommio registers an I/O buffer area per executor and locks it in memory. Tern's machines allow only
//! 8 MiB of locked memory per process, shared by every executor, so [`IO_MEMORY_PER_EXECUTOR`] is kept
//! small. When registration fails anyway glommio falls back to unregistered buffers, which still works.

pub mod mesh;
mod wait_list;
mod wake_watchdog;

use std::future::Future;
use std::time::Duration;

pub use glommio::Task;
pub use wait_list::{WaitList, WaitUntil};
pub use wake_watchdog::{nudges, WakeWatchdog};

/// Bytes of registered I/O memory requested per executor (glommio's minimum is 512 KiB).
pub const IO_MEMORY_PER_EXECUTOR: usize = 512 * 1024;

/// Errors from starting an executor.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The executor could not be created (io_uring setup, thread spawn, ...).
    #[error("cannot start executor {name}: {reason}")]
    Start {
        /// The executor's name.
        name: String,
        /// What the runtime reported.
        reason: String,
    },
    /// The executor's thread panicked.
    #[error("executor {0} panicked")]
    Panicked(String),
}

fn builder(name: &str, core: Option<usize>) -> glommio::LocalExecutorBuilder {
    let placement = match core {
        Some(c) => glommio::Placement::Fixed(c),
        None => glommio::Placement::Unbound,
    };
    glommio::LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(IO_MEMORY_PER_EXECUTOR)
        // Fewer ring entries keep each ring's locked memory small.
        .ring_depth(128)
        .preempt_timer(Duration::from_millis(10))
}

/// Runs `fut` to completion on a new single-threaded executor on the current thread and returns its
/// output. Used by tests and single-core tools.
pub fn block_on<T>(name: &str, fut: impl Future<Output = T>) -> Result<T, RuntimeError> {
    let ex = builder(name, None)
        .make()
        .map_err(|e| RuntimeError::Start {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(ex.run(async move {
        let _watch = WakeWatchdog::watch_current();
        fut.await
    }))
}

/// Starts an executor on its own thread, optionally pinned to `core`, running the future that
/// `make` builds there. The returned handle joins the thread and yields the future's output.
pub fn spawn_executor<T, F, Fut>(
    name: &str,
    core: Option<usize>,
    make: F,
) -> Result<ExecutorHandle<T>, RuntimeError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let handle = builder(name, core)
        .spawn(move || async move {
            let _watch = WakeWatchdog::watch_current();
            make().await
        })
        .map_err(|e| RuntimeError::Start {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(ExecutorHandle {
        name: name.to_string(),
        inner: handle,
    })
}

/// A running executor thread started by [`spawn_executor`].
pub struct ExecutorHandle<T: Send + 'static> {
    name: String,
    inner: glommio::ExecutorJoinHandle<T>,
}

impl<T: Send + 'static> ExecutorHandle<T> {
    /// Waits for the executor's root future to finish and returns its output.
    pub fn join(self) -> Result<T, RuntimeError> {
        self.inner
            .join()
            .map_err(|_| RuntimeError::Panicked(self.name))
    }
}

/// Spawns a task on the current executor. Panics if called outside an executor (a programming error).
pub fn spawn_local<T: 'static>(fut: impl Future<Output = T> + 'static) -> Task<T> {
    glommio::spawn_local(fut)
}

/// Sleeps without blocking the executor.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await
}

/// Yields to other tasks if this one has run for longer than the preemption interval.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await
}

/// Runs a blocking function (fdatasync, file creation, ...) on a helper thread and awaits its result,
/// so the executor keeps serving other tasks meanwhile.
pub async fn spawn_blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(f).await
}

/// Returns `fut`'s output, or `None` once `limit` elapsed first.
pub async fn timeout<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    glommio::timer::timeout(limit, async { Ok(fut.await) })
        .await
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_executors_start_under_the_locked_memory_limit() {
        // 8 executors × 512 KiB plus rings exceed nothing that would stop them: registration
        // failures fall back to unregistered buffers.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                spawn_executor(&format!("t{i}"), None, move || async move {
                    sleep(Duration::from_millis(5)).await;
                    spawn_blocking(move || i * 2).await
                })
                .expect("start")
            })
            .collect();
        let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (0..8).map(|i| i * 2).sum());
    }

    #[test]
    fn timeout_reports_expiry() {
        let r = block_on("to", async {
            let slow = timeout(Duration::from_millis(5), sleep(Duration::from_secs(5))).await;
            let fast = timeout(Duration::from_secs(5), async { 7 }).await;
            (slow, fast)
        })
        .unwrap();
        assert_eq!(r, (None, Some(7)));
    }
}
