//! The slave side: one replication loop per core (its shard) and, on the state core, the periodic
//! copy of the master's topics, subscription groups and consumer offsets.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_net::code::{request, response};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

use super::fetch::{FetchAnswer, FetchRequest};
use crate::broker::core::Core;
use crate::broker::groups::SubscriptionGroupWrapper;
use crate::broker::offsets::{OffsetFile, OffsetTable};

/// Bytes a slave asks for per fetch.
const FETCH_BYTES: u32 = 1024 * 1024;
/// Pause after a failed fetch before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Extra time a fetch may take beyond the master's hold.
const FETCH_SLACK: Duration = Duration::from_secs(5);

/// The master's addresses as the nameserver last answered a slave's registration (shared by the
/// broker's cores; written by the registrar on the state core).
#[derive(Debug, Default)]
pub struct MasterLink {
    addrs: Mutex<Option<MasterAddrs>>,
}

/// Where a slave's master is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddrs {
    /// The master's broker address (remoting requests).
    pub broker: String,
    /// The master's HA address.
    pub ha: String,
}

impl MasterLink {
    /// Records the addresses from a REGISTER_BROKER response (ignored when either is empty).
    pub fn learn(&self, broker: Option<&str>, ha: Option<&str>) {
        let (Some(broker), Some(ha)) = (broker, ha) else {
            return;
        };
        if broker.is_empty() || ha.is_empty() {
            return;
        }
        if let Ok(mut a) = self.addrs.lock() {
            let new = MasterAddrs {
                broker: broker.to_string(),
                ha: ha.to_string(),
            };
            if a.as_ref() != Some(&new) {
                tracing::info!(master = %new.broker, ha = %new.ha, "master learned from the nameserver");
                *a = Some(new);
            }
        }
    }

    /// The last addresses learned.
    pub fn get(&self) -> Option<MasterAddrs> {
        self.addrs.lock().ok().and_then(|a| a.clone())
    }
}

/// Replicates this core's shard from the master until the core shuts down.
pub(crate) async fn replicate(core: Rc<Core>, link: Arc<MasterLink>) {
    let client = RemotingClient::new(ClientConfig::default());
    let wait = core.config.ha.heartbeat_interval;
    let mut failing = false;
    loop {
        if core.is_closing() {
            return;
        }
        let addr = core
            .config
            .ha
            .master_address
            .clone()
            .or_else(|| link.get().map(|a| a.ha));
        let Some(addr) = addr else {
            tern_runtime::sleep(RETRY_PAUSE).await;
            continue;
        };
        let offset = core.store.commit_log_max_offset();
        let fetch = FetchRequest {
            shard: core.index as u32,
            offset,
            cores: core.cores as u32,
            max_bytes: FETCH_BYTES,
            wait_millis: wait.as_millis() as u64,
        };
        let outcome = match client
            .invoke(&addr, fetch.to_command(), wait + FETCH_SLACK)
            .await
        {
            Ok(rsp) if rsp.code == response::SUCCESS => apply(&core, offset, rsp).await,
            Ok(rsp) => Err(rsp.remark.unwrap_or_else(|| format!("code {}", rsp.code))),
            Err(e) => {
                client.close(&addr);
                Err(e.to_string())
            }
        };
        match outcome {
            Ok(()) => {
                if failing {
                    tracing::info!(core = core.index, master = %addr, "replicating again");
                }
                failing = false;
            }
            Err(why) => {
                if why.starts_with("core count mismatch") {
                    tracing::error!(core = core.index, master = %addr,
                        "replication stopped: {why}");
                    return;
                }
                if !failing {
                    tracing::warn!(core = core.index, master = %addr, "replication: {why}");
                }
                failing = true;
                tern_runtime::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Appends a fetch answer's records and wakes the pulls waiting on their queues.
async fn apply(core: &Core, offset: u64, rsp: RemotingCommand) -> Result<(), String> {
    let answer = FetchAnswer::from_command(&rsp).map_err(|e| e.to_string())?;
    if answer.offset != offset {
        return Err(format!(
            "answer for offset {} (asked {offset})",
            answer.offset
        ));
    }
    if rsp.body.is_empty() {
        return Ok(());
    }
    let mut touched: Vec<(String, i32)> = Vec::new();
    let result = core
        .store
        .append_replicated(offset, &rsp.body, |topic, queue_id| {
            if !touched.iter().any(|(t, q)| t == topic && *q == queue_id) {
                touched.push((topic.to_string(), queue_id));
            }
        })
        .await;
    for (topic, queue_id) in &touched {
        core.arrivals.arrived(topic, *queue_id);
    }
    result.map(|_| ()).map_err(|e| e.to_string())
}

/// On a slave's state core: copies the master's topics, groups and consumer offsets every
/// `slaveSyncConfigInterval` (RocketMQ's slave does the same every 10 s).
pub(crate) async fn sync_tables(core: Rc<Core>, link: Arc<MasterLink>) {
    let client = RemotingClient::new(ClientConfig::default());
    loop {
        if let Some(master) = link.get() {
            if let Err(why) = sync_once(&core, &client, &master.broker).await {
                tracing::debug!(master = %master.broker, "table sync failed: {why}");
                client.close(&master.broker);
            }
        }
        tern_runtime::sleep(core.config.ha.sync_config_interval).await;
        if core.is_closing() {
            return;
        }
    }
}

async fn fetch_body(client: &RemotingClient, addr: &str, code: i32) -> Result<Vec<u8>, String> {
    let rsp = client
        .invoke(addr, RemotingCommand::request(code), Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    if rsp.code != response::SUCCESS {
        return Err(format!(
            "{} answered {}",
            request::name(code).unwrap_or("request"),
            rsp.code
        ));
    }
    Ok(rsp.body)
}

async fn sync_once(core: &Core, client: &RemotingClient, addr: &str) -> Result<(), String> {
    let body = fetch_body(client, addr, request::GET_ALL_TOPIC_CONFIG).await?;
    let topics: tern_net::body::TopicConfigSerializeWrapper =
        serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    for cfg in topics.topic_config_table.into_values() {
        let same = core.topics.borrow().get(&cfg.topic_name) == Some(&cfg);
        if !same {
            core.upsert_topic(cfg);
        }
    }
    let body = fetch_body(client, addr, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    let groups: SubscriptionGroupWrapper =
        serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    for cfg in groups.subscription_group_table.into_values() {
        let same = core.groups.borrow().get(&cfg.group_name) == Some(&cfg);
        if !same {
            core.upsert_group(cfg);
        }
    }
    let body = fetch_body(client, addr, request::GET_ALL_CONSUMER_OFFSET).await?;
    let offsets: OffsetFile = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let mut table = OffsetTable::from_persisted(OffsetFile::default());
    for (key, queues) in &offsets.offset_table {
        if let Some((topic, group)) = key.split_once(crate::broker::offsets::KEY_SEPARATOR) {
            for (&queue_id, &offset) in queues {
                table.commit(group, topic, queue_id, offset);
            }
        }
    }
    *core.offsets.borrow_mut() = table;
    let body = fetch_body(client, addr, request::GET_ALL_DELAY_OFFSET).await?;
    core.adopt_delay_offsets(&body).await?;
    let body = fetch_body(client, addr, request::GET_TIMER_CHECK_POINT).await?;
    core.adopt_timer_progress(&body).await
}
