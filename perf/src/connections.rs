//! `tern-perf connections`: holds many client connections open on one broker, each sending a
//! producer HEART_BEAT every `--heartbeat-interval`, and samples the broker's resident memory
//! (`VmRSS` of `--pid` in `/proc/<pid>/status`) over time, to measure memory per connection and
//! its growth while the connections are held.
//!
//! Output: one line per `--sample-interval` (`[  Ns] open N heartbeats H errors E rss K KiB`),
//! then a summary with the RSS before connecting, once all are open and at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_net::code::{request, response};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

use crate::PerfError;

/// `tern-perf connections` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsOptions {
    /// Broker address (`host:port`).
    #[arg(long)]
    pub broker: String,
    /// Connections to hold open.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Seconds to hold them after all are open.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
    /// Seconds between two heartbeats of one connection (RocketMQ clients: 30).
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat_interval: f64,
    /// Broker process id whose RSS is sampled (none: RSS is not reported).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Seconds between two RSS samples.
    #[arg(long, default_value_t = 10.0)]
    pub sample_interval: f64,
    /// Executors (threads) the connections are spread over.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// Counters the executors share with the sampling thread.
#[derive(Debug, Default)]
struct Tally {
    open: AtomicU64,
    heartbeats: AtomicU64,
    errors: AtomicU64,
    finished: AtomicU64,
}

/// The resident set size of `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Result<u64, PerfError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| PerfError::Options(format!("no VmRSS for pid {pid}")))
}

/// The `VmRSS:` figure (KiB) of a `/proc/<pid>/status` text.
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn heartbeat(client_id: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client_id}","consumerDataSet":[],"producerDataSet":[{{"groupName":"tern_perf_conn_pg"}}]}}"#
    );
    RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes())
}

/// Runs `tern-perf connections` and prints its samples and summary to stdout.
pub fn run(opts: &ConnectionsOptions) -> Result<(), PerfError> {
    if opts.count == 0 || opts.threads == 0 || opts.heartbeat_interval <= 0.0 {
        return Err(PerfError::Options(
            "--count, --threads and --heartbeat-interval must be positive".into(),
        ));
    }
    let rss = |pid: Option<u32>| pid.map(rss_kib).transpose();
    let base = rss(opts.pid)?;
    let tally = Arc::new(Tally::default());
    let hold_until = Arc::new(std::sync::OnceLock::<Instant>::new());
    let interval = Duration::from_secs_f64(opts.heartbeat_interval);
    let mut handles = Vec::new();
    for t in 0..opts.threads {
        let share = opts.count / opts.threads + usize::from(t < opts.count % opts.threads);
        let (tally, hold_until, broker) = (
            Arc::clone(&tally),
            Arc::clone(&hold_until),
            opts.broker.clone(),
        );
        handles.push(tern_runtime::spawn_executor(
            &format!("perf-conn-{t}"),
            None,
            move || async move {
                hold(t, share, &broker, interval, &tally, &hold_until).await;
                tally.finished.fetch_add(1, Ordering::Release);
            },
        )?);
    }
    // Wait for every connection to be open (or failed), then hold for --duration.
    let started = Instant::now();
    while tally.open.load(Ordering::Relaxed) + tally.errors.load(Ordering::Relaxed)
        < opts.count as u64
        && tally.finished.load(Ordering::Acquire) < opts.threads as u64
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let opened = tally.open.load(Ordering::Relaxed);
    let all_open = rss(opts.pid)?;
    println!(
        "{opened} connections open in {:.2} s; broker RSS {} KiB",
        started.elapsed().as_secs_f64(),
        all_open.map_or("-".into(), |k| k.to_string())
    );
    let _ = hold_until.set(Instant::now() + Duration::from_secs_f64(opts.duration));
    let sample = Duration::from_secs_f64(opts.sample_interval.max(0.1));
    let mut next = Instant::now() + sample;
    let mut peak = all_open;
    while tally.finished.load(Ordering::Acquire) < opts.threads as u64 {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        next += sample;
        let now = rss(opts.pid)?;
        peak = peak.max(now);
        println!(
            "[{:>5.0}s] open {} heartbeats {} errors {} rss {} KiB",
            started.elapsed().as_secs_f64(),
            tally.open.load(Ordering::Relaxed),
            tally.heartbeats.load(Ordering::Relaxed),
            tally.errors.load(Ordering::Relaxed),
            now.map_or("-".into(), |k| k.to_string())
        );
    }
    for h in handles {
        h.join()?;
    }
    let end = rss(opts.pid)?;
    println!("== connections summary ==");
    println!(
        "connections: {opened} of {}, heartbeats {}, errors {}",
        opts.count,
        tally.heartbeats.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed)
    );
    if let (Some(base), Some(all_open), Some(end), Some(peak)) = (base, all_open, end, peak) {
        let per = (all_open.saturating_sub(base) as f64) / (opened.max(1) as f64);
        println!(
            "broker RSS: {base} KiB before, {all_open} KiB all open ({per:.1} KiB per connection), \
             {end} KiB at the end, peak {peak} KiB; growth while held {} KiB",
            end as i64 - all_open as i64
        );
    }
    Ok(())
}

/// One executor's share: opens `count` connections (one client each), heartbeats each every
/// `interval` until `hold_until` passes, then drops them.
async fn hold(
    thread: usize,
    count: usize,
    broker: &str,
    interval: Duration,
    tally: &Tally,
    hold_until: &std::sync::OnceLock<Instant>,
) {
    let timeout = Duration::from_secs(10);
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let client = RemotingClient::new(ClientConfig::default());
        let id = format!("perf-conn-{thread}-{i}");
        match client.invoke(broker, heartbeat(&id), timeout).await {
            Ok(r) if r.code == response::SUCCESS => {
                tally.open.fetch_add(1, Ordering::Relaxed);
                clients.push((client, id));
            }
            _ => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut round = Instant::now();
    loop {
        let deadline = hold_until.get().copied();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        round += interval;
        tern_runtime::sleep(round.saturating_duration_since(Instant::now())).await;
        for (client, id) in &clients {
            match client.invoke(broker, heartbeat(id), timeout).await {
                Ok(r) if r.code == response::SUCCESS => {
                    tally.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_a_status_text() {
        let status = "Name:\ttern-broker\nVmHWM:\t   20000 kB\nVmRSS:\t   17316 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(status), Some(17316));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }
}
