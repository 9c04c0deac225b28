//! The client's orderly push consumer against `tern-broker` (2 cores): it locks its queues with
//! LOCK_BATCH_MQ and receives every queue in queue-offset order, also after a consumer restart
//! (the second consumer resumes from the committed offsets and gets only the new messages).

use std::sync::Mutex;

use rocketmq_client_rust::{ConsumeOrderlyContext, ConsumeOrderlyStatus};

use super::*;

/// (queue id, queue offset, body) of each delivery, in delivery order.
type Log = Arc<Mutex<Vec<(i32, i64, String)>>>;

async fn orderly_consumer(
    client: &ClientHarness,
    namesrv: &str,
    group: &str,
    topic: &str,
) -> (DefaultMQPushConsumer, Log) {
    let log = Log::default();
    let mut consumer = DefaultMQPushConsumer::builder(client.runtime())
        .consumer_group(group)
        .name_server_addr(namesrv)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .pull_batch_size(4)
        .build();
    within("subscribe", consumer.subscribe(topic, "*"))
        .await
        .expect("subscribe");
    let sink = Arc::clone(&log);
    consumer.register_message_listener_orderly(
        move |msgs: &[&MessageExt], _context: &mut ConsumeOrderlyContext| {
            let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
            for msg in msgs {
                let body = msg.body().unwrap_or_default();
                sink.push((
                    msg.queue_id(),
                    msg.queue_offset(),
                    String::from_utf8_lossy(&body).into_owned(),
                ));
            }
            Ok(ConsumeOrderlyStatus::Success)
        },
    );
    within("orderly consumer start", consumer.start())
        .await
        .expect("orderly consumer starts");
    (consumer, log)
}

/// Waits for `sent.len()` deliveries, then checks each arrived once and each queue in order.
async fn await_in_order(what: &str, log: &Log, sent: &[(Stored, String)]) {
    let deadline = tokio::time::Instant::now() + DELIVERY_LIMIT;
    while log.lock().map_or(0, |l| l.len()) < sent.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} of {} within {DELIVERY_LIMIT:?}",
            log.lock().map_or(0, |l| l.len()),
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    let mut expected: Vec<(i32, i64, String)> = sent
        .iter()
        .map(|(s, b)| (s.queue_id, s.queue_offset, b.clone()))
        .collect();
    expected.sort();
    let mut got = log.clone();
    got.sort();
    assert_eq!(got, expected, "{what}: wrong or repeated deliveries");
    let mut last: HashMap<i32, i64> = HashMap::new();
    for (q, offset, _) in log.iter() {
        if let Some(prev) = last.insert(*q, *offset) {
            assert!(
                prev < *offset,
                "{what}: queue {q} out of order: {prev} then {offset}"
            );
        }
    }
}

/// One PULL_MESSAGE of `(topic, queue)` for `group` over a fresh connection.
fn raw_pull(broker: SocketAddr, group: &str, topic: &str, queue: i32) -> RemotingCommand {
    let header = tern_net::header::PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: queue,
        queue_offset: 0,
        max_msg_nums: 1,
        sys_flag: 4,
        subscription: Some("*".into()),
        ..Default::default()
    };
    pull_once(broker, &header)
}

#[test]
fn orderly_consumer_keeps_queue_order_across_a_restart() {
    let client = ClientHarness::new("orderly", SerializeType::JSON);
    let cluster = Cluster::start_with(2, "rebalanceLockMaxLiveTime=3000\n", &client);
    let topic = "TernOrderly";
    let ns = cluster.namesrv.addr_string();
    client.block_on(async {
        let mut producer = start_producer(&client, &ns, topic, 0).await;
        let mut first = Vec::new();
        for i in 0..24 {
            first.push((sync_send_ok(&producer, topic, i).await, message_body(i)));
        }
        let (mut consumer, log) = orderly_consumer(&client, &ns, "TernOrderly_CG", topic).await;
        await_in_order("first consumer", &log, &first).await;
        // The consumer holds its queues: a pull of one from another connection is refused.
        let queue = first[0].0.queue_id;
        assert_eq!(
            raw_pull(cluster.broker.addr, "TernOrderly_CG", topic, queue).code,
            code::response::NO_PERMISSION
        );
        consumer.shutdown().await;

        let mut second = Vec::new();
        for i in 24..48 {
            second.push((sync_send_ok(&producer, topic, i).await, message_body(i)));
        }
        let (mut consumer, log) = orderly_consumer(&client, &ns, "TernOrderly_CG", topic).await;
        await_in_order("restarted consumer", &log, &second).await;
        consumer.shutdown().await;
        producer.shutdown().await;
    });
}
