//! `store-bench`: CommitLog append throughput for both I/O backends × both flush modes, with 1 and
//! many concurrent appenders, next to the raw disk figure of `dd oflag=direct` measured in the same
//! run. Prints a markdown table.
//!
//! Every run appends ~1 KiB stored messages into a fresh directory until `--mb` MiB or `--max-secs`
//! seconds, whichever comes first. ASYNC_FLUSH runs include the final flush at shutdown, so every
//! figure is of durable bytes. SYNC_FLUSH appenders wait for durability after every message.
//!
//! ```text
//! cargo run --release -p tern-perf --bin store-bench -- --dir /work/tmp/bench --mb 512
//! ```

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tern_store::commit_log::CommitLog;
use tern_store::config::{FlushDiskType, IoMode, StoreConfig};
use tern_store::flush::FlushOutcome;
use tern_store::message::MessageDraft;

#[derive(Parser, Debug)]
#[command(about = "CommitLog append throughput per backend and flush mode")]
struct Args {
    /// Scratch directory (created; each run's files are deleted afterwards).
    #[arg(long, default_value = "/work/tmp/store-bench")]
    dir: PathBuf,
    /// MiB appended per run.
    #[arg(long, default_value_t = 512)]
    mb: u64,
    /// Stop a run after this many seconds even if `--mb` was not reached.
    #[arg(long, default_value_t = 8)]
    max_secs: u64,
    /// Stored size of each message in bytes.
    #[arg(long, default_value_t = 1024)]
    msg_size: usize,
    /// CommitLog segment size in MiB.
    #[arg(long, default_value_t = 1024)]
    segment_mb: u64,
    /// Concurrent appenders of the "many" runs.
    #[arg(long, default_value_t = 64)]
    appenders: usize,
    /// Backends to run: `mmap`, `direct` or `both`.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Flush modes to run: `async`, `sync` or `both`.
    #[arg(long, default_value = "both")]
    flush: String,
    /// Run one untimed mmap/ASYNC pass before measuring.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    warmup: bool,
    /// MiB written by the raw `dd` measurement.
    #[arg(long, default_value_t = 1024)]
    dd_mb: u64,
}

struct RunResult {
    bytes: u64,
    secs: f64,
    appends_per_sync: Option<f64>,
    p50_us: u64,
    p99_us: u64,
}

impl RunResult {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.secs
    }
}

fn host() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10911))
}

async fn run_one(
    dir: &Path,
    mode: IoMode,
    flush: FlushDiskType,
    appenders: usize,
    args: &Args,
) -> Result<RunResult, String> {
    let mut config = StoreConfig {
        store_path_root_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    config.commit_log_io_mode = mode;
    config.flush_disk_type = flush;
    config.mapped_file_size_commit_log = args.segment_mb << 20;
    let log = Rc::new(
        CommitLog::open(&config, 0)
            .await
            .map_err(|e| e.to_string())?,
    );
    let probe = MessageDraft {
        topic: "BenchTopic",
        queue_id: 0,
        flag: 0,
        body: b"",
        properties: b"",
        sys_flag: 0,
        born_timestamp: 0,
        born_host: host(),
        store_host: host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    };
    let overhead = probe.stored_len().map_err(|e| e.to_string())?;
    let body = Rc::new(vec![0x5au8; args.msg_size.saturating_sub(overhead)]);
    let target = args.mb << 20;
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let latency = Rc::new(RefCell::new(
        Histogram::<u64>::new(3).map_err(|e| e.to_string())?,
    ));
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let log = Rc::clone(&log);
            let body = Rc::clone(&body);
            let latency = Rc::clone(&latency);
            tern_runtime::spawn_local(async move {
                let mut q = 0i64;
                while log.max_offset() < target && Instant::now() < deadline {
                    let draft = MessageDraft {
                        body: &body,
                        born_timestamp: q,
                        ..probe
                    };
                    let t0 = Instant::now();
                    let r = log.append(&draft, q).await.map_err(|e| e.to_string())?;
                    if flush == FlushDiskType::Sync {
                        match log.wait_durable(r.end()).await {
                            FlushOutcome::Durable => {}
                            other => return Err(format!("flush outcome {other:?}")),
                        }
                    }
                    let us = t0.elapsed().as_micros() as u64;
                    let _ = latency.borrow_mut().record(us.max(1));
                    q += 1;
                    tern_runtime::yield_if_needed().await;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let bytes = log.max_offset();
    log.shutdown().await.map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let stats = log.flush_stats();
    let h = latency.borrow();
    Ok(RunResult {
        bytes,
        secs,
        appends_per_sync: (flush == FlushDiskType::Sync).then(|| stats.appends_per_sync()),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
    })
}

/// Runs `dd if=/dev/zero of=F bs=1M count=N oflag=direct` and returns MiB/s.
fn raw_dd(dir: &Path, mb: u64) -> Result<f64, String> {
    let file = dir.join("dd.raw");
    let start = Instant::now();
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg("bs=1M")
        .arg(format!("count={mb}"))
        .arg("oflag=direct")
        .output()
        .map_err(|e| format!("cannot run dd: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(mb as f64 / secs)
}

fn main() {
    let args = Args::parse();
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("cannot create {}: {e}", args.dir.display());
        std::process::exit(1);
    }
    let raw = match raw_dd(&args.dir, args.dd_mb) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("dd failed: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "raw disk: dd bs=1M count={} oflag=direct: {raw:.1} MiB/s\n",
        args.dd_mb
    );
    println!("| backend | flush | appenders | MiB | s | MiB/s | % of raw | appends/sync | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    // One untimed run first: the first pass over fresh files of a process runs markedly slower
    // (allocator and page-cache warm-up), which would otherwise penalise whichever row comes first.
    if args.warmup {
        let warm_dir = args.dir.join("warmup");
        let _ = std::fs::remove_dir_all(&warm_dir);
        let _ = tern_runtime::block_on("store-bench-warmup", async {
            run_one(&warm_dir, IoMode::Mmap, FlushDiskType::Async, 1, &args).await
        });
        let _ = std::fs::remove_dir_all(&warm_dir);
    }
    let modes = [("mmap", IoMode::Mmap), ("direct", IoMode::Direct)];
    let flushes = [
        ("async", FlushDiskType::Async),
        ("sync", FlushDiskType::Sync),
    ];
    for (mode_name, mode) in modes {
        if args.backend != "both" && args.backend != mode_name {
            continue;
        }
        for (flush_key, flush) in flushes {
            if args.flush != "both" && args.flush != flush_key {
                continue;
            }
            for appenders in [1, args.appenders] {
                let run_dir = args.dir.join("run");
                let _ = std::fs::remove_dir_all(&run_dir);
                let result = tern_runtime::block_on("store-bench", async {
                    run_one(&run_dir, mode, flush, appenders, &args).await
                });
                let _ = std::fs::remove_dir_all(&run_dir);
                let name = match mode {
                    IoMode::Mmap => "mmap",
                    IoMode::Direct => "direct",
                };
                let flush_name = match flush {
                    FlushDiskType::Async => "ASYNC",
                    FlushDiskType::Sync => "SYNC",
                };
                match result {
                    Ok(Ok(r)) => println!(
                        "| {name} | {flush_name} | {appenders} | {:.0} | {:.2} | {:.1} | {:.0}% | {} | {} | {} |",
                        r.bytes as f64 / 1048576.0,
                        r.secs,
                        r.mb_per_s(),
                        100.0 * r.mb_per_s() / raw,
                        r.appends_per_sync
                            .map_or("-".to_string(), |v| format!("{v:.1}")),
                        r.p50_us,
                        r.p99_us
                    ),
                    Ok(Err(e)) => println!("| {name} | {flush_name} | {appenders} | failed: {e} |"),
                    Err(e) => println!("| {name} | {flush_name} | {appenders} | executor: {e} |"),
                }
            }
        }
    }
}
