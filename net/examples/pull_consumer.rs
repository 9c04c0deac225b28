//! The seed's pull consumer: for each queue of the topic, fetch the group's offset, pull up to 32
//! messages, print them and record the next offset; the offsets are committed to the broker
//! every 5 s and on shutdown. Stops after a round that finds nothing new.
//!
//! ```sh
//! cargo run -p tern-net --example pull_consumer -- -n 127.0.0.1:9876 [-t TopicQuickStart] [-g GroupName1]
//! ```

mod common;

use common::arg;
use tern_net::client::{PullConsumer, PullStatus};

fn main() {
    let namesrv = arg("-n", "127.0.0.1:9876");
    let topic = arg("-t", "TopicQuickStart");
    let group = arg("-g", "GroupName1");
    let run = tern_runtime::block_on("pull_consumer", async move {
        let consumer = PullConsumer::builder(group)
            .namesrv_addr(namesrv)
            .start()
            .await?;
        let queues = consumer.fetch_subscribe_message_queues(&topic).await?;
        loop {
            let mut found = 0;
            for mq in &queues {
                // The broker remembers where the group stopped.
                let offset = consumer.fetch_consume_offset(mq, false).await?.max(0);
                let result = consumer.pull(mq, "*", offset, 32).await?;
                match result.status {
                    PullStatus::Found => {
                        println!("{mq}: {} messages", result.messages.len());
                        for m in &result.messages {
                            println!("  {}", String::from_utf8_lossy(&m.body));
                        }
                        found += result.messages.len();
                    }
                    PullStatus::NoMatchedMsg | PullStatus::NoNewMsg | PullStatus::OffsetIllegal => {
                    }
                }
                consumer.update_consume_offset(mq, result.next_begin_offset);
            }
            if found == 0 {
                break;
            }
        }
        consumer.shutdown().await
    });
    match run {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("pull consumer failed: {e}"),
        Err(e) => eprintln!("cannot start the executor: {e}"),
    }
}
