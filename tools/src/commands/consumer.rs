//! Consumer-group commands: `updateSubGroup`, `deleteSubGroup`, `consumerProgress`,
//! `consumerConnection`, `resetOffsetByTime`.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tern_net::code::{request, response};
use tern_net::header::{
    GetConsumerListByGroupRequestHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
use tern_net::RemotingCommand;

use super::topic::{queue_bounds, read_queues};
use crate::admin::{check, decode_body, decode_header, Admin, AdminError};
use crate::output::{Report, Table};

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

/// Per queue: the broker's max offset, the group's committed offset and the lag between them (a
/// queue without a committed offset lags by its whole content), then the total lag.
pub async fn consumer_progress(
    admin: &Admin,
    group: &str,
    topic: &str,
) -> Result<Report, AdminError> {
    let route = admin.route(topic).await?;
    let mut table = Table::new(&["Broker", "Queue", "BrokerOffset", "ConsumerOffset", "Lag"]);
    let mut total: i64 = 0;
    for (broker, addr, q) in read_queues(&route) {
        let (min, max) = queue_bounds(admin, &addr, topic, q).await?;
        let consumed = committed_offset(admin, &addr, group, topic, q).await?;
        let lag = (max - consumed.unwrap_or(min)).max(0);
        total += lag;
        table.push([
            broker,
            q.to_string(),
            max.to_string(),
            consumed.map_or_else(|| "-".to_string(), |o| o.to_string()),
            lag.to_string(),
        ]);
    }
    let mut text = table.render();
    text.push_str(&format!("\nDiff Total: {total}\n"));
    Ok(Report {
        text,
        json: json!({ "group": group, "topic": topic, "queues": table.to_json(), "totalLag": total }),
    })
}

/// GET_CONSUMER_LIST_BY_GROUP (38) to every master: the client ids of the group's members.
pub async fn consumer_connection(admin: &Admin, group: &str) -> Result<Report, AdminError> {
    let mut ids = BTreeSet::new();
    for (_, addr) in admin.masters(None).await? {
        let cmd = RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP).with_header(
            &GetConsumerListByGroupRequestHeader {
                consumer_group: group.to_string(),
            },
        );
        let rsp = admin.invoke(&addr, cmd).await?;
        if rsp.code == response::SYSTEM_ERROR {
            continue; // RocketMQ's answer for a group without members on that broker.
        }
        let rsp = check(&addr, request::GET_CONSUMER_LIST_BY_GROUP, rsp)?;
        let list: Value = decode_body(&addr, &rsp)?;
        if let Some(found) = list.get("consumerIdList").and_then(Value::as_array) {
            ids.extend(found.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    if ids.is_empty() {
        return Err(AdminError::NotFound(format!(
            "consumer group {group} has no online member"
        )));
    }
    let mut table = Table::new(&["ClientId"]);
    for id in &ids {
        table.push([id.as_str()]);
    }
    Ok(Report::from_table(&table))
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
