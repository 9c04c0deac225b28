//! Putting a due message back to its real topic and queue.
//!
//! The copy keeps the original's body, flag, sys flag, born time and host, `reconsumeTimes` and
//! properties (KEYS, TAGS, UNIQ_KEY, …) minus the scheduling ones: `DELAY` and the timer
//! properties are removed so the copy is not scheduled again (RocketMQ's `messageTimeUp`), and a
//! timer copy also loses `REAL_TOPIC` / `REAL_QID` (RocketMQ 5's timer does so; a delay-level copy
//! keeps them, as RocketMQ 4 does). It travels as an internal SEND_MESSAGE to the queue's owner,
//! which stores it without the producer checks ([`super::INTERNAL_PUT`]).

use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::header::SendMessageRequestHeader;
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;
use tern_store::properties;
use tern_store::schedule::TIMER_OUT_MS;

use super::divert::{rewrite, TIMER_DELAY_MS, TIMER_DELAY_SEC, TIMER_DELIVER_MS};
use super::INTERNAL_PUT;
use crate::broker::core::{Core, Origin};
use crate::broker::routing::owner_core;
use crate::broker::send::BORN_HOST;
use crate::broker::topics;

/// Producer group named in re-put requests.
const SCHEDULE_PRODUCER: &str = "SCHEDULE_PRODUCER";

/// Why a due message could not be put back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReputError {
    /// The stored copy lacks `REAL_TOPIC` / `REAL_QID`: it can never be delivered.
    #[error("scheduled message without a valid REAL_TOPIC/REAL_QID")]
    NoDestination,
    /// The owner refused or failed the put (try again later).
    #[error("re-put failed: code {code}, {remark}")]
    Refused {
        /// Response code.
        code: i32,
        /// Response remark.
        remark: String,
    },
}

/// The internal SEND that stores `msg` in its real queue, and that queue's `(topic, queueId)`.
pub(crate) fn repute_command(
    msg: &StoredMessage<'_>,
    timer: bool,
) -> Result<(RemotingCommand, String, i32), ReputError> {
    let topic = msg
        .property(properties::REAL_TOPIC)
        .filter(|t| topics::validate_topic(t).is_ok())
        .ok_or(ReputError::NoDestination)?
        .to_string();
    let queue_id = msg
        .property(properties::REAL_QUEUE_ID)
        .and_then(|q| q.parse::<i32>().ok())
        .filter(|q| *q >= 0)
        .ok_or(ReputError::NoDestination)?;
    let mut drop = vec![
        properties::DELAY,
        TIMER_DELIVER_MS,
        TIMER_DELAY_SEC,
        TIMER_DELAY_MS,
        properties::CLUSTER,
    ];
    if timer {
        drop.extend([
            properties::REAL_TOPIC,
            properties::REAL_QUEUE_ID,
            TIMER_OUT_MS,
        ]);
    }
    let props = rewrite(msg.properties, &drop, &[]);
    let header = SendMessageRequestHeader {
        producer_group: SCHEDULE_PRODUCER.into(),
        topic: topic.clone(),
        default_topic: topics::AUTO_CREATE_TOPIC.into(),
        default_topic_queue_nums: 1,
        queue_id,
        sys_flag: msg.sys_flag,
        born_timestamp: msg.born_timestamp,
        flag: msg.flag,
        properties: Some(String::from_utf8_lossy(&props).into_owned()),
        reconsume_times: Some(msg.reconsume_times),
        ..SendMessageRequestHeader::default()
    };
    let cmd = RemotingCommand::request(request::SEND_MESSAGE)
        .with_header(&header)
        .with_body(msg.body.to_vec())
        .with_ext(INTERNAL_PUT, "1")
        .with_ext(BORN_HOST, msg.born_host.to_string());
    Ok((cmd, topic, queue_id))
}

/// Puts `msg` back to its real queue (on whichever core owns it).
pub(crate) async fn repute(
    core: &Rc<Core>,
    msg: &StoredMessage<'_>,
    timer: bool,
) -> Result<(), ReputError> {
    let (cmd, topic, queue_id) = repute_command(msg, timer)?;
    let owner = owner_core(&topic, queue_id, core.cores);
    match core.run_on(owner, cmd, Origin::Forwarded).await {
        Some(r)
            if r.command.code == response::SUCCESS
                || r.command.code == response::FLUSH_DISK_TIMEOUT =>
        {
            Ok(())
        }
        Some(r) => Err(ReputError::Refused {
            code: r.command.code,
            remark: r.command.remark.unwrap_or_default(),
        }),
        None => Err(ReputError::Refused {
            code: response::SYSTEM_ERROR,
            remark: "no answer".into(),
        }),
    }
}
