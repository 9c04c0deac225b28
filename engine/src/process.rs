//! What the `tern-broker` and `tern-namesrv` processes share: logging set-up and graceful stop on
//! SIGTERM/SIGINT.

use tern_net::transport::StopSignal;

/// Sends `tracing` output to stderr, filtered by `level` (e.g. `info`, `tern_engine=debug`) or, when
/// it is `None`, by `RUST_LOG` (default `info`).
pub fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// SIGTERM and SIGINT, blocked in every thread and collected by one waiter thread.
///
/// Create it with [`StopSignals::block`] before any executor thread exists, so that the signals
/// are blocked in every thread and only the waiter sees them.
pub struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    /// Blocks SIGTERM and SIGINT in this thread (and threads it starts later).
    pub fn block() -> std::io::Result<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(StopSignals { set })
        }
    }

    /// Starts the waiter thread: the first SIGTERM or SIGINT triggers `stop`.
    pub fn stop_on_signal(self, stop: StopSignal) {
        std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: `set` is initialised; `sig` is a valid out pointer.
            unsafe { libc::sigwait(&self.set, &mut sig) };
            tracing::info!(signal = sig, "stopping");
            stop.stop();
        });
    }
}
