//! Topic commands: `updateTopic`, `deleteTopic`, `topicList`, `topicRoute`, `topicStatus`.

use serde_json::json;
use tern_engine::broker::admin_body::decode_topic_stats;
use tern_net::body::{TopicList, TopicRouteData};
use tern_net::code::request;
use tern_net::header::{
    CreateTopicRequestHeader, DeleteTopicFromNamesrvRequestHeader, DeleteTopicRequestHeader,
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, GetTopicStatsInfoRequestHeader,
};
use tern_net::RemotingCommand;

use crate::admin::{bad_admin_body, decode_body, decode_header, Admin, AdminError};
use crate::output::{format_millis, Report, Table};

/// The template topic RocketMQ brokers auto-create topics from.
const DEFAULT_TOPIC: &str = "TBW102";

/// What `updateTopic` asks for.
pub struct TopicSpec<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Read queues.
    pub read_queues: i32,
    /// Write queues.
    pub write_queues: i32,
    /// Permission bits.
    pub perm: i32,
    /// Ordered topic.
    pub order: bool,
}

/// UPDATE_AND_CREATE_TOPIC (17) to each target broker.
pub async fn update_topic(
    admin: &Admin,
    spec: &TopicSpec<'_>,
    targets: &[String],
) -> Result<Report, AdminError> {
    let header = CreateTopicRequestHeader {
        topic: spec.topic.to_string(),
        default_topic: DEFAULT_TOPIC.to_string(),
        read_queue_nums: spec.read_queues,
        write_queue_nums: spec.write_queues,
        perm: spec.perm,
        topic_filter_type: "SINGLE_TAG".to_string(),
        topic_sys_flag: Some(0),
        order: spec.order,
        attributes: None,
        force: None,
    };
    let mut table = Table::new(&["Broker", "Topic", "ReadQueues", "WriteQueues", "Perm"]);
    for addr in targets {
        let cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC).with_header(&header);
        admin.invoke_ok(addr, cmd).await?;
        table.push([
            addr.clone(),
            spec.topic.to_string(),
            spec.read_queues.to_string(),
            spec.write_queues.to_string(),
            spec.perm.to_string(),
        ]);
    }
    Ok(Report::from_table(&table))
}

/// DELETE_TOPIC_IN_BROKER (215) to every master of `cluster`, then DELETE_TOPIC_IN_NAMESRV (216)
/// to every nameserver.
pub async fn delete_topic(admin: &Admin, topic: &str, cluster: &str) -> Result<Report, AdminError> {
    let masters = admin.masters(Some(cluster)).await?;
    let mut table = Table::new(&["Target", "Address", "Result"]);
    for (_, addr) in &masters {
        let cmd = RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER).with_header(
            &DeleteTopicRequestHeader {
                topic: topic.to_string(),
            },
        );
        admin.invoke_ok(addr, cmd).await?;
        table.push(["broker", addr.as_str(), "deleted"]);
    }
    let header = DeleteTopicFromNamesrvRequestHeader {
        topic: topic.to_string(),
        cluster_name: Some(cluster.to_string()),
    };
    for addr in admin.namesrv_addrs() {
        let cmd = RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV).with_header(&header);
        admin.invoke_ok(addr, cmd).await?;
        table.push(["namesrv", addr.as_str(), "deleted"]);
    }
    Ok(Report::from_table(&table))
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206): one topic per line.
pub async fn topic_list(admin: &Admin) -> Result<Report, AdminError> {
    let rsp = admin
        .namesrv_ok(RemotingCommand::request(
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
        ))
        .await?;
    let list: TopicList = decode_body("nameserver", &rsp)?;
    let mut text = String::new();
    for t in &list.topic_list {
        text.push_str(t);
        text.push('\n');
    }
    Ok(Report {
        text,
        json: json!(list.topic_list),
    })
}

/// GET_ROUTEINFO_BY_TOPIC (105): brokers with their addresses and queue counts.
pub async fn topic_route(admin: &Admin, topic: &str) -> Result<Report, AdminError> {
    let route = admin.route(topic).await?;
    let mut table = Table::new(&[
        "Broker",
        "Cluster",
        "Addresses",
        "ReadQueues",
        "WriteQueues",
        "Perm",
    ]);
    for q in &route.queue_datas {
        let broker = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == q.broker_name);
        let addrs = broker
            .map(|b| {
                b.broker_addrs
                    .iter()
                    .map(|(id, a)| format!("{id}={a}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        table.push([
            q.broker_name.clone(),
            broker.map(|b| b.cluster.clone()).unwrap_or_default(),
            addrs,
            q.read_queue_nums.to_string(),
            q.write_queue_nums.to_string(),
            q.perm.to_string(),
        ]);
    }
    Ok(Report {
        text: table.render(),
        json: serde_json::to_value(&route).unwrap_or_default(),
    })
}

/// `(brokerName, master address, queue id)` of every readable queue of the route, in order.
pub fn read_queues(route: &TopicRouteData) -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    let mut datas: Vec<_> = route.queue_datas.iter().collect();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    for q in datas {
        if let Some(addr) = route.master_addr(&q.broker_name) {
            for id in 0..q.read_queue_nums {
                out.push((q.broker_name.clone(), addr.to_string(), id));
            }
        }
    }
    out
}

/// A queue's `[min, max)` offsets (GET_MIN_OFFSET (31), GET_MAX_OFFSET (30)).
pub async fn queue_bounds(
    admin: &Admin,
    addr: &str,
    topic: &str,
    queue_id: i32,
) -> Result<(i64, i64), AdminError> {
    let min_cmd =
        RemotingCommand::request(request::GET_MIN_OFFSET).with_header(&GetMinOffsetRequestHeader {
            topic: topic.to_string(),
            queue_id,
            broker_name: None,
        });
    let min: GetMinOffsetResponseHeader =
        decode_header(addr, &admin.invoke_ok(addr, min_cmd).await?)?;
    let max_cmd =
        RemotingCommand::request(request::GET_MAX_OFFSET).with_header(&GetMaxOffsetRequestHeader {
            topic: topic.to_string(),
            queue_id,
            committed: None,
            broker_name: None,
        });
    let max: GetMaxOffsetResponseHeader =
        decode_header(addr, &admin.invoke_ok(addr, max_cmd).await?)?;
    Ok((min.offset, max.offset))
}

/// `(brokerName, master address)` of every broker serving the route, sorted by name.
pub fn route_masters(route: &TopicRouteData) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = route
        .queue_datas
        .iter()
        .filter_map(|q| {
            let addr = route.master_addr(&q.broker_name)?;
            Some((q.broker_name.clone(), addr.to_string()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Min offset, max offset and last update time of every queue of the topic: GET_TOPIC_STATS_INFO
/// (202) to each master of the route; a broker answering REQUEST_CODE_NOT_SUPPORTED is asked
/// GET_MIN_OFFSET/GET_MAX_OFFSET per readable queue instead (its update times show as `-`).
pub async fn topic_status(admin: &Admin, topic: &str) -> Result<Report, AdminError> {
    let route = admin.route(topic).await?;
    let mut table = Table::new(&["Broker", "Queue", "MinOffset", "MaxOffset", "LastUpdated"]);
    for (name, addr) in route_masters(&route) {
        let cmd = RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_header(
            &GetTopicStatsInfoRequestHeader {
                topic: topic.to_string(),
            },
        );
        match admin.invoke_ok(&addr, cmd).await {
            Ok(rsp) => {
                let stats = decode_topic_stats(&rsp.body)
                    .map_err(|e| bad_admin_body(&addr, "TopicStatsTable", e))?;
                for (mq, off) in &stats.offset_table {
                    table.push([
                        mq.broker_name.clone(),
                        mq.queue_id.to_string(),
                        off.min_offset.to_string(),
                        off.max_offset.to_string(),
                        format_millis(off.last_update_timestamp),
                    ]);
                }
            }
            Err(AdminError::NotSupported { .. }) => {
                for (_, _, q) in read_queues(&route).into_iter().filter(|(b, ..)| *b == name) {
                    let (min, max) = queue_bounds(admin, &addr, topic, q).await?;
                    table.push([
                        name.clone(),
                        q.to_string(),
                        min.to_string(),
                        max.to_string(),
                        "-".to_string(),
                    ]);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Report::from_table(&table))
}
