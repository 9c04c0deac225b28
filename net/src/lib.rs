//! # tern-net
//!
//! The Apache RocketMQ remoting protocol: frame and header codec (JSON and ROCKETMQ serializations),
//! request/response codes, typed headers, a glommio transport (server and client) and zero-copy sends.
