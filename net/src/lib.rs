//! # tern-net
//!
//! The Apache RocketMQ remoting protocol: frame and header codec (JSON and ROCKETMQ serializations),
//! request/response codes, typed headers, a glommio transport (server and client) and zero-copy sends.

pub mod body;
pub mod client;
pub mod code;
pub mod codec;
pub mod header;
pub mod transport;
pub mod zero_copy;

pub use codec::{frame, ExtFields, FieldName, LanguageCode, RemotingCommand, SerializeType};
pub use codec::{FLAG_ONEWAY, FLAG_RESPONSE};
