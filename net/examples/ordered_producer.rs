//! The seed's ordered producer: 5 orders of 10 steps each; a selector puts order `j` on queue
//! `j % 4`, so each order's steps are stored, and consumed, in sequence.
//!
//! ```sh
//! cargo run -p tern-net --example ordered_producer -- -n 127.0.0.1:9876 [-t TopicQuickStart]
//! ```
//!
//! `SelectByHash` does the same for string order ids (`producer.send_select(msg, &SelectByHash, "order-42")`).

mod common;

use common::arg;
use tern_net::client::{Message, MessageQueue, Producer};

fn main() {
    let namesrv = arg("-n", "127.0.0.1:9876");
    let topic = arg("-t", "TopicQuickStart");
    let run = tern_runtime::block_on("ordered_producer", async move {
        let producer = Producer::builder("ordered_producer")
            .namesrv_addr(namesrv)
            .start()
            .await?;
        // The seed's MessageQueueSelector: the argument is the queue index.
        let selector = |queues: &[MessageQueue], _: &Message, id: &usize| *id % queues.len();
        for j in 0..5usize {
            for i in 0..10 {
                let msg =
                    Message::new(&topic, format!("Hello ,{j}------------{i}")).with_tags("TagA");
                match producer.send_select(msg, &selector, &(j % 4)).await {
                    Ok(r) => println!(
                        "order {j} step {i} -> {} offset {}",
                        r.queue, r.queue_offset
                    ),
                    Err(e) => eprintln!("send failed: {e}"),
                }
            }
        }
        producer.shutdown().await;
        Ok::<_, tern_net::client::MqError>(())
    });
    match run {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("producer failed: {e}"),
        Err(e) => eprintln!("cannot start the executor: {e}"),
    }
}
