//! QUERY_MESSAGE (12): messages of a topic by key (KEYS) or unique key (UNIQ_KEY) within a store
//! time range, from every core's Index.
//!
//! The receiving core queries its own shard and asks every other core for its matches (the same
//! request with [`SHARD_PART`] set); the body is the stored records concatenated, at most `maxNum`
//! of them (RocketMQ's `defaultQueryMaxNum`, 32, for a unique-key query). No match is
//! QUERY_NOT_FOUND. The response header's `indexLastUpdatePhyoffset` is the highest CommitLog end
//! among the cores (the Index is written with each put) and `indexLastUpdateTimestamp` the newest
//! store time among the returned records (0 when none).

use std::rc::Rc;

use tern_net::code::response;
use tern_net::header::{QueryMessageRequestHeader, QueryMessageResponseHeader};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;

use super::core::{reply, success, Core, Origin};

/// Extension field marking a query one core sends another for its own shard only.
const SHARD_PART: &str = "ternShardPart";
/// The client's flag for a unique-key (message id) query.
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";
/// Results of a unique-key query (RocketMQ's `defaultQueryMaxNum`).
const UNIQUE_QUERY_MAX: usize = 32;
/// Upper bound on any query's results (RocketMQ's `maxMsgsNumBatch`).
const QUERY_MAX: usize = 64;

impl Core {
    pub(crate) async fn on_query_message(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let h: QueryMessageRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        let max = if req.ext(UNIQUE_KEY_QUERY) == Some("true") {
            UNIQUE_QUERY_MAX
        } else {
            usize::try_from(h.max_num).unwrap_or(0).min(QUERY_MAX)
        };
        let mut body = Vec::new();
        let mut found = match self
            .store
            .query_by_key(
                &h.topic,
                &h.key,
                max,
                h.begin_timestamp,
                h.end_timestamp,
                &mut body,
            )
            .await
        {
            Ok(n) => n,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        let mut phys_end = i64::try_from(self.store.commit_log_max_offset()).unwrap_or(i64::MAX);
        if req.ext(SHARD_PART).is_none() {
            for other in (0..self.cores).filter(|&c| c != self.index) {
                if found >= max {
                    break;
                }
                let part = req.clone().with_ext(SHARD_PART, "true");
                let Some(r) = self.run_on(other, part, origin).await else {
                    continue;
                };
                let rsp = r.command;
                if let Ok(ph) = rsp.decode_header::<QueryMessageResponseHeader>() {
                    phys_end = phys_end.max(ph.index_last_update_phyoffset);
                }
                if rsp.code == response::SUCCESS {
                    append_records(&rsp.body, max - found, &mut body, &mut found);
                }
            }
        }
        let header = QueryMessageResponseHeader {
            index_last_update_timestamp: newest_store_time(&body),
            index_last_update_phyoffset: phys_end,
        };
        let rsp = if found > 0 {
            success(&req).with_body(body)
        } else {
            RemotingCommand::response_to(
                &req,
                response::QUERY_NOT_FOUND,
                Some("can not find message, maybe time range not correct".into()),
            )
        };
        Some(Reply::new(rsp.with_header(&header)))
    }
}

/// Appends at most `room` whole records of `records` (concatenated stored messages) to `out`.
fn append_records(records: &[u8], room: usize, out: &mut Vec<u8>, found: &mut usize) {
    let mut rest = records;
    for _ in 0..room {
        let Some(size) = record_len(rest) else {
            return;
        };
        let Some((record, tail)) = rest.split_at_checked(size) else {
            return;
        };
        out.extend_from_slice(record);
        *found += 1;
        rest = tail;
    }
}

/// The length of the record at the start of `bytes` (its TOTALSIZE field), if plausible.
fn record_len(bytes: &[u8]) -> Option<usize> {
    let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    usize::try_from(i32::from_be_bytes(head))
        .ok()
        .filter(|&n| n >= 4)
}

/// The newest store time among the concatenated records (0 when none decode).
fn newest_store_time(records: &[u8]) -> i64 {
    let mut newest = 0;
    let mut rest = records;
    while let Some(size) = record_len(rest) {
        let Some((record, tail)) = rest.split_at_checked(size) else {
            break;
        };
        if let Ok(m) = StoredMessage::decode(record) {
            newest = newest.max(m.store_timestamp);
        }
        rest = tail;
    }
    newest
}
