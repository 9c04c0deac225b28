//! Typed requests to a broker through `RemotingClient`, and the headers they share with the raw
//! frames of `frames.rs`.

use std::time::{Duration, Instant};

use tern_net::code::{request, response};
use tern_net::header::{
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, PullMessageRequestHeader,
    SendMessageRequestHeader,
};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;

use super::frames::ANSWER_TIMEOUT;

/// A remoting client with the default settings (its own connections).
pub fn client() -> RemotingClient {
    RemotingClient::new(ClientConfig::default())
}

/// A SEND_MESSAGE header of group `bad_pg` for `topic`/`queue_id` with the given encoded
/// properties, born at a fixed time; override fields with `..send_header(..)`.
pub fn send_header(topic: &str, queue_id: i32, properties: &str) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "bad_pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: Some(properties.into()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        ..SendMessageRequestHeader::default()
    }
}

/// A PULL_MESSAGE header of group `bad_cg` from `offset`, up to 32 messages, subscription `*`
/// in the header, no long polling, no commit; override fields with `..pull_header(..)`.
pub fn pull_header(topic: &str, queue_id: i32, offset: i64) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: "bad_cg".into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        // The subscription travels in the header.
        sys_flag: 4,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some("*".into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::default()
    }
}

/// The stored records of a pull response body, each as its raw bytes, in order. Panics on a
/// record that does not decode.
pub fn split_records(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let m = StoredMessage::decode(rest).expect("stored record");
        out.push(rest[..m.total_size].to_vec());
        rest = &rest[m.total_size..];
    }
    out
}

/// The GET_MAX_OFFSET response for `(topic, queue_id)`. Panics when the broker does not answer
/// within [`ANSWER_TIMEOUT`].
async fn get_max_offset(
    c: &RemotingClient,
    addr: &str,
    topic: &str,
    queue_id: i32,
) -> RemotingCommand {
    let h = GetMaxOffsetRequestHeader {
        topic: topic.into(),
        queue_id,
        ..Default::default()
    };
    let cmd = RemotingCommand::request(request::GET_MAX_OFFSET).with_header(&h);
    c.invoke(addr, cmd, ANSWER_TIMEOUT)
        .await
        .expect("max offset")
}

/// GET_MAX_OFFSET of `(topic, queue_id)`: `None` when the answer carries no offset (an error,
/// e.g. no such queue).
pub async fn try_max_offset(
    c: &RemotingClient,
    addr: &str,
    topic: &str,
    queue_id: i32,
) -> Option<i64> {
    get_max_offset(c, addr, topic, queue_id)
        .await
        .decode_header::<GetMaxOffsetResponseHeader>()
        .ok()
        .map(|h| h.offset)
}

/// GET_MAX_OFFSET of `(topic, queue_id)`; asserts SUCCESS.
pub async fn max_offset(c: &RemotingClient, addr: &str, topic: &str, queue_id: i32) -> i64 {
    let rsp = get_max_offset(c, addr, topic, queue_id).await;
    assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
    rsp.decode_header::<GetMaxOffsetResponseHeader>()
        .unwrap()
        .offset
}

/// Polls `cond` every 20 ms until it holds; panics ("timed out waiting for {what}") once
/// `limit` has passed.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tern_runtime::sleep(Duration::from_millis(20)).await;
    }
}
