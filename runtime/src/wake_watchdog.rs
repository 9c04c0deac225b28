//! [`WakeWatchdog`]: wakes an executor that went to sleep and missed its own wakeups.
//!
//! ## The glommio bug this works around
//! An idle glommio 0.9 executor sleeps by submitting a poll of its latency ring's fd to its main
//! ring and waiting for that poll to complete (`Reactor::link_rings_and_sleep`). Its timers and
//! the eventfd that other executors write to wake it both live on the latency ring. Under CPU
//! contention that link sometimes never fires. The executor then sleeps in `io_uring_enter` while
//! its timers expire and peers' messages pile up in its channels (glommio issues #326, #547). It
//! wakes only when I/O completes on its main ring, which for an idle core may be never.
//!
//! Reproduced here: `mesh::tests::full_mesh_delivers_in_order_per_source` with six busy-looping
//! processes beside it failed or hung in 10 of 40 runs. The stack dump showed both executors in
//! `link_rings_and_sleep`, one with an expired 3 s timer and 500 undelivered messages.
//!
//! ## What this does
//! - Every watched executor runs a beat task that stores the time every [`BEAT`].
//! - One watchdog thread per process looks at the beats. An executor whose beat is older than
//!   [`STALE`] gets a `SIGURG` ([`NUDGE_SIGNAL`]) sent to its thread.
//! - The signal interrupts `io_uring_enter` with `EINTR`. glommio treats that as a wakeup: it
//!   consumes its rings, runs expired timers and drains its channels.
//! - The handler is empty and installed with `SA_RESTART`, so other interrupted system calls
//!   restart. `SIGURG` is ignored by default, so a stray one is harmless.
//! - A healthy executor is never signalled; its beat stays fresh.
//! - An executor busy in one task for longer than [`STALE`] is also signalled, which costs it one
//!   interrupted system call.
//!
//! [`nudges`] counts the signals sent, for metrics and tests.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// How often a watched executor's beat task records that it ran.
pub const BEAT: Duration = Duration::from_millis(50);
/// A beat older than this means the executor is asleep and deaf (or busy); it is signalled.
pub const STALE: Duration = Duration::from_millis(250);
/// The signal that interrupts a deaf executor's `io_uring_enter`.
pub const NUDGE_SIGNAL: libc::c_int = libc::SIGURG;

/// One watched executor thread.
struct Watched {
    /// The thread's kernel id (`gettid`), for `tgkill`.
    tid: libc::pid_t,
    /// Milliseconds since [`epoch`] at the last beat.
    beat: Arc<AtomicI64>,
}

/// The executors being watched.
static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
/// Installs the handler and starts the watchdog thread with the first watched executor.
static START: Once = Once::new();
static NUDGES: AtomicU64 = AtomicU64::new(0);

/// Signals sent to deaf or busy executors since the process started.
pub fn nudges() -> u64 {
    NUDGES.load(Ordering::Relaxed)
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> i64 {
    epoch().elapsed().as_millis() as i64
}

extern "C" fn on_nudge(_: libc::c_int) {}

/// Installs the empty `SIGURG` handler and starts the watchdog thread, once per process.
fn start() {
    START.call_once(|| {
        // SAFETY: installs an async-signal-safe (empty) handler for a signal that is otherwise
        // ignored; `sa` is fully initialised before use.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_nudge as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(NUDGE_SIGNAL, &sa, std::ptr::null_mut());
        }
        let spawned = std::thread::Builder::new()
            .name("tern-wake-watchdog".into())
            .spawn(watch);
        if let Err(e) = spawned {
            // Without the watchdog executors still run; they only lose this safety net.
            eprintln!("tern-runtime: cannot start the wake watchdog: {e}");
        }
    });
}

fn watched() -> std::sync::MutexGuard<'static, Vec<Watched>> {
    WATCHED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The watchdog thread: every [`BEAT`], signals each watched executor whose beat is stale.
fn watch() {
    loop {
        std::thread::sleep(BEAT);
        let now = now_ms();
        let pid = std::process::id() as libc::pid_t;
        for w in watched().iter() {
            if now - w.beat.load(Ordering::Relaxed) > STALE.as_millis() as i64 {
                // SAFETY: tgkill with this process's id only reaches a thread of this process;
                // the entry is removed (under this lock) before its thread exits.
                unsafe {
                    libc::syscall(libc::SYS_tgkill, pid, w.tid, NUDGE_SIGNAL);
                }
                NUDGES.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Watching of the current executor thread; dropping it (before the thread exits) stops it.
pub struct WakeWatchdog {
    tid: libc::pid_t,
}

impl WakeWatchdog {
    /// Starts watching the executor running on the current thread: spawns its beat task there
    /// and registers the thread with the watchdog. Call on the executor, once per executor.
    pub fn watch_current() -> WakeWatchdog {
        start();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
        let beat = Arc::new(AtomicI64::new(now_ms()));
        let task_beat = Arc::clone(&beat);
        crate::spawn_local(async move {
            loop {
                task_beat.store(now_ms(), Ordering::Relaxed);
                crate::sleep(BEAT).await;
            }
        })
        .detach();
        watched().push(Watched { tid, beat });
        WakeWatchdog { tid }
    }
}

impl Drop for WakeWatchdog {
    fn drop(&mut self) {
        watched().retain(|w| w.tid != self.tid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mechanism end to end: an executor that holds its thread past [`STALE`] (here in a
    /// blocking sleep, as a deaf executor sits in `io_uring_enter`) is signalled, the interrupted
    /// sleep carries on, and the executor's timers and tasks work afterwards.
    #[test]
    fn a_busy_executor_is_signalled_and_carries_on() {
        let before = nudges();
        let out = crate::spawn_executor("watchdog-busy", None, || async {
            crate::sleep(Duration::from_millis(10)).await;
            let held = Instant::now();
            std::thread::sleep(Duration::from_millis(600));
            let held = held.elapsed();
            crate::sleep(Duration::from_millis(10)).await;
            held
        })
        .expect("start")
        .join()
        .expect("the executor finishes");
        assert!(out >= Duration::from_millis(600), "the sleep was cut short");
        assert!(nudges() > before, "no signal reached the busy executor");
    }
}
