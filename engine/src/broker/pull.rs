//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361), run on the core owning the queue.
//!
//! `sysFlag` bits (RocketMQ `PullSysFlag`):
//!
//! | bit | value | meaning |
//! |---|---|---|
//! | 0 | 1 | commit `commitOffset` for the group first |
//! | 1 | 2 | the pull may be suspended (long polling) |
//! | 2 | 4 | the header carries the subscription expression |
//! | 3 | 8 | class filter (not supported; ignored) |
//! | 4 | 16 | lite pull |
//!
//! Store outcome → response (RocketMQ's mapping for a master):
//!
//! | store status | response |
//! |---|---|
//! | FOUND | SUCCESS, body = the stored records back to back |
//! | NO_MATCHED_MESSAGE, MESSAGE_WAS_REMOVING | PULL_RETRY_IMMEDIATELY |
//! | NO_MESSAGE_IN_QUEUE | PULL_OFFSET_MOVED if the offset asked is not 0, else PULL_NOT_FOUND |
//! | OFFSET_OVERFLOW_ONE, OFFSET_FOUND_NULL | PULL_NOT_FOUND (suspended first when allowed) |
//! | OFFSET_OVERFLOW_BADLY, OFFSET_TOO_SMALL | PULL_OFFSET_MOVED |
//!
//! Long polling: a pull that would answer PULL_NOT_FOUND with the suspend bit set waits on its
//! queue's arrival signal (fired by every message stored on the queue) and retries, until
//! `suspendTimeoutMillis` (or `shortPollingTimeMills` when long polling is off) has passed; then it
//! answers PULL_NOT_FOUND.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tern_net::code::response;
use tern_net::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use tern_net::transport::Reply;
use tern_net::zero_copy::FileRegion;
use tern_net::RemotingCommand;
use tern_store::message_store::GetStatus;
use tern_store::segment::ReadRange;

use super::core::{reply, Core, MeshMsg, Origin};
use super::filter::TagFilter;
use super::routing::{owner_core, STATE_CORE};
use super::topics::perm;

/// Pull sys-flag bits.
pub mod pull_flag {
    /// Commit `commitOffset` before pulling.
    pub const COMMIT_OFFSET: i32 = 1;
    /// The pull may be suspended.
    pub const SUSPEND: i32 = 1 << 1;
    /// The header carries the subscription.
    pub const SUBSCRIPTION: i32 = 1 << 2;
    /// Class filter mode.
    pub const CLASS_FILTER: i32 = 1 << 3;
    /// Lite pull consumer.
    pub const LITE_PULL: i32 = 1 << 4;
}

/// Default byte limit of one pull when the header has none.
const DEFAULT_MAX_BYTES: i32 = 256 * 1024 * 1024;
/// Most messages one pull returns, whatever the header asks.
const MAX_PULL_MSGS: i32 = 32 * 1024;

/// RocketMQ's name of a store status (sent as the response remark).
pub fn status_name(s: GetStatus) -> &'static str {
    match s {
        GetStatus::Found => "FOUND",
        GetStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
        GetStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
        GetStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
        GetStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        GetStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
        GetStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
        GetStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
    }
}

/// The response code for a store status when `offset` was asked (see the module table).
pub fn response_code(s: GetStatus, offset: i64) -> i32 {
    match s {
        GetStatus::Found => response::SUCCESS,
        GetStatus::NoMatchedMessage | GetStatus::MessageWasRemoving => {
            response::PULL_RETRY_IMMEDIATELY
        }
        GetStatus::NoMessageInQueue if offset != 0 => response::PULL_OFFSET_MOVED,
        GetStatus::NoMessageInQueue | GetStatus::OffsetOverflowOne | GetStatus::OffsetFoundNull => {
            response::PULL_NOT_FOUND
        }
        GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => response::PULL_OFFSET_MOVED,
    }
}

impl Core {
    pub(crate) async fn on_pull(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let mut req = req;
        let header: PullMessageRequestHeader = match req.decode_header() {
            Ok(h) => h,
            Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
        };
        let owner = owner_core(&header.topic, header.queue_id, self.cores);
        if owner != self.index {
            self.mark_pull_origin(&mut req, origin);
            return self.run_on(owner, req, origin).await;
        }
        Some(self.pull_here(&req, &header, origin).await)
    }

    async fn pull_here(
        &self,
        req: &RemotingCommand,
        h: &PullMessageRequestHeader,
        origin: Origin<'_>,
    ) -> Reply {
        if !perm::is_readable(self.live.broker_permission()) {
            return reply(
                req,
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] pulling message is forbidden",
                    self.config.broker_ip
                ),
            );
        }
        let Some(group) = self.group_or_create(&h.consumer_group) else {
            return reply(
                req,
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group [{}] does not exist", h.consumer_group),
            );
        };
        if !group.consume_enable {
            return reply(
                req,
                response::NO_PERMISSION,
                format!("subscription group no permission, {}", h.consumer_group),
            );
        }
        let Some(topic) = self.topics.borrow().limits(&h.topic) else {
            return reply(
                req,
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            );
        };
        if !perm::is_readable(topic.perm) {
            return reply(
                req,
                response::NO_PERMISSION,
                format!("the topic[{}] pulling message is forbidden", h.topic),
            );
        }
        if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
            return reply(
                req,
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                    h.queue_id, h.topic, topic.read_queue_nums
                ),
            );
        }
        let filter = if h.sys_flag & pull_flag::SUBSCRIPTION != 0 {
            let is_tag = h
                .expression_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("TAG"));
            if !is_tag {
                return reply(
                    req,
                    response::SUBSCRIPTION_PARSE_FAILED,
                    "The broker does not support consumer to filter message by SQL92",
                );
            }
            Rc::new(TagFilter::parse(h.subscription.as_deref().unwrap_or("*")))
        } else {
            let subs = self.subscriptions.borrow();
            match subs.get(&h.consumer_group).and_then(|g| g.get(&h.topic)) {
                Some(f) => Rc::clone(f),
                None => {
                    return reply(
                        req,
                        response::SUBSCRIPTION_NOT_EXIST,
                        "the consumer's subscription not exist",
                    )
                }
            }
        };
        if let Some(refusal) = self.refuse_locked_pull(req, h, origin) {
            return refusal;
        }
        if h.sys_flag & pull_flag::COMMIT_OFFSET != 0 && h.commit_offset >= 0 {
            self.commit_offset(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
        }
        let suspend = h.sys_flag & pull_flag::SUSPEND != 0;
        let wait = if self.live.long_polling_enable() {
            Duration::from_millis(h.suspend_timeout_millis.max(0) as u64)
        } else {
            self.live.short_polling_time()
        };
        let deadline = Instant::now() + wait;
        let mut max_msgs = h.max_msg_nums.clamp(1, MAX_PULL_MSGS);
        let mut max_bytes = h.max_msg_bytes.unwrap_or(DEFAULT_MAX_BYTES).max(1);
        let mut copy_capped = !matches!(origin, Origin::Local(_));
        loop {
            if copy_capped {
                (max_msgs, max_bytes) = super::pull_cap::capped(max_msgs, max_bytes);
            }
            let signal = self.arrivals.signal(&h.topic, h.queue_id);
            let seen = signal.generation();
            let fetched = match self
                .store
                .get(
                    &h.topic,
                    h.queue_id,
                    h.queue_offset,
                    max_msgs,
                    max_bytes,
                    &filter,
                )
                .await
            {
                Ok(f) => f,
                Err(e) => return reply(req, response::SYSTEM_ERROR, e.to_string()),
            };
            let code = response_code(fetched.status, h.queue_offset);
            let now = Instant::now();
            if code == response::PULL_NOT_FOUND && suspend && now < deadline {
                tern_runtime::timeout(deadline - now, signal.changed_since(seen)).await;
                continue;
            }
            let rsp_header = PullMessageResponseHeader {
                suggest_which_broker_id: self.suggest_broker_id(fetched.last_phys, &group),
                next_begin_offset: fetched.next_begin,
                min_offset: fetched.min,
                max_offset: fetched.max,
                topic_sys_flag: Some(topic.topic_sys_flag),
                group_sys_flag: Some(group.group_sys_flag),
                ..PullMessageResponseHeader::default()
            };
            let rsp = RemotingCommand::response_to(
                req,
                code,
                Some(status_name(fetched.status).to_string()),
            )
            .with_header(&rsp_header);
            if code != response::SUCCESS {
                return Reply::new(rsp);
            }
            let copied = !fetched
                .ranges
                .iter()
                .all(|r| matches!(r, ReadRange::File { .. }));
            let bytes = fetched.ranges.iter().map(ReadRange::len).sum();
            if copied && !copy_capped && super::pull_cap::over_cap(fetched.count, bytes) {
                copy_capped = true;
                continue;
            }
            self.stats
                .pulled_msgs
                .set(self.stats.pulled_msgs.get() + fetched.count as u64);
            return self
                .pull_body(rsp, fetched.ranges, &fetched.phys_offsets, origin)
                .await;
        }
    }

    /// Attaches the found records: zero-copy file regions on this core's own connections when every
    /// range is in a file, bytes otherwise.
    async fn pull_body(
        &self,
        mut rsp: RemotingCommand,
        ranges: Vec<ReadRange>,
        phys_offsets: &[u64],
        origin: Origin<'_>,
    ) -> Reply {
        debug_assert_eq!(ranges.len(), phys_offsets.len());
        let total: usize = ranges.iter().map(ReadRange::len).sum();
        let all_files = ranges.iter().all(|r| matches!(r, ReadRange::File { .. }));
        if matches!(origin, Origin::Local(_)) && all_files {
            let regions = ranges
                .into_iter()
                .filter_map(|r| match r {
                    ReadRange::File { file, offset, len } => Some(FileRegion { file, offset, len }),
                    ReadRange::Memory { .. } => None,
                })
                .collect();
            self.stats
                .zero_copy_bytes
                .set(self.stats.zero_copy_bytes.get() + total as u64);
            return Reply::with_file_body(rsp, regions);
        }
        let mut body = Vec::with_capacity(total);
        if let Err(e) = self
            .store
            .append_records(&ranges, phys_offsets, &mut body)
            .await
        {
            let mut err = rsp;
            err.code = response::SYSTEM_ERROR;
            err.remark = Some(format!("cannot read stored messages: {e}"));
            err.ext_fields.clear();
            return Reply::new(err);
        }
        self.stats
            .copied_bytes
            .set(self.stats.copied_bytes.get() + total as u64);
        rsp.body = body;
        Reply::new(rsp)
    }

    /// Records a consumer offset on the state core.
    pub(crate) fn commit_offset(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        if self.index == STATE_CORE {
            self.offsets
                .borrow_mut()
                .commit(group, topic, queue_id, offset);
        } else {
            self.send_mesh(
                STATE_CORE,
                MeshMsg::CommitOffset {
                    group: group.to_string(),
                    topic: topic.to_string(),
                    queue_id,
                    offset,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let cases = [
            (GetStatus::Found, 5, response::SUCCESS),
            (GetStatus::NoMessageInQueue, 0, response::PULL_NOT_FOUND),
            (GetStatus::NoMessageInQueue, 3, response::PULL_OFFSET_MOVED),
            (GetStatus::OffsetOverflowOne, 3, response::PULL_NOT_FOUND),
            (
                GetStatus::OffsetOverflowBadly,
                3,
                response::PULL_OFFSET_MOVED,
            ),
            (
                GetStatus::NoMatchedMessage,
                3,
                response::PULL_RETRY_IMMEDIATELY,
            ),
        ];
        for (status, min_offset, code) in cases {
            assert_eq!(response_code(status, min_offset), code, "{status:?}");
        }
        assert_eq!(status_name(GetStatus::OffsetTooSmall), "OFFSET_TOO_SMALL");
    }
}
