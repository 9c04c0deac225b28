//! The console's JSON endpoints, answered on the state core from the broker's own admin requests
//! (the same GET_TOPIC_STATS_INFO, GET_CONSUME_STATS, QUERY_MESSAGE, VIEW_MESSAGE_BY_ID and
//! per-core GET_BROKER_RUNTIME_INFO answers the admin CLI and the metrics scrape get), so the
//! console adds no state and no lock to any request path.
//!
//! | path | answer |
//! |---|---|
//! | `/api/cluster` | `{"broker":{cluster,brokerName,brokerId,addr,cores,namesrvAddrs},"clusterInfo":ClusterInfo\|null,"namesrvError":string\|null}` |
//! | `/api/topics` | `{"topics":[{topic,queues:[{queueId,minOffset,maxOffset,lastUpdateTimestamp}]}]}` |
//! | `/api/groups` | `{"groups":[{group,lag,queues:[{topic,queueId,brokerOffset,consumerOffset,lag}]}]}` |
//! | `/api/message?id=` / `?topic=&key=` | `{"messages":[{msgId,offsetMsgId,topic,queueId,queueOffset,tags,keys,bornTimestamp,storeTimestamp,bodySize,body,properties}]}` |
//! | `/api/tps` | `{"at":ms,"produced","consumed","producedBytes","consumedBytes"}` (totals; rates are differences) |
//!
//! Unknown parameters are ignored; a lookup without `id` or `topic`+`key`, or with an id that is
//! neither an offset message id nor (with `topic`) a unique key, is a 400 with `{"error":...}`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};
use tern_net::body::ClusterInfo;
use tern_net::code::{request, response};
use tern_net::header::{QueryMessageRequestHeader, ViewMessageRequestHeader};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;
use tern_store::message_id::MessageId;

use super::query_string::Query;
use crate::broker::admin_body::{decode_consume_stats, decode_topic_stats};
use crate::broker::core::{Core, Origin};

/// How long `/api/cluster` waits for a nameserver.
const NAMESRV_TIMEOUT: Duration = Duration::from_secs(2);
/// Most messages a key lookup returns.
const LOOKUP_MAX: i32 = 32;
/// Body bytes shown per message.
const BODY_SHOWN: usize = 4096;
/// The client's flag for a unique-key query (see the broker's QUERY_MESSAGE).
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// A request the console cannot answer: its message for a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadLookup(pub(crate) String);

async fn ask(core: &Rc<Core>, req: RemotingCommand) -> Option<RemotingCommand> {
    core.handle(req, Origin::Forwarded)
        .await
        .map(|reply| reply.command)
}

/// `/api/cluster`: this broker, and the cluster as the first answering nameserver sees it.
pub(crate) async fn cluster(core: &Rc<Core>) -> Value {
    let c = &core.config;
    let mut info: Option<ClusterInfo> = None;
    let mut error = None;
    let client = RemotingClient::new(ClientConfig::default());
    for addr in &c.namesrv_addrs {
        let req = RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO);
        match client.invoke(addr, req, NAMESRV_TIMEOUT).await {
            Ok(rsp) if rsp.code == response::SUCCESS => {
                match tern_net::body::decode::<ClusterInfo>(&rsp.body) {
                    Ok(i) => {
                        info = Some(i);
                        error = None;
                        break;
                    }
                    Err(e) => error = Some(format!("{addr}: {e}")),
                }
            }
            Ok(rsp) => error = Some(format!("{addr}: code {} {:?}", rsp.code, rsp.remark)),
            Err(e) => error = Some(format!("{addr}: {e}")),
        }
    }
    json!({
        "broker": {
            "cluster": c.cluster_name,
            "brokerName": c.broker_name,
            "brokerId": c.broker_id,
            "addr": core.store_host.to_string(),
            "cores": core.cores,
            "namesrvAddrs": c.namesrv_addrs,
        },
        "clusterInfo": info,
        "namesrvError": error,
    })
}

/// `/api/topics`: every topic's queues with their min and max offsets.
pub(crate) async fn topics(core: &Rc<Core>) -> Value {
    let names: Vec<String> = core.topics.borrow().names().map(str::to_string).collect();
    let mut out = Vec::with_capacity(names.len());
    for topic in names {
        let req = RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_ext("topic", &topic);
        let Some(rsp) = ask(core, req).await else {
            continue;
        };
        if rsp.code != response::SUCCESS {
            continue;
        }
        let Ok(table) = decode_topic_stats(&rsp.body) else {
            continue;
        };
        let queues: Vec<Value> = table
            .offset_table
            .iter()
            .map(|(mq, o)| {
                json!({
                    "queueId": mq.queue_id,
                    "minOffset": o.min_offset,
                    "maxOffset": o.max_offset,
                    "lastUpdateTimestamp": o.last_update_timestamp,
                })
            })
            .collect();
        out.push(json!({ "topic": topic, "queues": queues }));
    }
    json!({ "topics": out })
}

/// `/api/groups`: every group with committed offsets, its lag per queue and in total.
pub(crate) async fn groups(core: &Rc<Core>) -> Value {
    let names = core.offsets.borrow().groups();
    let mut out = Vec::with_capacity(names.len());
    for group in names {
        let req =
            RemotingCommand::request(request::GET_CONSUME_STATS).with_ext("consumerGroup", &group);
        let Some(rsp) = ask(core, req).await else {
            continue;
        };
        if rsp.code != response::SUCCESS {
            continue;
        }
        let Ok(stats) = decode_consume_stats(&rsp.body) else {
            continue;
        };
        let mut total = 0i64;
        let queues: Vec<Value> = stats
            .offset_table
            .iter()
            .map(|(mq, w)| {
                let lag = w.broker_offset.saturating_sub(w.consumer_offset).max(0);
                total = total.saturating_add(lag);
                json!({
                    "topic": mq.topic,
                    "queueId": mq.queue_id,
                    "brokerOffset": w.broker_offset,
                    "consumerOffset": w.consumer_offset,
                    "lag": lag,
                })
            })
            .collect();
        out.push(json!({ "group": group, "lag": total, "queues": queues }));
    }
    json!({ "groups": out })
}

/// `/api/tps`: produced and consumed totals summed over the cores (the page differences them).
pub(crate) async fn tps(core: &Rc<Core>) -> Value {
    let (mut produced, mut consumed, mut produced_bytes, mut consumed_bytes) = (0u64, 0, 0, 0);
    for c in 0..core.cores {
        if let Some(n) = crate::broker::metrics::core_counters(core, c).await {
            produced += n.produced;
            consumed += n.consumed;
            produced_bytes += n.produced_bytes;
            consumed_bytes += n.zero_copy_bytes + n.copied_bytes;
        }
    }
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "at": at,
        "produced": produced,
        "consumed": consumed,
        "producedBytes": produced_bytes,
        "consumedBytes": consumed_bytes,
    })
}

/// `/api/message`: by offset message id (`id`), by unique key (`id` + `topic`) or by key
/// (`topic` + `key`).
pub(crate) async fn message(core: &Rc<Core>, q: &Query) -> Result<Value, BadLookup> {
    let records = match (q.get("id"), q.get("topic"), q.get("key")) {
        (Some(id), topic, _) => match MessageId::parse(id) {
            Ok(mid) => view(core, mid.physical_offset).await,
            Err(_) => match topic {
                Some(topic) => query(core, topic, id, true).await,
                None => {
                    return Err(BadLookup(format!(
                        "{id:?} is not an offset message id; give the topic to look up a unique key"
                    )))
                }
            },
        },
        (None, Some(topic), Some(key)) => query(core, topic, key, false).await,
        _ => return Err(BadLookup("give id, or topic and key".into())),
    };
    let messages: Vec<Value> = records
        .iter()
        .filter_map(|r| describe(r.as_slice()))
        .collect();
    Ok(json!({ "messages": messages }))
}

async fn view(core: &Rc<Core>, offset: i64) -> Vec<Vec<u8>> {
    let h = ViewMessageRequestHeader {
        topic: None,
        offset,
    };
    let req = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_header(&h);
    match ask(core, req).await {
        Some(rsp) if rsp.code == response::SUCCESS => vec![rsp.body.to_vec()],
        _ => Vec::new(),
    }
}

async fn query(core: &Rc<Core>, topic: &str, key: &str, unique: bool) -> Vec<Vec<u8>> {
    let h = QueryMessageRequestHeader {
        topic: topic.to_string(),
        key: key.to_string(),
        max_num: LOOKUP_MAX,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
    };
    let mut req = RemotingCommand::request(request::QUERY_MESSAGE).with_header(&h);
    if unique {
        req = req.with_ext(UNIQUE_KEY_QUERY, "true");
    }
    let Some(rsp) = ask(core, req).await else {
        return Vec::new();
    };
    if rsp.code != response::SUCCESS {
        return Vec::new();
    }
    split_records(&rsp.body)
}

/// Splits concatenated stored records by their TOTALSIZE; stops at the first that does not fit.
fn split_records(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(Ok(size)) = body.get(..4).map(<[u8; 4]>::try_from) {
        let Ok(size) = usize::try_from(i32::from_be_bytes(size)) else {
            break;
        };
        let (Some(record), Some(rest)) = (body.get(..size), body.get(size..)) else {
            break;
        };
        if size < 4 {
            break;
        }
        out.push(record.to_vec());
        body = rest;
    }
    out
}

/// One stored record as the page shows it; `None` when it does not decode.
fn describe(record: &[u8]) -> Option<Value> {
    let m = StoredMessage::decode(record).ok()?;
    let offset_id = MessageId::new(m.store_host, m.physical_offset).to_string();
    let properties: BTreeMap<&str, &str> = tern_store::properties::parse(m.properties).collect();
    let shown = m.body.get(..BODY_SHOWN).unwrap_or(m.body);
    Some(json!({
        "msgId": m.uniq_key().unwrap_or(&offset_id),
        "offsetMsgId": offset_id,
        "topic": m.topic,
        "queueId": m.queue_id,
        "queueOffset": m.queue_offset,
        "tags": m.tags(),
        "keys": m.keys().collect::<Vec<_>>(),
        "bornTimestamp": m.born_timestamp,
        "storeTimestamp": m.store_timestamp,
        "bodySize": m.body.len(),
        "body": String::from_utf8_lossy(shown),
        "properties": properties,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records_by_total_size_and_stops_at_a_short_one() {
        let mut body = Vec::new();
        body.extend_from_slice(&6i32.to_be_bytes());
        body.extend_from_slice(b"ab");
        body.extend_from_slice(&5i32.to_be_bytes());
        body.push(b'c');
        assert_eq!(
            split_records(&body),
            vec![
                [&6i32.to_be_bytes()[..], b"ab"].concat(),
                [&5i32.to_be_bytes()[..], b"c"].concat()
            ]
        );
        let mut truncated = body.clone();
        truncated.extend_from_slice(&100i32.to_be_bytes());
        assert_eq!(split_records(&truncated).len(), 2);
        for bad in [-1i32, 0, 3] {
            assert!(split_records(&bad.to_be_bytes()).is_empty(), "{bad}");
        }
    }
}
