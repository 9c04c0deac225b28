//! # The broker (`tern-broker`)
//!
//! A thread-per-core RocketMQ broker: produce, pull, consumer offsets, consumer groups and topic
//! administration over RocketMQ's remoting protocol.
//!
//! ## Cores and shards
//! The broker runs N executors (`--cores N`), each serving the connections the kernel hands it
//! (SO_REUSEPORT, [`tern_net::transport::Server`]). Core `k` owns a [`tern_store`] shard under
//! `<storePathRootDir>/core-<k>/` whose CommitLog starts at physical offset `k << 56`, so an offset
//! message id names the core that holds the message. A queue `(topic, queueId)` belongs to core
//! [`routing::owner_core`] (a fixed FNV-1a hash of the topic plus the queue id, modulo N).
//!
//! ## Who answers what
//!
//! | requests | answered by |
//! |---|---|
//! | SEND_MESSAGE(_V2), SEND_BATCH_MESSAGE, PULL_MESSAGE, LITE_PULL_MESSAGE, GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME | the queue's owner |
//! | VIEW_MESSAGE_BY_ID | the core named by the offset's top byte |
//! | CONSUMER_SEND_MSG_BACK | reads on the core holding the message, stores on the retry queue's owner |
//! | LOCK_BATCH_MQ, UNLOCK_BATCH_MQ | the state core, which broadcasts lock changes ([`locks`]) |
//! | QUERY/UPDATE_CONSUMER_OFFSET, HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, GET_CONSUMER_CONNECTION_LIST | the state core ([`routing::STATE_CORE`], core 0) |
//! | GET_CONSUME_STATS | the state core (committed offsets), asking each queue's owner for its max offset (`stats.rs`) |
//! | END_TRANSACTION | the owner of `(RMQ_SYS_TRANS_HALF_TOPIC, 0)` ([`transaction`]) |
//! | GET_TOPIC_STATS_INFO, QUERY_MESSAGE | the receiving core, merging every core's part (`stats.rs`, `query.rs`) |
//! | UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER, UPDATE_AND_CREATE_SUBSCRIPTIONGROUP | the receiving core, then broadcast |
//! | GET_ALL_TOPIC_CONFIG, GET_BROKER_CONFIG, GET_TOPIC_CONFIG, GET_ALL_SUBSCRIPTIONGROUP_CONFIG | the receiving core |
//! | GET_BROKER_RUNTIME_INFO | the receiving core, summing every core's counters (`runtime_info.rs`) |
//! | DELETE_SUBSCRIPTIONGROUP | every core (`group_admin.rs`) |
//! | GET_ALL_CONSUMER_OFFSET, QUERY_TOPIC_CONSUME_BY_WHO, CLONE_GROUP_OFFSET, INVOKE_BROKER_TO_RESET_OFFSET | the state core (`admin_sync.rs`, `group_admin.rs`) |
//! | anything else | REQUEST_CODE_NOT_SUPPORTED |
//!
//! A request for another core travels whole over the mesh ([`tern_runtime::mesh`], batched per
//! destination) and its response comes back the same way; the receiving core then answers on its
//! connection. With `--cores 1` nothing is forwarded. No lock is taken on any request path: every
//! table is owned by one core and reached through `RefCell`s that are never held across an await.
//!
//! ## Replicated and owned state
//! - Topic configs and subscription groups: every core has a copy; a change is applied locally and
//!   broadcast ([`core::MeshMsg`]). Mesh order per sender guarantees a topic auto-created by a send
//!   reaches the queue's owner before the forwarded send does. The state core persists both.
//! - Consumer offsets: kept on the state core only (pull commits from other cores are sent to it
//!   one-way) and persisted there. At shutdown every core stops taking client requests; the other
//!   cores close their stores and then tell the state core they are drained, and only then does the
//!   state core write its final `consumerOffset.json`, so no forwarded commit is lost.
//! - Group membership (heartbeats): on the state core; other cores forward heartbeats with the
//!   connection's place and send NOTIFY_CONSUMER_IDS_CHANGED on their own connections when told.
//!   Subscriptions from heartbeats are broadcast so the owner of a queue can filter pulls.
//!
//! ## Pulls
//! On the owner core's own connections a found pull's body is the CommitLog file ranges, sent with
//! `sendfile` ([`tern_net::zero_copy`]); a forwarded pull (or one touching the direct backend's
//! memory tail) returns bytes. Long polling waits on a per-queue arrival signal fired by each put
//! (see [`pull`]).
//!
//! ## Files
//! `<storePathRootDir>/config/{topics,subscriptionGroup,consumerOffset}.json` in RocketMQ's shapes,
//! written atomically ([`persist`]) by the state core when they change (offsets every
//! `flushConsumerOffsetInterval`) and at shutdown; loaded at start.

mod admin;
pub mod admin_body;
mod admin_sync;
pub mod batch;
pub mod clients;
pub mod config;
mod config_update;
mod console;
mod consumer;
mod core;
mod fan_out;
pub mod filter;
mod group_admin;
pub mod groups;
pub mod ha;
pub mod knob_table;
mod local_sync;
mod locks;
mod metrics;
mod node;
pub mod offsets;
pub mod persist;
pub mod pull;
mod pull_cap;
mod query;
mod register;
pub mod routing;
mod runtime_info;
pub mod scheduled;
mod send;
mod send_back;
mod shard_store;
mod stats;
pub mod topics;
mod transaction;

pub use config::BrokerConfig;
pub use node::{Broker, BrokerError};
