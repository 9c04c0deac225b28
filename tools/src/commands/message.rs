//! Message commands: `sendMessage`, `queryMsgById`, `queryMsgByKey`, `queryMsgByUniqueKey`,
//! `queryMsgByOffset`, `consumeMessage`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tern_net::body::{BodyError, TopicRouteData};
use tern_net::code::{request, response};
use tern_net::header::{
    PullMessageRequestHeader, PullMessageResponseHeader, QueryMessageRequestHeader,
    SendMessageRequestHeader, SendMessageResponseHeader, ViewMessageRequestHeader,
};
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;
use tern_store::message_id::MessageId;
use tern_store::properties;

use super::topic::{queue_bounds, read_queues, route_masters};
use super::ADMIN_GROUP;
use crate::admin::{check, decode_header, refusal, Admin, AdminError};
use crate::output::{format_millis, Report, Table};

/// Queues an auto-created topic gets when the broker creates it from a send.
const DEFAULT_TOPIC_QUEUES: i32 = 4;
/// Messages asked for per pull.
const PULL_BATCH: i32 = 32;
/// `PullSysFlag` bit: the header carries the subscription expression.
const PULL_FLAG_SUBSCRIPTION: i32 = 1 << 2;

/// What `sendMessage` sends.
pub struct Outgoing<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The body.
    pub body: &'a str,
    /// Space-separated keys.
    pub keys: Option<&'a str>,
    /// Tag.
    pub tags: Option<&'a str>,
    /// Broker name; the first writable broker when absent.
    pub broker_name: Option<&'a str>,
    /// Queue id; 0 when absent.
    pub queue_id: Option<i32>,
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A client message id for `UNIQ_KEY`, as producers set one: 32 hex digits from this process id
/// and the current time in nanoseconds (one message per process, so unique per host).
fn unique_key() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:08X}{:024X}", std::process::id(), nanos & ((1 << 96) - 1))
}

/// The topic whose route a producer borrows for a topic the nameserver does not know yet; the
/// broker then creates the topic from it (`autoCreateTopicEnable`).
const AUTO_CREATE_TOPIC: &str = "TBW102";

/// The route to send `topic` on: its own, or, when the nameserver has none, [`AUTO_CREATE_TOPIC`]'s
/// with at most [`DEFAULT_TOPIC_QUEUES`] queues per broker, as RocketMQ's producer does.
async fn send_route(admin: &Admin, topic: &str) -> Result<TopicRouteData, AdminError> {
    match admin.route(topic).await {
        Err(AdminError::TopicNotFound(_)) => {
            let mut route = admin.route(AUTO_CREATE_TOPIC).await.map_err(|e| match e {
                AdminError::TopicNotFound(_) => AdminError::TopicNotFound(topic.to_string()),
                other => other,
            })?;
            for q in &mut route.queue_datas {
                q.write_queue_nums = q.write_queue_nums.min(DEFAULT_TOPIC_QUEUES);
                q.read_queue_nums = q.read_queue_nums.min(DEFAULT_TOPIC_QUEUES);
            }
            Ok(route)
        }
        other => other,
    }
}

/// SEND_MESSAGE (10) with producer group [`ADMIN_GROUP`] to the chosen broker and queue. A topic
/// the nameserver does not know is sent on [`AUTO_CREATE_TOPIC`]'s route, so the broker creates it.
pub async fn send_message(admin: &Admin, msg: &Outgoing<'_>) -> Result<Report, AdminError> {
    let route = send_route(admin, msg.topic).await?;
    let mut writable: Vec<_> = route
        .queue_datas
        .iter()
        .filter(|q| q.perm & 2 != 0 && q.write_queue_nums > 0)
        .filter(|q| msg.broker_name.is_none_or(|b| b == q.broker_name))
        .collect();
    writable.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let queue = writable.first().ok_or_else(|| {
        AdminError::NotFound(format!("topic {} has no writable queue here", msg.topic))
    })?;
    let queue_id = msg.queue_id.unwrap_or(0);
    if !(0..queue.write_queue_nums).contains(&queue_id) {
        return Err(AdminError::NotFound(format!(
            "broker {} has {} write queues for {}, no queue {queue_id}",
            queue.broker_name, queue.write_queue_nums, msg.topic
        )));
    }
    let addr = route.master_addr(&queue.broker_name).ok_or_else(|| {
        AdminError::NotFound(format!("broker {} has no master", queue.broker_name))
    })?;
    let uniq_key = unique_key();
    let mut props = Vec::new();
    let mut pairs = vec![
        (properties::WAIT, "true"),
        (properties::UNIQ_KEY, uniq_key.as_str()),
    ];
    if let Some(k) = msg.keys {
        pairs.push((properties::KEYS, k));
    }
    if let Some(t) = msg.tags {
        pairs.push((properties::TAGS, t));
    }
    properties::encode(pairs, &mut props);
    let header = SendMessageRequestHeader {
        producer_group: ADMIN_GROUP.to_string(),
        topic: msg.topic.to_string(),
        default_topic: "TBW102".to_string(),
        default_topic_queue_nums: DEFAULT_TOPIC_QUEUES,
        queue_id,
        sys_flag: 0,
        born_timestamp: now_millis(),
        flag: 0,
        properties: Some(String::from_utf8_lossy(&props).into_owned()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: None,
        broker_name: Some(queue.broker_name.clone()),
    };
    let cmd = RemotingCommand::request(request::SEND_MESSAGE)
        .with_header(&header)
        .with_body(msg.body.as_bytes().to_vec());
    let rsp = admin.invoke_ok(addr, cmd).await?;
    let sent: SendMessageResponseHeader = decode_header(addr, &rsp)?;
    let mut table = Table::new(&[
        "Broker",
        "Queue",
        "QueueOffset",
        "MsgId",
        "Status",
        "UniqKey",
    ]);
    table.push([
        queue.broker_name.clone(),
        sent.queue_id.to_string(),
        sent.queue_offset.to_string(),
        sent.msg_id.clone(),
        "SEND_OK".to_string(),
        uniq_key,
    ]);
    Ok(Report::from_table(&table))
}

fn bad_message(addr: &str, reason: impl ToString) -> AdminError {
    AdminError::Body {
        addr: addr.to_string(),
        source: BodyError {
            what: "stored message",
            reason: reason.to_string(),
        },
    }
}

/// The fields of one message as a key/value report.
fn describe(msg: &StoredMessage<'_>) -> Report {
    let id = MessageId::new(msg.store_host, msg.physical_offset).to_string();
    let keys: Vec<&str> = msg.keys().collect();
    let props: serde_json::Map<String, Value> = properties::parse(msg.properties)
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let body = String::from_utf8_lossy(msg.body).into_owned();
    let mut table = Table::new(&["Field", "Value"]);
    let rows = [
        ("MsgId", id.clone()),
        ("Topic", msg.topic.to_string()),
        ("Tags", msg.tags().unwrap_or("").to_string()),
        ("Keys", keys.join(" ")),
        ("QueueId", msg.queue_id.to_string()),
        ("QueueOffset", msg.queue_offset.to_string()),
        ("CommitLogOffset", msg.physical_offset.to_string()),
        ("ReconsumeTimes", msg.reconsume_times.to_string()),
        ("BornTimestamp", msg.born_timestamp.to_string()),
        ("StoreTimestamp", msg.store_timestamp.to_string()),
        ("BornHost", msg.born_host.to_string()),
        ("StoreHost", msg.store_host.to_string()),
        (
            "Properties",
            serde_json::to_string(&props).unwrap_or_default(),
        ),
        ("Body", body.clone()),
    ];
    for (k, v) in rows {
        table.push([k.to_string(), v]);
    }
    Report {
        text: table.render(),
        json: json!({
            "msgId": id,
            "topic": msg.topic,
            "tags": msg.tags(),
            "keys": keys,
            "queueId": msg.queue_id,
            "queueOffset": msg.queue_offset,
            "commitLogOffset": msg.physical_offset,
            "reconsumeTimes": msg.reconsume_times,
            "bornTimestamp": msg.born_timestamp,
            "storeTimestamp": msg.store_timestamp,
            "bornHost": msg.born_host.to_string(),
            "storeHost": msg.store_host.to_string(),
            "properties": props,
            "body": body,
        }),
    }
}

/// VIEW_MESSAGE_BY_ID (33) to the store host the id names (or `broker_addr`).
pub async fn query_by_id(
    admin: &Admin,
    msg_id: &str,
    broker_addr: Option<&str>,
) -> Result<Report, AdminError> {
    let id = MessageId::parse(msg_id)
        .map_err(|e| AdminError::Invalid(format!("bad message id {msg_id}: {e}")))?;
    let addr = broker_addr
        .map(str::to_string)
        .unwrap_or_else(|| id.store_host.to_string());
    let cmd = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_header(
        &ViewMessageRequestHeader {
            topic: None,
            offset: id.physical_offset,
        },
    );
    let rsp = admin.invoke_ok(&addr, cmd).await?;
    let msg = StoredMessage::decode(&rsp.body).map_err(|e| bad_message(&addr, e))?;
    Ok(describe(&msg))
}

/// Every record of a pull or query response body, in order.
fn decode_all<'b>(addr: &str, mut body: &'b [u8]) -> Result<Vec<StoredMessage<'b>>, AdminError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let msg = StoredMessage::decode(body).map_err(|e| bad_message(addr, e))?;
        // A decoded record is never empty and never longer than the buffer it came from.
        debug_assert!(msg.total_size > 0 && msg.total_size <= body.len());
        body = body.get(msg.total_size.max(1)..).unwrap_or_default();
        out.push(msg);
    }
    Ok(out)
}

/// The outcome of one pull: the raw records (possibly none) and the offset to pull next.
struct Pulled {
    body: Vec<u8>,
    next_offset: i64,
}

/// PULL_MESSAGE (11) of up to `max` messages from `offset`, without committing any offset.
async fn pull(
    admin: &Admin,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max: i32,
) -> Result<Pulled, AdminError> {
    let header = PullMessageRequestHeader {
        consumer_group: group.to_string(),
        topic: topic.to_string(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: max,
        sys_flag: PULL_FLAG_SUBSCRIPTION,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some("*".to_string()),
        sub_version: 0,
        expression_type: Some("TAG".to_string()),
        ..PullMessageRequestHeader::default()
    };
    let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&header);
    let rsp = admin.invoke(addr, cmd).await?;
    match rsp.code {
        response::SUCCESS
        | response::PULL_NOT_FOUND
        | response::PULL_RETRY_IMMEDIATELY
        | response::PULL_OFFSET_MOVED => {
            let h: PullMessageResponseHeader = decode_header(addr, &rsp)?;
            let body = if rsp.code == response::SUCCESS {
                rsp.body
            } else {
                Vec::new()
            };
            Ok(Pulled {
                body,
                next_offset: h.next_begin_offset,
            })
        }
        _ => Err(refusal(addr, request::PULL_MESSAGE, rsp)),
    }
}

/// The message at one queue offset, found by pulling one message there.
pub async fn query_by_offset(
    admin: &Admin,
    topic: &str,
    broker_name: &str,
    queue_id: i32,
    offset: i64,
) -> Result<Report, AdminError> {
    let route = admin.route(topic).await?;
    let addr = route.master_addr(broker_name).ok_or_else(|| {
        AdminError::NotFound(format!("broker {broker_name} serves no route of {topic}"))
    })?;
    let pulled = pull(admin, addr, ADMIN_GROUP, topic, queue_id, offset, 1).await?;
    let msgs = decode_all(addr, &pulled.body)?;
    let msg = msgs
        .iter()
        .find(|m| m.queue_offset == offset)
        .ok_or_else(|| {
            AdminError::NotFound(format!(
                "no message at offset {offset} of {topic} queue {queue_id} on {broker_name}"
            ))
        })?;
    Ok(describe(msg))
}

/// Rows of `consumeMessage`'s listing.
fn listing() -> Table {
    Table::new(&["Broker", "Queue", "Offset", "MsgId", "Tags", "Keys", "Body"])
}

fn list_row(table: &mut Table, broker: &str, msg: &StoredMessage<'_>) {
    table.push([
        broker.to_string(),
        msg.queue_id.to_string(),
        msg.queue_offset.to_string(),
        MessageId::new(msg.store_host, msg.physical_offset).to_string(),
        msg.tags().unwrap_or("").to_string(),
        msg.keys().collect::<Vec<_>>().join(" "),
        String::from_utf8_lossy(msg.body).into_owned(),
    ]);
}

/// What `consumeMessage` reads.
pub struct ConsumeSpec<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Only this broker.
    pub broker_name: Option<&'a str>,
    /// Only this queue.
    pub queue_id: Option<i32>,
    /// First offset; each queue's minimum when absent.
    pub offset: Option<i64>,
    /// Most messages in all.
    pub count: usize,
    /// Group the pulls are made as.
    pub group: &'a str,
}

/// Pulls each selected queue from its start to its end (or until `count` messages) and lists them.
pub async fn consume_message(admin: &Admin, spec: &ConsumeSpec<'_>) -> Result<Report, AdminError> {
    let route = admin.route(spec.topic).await?;
    let mut table = listing();
    let queues = read_queues(&route).into_iter().filter(|(b, _, q)| {
        spec.broker_name.is_none_or(|n| n == b) && spec.queue_id.is_none_or(|i| i == *q)
    });
    for (broker, addr, q) in queues {
        let (min, max) = queue_bounds(admin, &addr, spec.topic, q).await?;
        let mut offset = spec.offset.unwrap_or(min).max(min);
        while offset < max && table.len() < spec.count {
            let want =
                PULL_BATCH.min(i32::try_from(spec.count - table.len()).unwrap_or(PULL_BATCH));
            let pulled = pull(admin, &addr, spec.group, spec.topic, q, offset, want).await?;
            let msgs = decode_all(&addr, &pulled.body)?;
            for m in msgs.iter().take(spec.count - table.len()) {
                list_row(&mut table, &broker, m);
            }
            if pulled.next_offset <= offset {
                break;
            }
            offset = pulled.next_offset;
        }
    }
    Ok(Report::from_table(&table))
}

/// What `queryMsgByKey` / `queryMsgByUniqueKey` look for.
pub struct KeyQuery<'a> {
    /// The topic.
    pub topic: &'a str,
    /// A key of `KEYS`, or the `UNIQ_KEY` (client message id) when `unique`.
    pub key: &'a str,
    /// First store time, milliseconds since the epoch (inclusive).
    pub begin: i64,
    /// Last store time, milliseconds since the epoch.
    pub end: i64,
    /// A unique-key query (`_UNIQUE_KEY_QUERY=true`).
    pub unique: bool,
}

/// Results asked of each broker by a key query (RocketMQ's `maxMsgsNumBatch`).
const QUERY_MAX_NUM: i32 = 64;
/// Extension field flagging a unique-key query.
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// Whether a message an index lookup returned really carries the key (an index matches hashes).
fn matches_key(msg: &StoredMessage<'_>, query: &KeyQuery<'_>) -> bool {
    msg.topic == query.topic
        && if query.unique {
            msg.uniq_key() == Some(query.key)
        } else {
            msg.keys().any(|k| k == query.key)
        }
}

/// QUERY_MESSAGE (12) to every master serving the topic; lists the stored messages carrying the
/// key (msgId is the offset id) with their queue, offset, tags, keys and store time. Brokers
/// answering QUERY_NOT_FOUND have none; when no broker has one, [`AdminError::NotFound`].
pub async fn query_by_key(admin: &Admin, query: &KeyQuery<'_>) -> Result<Report, AdminError> {
    let route = admin.route(query.topic).await?;
    let mut table = Table::new(&[
        "Broker",
        "Queue",
        "Offset",
        "MsgId",
        "Tags",
        "Keys",
        "StoreTime",
    ]);
    let mut json_rows = Vec::new();
    for (broker, addr) in route_masters(&route) {
        let mut cmd = RemotingCommand::request(request::QUERY_MESSAGE).with_header(
            &QueryMessageRequestHeader {
                topic: query.topic.to_string(),
                key: query.key.to_string(),
                max_num: QUERY_MAX_NUM,
                begin_timestamp: query.begin,
                end_timestamp: query.end,
            },
        );
        if query.unique {
            cmd = cmd.with_ext(UNIQUE_KEY_QUERY, "true");
        }
        let rsp = admin.invoke(&addr, cmd).await?;
        if rsp.code == response::QUERY_NOT_FOUND {
            continue;
        }
        let rsp = check(&addr, request::QUERY_MESSAGE, rsp)?;
        for m in decode_all(&addr, &rsp.body)? {
            if !matches_key(&m, query) {
                continue;
            }
            let id = MessageId::new(m.store_host, m.physical_offset).to_string();
            let keys: Vec<&str> = m.keys().collect();
            table.push([
                broker.clone(),
                m.queue_id.to_string(),
                m.queue_offset.to_string(),
                id.clone(),
                m.tags().unwrap_or("").to_string(),
                keys.join(" "),
                format_millis(m.store_timestamp),
            ]);
            json_rows.push(json!({
                "broker": broker,
                "msgId": id,
                "uniqKey": m.uniq_key(),
                "queueId": m.queue_id,
                "queueOffset": m.queue_offset,
                "tags": m.tags(),
                "keys": keys,
                "storeTimestamp": m.store_timestamp,
            }));
        }
    }
    if json_rows.is_empty() {
        let what = if query.unique { "unique key" } else { "key" };
        return Err(AdminError::NotFound(format!(
            "no message with {what} {} in topic {}",
            query.key, query.topic
        )));
    }
    Ok(Report {
        text: table.render(),
        json: Value::Array(json_rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_store::message::MessageDraft;

    /// Two records back to back, as a pull response body carries them.
    fn two_records() -> Vec<u8> {
        let mut props = Vec::new();
        properties::encode([("TAGS", "tagA"), ("KEYS", "k1 k2")], &mut props);
        let host = "127.0.0.1:10911".parse().unwrap();
        let mut out = Vec::new();
        for (i, body) in [&b"first"[..], &b"second"[..]].into_iter().enumerate() {
            let draft = MessageDraft {
                topic: "T",
                queue_id: 3,
                flag: 0,
                body,
                properties: &props,
                sys_flag: 0,
                born_timestamp: 1,
                born_host: host,
                store_host: host,
                reconsume_times: 0,
                prepared_transaction_offset: 0,
            };
            let start = out.len();
            out.resize(start + draft.stored_len().unwrap(), 0);
            draft
                .encode_into(i as i64, start as i64, 2, &mut out[start..])
                .unwrap();
        }
        out
    }

    #[test]
    fn pull_bodies_split_into_records() {
        let bytes = two_records();
        let msgs = decode_all("b:1", &bytes).unwrap();
        let bodies: Vec<&[u8]> = msgs.iter().map(|m| m.body).collect();
        assert_eq!(bodies, [&b"first"[..], &b"second"[..]]);
        assert_eq!(msgs[1].queue_offset, 1);
        assert!(decode_all("b:1", &[]).unwrap().is_empty());
    }

    #[test]
    fn a_truncated_body_is_a_typed_error() {
        let bytes = two_records();
        let err = decode_all("b:1", &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("b:1 sent a malformed stored message body"),
            "{err}"
        );
    }

    #[test]
    fn description_names_id_tags_keys_and_body() {
        let bytes = two_records();
        let msg = StoredMessage::decode(&bytes).unwrap();
        let report = describe(&msg);
        assert_eq!(report.json["msgId"], "7F00000100002A9F0000000000000000");
        assert_eq!(report.json["tags"], "tagA");
        assert_eq!(report.json["keys"], json!(["k1", "k2"]));
        assert_eq!(report.json["body"], "first");
        assert!(
            report.text.contains("\nBody             first\n"),
            "{}",
            report.text
        );
    }

    #[test]
    fn index_hits_must_carry_the_key() {
        let bytes = two_records();
        let msg = StoredMessage::decode(&bytes).unwrap();
        let query = |topic, key, unique| KeyQuery {
            topic,
            key,
            begin: 0,
            end: i64::MAX,
            unique,
        };
        assert!(matches_key(&msg, &query("T", "k2", false)));
        assert!(!matches_key(&msg, &query("T", "k", false)));
        assert!(!matches_key(&msg, &query("Other", "k1", false)));
        // The records carry no UNIQ_KEY: a unique-key query never matches them.
        assert!(!matches_key(&msg, &query("T", "k1", true)));
    }
}
