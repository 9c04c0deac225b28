//! Consumer-group commands: `updateSubGroup`, `deleteSubGroup`, `consumerProgress`,
//! `consumerConnection`, `resetOffsetByTime`.

use serde_json::json;
use tern_engine::broker::admin_body::{
    decode_consume_stats, ConsumeStats, MessageQueue, OffsetWrapper,
};
use tern_engine::broker::clients::ConsumerConnection;
use tern_net::body::TopicRouteData;
use tern_net::code::{request, response};
use tern_net::header::{
    GetConsumeStatsRequestHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
use tern_net::RemotingCommand;

use super::topic::{queue_bounds, read_queues, route_masters};
use crate::admin::{bad_admin_body, check, decode_body, decode_header, Admin, AdminError};
use crate::output::{format_millis, Report, Table};

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) with a `SubscriptionGroupConfig` body (RocketMQ's
/// defaults except the given fields) to each target.
pub async fn update_sub_group(
    admin: &Admin,
    group: &str,
    consume_enable: bool,
    retry_max_times: i32,
    targets: &[String],
) -> Result<Report, AdminError> {
    let config = json!({
        "brokerId": 0,
        "consumeBroadcastEnable": true,
        "consumeEnable": consume_enable,
        "consumeFromMinEnable": true,
        "consumeTimeoutMinute": 15,
        "groupName": group,
        "groupSysFlag": 0,
        "notifyConsumerIdsChangedEnable": true,
        "retryMaxTimes": retry_max_times,
        "retryQueueNums": 1,
        "whichBrokerWhenConsumeSlowly": 1,
    });
    let body = serde_json::to_vec(&config).unwrap_or_default();
    let mut table = Table::new(&["Broker", "Group", "ConsumeEnable", "RetryMaxTimes"]);
    for addr in targets {
        let cmd = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(body.clone());
        admin.invoke_ok(addr, cmd).await?;
        table.push([
            addr.clone(),
            group.to_string(),
            consume_enable.to_string(),
            retry_max_times.to_string(),
        ]);
    }
    Ok(Report::from_table(&table))
}

/// DELETE_SUBSCRIPTIONGROUP (207) to each target.
pub async fn delete_sub_group(
    admin: &Admin,
    group: &str,
    targets: &[String],
) -> Result<Report, AdminError> {
    let mut table = Table::new(&["Broker", "Group", "Result"]);
    for addr in targets {
        let cmd = RemotingCommand::request(request::DELETE_SUBSCRIPTIONGROUP)
            .with_ext("groupName", group)
            .with_ext("cleanOffset", "false");
        admin.invoke_ok(addr, cmd).await?;
        table.push([addr.as_str(), group, "deleted"]);
    }
    Ok(Report::from_table(&table))
}

/// The group's committed offset of a queue (QUERY_CONSUMER_OFFSET (14)), `None` when it has none.
async fn committed_offset(
    admin: &Admin,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> Result<Option<i64>, AdminError> {
    let cmd = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(
        &QueryConsumerOffsetRequestHeader {
            consumer_group: group.to_string(),
            topic: topic.to_string(),
            queue_id,
            set_zero_if_not_found: Some(false),
            broker_name: None,
        },
    );
    let rsp = admin.invoke(addr, cmd).await?;
    if rsp.code == response::QUERY_NOT_FOUND {
        return Ok(None);
    }
    let rsp = check(addr, request::QUERY_CONSUMER_OFFSET, rsp)?;
    let h: QueryConsumerOffsetResponseHeader = decode_header(addr, &rsp)?;
    Ok(Some(h.offset))
}

/// GET_CONSUME_STATS (208) of `group` (on `topic`, or on every topic it has offsets for) from the
/// broker at `addr`.
async fn consume_stats(
    admin: &Admin,
    addr: &str,
    group: &str,
    topic: Option<&str>,
) -> Result<ConsumeStats, AdminError> {
    let cmd = RemotingCommand::request(request::GET_CONSUME_STATS).with_header(
        &GetConsumeStatsRequestHeader {
            consumer_group: group.to_string(),
            topic: topic.map(str::to_string),
            topic_list: None,
        },
    );
    let rsp = admin.invoke_ok(addr, cmd).await?;
    decode_consume_stats(&rsp.body).map_err(|e| bad_admin_body(addr, "ConsumeStats", e))
}

/// For brokers without GET_CONSUME_STATS: one topic's queues on the broker at `addr` from
/// GET_MIN/MAX_OFFSET and QUERY_CONSUMER_OFFSET (a queue without a committed offset counts from
/// its minimum).
async fn consume_stats_by_queue(
    admin: &Admin,
    route: &TopicRouteData,
    addr: &str,
    group: &str,
    topic: &str,
) -> Result<ConsumeStats, AdminError> {
    let mut stats = ConsumeStats::default();
    for (broker_name, _, queue_id) in read_queues(route).into_iter().filter(|(_, a, _)| a == addr) {
        let (min, max) = queue_bounds(admin, addr, topic, queue_id).await?;
        let consumed = committed_offset(admin, addr, group, topic, queue_id)
            .await?
            .unwrap_or(min);
        let mq = MessageQueue {
            broker_name,
            queue_id,
            topic: topic.to_string(),
        };
        let offsets = OffsetWrapper {
            broker_offset: max,
            consumer_offset: consumed,
            last_timestamp: 0,
            pull_offset: consumed,
        };
        stats.offset_table.insert(mq, offsets);
    }
    Ok(stats)
}

/// Per queue (as mqadmin's consumerProgress): the broker's max offset, the group's committed
/// offset, the lag between them and the store time of the last consumed message; then the
/// group's consume TPS and total lag. Asks GET_CONSUME_STATS (208) of every master of the topic's
/// route, or of every registered master without `-t`; a broker answering
/// REQUEST_CODE_NOT_SUPPORTED is read queue by queue when the topic is named.
pub async fn consumer_progress(
    admin: &Admin,
    group: &str,
    topic: Option<&str>,
) -> Result<Report, AdminError> {
    let (route, masters) = match topic {
        Some(t) => {
            let route = admin.route(t).await?;
            let masters = route_masters(&route);
            (Some(route), masters)
        }
        None => (None, admin.masters(None).await?),
    };
    let mut all = ConsumeStats::default();
    for (_, addr) in &masters {
        let stats = match (
            consume_stats(admin, addr, group, topic).await,
            &route,
            topic,
        ) {
            (Ok(s), ..) => s,
            (Err(AdminError::NotSupported { .. }), Some(route), Some(topic)) => {
                consume_stats_by_queue(admin, route, addr, group, topic).await?
            }
            (Err(e), ..) => return Err(e),
        };
        all.consume_tps += stats.consume_tps;
        all.offset_table.extend(stats.offset_table);
    }
    if all.offset_table.is_empty() {
        return Err(AdminError::NotFound(format!(
            "consumer group {group} has no consume progress{} (no committed offset, no subscription)",
            topic.map(|t| format!(" on {t}")).unwrap_or_default()
        )));
    }
    let mut table = Table::new(&[
        "Topic",
        "Broker",
        "Queue",
        "BrokerOffset",
        "ConsumerOffset",
        "Lag",
        "LastTime",
    ]);
    let mut total: i64 = 0;
    for (mq, o) in &all.offset_table {
        let lag = (o.broker_offset - o.consumer_offset).max(0);
        total = total.saturating_add(lag);
        table.push([
            mq.topic.clone(),
            mq.broker_name.clone(),
            mq.queue_id.to_string(),
            o.broker_offset.to_string(),
            o.consumer_offset.to_string(),
            lag.to_string(),
            format_millis(o.last_timestamp),
        ]);
    }
    let tps = format!("{:.2}", all.consume_tps);
    let mut text = table.render();
    text.push_str(&format!("\nConsume TPS: {tps}\nDiff Total: {total}\n"));
    Ok(Report {
        text,
        json: json!({
            "group": group,
            "topic": topic,
            "queues": table.to_json(),
            "consumeTps": all.consume_tps,
            "totalLag": total,
        }),
    })
}

/// GET_CONSUMER_CONNECTION_LIST (203) to every master: the group's clients (id, address,
/// language, version), merged by client id, and its subscriptions. Brokers answering
/// CONSUMER_NOT_ONLINE are skipped; when all do, [`AdminError::NotFound`].
pub async fn consumer_connection(admin: &Admin, group: &str) -> Result<Report, AdminError> {
    let mut merged: Option<ConsumerConnection> = None;
    for (_, addr) in admin.masters(None).await? {
        let cmd = RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
            .with_ext("consumerGroup", group);
        let rsp = admin.invoke(&addr, cmd).await?;
        if rsp.code == response::CONSUMER_NOT_ONLINE {
            continue;
        }
        let rsp = check(&addr, request::GET_CONSUMER_CONNECTION_LIST, rsp)?;
        let found: ConsumerConnection = decode_body(&addr, &rsp)?;
        match merged.as_mut() {
            None => merged = Some(found),
            Some(m) => {
                for c in found.connection_set {
                    if !m.connection_set.iter().any(|x| x.client_id == c.client_id) {
                        m.connection_set.push(c);
                    }
                }
                for (topic, sub) in found.subscription_table {
                    m.subscription_table.entry(topic).or_insert(sub);
                }
            }
        }
    }
    let Some(mut conn) = merged else {
        return Err(AdminError::NotFound(format!(
            "consumer group {group} has no online member"
        )));
    };
    conn.connection_set
        .sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut clients = Table::new(&["ClientId", "ClientAddr", "Language", "Version"]);
    for c in &conn.connection_set {
        clients.push([
            c.client_id.clone(),
            c.client_addr.clone(),
            c.language.clone(),
            c.version.to_string(),
        ]);
    }
    let mut subs = Table::new(&["Topic", "SubExpression", "ExpressionType"]);
    for (topic, sub) in &conn.subscription_table {
        subs.push([
            topic.clone(),
            sub.sub_string.clone(),
            sub.expression_type
                .clone()
                .unwrap_or_else(|| "TAG".to_string()),
        ]);
    }
    let mut text = clients.render();
    text.push('\n');
    text.push_str(&subs.render());
    text.push('\n');
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    text.push_str(&format!(
        "ConsumeType: {}\nMessageModel: {}\nConsumeFromWhere: {}\n",
        dash(&conn.consume_type),
        dash(&conn.message_model),
        dash(&conn.consume_from_where)
    ));
    Ok(Report {
        text,
        json: serde_json::to_value(&conn).unwrap_or_default(),
    })
}

/// Parses `now` or milliseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Result<i64, AdminError> {
    if s.eq_ignore_ascii_case("now") {
        return Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0));
    }
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|t| *t >= 0)
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "bad timestamp {s:?}: expected milliseconds since the epoch or `now`"
            ))
        })
}

/// For each queue, SEARCH_OFFSET_BY_TIMESTAMP (29) then UPDATE_CONSUMER_OFFSET (15): the offline
/// reset RocketMQ falls back to when no consumer is online (online consumers keep their own
/// offsets and may overwrite it).
pub async fn reset_offset_by_time(
    admin: &Admin,
    group: &str,
    topic: &str,
    timestamp: i64,
) -> Result<Report, AdminError> {
    let route = admin.route(topic).await?;
    let mut table = Table::new(&["Broker", "Queue", "NewOffset"]);
    for (broker, addr, q) in read_queues(&route) {
        let search = RemotingCommand::request(request::SEARCH_OFFSET_BY_TIMESTAMP).with_header(
            &SearchOffsetRequestHeader {
                topic: topic.to_string(),
                queue_id: q,
                timestamp,
                boundary_type: None,
                broker_name: None,
            },
        );
        let found: SearchOffsetResponseHeader =
            decode_header(&addr, &admin.invoke_ok(&addr, search).await?)?;
        let update = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(
            &UpdateConsumerOffsetRequestHeader {
                consumer_group: group.to_string(),
                topic: topic.to_string(),
                queue_id: q,
                commit_offset: found.offset,
                broker_name: None,
            },
        );
        admin.invoke_ok(&addr, update).await?;
        table.push([broker, q.to_string(), found.offset.to_string()]);
    }
    Ok(Report::from_table(&table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_millis_or_now() {
        assert_eq!(parse_timestamp("1700000000000").unwrap(), 1_700_000_000_000);
        assert!(parse_timestamp("now").unwrap() > 1_700_000_000_000);
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("-5").is_err());
    }
}
