//! What every load generator shares: when to stop, the live counters behind the once-a-second
//! progress line, and the per-executor results merged at the end.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::latency;

/// Stop conditions and live counters of one run, shared by all executors.
#[derive(Debug)]
pub struct RunControl {
    started: Instant,
    deadline: Option<Instant>,
    limit: Option<u64>,
    claimed: AtomicU64,
    stopped: AtomicBool,
    /// Messages completed successfully so far.
    pub messages: AtomicU64,
    /// Body bytes of those messages.
    pub bytes: AtomicU64,
    /// Failed requests so far.
    pub errors: AtomicU64,
    finished_executors: AtomicUsize,
    /// Latencies of the current second and the current minute (for the progress lines).
    windows: Mutex<[Histogram<u64>; 2]>,
}

impl RunControl {
    /// A run that ends after `duration`, after `limit` messages, or when [`RunControl::stop`] is
    /// called, whichever comes first (with neither, only `stop` ends it).
    pub fn new(duration: Option<Duration>, limit: Option<u64>) -> Arc<Self> {
        let started = Instant::now();
        Arc::new(RunControl {
            started,
            deadline: duration.map(|d| started + d),
            limit,
            claimed: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            finished_executors: AtomicUsize::new(0),
            windows: Mutex::new([latency::new_histogram(), latency::new_histogram()]),
        })
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The time left before the deadline (`None` without one).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Ends the run: every later [`RunControl::claim`] returns 0 and [`RunControl::is_over`] true.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// True once stopped, past the deadline, or (for receivers) once `limit` messages completed.
    pub fn is_over(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self
                .limit
                .is_some_and(|l| self.messages.load(Ordering::Relaxed) >= l)
    }

    /// Reserves up to `n` messages to send; returns how many may be sent (0 once the run is over
    /// or the message limit is used up). Claims never exceed the limit in total.
    pub fn claim(&self, n: u64) -> u64 {
        if self.stopped.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            return 0;
        }
        let Some(limit) = self.limit else {
            return n;
        };
        let mut granted = 0;
        let _ = self
            .claimed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                granted = n.min(limit.saturating_sub(c));
                (granted > 0).then_some(c + granted)
            });
        granted
    }

    /// Counts `n` messages of `bytes` body bytes as done.
    pub fn record_success(&self, n: u64, bytes: u64) {
        self.messages.fetch_add(n, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds one latency (µs) to the current second's and minute's windows, whose p99 the progress
    /// lines print.
    pub fn record_window_latency(&self, us: u64) {
        if let Ok(mut w) = self.windows.lock() {
            for h in w.iter_mut() {
                h.saturating_record(us.max(1));
            }
        }
    }

    /// The p99 (µs) of window `which` (0: second, 1: minute) and its sample count; clears it.
    fn take_window_p99(&self, which: usize) -> (u64, u64) {
        let Ok(mut w) = self.windows.lock() else {
            return (0, 0);
        };
        let Some(h) = w.get_mut(which) else {
            return (0, 0);
        };
        let out = (h.value_at_quantile(0.99), h.len());
        h.reset();
        out
    }

    /// Counts one failed request.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Called by an executor when its work is done.
    pub fn executor_finished(&self) {
        self.finished_executors.fetch_add(1, Ordering::Release);
    }

    /// Prints one progress line per second to `out` (`[  Ns] msgs/s MB/s errors p99`, the p99 of
    /// that second's latencies) and, every 60 s, a `[minute N] p99` line over that minute, until
    /// `executors` executors called [`RunControl::executor_finished`].
    pub fn print_progress(&self, executors: usize, out: &mut impl Write) -> io::Result<()> {
        let mut last = (0u64, 0u64);
        let mut next_tick = self.started + Duration::from_secs(1);
        let mut second = 0u64;
        while self.finished_executors.load(Ordering::Acquire) < executors {
            let now = Instant::now();
            if now < next_tick {
                std::thread::sleep((next_tick - now).min(Duration::from_millis(50)));
                continue;
            }
            second += 1;
            next_tick += Duration::from_secs(1);
            let msgs = self.messages.load(Ordering::Relaxed);
            let bytes = self.bytes.load(Ordering::Relaxed);
            let (p99, _) = self.take_window_p99(0);
            writeln!(
                out,
                "[{second:>4}s] {:>10} msgs/s {:>9.2} MB/s  errors {}  p99 {p99} us",
                msgs - last.0,
                (bytes - last.1) as f64 / 1e6,
                self.errors.load(Ordering::Relaxed)
            )?;
            if second.is_multiple_of(60) {
                let (p99, n) = self.take_window_p99(1);
                writeln!(
                    out,
                    "[minute {:>3}] p99 {p99} us over {n} samples",
                    second / 60
                )?;
            }
            out.flush()?;
            last = (msgs, bytes);
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch (0 for a clock before it), as RocketMQ stamps messages.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What one executor hands back: its latencies and its failures by cause.
#[derive(Debug)]
pub struct ExecutorResult {
    /// Latencies in microseconds.
    pub latency: Histogram<u64>,
    /// Failure cause (response code name or transport error) → count.
    pub errors: BTreeMap<String, u64>,
}

impl Default for ExecutorResult {
    fn default() -> Self {
        ExecutorResult {
            latency: latency::new_histogram(),
            errors: BTreeMap::new(),
        }
    }
}

impl ExecutorResult {
    /// Waits for all `tasks` of one executor, which record into `result`, and returns what they
    /// recorded.
    pub async fn join(
        tasks: Vec<tern_runtime::Task<()>>,
        result: Rc<RefCell<ExecutorResult>>,
    ) -> ExecutorResult {
        for t in tasks {
            t.await;
        }
        let out = std::mem::take(&mut *result.borrow_mut());
        out
    }

    /// Adds `other`'s latencies and errors to this one.
    pub fn merge(&mut self, other: ExecutorResult) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    /// Counts one failure of `cause`.
    pub fn count_error(&mut self, cause: String) {
        *self.errors.entry(cause).or_default() += 1;
    }
}

/// The label of an error response code: `code N (NAME)`.
pub fn response_label(code: i32) -> String {
    match tern_net::code::response::name(code) {
        Some(name) => format!("code {code} ({name})"),
        None => format!("code {code}"),
    }
}

/// The run-length and report options `tern-perf producer` and `consumer` share (flattened into
/// each).
#[derive(Debug, Clone, clap::Args)]
pub struct ReportOptions {
    /// Run for this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Write the latency distribution here (HdrHistogram `.hgrm` text).
    #[arg(long)]
    pub hist_out: Option<std::path::PathBuf>,
    /// Draw the latency percentile plot into this SVG file.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
}

impl ReportOptions {
    /// The run's control block, stopping at `--duration` or `--count`.
    pub fn control(&self) -> Arc<RunControl> {
        RunControl::new(self.duration.map(Duration::from_secs_f64), self.count)
    }
}

/// Waits for the load executors while printing one progress line per second, then prints the
/// final report for `what` and writes the files `report` asks for.
pub fn finish(
    ctl: &RunControl,
    handles: Vec<tern_runtime::ExecutorHandle<ExecutorResult>>,
    what: &str,
    report: &ReportOptions,
) -> Result<(), crate::PerfError> {
    let mut stdout = io::stdout();
    ctl.print_progress(handles.len(), &mut stdout)?;
    let elapsed = ctl.started().elapsed();
    let mut total = ExecutorResult::default();
    for h in handles {
        total.merge(h.join()?);
    }
    write_report(&mut stdout, what, ctl, elapsed, &total)?;
    if let Some(path) = &report.hist_out {
        let mut f = io::BufWriter::new(std::fs::File::create(path)?);
        latency::write_hgrm(&mut f, &total.latency)?;
    }
    if let Some(path) = &report.plot {
        let title = format!("{what} latency, {} samples", total.latency.len());
        crate::plot::write_percentile_svg(path, &title, &total.latency)?;
    }
    Ok(())
}

/// Prints the end-of-run report: totals, throughput, the latency summary and errors by cause.
pub fn write_report(
    out: &mut impl Write,
    what: &str,
    ctl: &RunControl,
    elapsed: Duration,
    result: &ExecutorResult,
) -> io::Result<()> {
    let msgs = ctl.messages.load(Ordering::Relaxed);
    let bytes = ctl.bytes.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    writeln!(out, "== {what} summary ==")?;
    writeln!(
        out,
        "messages: {msgs} ok, {} errors in {secs:.2} s",
        ctl.errors.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "throughput: {:.1} msgs/s {:.2} MB/s",
        msgs as f64 / secs,
        bytes as f64 / 1e6 / secs
    )?;
    latency::write_summary(out, what, &result.latency)?;
    if result.errors.is_empty() {
        writeln!(out, "errors: none")?;
    } else {
        writeln!(out, "errors:")?;
        for (cause, n) in &result.errors {
            writeln!(out, "  {cause}: {n}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_never_exceed_the_limit() {
        let ctl = RunControl::new(None, Some(10));
        assert_eq!(ctl.claim(4), 4);
        assert_eq!(ctl.claim(4), 4);
        assert_eq!(ctl.claim(4), 2);
        assert_eq!(ctl.claim(4), 0);
    }

    #[test]
    fn stop_and_deadline_end_the_run() {
        let ctl = RunControl::new(None, None);
        assert_eq!(ctl.claim(3), 3);
        assert!(!ctl.is_over());
        ctl.stop();
        assert!(ctl.is_over());
        assert_eq!(ctl.claim(3), 0);
        let ctl = RunControl::new(Some(Duration::ZERO), None);
        assert!(ctl.is_over());
        assert_eq!(ctl.claim(1), 0);
    }

    #[test]
    fn receivers_stop_at_the_limit() {
        let ctl = RunControl::new(None, Some(5));
        ctl.record_success(4, 40);
        assert!(!ctl.is_over());
        ctl.record_success(1, 10);
        assert!(ctl.is_over());
    }

    #[test]
    fn windows_report_their_p99_and_start_over() {
        let ctl = RunControl::new(None, None);
        for us in 1..=100 {
            ctl.record_window_latency(us);
        }
        assert_eq!(ctl.take_window_p99(0), (99, 100));
        assert_eq!(ctl.take_window_p99(0), (0, 0));
        assert_eq!(ctl.take_window_p99(1), (99, 100));
    }

    #[test]
    fn merged_results_add_up() {
        let mut a = ExecutorResult::default();
        a.latency.record(10).unwrap();
        a.count_error(response_label(14));
        let mut b = ExecutorResult::default();
        b.latency.record(20).unwrap();
        b.count_error(response_label(14));
        a.merge(b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.errors["code 14 (SERVICE_NOT_AVAILABLE)"], 2);
    }
}
