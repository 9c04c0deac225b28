//! The nameserver's Prometheus metrics (`metricsPort`), computed on scrape from the route table.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `tern_namesrv_brokers` | gauge | `cluster` (live broker addresses) |
//! | `tern_namesrv_broker_groups` | gauge | — |
//! | `tern_namesrv_topics` | gauge | — |

use std::collections::BTreeMap;
use std::sync::Arc;

use super::handler::Shared;
use crate::metrics::text::Exposition;

/// Renders the exposition. Takes the state lock once, briefly (as every request does).
pub(crate) fn render(shared: &Arc<Shared>) -> String {
    let (info, topics) = {
        let state = shared.lock();
        (state.routes.cluster_info(), state.routes.all_topics())
    };
    let mut per_cluster: BTreeMap<&str, usize> = BTreeMap::new();
    for b in info.broker_addr_table.values() {
        *per_cluster.entry(b.cluster.as_str()).or_insert(0) += b.broker_addrs.len();
    }
    let rows: Vec<_> = per_cluster
        .iter()
        .map(|(c, n)| ([("cluster", *c)], *n as f64))
        .collect();
    let samples: Vec<_> = rows.iter().map(|(l, v)| (&l[..], *v)).collect();
    let mut e = Exposition::new();
    e.gauge(
        "tern_namesrv_brokers",
        "Registered broker addresses per cluster.",
        &samples,
    );
    e.gauge(
        "tern_namesrv_broker_groups",
        "Registered broker names (a master and its slaves count once).",
        &[(&[], info.broker_addr_table.len() as f64)],
    );
    e.gauge(
        "tern_namesrv_topics",
        "Topics with a route.",
        &[(&[], topics.topic_list.len() as f64)],
    );
    e.finish()
}
