//! The broker's Prometheus metrics: what each core records on its request path, and the scrape
//! that the state core answers on `GET /metrics` (`metricsPort`).
//!
//! Hot path: each server core owns one [`CoreMetrics`] slot (relaxed atomics written only by that
//! core; no lock, no shared counter). Everything else is computed on scrape, on the state core:
//! message and byte counters come from each core's own counters (GET_BROKER_RUNTIME_INFO asked of
//! every core over the mesh), lag from GET_CONSUME_STATS per group with committed offsets, topic
//! sizes from GET_TOPIC_STATS_INFO, disk usage from statvfs.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `tern_messages_produced_total`, `tern_messages_consumed_total` | counter | `core` |
//! | `tern_produced_bytes_total` | counter | `core` |
//! | `tern_consumed_bytes_total` | counter | `core`, `path` (`zero_copy` \| `copied`) |
//! | `tern_forwarded_requests_total` | counter | `core` |
//! | `tern_flush_rounds_total`, `tern_flush_appends_total`, `tern_flush_bytes_total`, `tern_flush_seconds_total` | counter | `core` |
//! | `tern_send_latency_seconds`, `tern_pull_latency_seconds` | histogram | — |
//! | `tern_connections_opened_total`, `tern_connections_closed_total` | counter | — |
//! | `tern_connections` | gauge | — |
//! | `tern_consumer_lag_messages` | gauge | `group`, `topic` |
//! | `tern_topic_lag_messages` | gauge | `topic` |
//! | `tern_topic_max_offset` | gauge | `topic` (sum over queues) |
//! | `tern_disk_used_ratio` | gauge | — |
//! | `tern_cores` | gauge | — |

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tern_net::body::KvTable;
use tern_net::code::{request, response};
use tern_net::RemotingCommand;
use tern_store::retention::{DiskUsageProbe, StatvfsProbe};

use super::admin_body::{decode_consume_stats, decode_topic_stats};
use super::core::{Core, Origin};
use crate::metrics::histogram::{Histogram, Snapshot};
use crate::metrics::text::Exposition;

/// What one server core records while serving its connections.
#[derive(Debug, Default)]
pub(crate) struct CoreMetrics {
    send_latency: Histogram,
    pull_latency: Histogram,
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
}

/// Every core's slot; shared by the cores (writers) and the scrape (reader).
#[derive(Debug)]
pub(crate) struct BrokerMetrics {
    cores: Vec<CoreMetrics>,
}

impl BrokerMetrics {
    /// One slot per server core.
    pub(crate) fn new(cores: usize) -> Self {
        BrokerMetrics {
            cores: (0..cores.max(1)).map(|_| CoreMetrics::default()).collect(),
        }
    }
}

/// The request-path recorder of one server core (lives in its request handler).
pub(crate) struct CoreRecorder {
    all: Arc<BrokerMetrics>,
    index: usize,
    /// Connections of this core that sent a request and have not closed.
    open: RefCell<HashSet<u64>>,
}

impl CoreRecorder {
    /// The recorder of server core `index`.
    pub(crate) fn new(all: Arc<BrokerMetrics>, index: usize) -> Self {
        debug_assert!(index < all.cores.len());
        CoreRecorder {
            all,
            index,
            open: RefCell::new(HashSet::new()),
        }
    }

    fn slot(&self) -> Option<&CoreMetrics> {
        self.all.cores.get(self.index)
    }

    /// A request arrived on connection `conn` (the first one counts the connection as opened).
    pub(crate) fn request_started(&self, conn: u64) {
        if self.open.borrow_mut().insert(conn) {
            if let Some(m) = self.slot() {
                m.connections_opened.fetch_add(1, Relaxed);
            }
        }
    }

    /// A request with `code` was answered after `elapsed` (sends and pulls are timed).
    pub(crate) fn request_done(&self, code: i32, elapsed: Duration) {
        let Some(m) = self.slot() else { return };
        match code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                m.send_latency.observe(elapsed)
            }
            request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => m.pull_latency.observe(elapsed),
            _ => {}
        }
    }

    /// Connection `conn` closed.
    pub(crate) fn connection_closed(&self, conn: u64) {
        if self.open.borrow_mut().remove(&conn) {
            if let Some(m) = self.slot() {
                m.connections_closed.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Runtime-info keys of a core's CommitLog flush counters (see [`add_flush_stats`]).
const FLUSH_KEYS: [&str; 4] = [
    "flushRoundsOnCore",
    "flushAppendsOnCore",
    "flushBytesOnCore",
    "flushMicrosOnCore",
];

/// Adds a core's flush counters to its GET_BROKER_RUNTIME_INFO table.
pub(crate) fn add_flush_stats(
    table: &mut BTreeMap<String, String>,
    s: tern_store::flush::FlushStats,
) {
    let values = [s.syncs, s.synced_appends, s.synced_bytes, s.sync_micros];
    for (k, v) in FLUSH_KEYS.iter().zip(values) {
        table.insert((*k).to_string(), v.to_string());
    }
}

/// Per-core counters read from GET_BROKER_RUNTIME_INFO (also read by the web console).
#[derive(Debug, Default)]
pub(crate) struct CoreCounters {
    flush_rounds: u64,
    flush_appends: u64,
    flush_bytes: u64,
    flush_micros: u64,
    pub(crate) produced: u64,
    pub(crate) produced_bytes: u64,
    pub(crate) consumed: u64,
    pub(crate) zero_copy_bytes: u64,
    pub(crate) copied_bytes: u64,
    forwarded: u64,
}

/// Core `to`'s counters, asked over the mesh; `None` when it does not answer.
pub(crate) async fn core_counters(core: &Rc<Core>, to: usize) -> Option<CoreCounters> {
    let req = RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO)
        .with_ext(super::fan_out::CORE_PART, "true");
    let reply = core.run_on(to, req, Origin::Forwarded).await?;
    if reply.command.code != response::SUCCESS {
        return None;
    }
    let kv: KvTable = tern_net::body::decode(&reply.command.body).ok()?;
    let get = |k: &str| {
        kv.table
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(CoreCounters {
        produced: get("putMessageTimesTotal"),
        produced_bytes: get("putMessageSizeTotal"),
        consumed: get("getMessageTimesTotal"),
        zero_copy_bytes: get("pullZeroCopyBytes"),
        copied_bytes: get("pullCopiedBytes"),
        forwarded: get("forwardedRequests"),
        flush_rounds: get(FLUSH_KEYS[0]),
        flush_appends: get(FLUSH_KEYS[1]),
        flush_bytes: get(FLUSH_KEYS[2]),
        flush_micros: get(FLUSH_KEYS[3]),
    })
}

/// `(group, topic) → lag` for every group with committed offsets on this (the state) core.
async fn group_lag(core: &Rc<Core>) -> BTreeMap<(String, String), u64> {
    let groups = core.offsets.borrow().groups();
    let mut lag = BTreeMap::new();
    for group in groups {
        let req =
            RemotingCommand::request(request::GET_CONSUME_STATS).with_ext("consumerGroup", &group);
        let Some(reply) = core.handle(req, Origin::Forwarded).await else {
            continue;
        };
        if reply.command.code != response::SUCCESS {
            continue;
        }
        let Ok(stats) = decode_consume_stats(&reply.command.body) else {
            continue;
        };
        for (mq, w) in stats.offset_table {
            let behind = u64::try_from(w.broker_offset - w.consumer_offset).unwrap_or(0);
            *lag.entry((group.clone(), mq.topic)).or_insert(0) += behind;
        }
    }
    lag
}

/// `topic → Σ max offsets` over the topic's queues.
async fn topic_max_offsets(core: &Rc<Core>) -> BTreeMap<String, u64> {
    let topics: Vec<String> = core.topics.borrow().names().map(str::to_string).collect();
    let mut out = BTreeMap::new();
    for topic in topics {
        let req = RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_ext("topic", &topic);
        let Some(reply) = core.handle(req, Origin::Forwarded).await else {
            continue;
        };
        if reply.command.code != response::SUCCESS {
            continue;
        }
        if let Ok(table) = decode_topic_stats(&reply.command.body) {
            let sum = table
                .offset_table
                .values()
                .map(|o| u64::try_from(o.max_offset).unwrap_or(0))
                .sum();
            out.insert(topic, sum);
        }
    }
    out
}

/// A counter exported per core: its name, its help and the [`CoreCounters`] field it shows.
type CoreCounterRow = (&'static str, &'static str, fn(&CoreCounters) -> u64);

/// Renders the exposition (run on the state core).
pub(crate) async fn render(core: &Rc<Core>, metrics: &BrokerMetrics) -> String {
    let mut per_core = Vec::with_capacity(core.cores);
    for c in 0..core.cores {
        per_core.push((
            c.to_string(),
            core_counters(core, c).await.unwrap_or_default(),
        ));
    }
    let lag = group_lag(core).await;
    let topics = topic_max_offsets(core).await;

    let mut e = Exposition::new();
    let by_core = |f: fn(&CoreCounters) -> u64| -> Vec<(Vec<(&str, &str)>, u64)> {
        per_core
            .iter()
            .map(|(c, v)| (vec![("core", c.as_str())], f(v)))
            .collect()
    };
    let counter =
        |e: &mut Exposition, name: &str, help: &str, rows: Vec<(Vec<(&str, &str)>, u64)>| {
            let samples: Vec<_> = rows.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
            e.counter(name, help, &samples);
        };
    let per_core_counters = |e: &mut Exposition, table: &[CoreCounterRow]| {
        for &(name, help, field) in table {
            counter(e, name, help, by_core(field));
        }
    };
    per_core_counters(
        &mut e,
        &[
            (
                "tern_messages_produced_total",
                "Messages stored by produce requests.",
                |c| c.produced,
            ),
            (
                "tern_produced_bytes_total",
                "Message body bytes received by produce requests.",
                |c| c.produced_bytes,
            ),
            (
                "tern_messages_consumed_total",
                "Messages returned by pulls.",
                |c| c.consumed,
            ),
        ],
    );
    let mut consumed = Vec::new();
    for (c, v) in &per_core {
        consumed.push((
            vec![("core", c.as_str()), ("path", "zero_copy")],
            v.zero_copy_bytes,
        ));
        consumed.push((
            vec![("core", c.as_str()), ("path", "copied")],
            v.copied_bytes,
        ));
    }
    counter(
        &mut e,
        "tern_executor_wakeup_signals_total",
        "Signals sent to executors whose timers had stalled (asleep past a wakeup, or busy) \
         (tern_runtime::WakeWatchdog).",
        vec![(Vec::new(), tern_runtime::nudges())],
    );
    counter(
        &mut e,
        "tern_consumed_bytes_total",
        "Pull body bytes, sent with sendfile (zero_copy) or copied.",
        consumed,
    );
    per_core_counters(
        &mut e,
        &[
            (
                "tern_forwarded_requests_total",
                "Requests forwarded to another core over the mesh (including the scrape's own).",
                |c| c.forwarded,
            ),
            (
                "tern_flush_rounds_total",
                "Completed CommitLog flush rounds (writes + fdatasync/msync).",
                |c| c.flush_rounds,
            ),
            (
                "tern_flush_appends_total",
                "Appends made durable by flush rounds (rate / rounds rate = mean batch size).",
                |c| c.flush_appends,
            ),
            (
                "tern_flush_bytes_total",
                "Bytes made durable by flush rounds.",
                |c| c.flush_bytes,
            ),
        ],
    );
    let secs: Vec<_> = per_core
        .iter()
        .map(|(c, v)| ([("core", c.as_str())], v.flush_micros as f64 / 1e6))
        .collect();
    let samples: Vec<_> = secs.iter().map(|(l, v)| (&l[..], *v)).collect();
    e.counter_f64(
        "tern_flush_seconds_total",
        "Time spent in flush rounds (rate / rounds rate = mean flush latency).",
        &samples,
    );

    let (mut send, mut pull) = (Snapshot::default(), Snapshot::default());
    let (mut opened, mut closed) = (0, 0);
    for m in &metrics.cores {
        m.send_latency.add_to(&mut send);
        m.pull_latency.add_to(&mut pull);
        opened += m.connections_opened.load(Relaxed);
        closed += m.connections_closed.load(Relaxed);
    }
    e.histogram(
        "tern_send_latency_seconds",
        "Time to answer produce requests.",
        &send,
    );
    e.histogram(
        "tern_pull_latency_seconds",
        "Time to answer pulls, long-poll suspension included.",
        &pull,
    );
    e.counter(
        "tern_connections_opened_total",
        "Client connections that sent a request.",
        &[(&[], opened)],
    );
    e.counter(
        "tern_connections_closed_total",
        "Client connections closed.",
        &[(&[], closed)],
    );
    e.gauge(
        "tern_connections",
        "Open client connections.",
        &[(&[], opened.saturating_sub(closed) as f64)],
    );

    let group_rows: Vec<_> = lag
        .iter()
        .map(|((g, t), v)| ([("group", g.as_str()), ("topic", t.as_str())], *v as f64))
        .collect();
    let samples: Vec<_> = group_rows.iter().map(|(l, v)| (&l[..], *v)).collect();
    e.gauge(
        "tern_consumer_lag_messages",
        "Messages not yet committed by a group, per topic.",
        &samples,
    );
    let mut per_topic: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, t), v) in &lag {
        *per_topic.entry(t.as_str()).or_insert(0) += v;
    }
    let topic_rows: Vec<_> = per_topic
        .iter()
        .map(|(t, v)| ([("topic", *t)], *v as f64))
        .collect();
    let samples: Vec<_> = topic_rows.iter().map(|(l, v)| (&l[..], *v)).collect();
    e.gauge(
        "tern_topic_lag_messages",
        "Consumer lag summed over the groups consuming a topic.",
        &samples,
    );
    let max_rows: Vec<_> = topics
        .iter()
        .map(|(t, v)| ([("topic", t.as_str())], *v as f64))
        .collect();
    let samples: Vec<_> = max_rows.iter().map(|(l, v)| (&l[..], *v)).collect();
    e.gauge(
        "tern_topic_max_offset",
        "Sum of the topic's queue max offsets (messages ever stored).",
        &samples,
    );

    let used = StatvfsProbe.used_ratio(&core.config.store.commit_log_dir());
    if let Some(r) = used {
        e.gauge(
            "tern_disk_used_ratio",
            "Used fraction of the CommitLog's filesystem.",
            &[(&[], r)],
        );
    }
    e.gauge(
        "tern_cores",
        "Executor cores serving the broker.",
        &[(&[], core.cores as f64)],
    );
    e.finish()
}
