//! High availability: master/slave replication of every core's CommitLog shard, the slave's
//! periodic copy of the master's tables, SYNC_MASTER acknowledgements and the pull hint that
//! steers consumers to the slave. The protocol and the operator's procedure are in
//! `docs/replication.md`.
//!
//! ## Shape (RocketMQ's HAService, per shard)
//! A slave runs the same number of cores as its master. Slave core `k` replicates master shard
//! `k`: it sends HA_FETCH requests ([`fetch`]) to the master's HA port (`haListenPort`, by default
//! `listenPort + 1`), each carrying its CommitLog's write position, which is both its
//! acknowledgement and where the master continues. The master's owner of shard `k` answers with
//! whole records from there, or holds the request up to `haSendHeartbeatInterval` until there are
//! some, so a slave reports at least that often. The slave appends the records at the same
//! physical offsets and dispatches them ([`tern_store::message_store::MessageStore::append_replicated`]).
//!
//! ## State
//! Each master core keeps its shard's replication state ([`master::HaShard`]: the acknowledged
//! offset, when a slave was last heard from, the signals SYNC_MASTER sends wait on) in its own
//! `Core`: the core owning the shard also answers the slave's requests for it, so no lock is taken.

pub mod config;
pub mod fetch;
pub(crate) mod master;
pub(crate) mod slave;
pub(crate) mod tables;

pub use config::HaConfig;
pub use slave::{MasterAddrs, MasterLink};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use tern_net::transport::{ConnectionLimits, RequestHandler, StopSignal};

use super::config::BrokerRole;
use super::core::Core;
use super::routing::STATE_CORE;

/// Starts this core's part of replication: a master serves `handler` on the HA port as well (so
/// HA_FETCH arrives there); a slave starts replicating its shard, and its state core copies the
/// master's tables.
pub(crate) fn start_core(
    core: &Rc<Core>,
    link: Arc<MasterLink>,
    handler: Rc<dyn RequestHandler>,
    stop: StopSignal,
) {
    if core.config.broker_role == BrokerRole::Slave {
        tern_runtime::spawn_local(slave::replicate(Rc::clone(core), Arc::clone(&link))).detach();
        if core.index == STATE_CORE {
            tern_runtime::spawn_local(slave::sync_tables(Rc::clone(core), link)).detach();
        }
        return;
    }
    let port = core.config.ha.port(core.config.listen_port);
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    match glommio::net::TcpListener::bind(addr) {
        Ok(listener) => {
            if core.index == STATE_CORE {
                tracing::info!(%addr, "HA port listening");
            }
            let index = core.index;
            tern_runtime::spawn_local(tern_net::transport::serve_listener(
                index,
                listener,
                handler,
                ConnectionLimits::default(),
                stop,
            ))
            .detach();
        }
        Err(e) => tracing::error!(%addr, core = core.index,
            "cannot listen on the HA port; slaves cannot replicate: {e}"),
    }
}
