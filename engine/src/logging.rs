//! Log output of the server processes: text or JSON lines, to stderr or to daily-rotated files.
//!
//! With a log directory, records go to `<dir>/<name>.log.YYYY-MM-DD` (a new file each UTC day,
//! tracing-appender's naming) through a background writer thread, so an executor never blocks on
//! a log write; records still queued when the process dies abruptly are lost, [`LogGuard`] flushes
//! them on a clean exit. Files beyond the newest `max_files` are deleted as the day rolls over
//! (RocketMQ's logback `maxHistory`). Without a directory, records go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

/// How each record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, …).
    Json,
}

/// The log flags both server binaries take (flattened into their clap arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter (overrides RUST_LOG), e.g. `info` or `tern_engine=debug`.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log record format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "TERN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Write logs to daily-rotated files `<DIR>/<broker|namesrv>.log.YYYY-MM-DD` instead of
    /// stderr.
    #[arg(long, env = "TERN_LOG_DIR")]
    pub log_dir: Option<PathBuf>,
    /// Daily log files kept in --log-dir; older ones are deleted at each rotation (0 keeps all).
    #[arg(long, default_value_t = DEFAULT_MAX_LOG_FILES, env = "TERN_LOG_MAX_FILES")]
    pub log_max_files: usize,
}

/// Daily log files kept by default: two weeks.
pub const DEFAULT_MAX_LOG_FILES: usize = 14;

impl LogArgs {
    /// Installs the global subscriber for the process named `file_prefix` (see [`init`]).
    pub fn init(&self, file_prefix: &str) -> std::io::Result<LogGuard> {
        init(&LogOptions {
            level: self.log_level.clone(),
            format: self.log_format,
            dir: self.log_dir.clone(),
            file_prefix: file_prefix.to_string(),
            max_files: self.log_max_files,
        })
    }

    /// A server binary's start: installs logging as [`LogArgs::init`] does, then loads the
    /// settings with `load`. A failure of either is reported (the log directory on stderr, the
    /// settings' error through the log just installed) and returned as [`ExitCode::FAILURE`] for
    /// `main` to exit with.
    pub fn init_and_load<C>(
        &self,
        file_prefix: &str,
        load: impl FnOnce() -> Result<C, String>,
    ) -> Result<(LogGuard, C), ExitCode> {
        let guard = self.init(file_prefix).map_err(|e| {
            eprintln!("cannot open log directory: {e}");
            ExitCode::FAILURE
        })?;
        let config = load().map_err(|e| {
            tracing::error!("{e}");
            ExitCode::FAILURE
        })?;
        Ok((guard, config))
    }
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
    /// Daily files kept in `dir`; older ones are deleted when a new day's file opens. 0 keeps all.
    pub max_files: usize,
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
    let mut appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(format!("{}.log", opts.file_prefix));
    if opts.max_files > 0 {
        appender = appender.max_log_files(opts.max_files);
    }
    let appender = appender
        .build(dir)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
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
