//! The nameserver's route table: which broker groups exist, their addresses, the queues they serve
//! per topic and when each broker was last heard from. Plain synchronous state; time is passed in so
//! expiry is testable.
//!
//! Follows RocketMQ's `RouteInfoManager`: a master (id 0), or with acting-master mode the slave with
//! the smallest id, publishes its topics; a broker is keyed by (cluster, address); removing a
//! broker's last address removes its group, and with it its queues of every topic (topics left
//! without queues disappear).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tern_net::body::{
    BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicConfigSerializeWrapper,
    TopicList, TopicRouteData, MASTER_ID,
};

/// Permission bit: writable (RocketMQ's `PermName.PERM_WRITE`).
const PERM_WRITE: i32 = 1 << 1;
/// Permission bit: readable (`PermName.PERM_READ`).
const PERM_READ: i32 = 1 << 2;

/// A broker's REGISTER_BROKER request, decoded.
#[derive(Debug, Clone)]
pub struct BrokerRegistration {
    /// Cluster name.
    pub cluster: String,
    /// `host:port` clients use.
    pub broker_addr: String,
    /// Broker group name.
    pub broker_name: String,
    /// 0 for a master.
    pub broker_id: i64,
    /// The HA address slaves replicate from.
    pub ha_server_addr: String,
    /// Zone, if the broker reported one.
    pub zone_name: Option<String>,
    /// Expiry for this broker; the table's default when absent.
    pub heartbeat_timeout: Option<Duration>,
    /// Acting-master mode; absent for brokers older than RocketMQ 5.
    pub enable_acting_master: Option<bool>,
    /// The broker's topics and their version.
    pub topics: TopicConfigSerializeWrapper,
    /// Filter servers attached to the broker.
    pub filter_servers: Vec<String>,
    /// The transport connection the registration came on (closing it unregisters the broker).
    pub connection: Option<u64>,
}

/// What REGISTER_BROKER answers: a slave learns its master's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// The master's HA address (slaves only, when the master is registered).
    pub ha_server_addr: Option<String>,
    /// The master's address (slaves only, when the master is registered).
    pub master_addr: Option<String>,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A single-topic registration arrived before the broker's first full registration.
    #[error("register broker failed")]
    NotYetRegistered,
}

/// A broker removed from the table: (cluster, address, group name, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedBroker {
    /// Cluster name.
    pub cluster: String,
    /// Its address.
    pub broker_addr: String,
    /// Its group.
    pub broker_name: String,
    /// Its id.
    pub broker_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct BrokerKey {
    cluster: String,
    addr: String,
}

#[derive(Debug)]
struct LiveBroker {
    last_update: Instant,
    timeout: Duration,
    data_version: DataVersion,
    connection: Option<u64>,
    ha_server_addr: String,
}

/// The route table (see the module docs).
#[derive(Debug)]
pub struct RouteTable {
    topic_queues: HashMap<String, BTreeMap<String, QueueData>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<BrokerKey, LiveBroker>,
    filter_servers: HashMap<BrokerKey, Vec<String>>,
    default_expiry: Duration,
}

impl RouteTable {
    /// An empty table whose brokers expire `default_expiry` after they were last heard from (unless
    /// they asked for another timeout).
    pub fn new(default_expiry: Duration) -> Self {
        RouteTable {
            topic_queues: HashMap::new(),
            brokers: BTreeMap::new(),
            clusters: BTreeMap::new(),
            live: HashMap::new(),
            filter_servers: HashMap::new(),
            default_expiry,
        }
    }

    /// Records a broker's registration (or its periodic re-registration) at time `now`.
    pub fn register_broker(
        &mut self,
        reg: BrokerRegistration,
        now: Instant,
    ) -> Result<RegisterOutcome, RegisterError> {
        let key = BrokerKey {
            cluster: reg.cluster.clone(),
            addr: reg.broker_addr.clone(),
        };
        self.clusters
            .entry(reg.cluster.clone())
            .or_default()
            .insert(reg.broker_name.clone());
        let mut register_first = !self.brokers.contains_key(&reg.broker_name);
        let prev_version = self.live.get(&key).map(|l| l.data_version);
        let group = self
            .brokers
            .entry(reg.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: reg.cluster.clone(),
                broker_name: reg.broker_name.clone(),
                ..BrokerData::default()
            });
        group.enable_acting_master = reg.enable_acting_master.unwrap_or(false);
        group.zone_name = reg.zone_name.clone();
        // One address has one id: a slave promoted to master drops its old entry.
        group
            .broker_addrs
            .retain(|&id, addr| !(*addr == reg.broker_addr && id != reg.broker_id));
        if let Some(old_addr) = group.broker_addrs.get(&reg.broker_id) {
            if *old_addr != reg.broker_addr {
                let old_key = BrokerKey {
                    cluster: reg.cluster.clone(),
                    addr: old_addr.clone(),
                };
                let newer_exists = self.live.get(&old_key).is_some_and(|old| {
                    old.data_version.state_version > reg.topics.data_version.state_version
                });
                if newer_exists {
                    tracing::warn!(broker = %reg.broker_name, id = reg.broker_id, addr = %reg.broker_addr,
                        old = %old_addr, "registration rejected: the registered broker has a newer state version");
                    self.live.remove(&key);
                    return Ok(RegisterOutcome::default());
                }
            }
        }
        if !group.broker_addrs.contains_key(&reg.broker_id)
            && reg.topics.topic_config_table.len() == 1
        {
            return Err(RegisterError::NotYetRegistered);
        }
        let old = group
            .broker_addrs
            .insert(reg.broker_id, reg.broker_addr.clone());
        register_first |= old.is_none();
        let is_master = reg.broker_id == MASTER_ID;
        let min_id = group.broker_addrs.keys().next().copied();
        let is_prime_slave =
            reg.enable_acting_master.is_some() && !is_master && min_id == Some(reg.broker_id);
        let wipe_write = is_prime_slave && group.enable_acting_master;

        if is_master || is_prime_slave {
            let changed_version = prev_version != Some(reg.topics.data_version);
            for config in reg.topics.topic_config_table.values() {
                let has_queues = self
                    .topic_queues
                    .get(&config.topic_name)
                    .is_some_and(|m| m.contains_key(&reg.broker_name));
                if register_first || changed_version || !has_queues {
                    let mut config = config.clone();
                    if wipe_write {
                        config.perm &= !PERM_WRITE;
                    }
                    self.upsert_queue_data(&reg.broker_name, &config);
                }
            }
        }

        let fresh = self
            .live
            .insert(
                key.clone(),
                LiveBroker {
                    last_update: now,
                    timeout: reg.heartbeat_timeout.unwrap_or(self.default_expiry),
                    data_version: reg.topics.data_version,
                    connection: reg.connection,
                    ha_server_addr: reg.ha_server_addr.clone(),
                },
            )
            .is_none();
        if fresh {
            tracing::info!(cluster = %reg.cluster, broker = %reg.broker_name, id = reg.broker_id,
                addr = %reg.broker_addr, topics = reg.topics.topic_config_table.len(), "broker registered");
        }
        if reg.filter_servers.is_empty() {
            self.filter_servers.remove(&key);
        } else {
            self.filter_servers.insert(key, reg.filter_servers);
        }

        let mut outcome = RegisterOutcome::default();
        if !is_master {
            let master_addr = self
                .brokers
                .get(&reg.broker_name)
                .and_then(|g| g.broker_addrs.get(&MASTER_ID))
                .cloned();
            if let Some(master_addr) = master_addr {
                let master_key = BrokerKey {
                    cluster: reg.cluster,
                    addr: master_addr.clone(),
                };
                if let Some(master) = self.live.get(&master_key) {
                    outcome.ha_server_addr = Some(master.ha_server_addr.clone());
                    outcome.master_addr = Some(master_addr);
                }
            }
        }
        Ok(outcome)
    }

    fn upsert_queue_data(&mut self, broker_name: &str, config: &TopicConfig) {
        let queue = QueueData {
            broker_name: broker_name.to_string(),
            perm: config.perm,
            read_queue_nums: config.read_queue_nums,
            topic_sys_flag: config.topic_sys_flag,
            write_queue_nums: config.write_queue_nums,
        };
        let queues = self
            .topic_queues
            .entry(config.topic_name.clone())
            .or_default();
        if queues.get(broker_name) != Some(&queue) {
            tracing::debug!(topic = %config.topic_name, broker = broker_name, ?queue, "topic queues updated");
            queues.insert(broker_name.to_string(), queue);
        }
    }

    /// Removes one broker (UNREGISTER_BROKER, expiry, closed connection).
    pub fn unregister_broker(&mut self, cluster: &str, broker_addr: &str, broker_name: &str) {
        let key = BrokerKey {
            cluster: cluster.to_string(),
            addr: broker_addr.to_string(),
        };
        self.live.remove(&key);
        self.filter_servers.remove(&key);
        let mut group_gone = false;
        let mut master_gone_acting = false;
        if let Some(group) = self.brokers.get_mut(broker_name) {
            group.broker_addrs.retain(|_, a| a != broker_addr);
            if group.broker_addrs.is_empty() {
                self.brokers.remove(broker_name);
                group_gone = true;
            } else {
                master_gone_acting = group.enable_acting_master
                    && group
                        .broker_addrs
                        .keys()
                        .next()
                        .is_some_and(|&id| id > MASTER_ID);
            }
        }
        if group_gone {
            if let Some(names) = self.clusters.get_mut(cluster) {
                names.remove(broker_name);
                if names.is_empty() {
                    self.clusters.remove(cluster);
                }
            }
            self.topic_queues.retain(|_, queues| {
                queues.remove(broker_name);
                !queues.is_empty()
            });
        } else if master_gone_acting {
            for queues in self.topic_queues.values_mut() {
                if let Some(q) = queues.get_mut(broker_name) {
                    q.perm &= !PERM_WRITE;
                }
            }
        }
    }

    /// Removes the broker registered at (cluster, address), if any, and reports it.
    fn remove_by_addr(&mut self, cluster: &str, broker_addr: &str) -> Option<RemovedBroker> {
        let found = self.brokers.values().find_map(|g| {
            if g.cluster != cluster {
                return None;
            }
            g.broker_addrs
                .iter()
                .find(|(_, a)| a.as_str() == broker_addr)
                .map(|(&id, _)| (g.broker_name.clone(), id))
        });
        let key = BrokerKey {
            cluster: cluster.to_string(),
            addr: broker_addr.to_string(),
        };
        match found {
            Some((broker_name, broker_id)) => {
                self.unregister_broker(cluster, broker_addr, &broker_name);
                Some(RemovedBroker {
                    cluster: cluster.to_string(),
                    broker_addr: broker_addr.to_string(),
                    broker_name,
                    broker_id,
                })
            }
            None => {
                self.live.remove(&key);
                self.filter_servers.remove(&key);
                None
            }
        }
    }

    /// Removes every broker not heard from within its timeout as of `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<RemovedBroker> {
        let mut expired: Vec<BrokerKey> = self
            .live
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_update) > l.timeout)
            .map(|(k, _)| k.clone())
            .collect();
        expired.sort();
        expired
            .into_iter()
            .filter_map(|k| self.remove_by_addr(&k.cluster, &k.addr))
            .collect()
    }

    /// Removes every broker whose registration came on transport connection `connection`.
    pub fn connection_closed(&mut self, connection: u64) -> Vec<RemovedBroker> {
        let mut gone: Vec<BrokerKey> = self
            .live
            .iter()
            .filter(|(_, l)| l.connection == Some(connection))
            .map(|(k, _)| k.clone())
            .collect();
        gone.sort();
        gone.into_iter()
            .filter_map(|k| self.remove_by_addr(&k.cluster, &k.addr))
            .collect()
    }

    /// Marks the broker at (cluster, address) as heard from at `now` (BROKER_HEARTBEAT,
    /// QUERY_DATA_VERSION).
    pub fn touch(&mut self, cluster: &str, broker_addr: &str, now: Instant) {
        let key = BrokerKey {
            cluster: cluster.to_string(),
            addr: broker_addr.to_string(),
        };
        if let Some(l) = self.live.get_mut(&key) {
            l.last_update = now;
        }
    }

    /// The topic-config version last registered by the broker at (cluster, address).
    pub fn data_version(&self, cluster: &str, broker_addr: &str) -> Option<DataVersion> {
        let key = BrokerKey {
            cluster: cluster.to_string(),
            addr: broker_addr.to_string(),
        };
        self.live.get(&key).map(|l| l.data_version)
    }

    /// The route of `topic`, or `None` when no live broker group serves it.
    pub fn topic_route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topic_queues.get(topic)?;
        let mut route = TopicRouteData {
            queue_datas: queues.values().cloned().collect(),
            ..TopicRouteData::default()
        };
        for name in queues.keys() {
            let Some(group) = self.brokers.get(name) else {
                continue;
            };
            if !self.filter_servers.is_empty() {
                for addr in group.broker_addrs.values() {
                    let key = BrokerKey {
                        cluster: group.cluster.clone(),
                        addr: addr.clone(),
                    };
                    if let Some(list) = self.filter_servers.get(&key) {
                        route.filter_server_table.insert(addr.clone(), list.clone());
                    }
                }
            }
            route.broker_datas.push(group.clone());
        }
        (!route.broker_datas.is_empty()).then_some(route)
    }

    /// Every cluster and broker group (GET_BROKER_CLUSTER_INFO).
    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self.clusters.clone(),
        }
    }

    /// Every topic with queues.
    pub fn all_topics(&self) -> TopicList {
        TopicList {
            broker_addr: None,
            topic_list: self.topic_queues.keys().cloned().collect(),
        }
    }

    /// The topics with queues on any group of `cluster`.
    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster);
        let topic_list = self
            .topic_queues
            .iter()
            .filter(|(_, queues)| {
                names.is_some_and(|names| queues.keys().any(|b| names.contains(b)))
            })
            .map(|(t, _)| t.clone())
            .collect();
        TopicList {
            broker_addr: None,
            topic_list,
        }
    }

    /// RocketMQ's "system topics": every cluster name and broker group name, with the address of one
    /// broker (GET_SYSTEM_TOPIC_LIST_FROM_NS).
    pub fn system_topics(&self) -> TopicList {
        let mut list = TopicList::default();
        for (cluster, names) in &self.clusters {
            list.topic_list.insert(cluster.clone());
            for name in names {
                list.topic_list.insert(name.clone());
            }
        }
        list.broker_addr = self
            .brokers
            .values()
            .find_map(|g| g.broker_addrs.values().next().cloned());
        list
    }

    /// Removes `topic` everywhere, or only from the groups of `cluster`.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                self.topic_queues.remove(topic);
            }
            Some(cluster) => {
                let Some(names) = self.clusters.get(cluster) else {
                    return;
                };
                if let Some(queues) = self.topic_queues.get_mut(topic) {
                    queues.retain(|b, _| !names.contains(b));
                    if queues.is_empty() {
                        self.topic_queues.remove(topic);
                    }
                }
            }
        }
    }

    /// Adds `queues` to `topic` (REGISTER_TOPIC_IN_NAMESRV); ignored unless every named group is
    /// registered.
    pub fn register_topic(&mut self, topic: &str, queues: Vec<QueueData>) {
        if queues.is_empty()
            || queues
                .iter()
                .any(|q| !self.brokers.contains_key(&q.broker_name))
        {
            return;
        }
        let entry = self.topic_queues.entry(topic.to_string()).or_default();
        for q in queues {
            entry.insert(q.broker_name.clone(), q);
        }
    }

    /// Removes (`wipe`) or restores write permission on every topic queue of group `broker_name`;
    /// returns how many topics changed.
    pub fn set_write_perm(&mut self, broker_name: &str, wipe: bool) -> usize {
        let mut count = 0;
        for queues in self.topic_queues.values_mut() {
            if let Some(q) = queues.get_mut(broker_name) {
                q.perm = if wipe {
                    q.perm & !PERM_WRITE
                } else {
                    PERM_READ | PERM_WRITE
                };
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRY: Duration = Duration::from_secs(120);

    fn topics(names: &[&str], counter: i64) -> TopicConfigSerializeWrapper {
        let mut w = TopicConfigSerializeWrapper::default();
        w.data_version.counter = counter;
        for n in names {
            w.topic_config_table.insert(
                n.to_string(),
                TopicConfig {
                    topic_name: n.to_string(),
                    read_queue_nums: 4,
                    write_queue_nums: 4,
                    ..TopicConfig::default()
                },
            );
        }
        w
    }

    fn reg(name: &str, addr: &str, id: i64, names: &[&str]) -> BrokerRegistration {
        BrokerRegistration {
            cluster: "c1".into(),
            broker_addr: addr.into(),
            broker_name: name.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            zone_name: None,
            heartbeat_timeout: None,
            enable_acting_master: None,
            topics: topics(names, 1),
            filter_servers: Vec::new(),
            connection: Some(7),
        }
    }

    #[test]
    fn master_registration_publishes_its_topics() {
        let mut t = RouteTable::new(EXPIRY);
        let now = Instant::now();
        t.register_broker(reg("a", "10.0.0.1:10911", 0, &["T1", "T2"]), now)
            .unwrap();
        let route = t.topic_route("T1").unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert_eq!(route.broker_datas[0].broker_addrs[&0], "10.0.0.1:10911");
        assert!(t.topic_route("nope").is_none());
        assert_eq!(t.all_topics().topic_list.len(), 2);
        assert_eq!(t.topics_by_cluster("c1").topic_list.len(), 2);
        assert!(t.topics_by_cluster("c2").topic_list.is_empty());
        let info = t.cluster_info();
        assert!(info.cluster_addr_table["c1"].contains("a"));
    }

    #[test]
    fn slave_learns_its_master_and_does_not_publish() {
        let mut t = RouteTable::new(EXPIRY);
        let now = Instant::now();
        t.register_broker(reg("a", "m:1", 0, &["T1", "T2"]), now)
            .unwrap();
        let out = t
            .register_broker(reg("a", "s:1", 1, &["T1", "T3"]), now)
            .unwrap();
        assert_eq!(out.master_addr.as_deref(), Some("m:1"));
        assert_eq!(out.ha_server_addr.as_deref(), Some("m:1-ha"));
        assert!(t.topic_route("T3").is_none());
        assert_eq!(
            t.topic_route("T1").unwrap().broker_datas[0]
                .broker_addrs
                .len(),
            2
        );
    }

    #[test]
    fn expiry_and_closed_connection_remove_brokers_and_their_topics() {
        let mut t = RouteTable::new(Duration::from_millis(100));
        let start = Instant::now();
        t.register_broker(reg("a", "a:1", 0, &["T1", "T2"]), start)
            .unwrap();
        let mut b = reg("b", "b:1", 0, &["T1", "T3"]);
        b.connection = Some(9);
        t.register_broker(b, start).unwrap();

        assert!(t.expire(start + Duration::from_millis(50)).is_empty());
        t.touch("c1", "b:1", start + Duration::from_millis(90));
        let gone = t.expire(start + Duration::from_millis(150));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].broker_name, "a");
        assert!(t.topic_route("T2").is_none());
        assert_eq!(t.topic_route("T1").unwrap().queue_datas.len(), 1);

        assert!(t.connection_closed(7).is_empty());
        let gone = t.connection_closed(9);
        assert_eq!(gone[0].broker_addr, "b:1");
        assert!(t.topic_route("T1").is_none());
        assert!(t.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn single_topic_before_first_registration_is_refused() {
        let mut t = RouteTable::new(EXPIRY);
        let err = t
            .register_broker(reg("a", "a:1", 0, &["T1"]), Instant::now())
            .unwrap_err();
        assert_eq!(err, RegisterError::NotYetRegistered);
    }

    #[test]
    fn delete_register_topic_and_write_perm() {
        let mut t = RouteTable::new(EXPIRY);
        let now = Instant::now();
        t.register_broker(reg("a", "a:1", 0, &["T1", "T2"]), now)
            .unwrap();
        assert_eq!(t.set_write_perm("a", true), 2);
        assert_eq!(
            t.topic_route("T1").unwrap().queue_datas[0].perm & PERM_WRITE,
            0
        );
        assert_eq!(t.set_write_perm("a", false), 2);
        assert_eq!(t.topic_route("T1").unwrap().queue_datas[0].perm, 6);
        t.delete_topic("T1", Some("other"));
        assert!(t.topic_route("T1").is_some());
        t.delete_topic("T1", Some("c1"));
        assert!(t.topic_route("T1").is_none());
        let q = QueueData {
            broker_name: "a".into(),
            perm: 6,
            read_queue_nums: 2,
            topic_sys_flag: 0,
            write_queue_nums: 2,
        };
        t.register_topic(
            "T9",
            vec![QueueData {
                broker_name: "zz".into(),
                ..q.clone()
            }],
        );
        assert!(t.topic_route("T9").is_none());
        t.register_topic("T9", vec![q]);
        assert_eq!(
            t.topic_route("T9").unwrap().queue_datas[0].read_queue_nums,
            2
        );
        t.delete_topic("T9", None);
        assert!(t.topic_route("T9").is_none());
    }
}
