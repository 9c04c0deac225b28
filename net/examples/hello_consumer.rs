//! The seed's HelloWorld push consumer: prints every message of `TopicQuickStart`.
//!
//! ```sh
//! cargo run -p tern-net --example hello_consumer -- -n 127.0.0.1:9876 [-t TopicQuickStart] [-s SECONDS]
//! ```
//!
//! Runs until killed, or for `-s` seconds and then shuts down cleanly (committing its offsets).

mod common;

use common::flag_value;
use std::time::Duration;

use tern_net::client::{ConsumeFromWhere, ConsumeStatus, PushConsumer};

fn main() {
    let namesrv = flag_value("-n").unwrap_or_else(|| "127.0.0.1:9876".into());
    let topic = flag_value("-t").unwrap_or_else(|| "TopicQuickStart".into());
    let seconds: Option<u64> = flag_value("-s").and_then(|s| s.parse().ok());
    let run = tern_runtime::block_on("hello_consumer", async move {
        let consumer = PushConsumer::builder("quickstart_consumer")
            .namesrv_addr(namesrv)
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .subscribe(&topic, "*")
            .register_message_listener_concurrently(|msgs| {
                for m in msgs {
                    println!(
                        "received: topic:{},tags:{},msg:{}",
                        m.topic,
                        m.tags().unwrap_or(""),
                        String::from_utf8_lossy(&m.body)
                    );
                }
                ConsumeStatus::ConsumeSuccess
            })
            .start()
            .await?;
        println!("consumer {} started", consumer.client_id());
        match seconds {
            Some(s) => tern_runtime::sleep(Duration::from_secs(s)).await,
            None => std::future::pending::<()>().await,
        }
        consumer.shutdown().await;
        Ok::<_, tern_net::client::MqError>(())
    });
    match run {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("consumer failed: {e}"),
        Err(e) => eprintln!("cannot start the executor: {e}"),
    }
}
