//! Where a run sends or pulls: `(broker address, queue id)` pairs, either given directly or read
//! from a nameserver's topic route (GET_ROUTEINFO_BY_TOPIC).

use std::time::Duration;

use tern_net::body::{self, TopicRouteData, MASTER_ID};
use tern_net::code::{request, response};
use tern_net::header::GetRouteInfoRequestHeader;
use tern_net::transport::RemotingClient;
use tern_net::RemotingCommand;

use crate::PerfError;

/// The target options `tern-perf producer` and `consumer` share (flattened into each).
#[derive(Debug, Clone, clap::Args)]
pub struct TargetOptions {
    /// Nameserver address; the topic's route decides the brokers and queues.
    #[arg(short = 'n', long, conflicts_with = "broker")]
    pub namesrv: Option<String>,
    /// Broker address to use directly (queues 0..--queues).
    #[arg(long)]
    pub broker: Option<String>,
    /// Topic.
    #[arg(long, default_value = "TernPerfTopic")]
    pub topic: String,
    /// Queues to use with --broker; with --namesrv, the producer's queues of an auto-created topic.
    #[arg(long, default_value_t = 4)]
    pub queues: i32,
}

impl TargetOptions {
    /// An error unless `--namesrv` or `--broker` is given.
    pub fn validate(&self) -> Result<(), PerfError> {
        if self.namesrv.is_none() && self.broker.is_none() {
            return Err(PerfError::Options("give --namesrv or --broker".into()));
        }
        Ok(())
    }
}

/// The template topic a producer falls back to when its topic has no route yet (RocketMQ's
/// `TBW102`): the broker auto-creates the topic on the first send.
pub const DEFAULT_TOPIC: &str = "TBW102";

/// One queue of the topic and the master broker serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTarget {
    /// `host:port` of the broker.
    pub addr: String,
    /// Queue id on that broker.
    pub queue_id: i32,
}

/// Queues `0..queues` on `addr`.
pub fn direct(addr: &str, queues: i32) -> Vec<QueueTarget> {
    (0..queues.max(1))
        .map(|queue_id| QueueTarget {
            addr: addr.to_string(),
            queue_id,
        })
        .collect()
}

/// Every writable (or readable, when `read`) queue of `route` on a master broker; at most
/// `max_per_broker` queues per broker.
pub fn from_route(route: &TopicRouteData, read: bool, max_per_broker: i32) -> Vec<QueueTarget> {
    let mut out = Vec::new();
    for q in &route.queue_datas {
        let Some(addr) = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == q.broker_name)
            .and_then(|b| b.broker_addrs.get(&MASTER_ID))
        else {
            continue;
        };
        let n = if read {
            q.read_queue_nums
        } else {
            q.write_queue_nums
        };
        out.extend((0..n.min(max_per_broker)).map(|queue_id| QueueTarget {
            addr: addr.clone(),
            queue_id,
        }));
    }
    out
}

/// Asks the nameserver `namesrv` for `topic`'s route. `Ok(None)` when the topic has none.
pub async fn fetch_route(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
) -> Result<Option<TopicRouteData>, PerfError> {
    let header = GetRouteInfoRequestHeader {
        topic: topic.to_string(),
        accept_standard_json_only: Some(true),
    };
    let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
    let rsp = client.invoke(namesrv, cmd, Duration::from_secs(5)).await?;
    match rsp.code {
        response::SUCCESS => {
            Ok(Some(body::decode(&rsp.body).map_err(|e| {
                PerfError::Route(format!("undecodable route of {topic}: {e}"))
            })?))
        }
        response::TOPIC_NOT_EXIST => Ok(None),
        code => Err(PerfError::Route(format!(
            "GET_ROUTEINFO_BY_TOPIC {topic}: code {code} {:?}",
            rsp.remark
        ))),
    }
}

/// The queues to use for `topic` via the nameserver: its own route, or for a producer (`!read`)
/// the route of [`DEFAULT_TOPIC`] capped at `default_queue_nums` queues per broker, as RocketMQ
/// clients do for a topic the broker will auto-create.
pub async fn resolve(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    read: bool,
    default_queue_nums: i32,
) -> Result<Vec<QueueTarget>, PerfError> {
    let targets = match fetch_route(client, namesrv, topic).await? {
        Some(route) => from_route(&route, read, i32::MAX),
        None if !read => match fetch_route(client, namesrv, DEFAULT_TOPIC).await? {
            Some(route) => from_route(&route, false, default_queue_nums),
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    if targets.is_empty() {
        return Err(PerfError::Route(format!(
            "no route for topic {topic} from {namesrv}"
        )));
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tern_net::body::{BrokerData, QueueData};

    use super::*;

    fn route() -> TopicRouteData {
        TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: BTreeMap::from([(0, "10.0.0.1:10911".to_string())]),
                broker_name: "broker-a".into(),
                ..Default::default()
            }],
            queue_datas: vec![
                QueueData {
                    broker_name: "broker-a".into(),
                    perm: 6,
                    read_queue_nums: 2,
                    write_queue_nums: 8,
                    topic_sys_flag: 0,
                },
                QueueData {
                    broker_name: "broker-without-master".into(),
                    perm: 6,
                    read_queue_nums: 4,
                    write_queue_nums: 4,
                    topic_sys_flag: 0,
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn route_gives_master_queues() {
        let write = from_route(&route(), false, 4);
        assert_eq!(write.len(), 4);
        assert!(write.iter().all(|t| t.addr == "10.0.0.1:10911"));
        assert_eq!(write[3].queue_id, 3);
        assert_eq!(from_route(&route(), true, i32::MAX).len(), 2);
    }

    #[test]
    fn direct_lists_queues_in_order() {
        let t = direct("h:1", 3);
        assert_eq!(t.iter().map(|t| t.queue_id).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
