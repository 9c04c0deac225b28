//! The requests a broker (usually relaying `mqadmin`) sends to a push consumer over the
//! consumer's own connection, answered as the Java client's `ClientRemotingProcessor` does:
//!
//! - **GET_CONSUMER_RUNNING_INFO (307)**, header `consumerGroup`, `clientId`, `jstackEnable`:
//!   SUCCESS with a `ConsumerRunningInfo` JSON body, or SYSTEM_ERROR when the group is not this
//!   consumer's.
//! - **CONSUME_MESSAGE_DIRECTLY (309)**, header `consumerGroup`, `clientId`, `msgId`,
//!   `brokerName`, body one stored message record: the listener consumes it at once (offsets
//!   and retries untouched) and the answer is a `ConsumeMessageDirectlyResult` JSON body.
//!
//! `ConsumerRunningInfo` as fastjson writes it (keys sorted; `mqTable` keyed by the queue
//! object itself, which fastjson reads back):
//!
//! | key | value |
//! |---|---|
//! | `properties` | string map: the consumer's settings, `PROP_CONSUMEORDERLY`, `PROP_CONSUME_TYPE` (`CONSUME_PASSIVELY`), `PROP_CONSUMER_START_TIMESTAMP`, `PROP_NAMESERVER_ADDR` (`;`-terminated), `PROP_THREADPOOL_CORE_SIZE` (1: one listener call at a time per executor), `PROP_CLIENT_VERSION` |
//! | `subscriptionSet` | the heartbeat's `SubscriptionData` list |
//! | `mqTable` | `{MessageQueue}` → `ProcessQueueInfo` (`commitOffset`, `locked`, `droped`; cache and timing fields 0) |
//! | `mqPopTable`, `userConsumerInfo` | empty |
//! | `statusTable` | topic → `ConsumeStatus`, all rates 0 (Tern keeps no per-topic consume statistics) |
//! | `jstack` | absent (there is no JVM) |
//!
//! `ConsumeMessageDirectlyResult`: `{"autoCommit":true,"consumeResult":"CR_SUCCESS"|"CR_LATER"|
//! "CR_THROW_EXCEPTION","order":bool,"remark":..,"spentTimeMills":ms}`.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use serde_json::{json, Value};

use crate::code::response;
use crate::RemotingCommand;

use super::super::message::decode_pulled;
use super::super::route::MessageQueue;
use super::{ConsumeFromWhere, ConsumeStatus, Inner, Listener, MessageModel, OrderlyStatus};

/// The client version reported in `PROP_CLIENT_VERSION` (the RocketMQ release whose client
/// protocol Tern follows).
const CLIENT_VERSION: &str = "V4_9_4";

/// The response to GET_CONSUMER_RUNNING_INFO `req`.
pub(super) fn running_info(inner: &Inner, req: &RemotingCommand) -> RemotingCommand {
    if let Some(refused) = refuse_other_group(inner, req) {
        return refused;
    }
    RemotingCommand::response_to(req, response::SUCCESS, None)
        .with_body(running_info_json(inner).into_bytes())
}

/// The response to CONSUME_MESSAGE_DIRECTLY `req`.
pub(super) fn consume_directly(inner: &Inner, req: &RemotingCommand) -> RemotingCommand {
    if let Some(refused) = refuse_other_group(inner, req) {
        return refused;
    }
    let queue = MessageQueue::new("", req.ext("brokerName").unwrap_or_default(), 0);
    let msgs = match decode_pulled(&req.body, &queue) {
        Ok(m) if m.len() == 1 => m,
        Ok(m) => {
            let remark = format!("expected one message, got {}", m.len());
            return RemotingCommand::response_to(req, response::SYSTEM_ERROR, Some(remark));
        }
        Err(e) => return RemotingCommand::response_to(req, response::SYSTEM_ERROR, Some(e)),
    };
    let started = Instant::now();
    let (order, outcome) = match &inner.listener {
        Listener::Concurrently(f) => (
            false,
            catch_unwind(AssertUnwindSafe(|| f(&msgs))).map(|s| match s {
                ConsumeStatus::ConsumeSuccess => "CR_SUCCESS",
                ConsumeStatus::ReconsumeLater => "CR_LATER",
            }),
        ),
        Listener::Orderly(f) => (
            true,
            catch_unwind(AssertUnwindSafe(|| f(&msgs))).map(|s| match s {
                OrderlyStatus::Success => "CR_SUCCESS",
                OrderlyStatus::SuspendCurrentQueueAMoment => "CR_LATER",
            }),
        ),
    };
    let (result, remark) = match outcome {
        Ok(r) => (r, Value::Null),
        Err(_) => ("CR_THROW_EXCEPTION", json!("the listener panicked")),
    };
    let body = json!({
        "autoCommit": true,
        "consumeResult": result,
        "order": order,
        "remark": remark,
        "spentTimeMills": started.elapsed().as_millis() as u64,
    });
    RemotingCommand::response_to(req, response::SUCCESS, None)
        .with_body(body.to_string().into_bytes())
}

/// SYSTEM_ERROR when the request names a group other than this consumer's (Java answers so
/// when the group is not in its consumer table).
fn refuse_other_group(inner: &Inner, req: &RemotingCommand) -> Option<RemotingCommand> {
    let group = req.ext("consumerGroup").unwrap_or_default();
    (group != inner.cfg.consumer_group).then(|| {
        let remark = format!("The Consumer Group <{group}> not exist in this consumer");
        RemotingCommand::response_to(req, response::SYSTEM_ERROR, Some(remark))
    })
}

fn running_info_json(inner: &Inner) -> String {
    let cfg = &inner.cfg;
    let orderly = matches!(inner.listener, Listener::Orderly(_));
    let namesrv: String = cfg
        .client
        .namesrv_addr
        .split(';')
        .filter(|a| !a.trim().is_empty())
        .map(|a| format!("{};", a.trim()))
        .collect();
    let model = match cfg.message_model {
        MessageModel::Clustering => "CLUSTERING",
        MessageModel::Broadcasting => "BROADCASTING",
    };
    let from_where = match cfg.consume_from_where {
        ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET",
        ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
    };
    let properties = json!({
        "consumerGroup": cfg.consumer_group,
        "messageModel": model,
        "consumeFromWhere": from_where,
        "consumeMessageBatchMaxSize": cfg.consume_message_batch_max_size.to_string(),
        "pullBatchSize": cfg.pull_batch_size.to_string(),
        "maxReconsumeTimes": cfg.max_reconsume_times.to_string(),
        "suspendCurrentQueueTimeMillis": cfg.suspend_current_queue_time.as_millis().to_string(),
        "namesrvAddr": cfg.client.namesrv_addr,
        "PROP_CONSUMEORDERLY": orderly.to_string(),
        "PROP_CONSUME_TYPE": "CONSUME_PASSIVELY",
        "PROP_CONSUMER_START_TIMESTAMP": inner.started_at.to_string(),
        "PROP_NAMESERVER_ADDR": namesrv,
        "PROP_THREADPOOL_CORE_SIZE": "1",
        "PROP_CLIENT_VERSION": CLIENT_VERSION,
    });
    let subscriptions: Vec<Value> = inner
        .subs
        .values()
        .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
        .collect();
    let offsets = inner.offsets.borrow();
    let mut mq_table = String::from("{");
    for (i, (mq, slot)) in inner.queues.borrow().iter().enumerate() {
        let key = json!({"brokerName": mq.broker_name, "queueId": mq.queue_id, "topic": mq.topic});
        let info = json!({
            "cachedMsgCount": 0,
            "cachedMsgMaxOffset": 0,
            "cachedMsgMinOffset": 0,
            "cachedMsgSizeInMiB": 0,
            "commitOffset": offsets.get(mq).copied().unwrap_or(-1),
            "droped": slot.flags.dropped.get(),
            "lastConsumeTimestamp": 0,
            "lastLockTimestamp": 0,
            "lastPullTimestamp": 0,
            "locked": slot.flags.locked.get(),
            "transactionMsgCount": 0,
            "transactionMsgMaxOffset": 0,
            "transactionMsgMinOffset": 0,
            "tryUnlockTimes": 0,
        });
        let sep = if i == 0 { "" } else { "," };
        // Writing into a String cannot fail.
        let _ = write!(mq_table, "{sep}{key}:{info}");
    }
    mq_table.push('}');
    let status: serde_json::Map<String, Value> = inner
        .subs
        .keys()
        .map(|topic| {
            let zero = json!({
                "consumeFailedMsgs": 0,
                "consumeFailedTPS": 0.0,
                "consumeOKTPS": 0.0,
                "consumeRT": 0.0,
                "pullRT": 0.0,
                "pullTPS": 0.0,
            });
            (topic.clone(), zero)
        })
        .collect();
    // Keys in fastjson's (sorted) order; mqTable spliced in as written above.
    format!(
        "{{\"mqPopTable\":{{}},\"mqTable\":{mq_table},\"properties\":{},\"statusTable\":{},\"subscriptionSet\":{},\"userConsumerInfo\":{{}}}}",
        properties,
        Value::Object(status),
        Value::Array(subscriptions),
    )
}
