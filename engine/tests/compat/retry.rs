//! Issue 6's acceptance with the stock client: a push consumer whose listener always answers
//! RECONSUME_LATER gets each message back from `%RETRY%<group>` after the delay of level
//! `3 + reconsumeTimes` of the broker's (short) `messageDelayLevel`, with `reconsumeTimes` one
//! higher each time; once `reconsumeTimes` reaches the consumer's `maxReconsumeTimes` the broker
//! puts the message in `%DLQ%<group>`, where a pull reads it.

use std::sync::Mutex;
use std::time::Instant;

use tern_store::message::StoredMessage;

use super::*;

/// Delay levels of this test: level 3 is 1 s, level 4 is 2 s.
const LEVELS: &str = "messageDelayLevel=1s 1s 1s 2s 2s 2s\n";
/// Delay of level `3 + n` for the n-th redelivery under [`LEVELS`].
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
/// The consumer's `maxReconsumeTimes`: two redeliveries, then the DLQ.
const MAX_RECONSUME: i32 = 2;
/// Allowed lateness of a redelivery: the broker's 100 ms plus the client's pull round trip and
/// a busy 2-core CI machine.
const LATE: Duration = Duration::from_millis(1500);

/// (reconsumeTimes, topic as the listener saw it, when) of each delivery, in order.
type Seen = Arc<Mutex<Vec<(i32, String, Instant)>>>;

/// One PULL_MESSAGE of queue 0 of `topic` from offset 0; the records answered.
fn pull_records(broker: SocketAddr, topic: &str) -> Vec<Vec<u8>> {
    let header = tern_net::header::PullMessageRequestHeader {
        consumer_group: "TernRetry_DLQReader".into(),
        topic: topic.into(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: 4,
        subscription: Some("*".into()),
        ..Default::default()
    };
    let rsp = pull_once(broker, &header);
    if rsp.code != code::response::SUCCESS {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut rest = &rsp.body[..];
    while let Ok(m) = StoredMessage::decode(rest) {
        out.push(rest[..m.total_size].to_vec());
        rest = &rest[m.total_size..];
    }
    out
}

#[test]
fn reconsume_later_retries_at_level_3_plus_n_then_dead_letters() {
    let client = ClientHarness::new("retry", SerializeType::JSON);
    let cluster = Cluster::start_with(2, LEVELS, &client);
    let ns = cluster.namesrv.addr_string();
    let topic = "TernRetry";
    let group = "TernRetry_CG";
    let seen = Seen::default();
    client.block_on(async {
        let mut producer = start_producer(&client, &ns, topic, 0).await;
        sync_send_ok(&producer, topic, 0).await;
        let mut consumer = DefaultMQPushConsumer::builder(client.runtime())
            .consumer_group(group)
            .name_server_addr(ns.as_str())
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .max_reconsume_times(MAX_RECONSUME)
            .build();
        within("subscribe", consumer.subscribe(topic, "*"))
            .await
            .expect("subscribe");
        let sink = Arc::clone(&seen);
        consumer.register_message_listener_concurrently(
            move |msgs: &[&MessageExt], _context: &ConsumeConcurrentlyContext| {
                let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
                for msg in msgs {
                    let body = msg.body().unwrap_or_default();
                    assert_eq!(&body[..], message_body(0).as_bytes());
                    sink.push((
                        msg.reconsume_times(),
                        msg.topic().to_string(),
                        Instant::now(),
                    ));
                }
                Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
            },
        );
        within("push consumer start", consumer.start())
            .await
            .expect("push consumer starts");

        // The first delivery and the two redeliveries, then the message is in the DLQ.
        let dlq = format!("%DLQ%{group}");
        let deadline = tokio::time::Instant::now() + DELIVERY_LIMIT;
        let dead = loop {
            let found = pull_records(cluster.broker.addr, &dlq);
            if !found.is_empty() {
                break found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not dead-lettered within {DELIVERY_LIMIT:?}; deliveries {:?}",
                seen.lock().map(|s| s.len())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        consumer.shutdown().await;
        producer.shutdown().await;

        assert_eq!(dead.len(), 1, "one dead letter");
        let m = StoredMessage::decode(&dead[0]).expect("dead letter record");
        assert_eq!((m.topic, m.queue_id), (dlq.as_str(), 0));
        assert_eq!(m.body, message_body(0).as_bytes());
        assert_eq!(m.property("RETRY_TOPIC"), Some(topic));
        assert_eq!(m.reconsume_times, MAX_RECONSUME + 1);
    });

    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let counts: Vec<i32> = seen.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(counts, [0, 1, 2], "reconsumeTimes of each delivery");
    assert!(
        seen.iter().all(|(_, t, _)| t == topic),
        "the client restores the original topic: {seen:?}"
    );
    for (n, delay) in RETRY_DELAYS.iter().enumerate() {
        let gap = seen[n + 1].2.duration_since(seen[n].2);
        assert!(
            gap >= *delay && gap <= *delay + LATE,
            "redelivery {} after {gap:?}, level {} is {delay:?}",
            n + 1,
            3 + n
        );
    }
}
