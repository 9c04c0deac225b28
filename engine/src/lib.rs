//! # tern-engine
//!
//! Broker and nameserver logic; the `tern-namesrv` and `tern-broker` binaries live in `src/bin/`.

pub mod broker;
pub mod fd_limit;
pub mod knobs;
pub mod logging;
pub mod metrics;
pub mod namesrv;
pub mod process;
pub mod properties;
