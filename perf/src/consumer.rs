//! The consumer: one long-polling PULL_MESSAGE loop per queue, queues spread over `--threads`
//! executors (one connection per executor and broker). Each pull commits the offset consumed so far
//! (the pull's commit flag); the final offsets are committed with UPDATE_CONSUMER_OFFSET.
//!
//! Latency is end to end: receive time minus the stored record's born timestamp, stamped by the
//! producer's clock, so it is meaningful only with producer and consumer on hosts with synchronized
//! clocks (or the same host). Both are whole milliseconds, so the figures have millisecond
//! resolution: a value of 0 ms is recorded as 1 µs (the histogram's floor).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tern_net::code::{request, response};
use tern_net::header::{
    PullMessageRequestHeader, PullMessageResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, UpdateConsumerOffsetRequestHeader,
};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;
use tern_store::message::StoredMessage;

use crate::run::{now_millis, response_label, ExecutorResult, ReportOptions, RunControl};
use crate::target::{self, QueueTarget, TargetOptions};
use crate::PerfError;

/// PULL_MESSAGE sysFlag bits: commit offset, suspend (long poll), subscription in the header.
const PULL_FLAGS: i32 = 1 | 2 | 4;
/// Messages asked for per pull.
const MAX_MSGS_PER_PULL: i32 = 32;
/// How much longer than the long-poll hold a pull response may take before it counts as lost.
const PULL_GRACE: Duration = Duration::from_secs(5);

/// Consumer options (`tern-perf consumer`).
#[derive(Debug, Clone, Args)]
pub struct ConsumerOptions {
    /// Where to pull from.
    #[command(flatten)]
    pub target: TargetOptions,
    /// Consumer group.
    #[arg(long, default_value = "tern_perf_cg")]
    pub group: String,
    /// Subscription expression (TAG syntax).
    #[arg(long, default_value = "*")]
    pub subscription: String,
    /// Executors (threads).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Long-poll hold time per pull, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub suspend_ms: u64,
    /// How long to run and where the report goes.
    #[command(flatten)]
    pub report: ReportOptions,
}

/// Runs the consumer to completion and prints progress and the report to stdout.
pub fn run(opts: &ConsumerOptions) -> Result<(), PerfError> {
    opts.target.validate()?;
    if opts.threads == 0 {
        return Err(PerfError::Options("--threads must be at least 1".into()));
    }
    let targets = match (&opts.target.broker, &opts.target.namesrv) {
        (Some(addr), _) => target::direct(addr, opts.target.queues),
        (None, Some(ns)) => {
            let (ns, topic) = (ns.clone(), opts.target.topic.clone());
            tern_runtime::block_on("perf-route", async move {
                let client = RemotingClient::new(ClientConfig::default());
                target::resolve(&client, &ns, &topic, true, 0).await
            })??
        }
        (None, None) => Vec::new(),
    };
    let threads = opts.threads.min(targets.len()).max(1);
    println!(
        "consumer: {} queue(s), {threads} executor(s), group {}",
        targets.len(),
        opts.group
    );
    let ctl = opts.report.control();
    let plan = Arc::new(opts.clone());
    let mut handles = Vec::new();
    for t in 0..threads {
        let mine: Vec<QueueTarget> = targets.iter().skip(t).step_by(threads).cloned().collect();
        let (plan, ctl2) = (Arc::clone(&plan), Arc::clone(&ctl));
        handles.push(tern_runtime::spawn_executor(
            &format!("perf-consumer-{t}"),
            None,
            move || async move {
                let r = executor_main(plan, Arc::clone(&ctl2), mine).await;
                ctl2.executor_finished();
                r
            },
        )?);
    }
    crate::run::finish(&ctl, handles, "end-to-end", &opts.report)
}

async fn executor_main(
    plan: Arc<ConsumerOptions>,
    ctl: Arc<RunControl>,
    queues: Vec<QueueTarget>,
) -> ExecutorResult {
    let client = Rc::new(RemotingClient::new(ClientConfig::default()));
    let result = Rc::new(RefCell::new(ExecutorResult::default()));
    let tasks: Vec<_> = queues
        .into_iter()
        .map(|q| {
            tern_runtime::spawn_local(pull_loop(
                Arc::clone(&plan),
                Arc::clone(&ctl),
                Rc::clone(&client),
                Rc::clone(&result),
                q,
            ))
        })
        .collect();
    ExecutorResult::join(tasks, result).await
}

/// Sends `cmd` and waits for its response, or gives up at the run's deadline (`Ok(None)`).
async fn invoke_until_deadline(
    ctl: &RunControl,
    client: &RemotingClient,
    addr: &str,
    cmd: RemotingCommand,
    timeout: Duration,
) -> Option<Result<RemotingCommand, tern_net::transport::ClientError>> {
    let call = client.invoke(addr, cmd, timeout);
    match ctl.remaining() {
        Some(left) => tern_runtime::timeout(left, call).await,
        None => Some(call.await),
    }
}

/// The group's committed offset of `q`, or 0 when none is committed.
async fn committed_offset(
    plan: &ConsumerOptions,
    client: &RemotingClient,
    q: &QueueTarget,
) -> Result<i64, String> {
    let h = QueryConsumerOffsetRequestHeader {
        consumer_group: plan.group.clone(),
        topic: plan.target.topic.clone(),
        queue_id: q.queue_id,
        ..Default::default()
    };
    let cmd = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET).with_header(&h);
    let rsp = client
        .invoke(&q.addr, cmd, Duration::from_secs(5))
        .await
        .map_err(|e| format!("transport: {e}"))?;
    match rsp.code {
        response::SUCCESS => rsp
            .decode_header::<QueryConsumerOffsetResponseHeader>()
            .map(|h| h.offset)
            .map_err(|e| format!("bad QUERY_CONSUMER_OFFSET response: {e}")),
        response::QUERY_NOT_FOUND => Ok(0),
        code => Err(response_label(code)),
    }
}

async fn commit_offset(plan: &ConsumerOptions, client: &RemotingClient, q: &QueueTarget, at: i64) {
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: plan.group.clone(),
        topic: plan.target.topic.clone(),
        queue_id: q.queue_id,
        commit_offset: at,
        broker_name: None,
    };
    let cmd = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET).with_header(&h);
    // Best effort at the end of a run: a lost commit only means re-reading next time.
    let _ = client.invoke(&q.addr, cmd, Duration::from_secs(5)).await;
}

/// Pulls `q` until the run is over, recording each received record's end-to-end latency.
async fn pull_loop(
    plan: Arc<ConsumerOptions>,
    ctl: Arc<RunControl>,
    client: Rc<RemotingClient>,
    result: Rc<RefCell<ExecutorResult>>,
    q: QueueTarget,
) {
    let mut offset = match committed_offset(&plan, &client, &q).await {
        Ok(o) => o,
        Err(cause) => {
            ctl.record_error();
            result.borrow_mut().count_error(cause);
            return;
        }
    };
    let hold = Duration::from_millis(plan.suspend_ms);
    while !ctl.is_over() {
        let header = PullMessageRequestHeader {
            consumer_group: plan.group.clone(),
            topic: plan.target.topic.clone(),
            queue_id: q.queue_id,
            queue_offset: offset,
            max_msg_nums: MAX_MSGS_PER_PULL,
            sys_flag: PULL_FLAGS,
            commit_offset: offset,
            suspend_timeout_millis: plan.suspend_ms as i64,
            subscription: Some(plan.subscription.clone()),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            ..PullMessageRequestHeader::default()
        };
        let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_header(&header);
        let Some(outcome) =
            invoke_until_deadline(&ctl, &client, &q.addr, cmd, hold + PULL_GRACE).await
        else {
            break;
        };
        let rsp = match outcome {
            Ok(rsp) => rsp,
            Err(e) => {
                ctl.record_error();
                result.borrow_mut().count_error(format!("transport: {e}"));
                tern_runtime::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let next = rsp
            .decode_header::<PullMessageResponseHeader>()
            .map(|h| h.next_begin_offset);
        match (rsp.code, next) {
            (response::SUCCESS, Ok(next)) => {
                let now = now_millis();
                let (mut msgs, mut bytes) = (0u64, 0u64);
                let mut rest = rsp.body.as_slice();
                let mut res = result.borrow_mut();
                while !rest.is_empty() {
                    let Ok(m) = StoredMessage::decode(rest) else {
                        res.count_error("undecodable stored record".into());
                        ctl.record_error();
                        break;
                    };
                    let e2e_us = (now - m.born_timestamp).max(0) as u64 * 1000;
                    res.latency.saturating_record(e2e_us.max(1));
                    ctl.record_window_latency(e2e_us);
                    msgs += 1;
                    bytes += m.body.len() as u64;
                    rest = rest.get(m.total_size..).unwrap_or_default();
                }
                drop(res);
                ctl.record_success(msgs, bytes);
                offset = next;
            }
            (
                response::PULL_NOT_FOUND
                | response::PULL_RETRY_IMMEDIATELY
                | response::PULL_OFFSET_MOVED,
                Ok(next),
            ) => offset = next,
            (code, _) => {
                ctl.record_error();
                result.borrow_mut().count_error(response_label(code));
                // A topic not created yet (the producer has not sent) is retried at the long-poll
                // pace; other failures after a short pause.
                let pause = if code == response::TOPIC_NOT_EXIST {
                    hold
                } else {
                    Duration::from_millis(10)
                };
                tern_runtime::sleep(pause).await;
            }
        }
        tern_runtime::yield_if_needed().await;
    }
    commit_offset(&plan, &client, &q, offset).await;
}
