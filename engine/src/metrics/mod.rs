//! Prometheus metrics shared by the broker and the nameserver: lock-free latency histograms, the
//! text exposition format, and a minimal HTTP/1.1 responder for `GET /metrics`.
//!
//! Thread-per-core: every core owns its own counters and histograms (atomics written only by that
//! core with `Relaxed` ordering, so the hot path takes no lock and shares no cache line with
//! other writers); a scrape reads every core's values and sums them.

pub mod histogram;
pub mod http;
pub mod text;
