//! The producer: SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE, or one-way sends) from `--threads`
//! executors × their share of `--connections` connections × `--concurrency` pipelined senders per
//! connection, spread round-robin over the topic's queues.
//!
//! Latency is measured per request. With `--rate`, sending is open-loop: each sender has a fixed
//! schedule of intended send times and latency counts from the intended time, so a stalled broker
//! shows up in the percentiles instead of slowing the schedule (coordinated-omission correction).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tern_net::body::KvTable;
use tern_net::code::{request, response};
use tern_net::header::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use tern_net::transport::{ClientConfig, RemotingClient};
use tern_net::RemotingCommand;

use crate::batch;
use crate::run::{now_millis, response_label, ExecutorResult, ReportOptions, RunControl};
use crate::target::{self, QueueTarget, TargetOptions};
use crate::PerfError;

/// Producer options (`tern-perf producer`).
#[derive(Debug, Clone, Args)]
pub struct ProducerOptions {
    /// Where to send.
    #[command(flatten)]
    pub target: TargetOptions,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Connections in total (spread over the executors).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Executors (threads), each with its own clients.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Sends in flight per connection (pipelined: the `--async` behaviour when above 1).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Messages per request (SEND_BATCH_MESSAGE when above 1).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// One-way sends (no response; latency is the time to queue the request).
    #[arg(long)]
    pub oneway: bool,
    /// Open-loop target rate in messages per second over all senders.
    #[arg(long)]
    pub rate: Option<u64>,
    /// TAGS property.
    #[arg(long, default_value = "TagA")]
    pub tags: String,
    /// KEYS property (omitted when empty).
    #[arg(long, default_value = "")]
    pub keys: String,
    /// Producer group.
    #[arg(long, default_value = "tern_perf_pg")]
    pub group: String,
    /// Response timeout per request, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// How long to run and where the report goes.
    #[command(flatten)]
    pub report: ReportOptions,
}

impl ProducerOptions {
    fn validate(&self) -> Result<(), PerfError> {
        self.target.validate()?;
        if self.threads == 0 || self.connections == 0 || self.concurrency == 0 || self.batch == 0 {
            return Err(PerfError::Options(
                "--threads, --connections, --concurrency and --batch must be at least 1".into(),
            ));
        }
        if self.rate == Some(0) {
            return Err(PerfError::Options("--rate must be positive".into()));
        }
        Ok(())
    }
}

/// Everything a sender needs, shared by the senders of one executor.
struct SenderPlan {
    targets: Vec<QueueTarget>,
    topic: String,
    group: String,
    properties: String,
    body: Vec<u8>,
    batch_body: Option<Vec<u8>>,
    batch: u64,
    /// Queues of the topic if the broker auto-creates it (`defaultTopicQueueNums`).
    default_queue_nums: i32,
    oneway: bool,
    timeout: Duration,
    /// Interval between a sender's intended send times (open loop), if rate-limited.
    interval: Option<Duration>,
}

/// Runs the producer to completion and prints progress and the report to stdout.
pub fn run(opts: &ProducerOptions) -> Result<(), PerfError> {
    opts.validate()?;
    let targets = resolve_targets(opts)?;
    if let Some(first) = targets.first() {
        print_broker_info(&first.addr)?;
    }
    let senders = opts.connections * opts.concurrency;
    let properties = {
        let mut pairs = vec![("TAGS", opts.tags.as_str()), ("WAIT", "true")];
        if !opts.keys.is_empty() {
            pairs.push(("KEYS", opts.keys.as_str()));
        }
        batch::encode_properties(&pairs)
    };
    let body = vec![b'x'; opts.size];
    let batch_body = if opts.batch > 1 {
        let mut b = Vec::with_capacity(opts.batch * (batch::FIXED_LEN + opts.size + 64));
        for _ in 0..opts.batch {
            batch::append_message(&mut b, 0, &body, properties.as_bytes())?;
        }
        Some(b)
    } else {
        None
    };
    let interval = opts.rate.map(|r| {
        let requests_per_sec = r as f64 / opts.batch as f64 / senders as f64;
        Duration::from_secs_f64(1.0 / requests_per_sec)
    });
    let plan = Arc::new(SenderPlan {
        targets,
        topic: opts.target.topic.clone(),
        group: opts.group.clone(),
        properties,
        body,
        batch_body,
        batch: opts.batch as u64,
        default_queue_nums: opts.target.queues,
        oneway: opts.oneway,
        timeout: Duration::from_millis(opts.timeout_ms),
        interval,
    });
    println!(
        "producer: {} queue(s), {} executor(s), {} connection(s) x {} in flight, {} B body, batch {}{}{}",
        plan.targets.len(),
        opts.threads,
        opts.connections,
        opts.concurrency,
        opts.size,
        opts.batch,
        if opts.oneway { ", oneway" } else { "" },
        opts.rate.map(|r| format!(", {r} msgs/s open loop")).unwrap_or_default()
    );
    let ctl = opts.report.control();
    let mut handles = Vec::new();
    let mut sender_index = 0;
    for t in 0..opts.threads {
        // Connections split as evenly as possible; executors without one still start and finish.
        let conns =
            opts.connections / opts.threads + usize::from(t < opts.connections % opts.threads);
        let (plan, ctl2) = (Arc::clone(&plan), Arc::clone(&ctl));
        let first = sender_index;
        let concurrency = opts.concurrency;
        sender_index += conns * concurrency;
        handles.push(tern_runtime::spawn_executor(
            &format!("perf-producer-{t}"),
            None,
            move || async move {
                let r = executor_main(plan, Arc::clone(&ctl2), conns, concurrency, first).await;
                ctl2.executor_finished();
                r
            },
        )?);
    }
    crate::run::finish(&ctl, handles, "send", &opts.report)
}

fn resolve_targets(opts: &ProducerOptions) -> Result<Vec<QueueTarget>, PerfError> {
    let t = &opts.target;
    if let Some(addr) = &t.broker {
        return Ok(target::direct(addr, t.queues));
    }
    let namesrv = t.namesrv.clone().unwrap_or_default();
    let (topic, queues) = (t.topic.clone(), t.queues);
    tern_runtime::block_on("perf-route", async move {
        let client = RemotingClient::new(ClientConfig::default());
        target::resolve(&client, &namesrv, &topic, false, queues).await
    })?
}

/// Prints what the broker says about itself (GET_BROKER_RUNTIME_INFO): its version and, when it
/// reports them, its flush mode and CommitLog backend. Silent when the broker does not answer.
fn print_broker_info(addr: &str) -> Result<(), PerfError> {
    let addr = addr.to_string();
    let line = tern_runtime::block_on("perf-broker-info", async move {
        let client = RemotingClient::new(ClientConfig::default());
        let cmd = RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO);
        let rsp = client
            .invoke(&addr, cmd, Duration::from_secs(5))
            .await
            .ok()?;
        let info: KvTable = tern_net::body::decode(&rsp.body).ok()?;
        let field = |k: &str| info.table.get(k).map_or("(not reported)", String::as_str);
        Some(format!(
            "broker {addr}: {}, flushDiskType {}, commitLogIoMode {}",
            field("brokerVersionDesc"),
            field("flushDiskType"),
            field("commitLogIoMode")
        ))
    })?;
    if let Some(line) = line {
        println!("{line}");
    }
    Ok(())
}

async fn executor_main(
    plan: Arc<SenderPlan>,
    ctl: Arc<RunControl>,
    connections: usize,
    concurrency: usize,
    first_sender: usize,
) -> ExecutorResult {
    let result = Rc::new(RefCell::new(ExecutorResult::default()));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = Rc::new(RemotingClient::new(ClientConfig::default()));
        for s in 0..concurrency {
            let index = first_sender + c * concurrency + s;
            tasks.push(tern_runtime::spawn_local(sender(
                Arc::clone(&plan),
                Arc::clone(&ctl),
                Rc::clone(&client),
                Rc::clone(&result),
                index,
            )));
        }
    }
    ExecutorResult::join(tasks, result).await
}

/// The request for `n` messages (`n` ≤ the batch size; a smaller final batch at a `--count` limit
/// carries only its first `n` packed messages, all packed messages being the same length).
fn send_command(plan: &SenderPlan, target: &QueueTarget, n: u64) -> RemotingCommand {
    let header = SendMessageRequestHeader {
        producer_group: plan.group.clone(),
        topic: plan.topic.clone(),
        default_topic: target::DEFAULT_TOPIC.into(),
        default_topic_queue_nums: plan.default_queue_nums,
        queue_id: target.queue_id,
        sys_flag: 0,
        born_timestamp: now_millis(),
        flag: 0,
        properties: Some(plan.properties.clone()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(plan.batch_body.is_some()),
        ..SendMessageRequestHeader::default()
    };
    let header = SendMessageRequestHeaderV2::from(header);
    match &plan.batch_body {
        Some(body) => {
            let item_len = body.len() / plan.batch.max(1) as usize;
            let len = (item_len * n as usize).min(body.len());
            RemotingCommand::request(request::SEND_BATCH_MESSAGE)
                .with_header(&header)
                .with_body(body.get(..len).unwrap_or(body).to_vec())
        }
        None => RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_header(&header)
            .with_body(plan.body.clone()),
    }
}

/// One pipelined sender: claims messages, sends them one request at a time, records latency.
async fn sender(
    plan: Arc<SenderPlan>,
    ctl: Arc<RunControl>,
    client: Rc<RemotingClient>,
    result: Rc<RefCell<ExecutorResult>>,
    index: usize,
) {
    let mut next_queue = index;
    // Senders start their schedules spread over one interval so they do not fire together.
    let mut intended = plan.interval.map(|iv| {
        let spread = iv.mul_f64((index % 64) as f64 / 64.0);
        Instant::now() + spread
    });
    loop {
        let n = ctl.claim(plan.batch);
        if n == 0 {
            break;
        }
        let start = match (&mut intended, plan.interval) {
            (Some(at), Some(iv)) => {
                let t = *at;
                *at += iv;
                let now = Instant::now();
                if t > now {
                    tern_runtime::sleep(t - now).await;
                }
                t
            }
            _ => Instant::now(),
        };
        let Some(target) = plan.targets.get(next_queue % plan.targets.len().max(1)) else {
            break;
        };
        next_queue = next_queue.wrapping_add(1);
        let cmd = send_command(&plan, target, n);
        let bytes = n * plan.body.len() as u64;
        let outcome = if plan.oneway {
            client
                .invoke_oneway(&target.addr, cmd)
                .await
                .map(|()| response::SUCCESS)
        } else {
            client
                .invoke(&target.addr, cmd, plan.timeout)
                .await
                .map(|rsp| rsp.code)
        };
        let elapsed = start.elapsed().as_micros() as u64;
        match outcome {
            Ok(response::SUCCESS) => {
                result
                    .borrow_mut()
                    .latency
                    .saturating_record(elapsed.max(1));
                ctl.record_window_latency(elapsed);
                ctl.record_success(n, bytes);
            }
            Ok(code) => {
                ctl.record_error();
                result.borrow_mut().count_error(response_label(code));
            }
            Err(e) => {
                ctl.record_error();
                result.borrow_mut().count_error(format!("transport: {e}"));
                // Back off a little so a dead broker does not spin the executor.
                tern_runtime::sleep(Duration::from_millis(10)).await;
            }
        }
        tern_runtime::yield_if_needed().await;
    }
}
