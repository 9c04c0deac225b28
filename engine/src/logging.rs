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
    let (writer, worker) = tracing_appender::non_blocking(appender);
    let b = builder.with_writer(writer).with_ansi(false);
    match opts.format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
    Ok(LogGuard {
        _worker: Some(worker),
    })
}
