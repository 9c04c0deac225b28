//! The Tern RocketMQ client: [`Producer`], [`PushConsumer`] and [`PullConsumer`], speaking the
//! remoting protocol to any RocketMQ 4.x/5.x broker and nameserver, and to Tern.
//!
//! Thread-per-core like the rest of Tern: a producer or consumer lives on the glommio executor
//! that made it (`!Send`), its background work (route refresh, heartbeats, rebalancing, pulls,
//! offset commits) runs as tasks there, and its methods are `async`. Start one executor per core
//! and one producer or consumer per executor to scale out.
//!
//! ```no_run
//! use tern_net::client::{Message, Producer};
//! tern_runtime::block_on("example", async {
//!     let producer = Producer::builder("quickstart_producer")
//!         .namesrv_addr("127.0.0.1:9876")
//!         .start()
//!         .await
//!         .expect("start");
//!     let result = producer.send(Message::new("TopicTest", "Hello").with_tags("TagA")).await;
//!     println!("{result:?}");
//!     producer.shutdown().await;
//! })
//! .unwrap();
//! ```
//!
//! See `docs/client.md` for the behaviour in detail and how it follows the Java client.

mod allocate;
mod batch;
mod compress;
mod fault;
mod instance;
mod message;
mod offset_store;
mod periodic;
mod producer;
mod pull;
mod pull_consumer;
mod push_consumer;
mod route;
mod selector;
mod settings;
mod uniq_id;
mod wire;

pub use allocate::allocate_averagely;
pub use message::{Message, MessageExt};
pub use offset_store::OffsetFileError;
pub use producer::{Producer, ProducerBuilder, SendResult, SendStatus};
pub use pull::{PullResult, PullStatus};
pub use pull_consumer::{PullConsumer, PullConsumerBuilder};
pub use push_consumer::{
    ConsumeFromWhere, ConsumeStatus, MessageModel, OrderlyStatus, PushConsumer, PushConsumerBuilder,
};
pub use route::MessageQueue;
pub use selector::{QueueSelector, SelectByHash};
pub use uniq_id::new_uniq_id;

use crate::RemotingCommand;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MqError {
    /// No nameserver address was configured.
    #[error("no nameserver address configured (namesrvAddr)")]
    NoNamesrv,
    /// The nameservers know no route for the topic (nor the TBW102 template).
    #[error("no route for topic {0}")]
    NoRoute(String),
    /// No master address is known for the broker group.
    #[error("no master address known for broker {0}")]
    NoBroker(String),
    /// The request failed on the wire (connect, timeout, closed connection).
    #[error(transparent)]
    Transport(#[from] crate::transport::ClientError),
    /// The peer answered with an error code.
    #[error("{addr} answered {code} ({name}): {remark}")]
    Broker {
        /// The peer.
        addr: String,
        /// The response code.
        code: i32,
        /// RocketMQ's name of the code.
        name: &'static str,
        /// The peer's remark.
        remark: String,
    },
    /// The peer's answer could not be decoded.
    #[error("malformed response from {addr}: {reason}")]
    Malformed {
        /// The peer.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The message cannot be sent as it is.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The producer or consumer was shut down.
    #[error("the client is shut down")]
    ShutDown,
    /// The local offset file could not be read or written.
    #[error(transparent)]
    OffsetFile(#[from] OffsetFileError),
}

impl MqError {
    fn broker(addr: &str, rsp: &RemotingCommand) -> Self {
        MqError::Broker {
            addr: addr.to_string(),
            code: rsp.code,
            name: crate::code::response::name(rsp.code).unwrap_or("UNKNOWN"),
            remark: rsp.remark.clone().unwrap_or_default(),
        }
    }

    /// A [`MqError::Malformed`]: `addr` answered something that could not be decoded, for
    /// `reason`.
    fn malformed(addr: &str, reason: impl std::fmt::Display) -> Self {
        MqError::Malformed {
            addr: addr.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The broker's response code, when the broker answered with an error.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            MqError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}
