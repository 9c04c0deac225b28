//! Log output of the server processes: text or JSON lines, to stderr or to daily-rotated files.
//!
//! With a log directory, records go to `<dir>/<name>.log.YYYY-MM-DD` (a new file each UTC day,
//! tracing-appender's naming) through a background writer thread, so an executor never blocks on
//! a log write; records still queued when the process dies abruptly are lost, [`LogGuard`] flushes
//! them on a clean exit. Without a directory, records go to stderr.

use std::path::PathBuf;

/// How each record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, …).
    Json,
}

/// Where and how to log.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Filter such as `info` or `tern_engine=debug`; `None` reads `RUST_LOG` (default `info`).
    pub level: Option<String>,
    /// Record format.
    pub format: LogFormat,
    /// Directory for daily-rotated files; `None` logs to stderr.
    pub dir: Option<PathBuf>,
    /// File name prefix inside `dir` (the process name).
    pub file_prefix: String,
}

/// Keeps the background log writer alive; dropping it flushes queued records.
pub struct LogGuard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber. Call once, first thing in `main`. Fails only when the log
/// directory cannot be created.
pub fn init(opts: &LogOptions) -> std::io::Result<LogGuard> {
    use tracing_subscriber::EnvFilter;
    let filter = match &opts.level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let Some(dir) = &opts.dir else {
        let b = builder.with_writer(std::io::stderr);
        match opts.format {
            LogFormat::Text => b.init(),
            LogFormat::Json => b.json().init(),
        }
        return Ok(LogGuard { _worker: None });
    };
    std::fs::create_dir_all(dir)?;
    let appender = tracing_appender::rolling::daily(dir, format!("{}.log", opts.file_prefix));
    // The writer thread must not receive SIGTERM/SIGINT: the process handles them by blocking
    // them in every thread and waiting for them in one (see `process::StopSignals`), and a thread
    // with them unblocked would take the default action and kill the process mid-write.
    let (writer, worker) = with_stop_signals_blocked(|| tracing_appender::non_blocking(appender))?;
    let b = builder.with_writer(writer).with_ansi(false);
    match opts.format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
    Ok(LogGuard {
        _worker: Some(worker),
    })
}

/// Runs `f` with SIGTERM and SIGINT blocked in this thread (so threads it starts inherit the
/// mask), then restores the previous mask.
fn with_stop_signals_blocked<T>(f: impl FnOnce() -> T) -> std::io::Result<T> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset/pthread_sigmask before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        let out = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        Ok(out)
    }
}
