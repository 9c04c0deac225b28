//! The seed's HelloWorld producer: 100 messages tagged `TagA` to `TopicQuickStart`.
//!
//! ```sh
//! cargo run -p tern-net --example hello_producer -- -n 127.0.0.1:9876 [-t TopicQuickStart] [-c 100]
//! ```

mod common;

use common::arg;
use tern_net::client::{Message, Producer};

fn main() {
    let namesrv = arg("-n", "127.0.0.1:9876");
    let topic = arg("-t", "TopicQuickStart");
    let count: usize = arg("-c", "100").parse().unwrap_or(100);
    let run = tern_runtime::block_on("hello_producer", async move {
        let producer = Producer::builder("quickstart_producer")
            .namesrv_addr(namesrv)
            .start()
            .await?;
        for i in 0..count {
            let msg = Message::new(&topic, format!("Hello ,{i}")).with_tags("TagA");
            match producer.send(msg).await {
                Ok(result) => println!("{result:?}"),
                Err(e) => eprintln!("send failed: {e}"),
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
