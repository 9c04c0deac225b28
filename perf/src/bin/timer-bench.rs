//! `timer-bench`: inserts N timers with random due times into a [`TimerWheel`], then expires them
//! all by advancing through time; prints ns per insert, ns per expiry and the wheel's memory.
//!
//! ```sh
//! cargo run --release -p tern-perf --bin timer-bench -- 5000000 3600000
//! ```
//! Arguments: timer count (default 1 000 000) and the span of due times in ms (default 1 h).
//! Memory is the process's resident-set growth while the timers are pending (Linux `VmRSS`).

use std::time::Instant;

use tern_store::timer_wheel::{TimerEntry, TimerWheel};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let span: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(3_600_000);
    let start = 1_700_000_000_000u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let before = rss_kib();
    let mut wheel = TimerWheel::new(start);
    let t = Instant::now();
    for id in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        wheel.insert(TimerEntry {
            due_ms: start + 1 + x % span,
            id,
        });
    }
    let insert = t.elapsed();
    let pending = rss_kib().saturating_sub(before);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut expired = 0u64;
    let mut now = start;
    let t = Instant::now();
    // Advance in 10 ms steps, as a busy delivery task would.
    while !wheel.is_empty() {
        now += 10;
        out.clear();
        wheel.advance(now, &mut out);
        expired += out.len() as u64;
    }
    let expire = t.elapsed();
    assert_eq!(expired, n);
    println!(
        "timers={n} span_ms={span} insert_ns_per_op={:.1} expire_ns_per_op={:.1} rss_growth_kib={pending} bytes_per_timer={:.1}",
        insert.as_nanos() as f64 / n as f64,
        expire.as_nanos() as f64 / n as f64,
        pending as f64 * 1024.0 / n as f64,
    );
}
