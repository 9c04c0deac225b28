//! Helpers shared by the integration tests (each `tests/*.rs` is its own crate and includes this
//! with `mod support;`, so any one of them uses only some of it):
//! - `process`: the real binaries as child processes (spawn, address, signals, kill on drop);
//! - `frames`: raw frames over a blocking socket;
//! - `requests`: typed requests and headers over `RemotingClient`;
//! - `config`: settings of in-process brokers;
//! - `ports`: loopback addresses and free ports.
#![allow(dead_code)]

pub mod config;
pub mod frames;
pub mod ports;
pub mod process;
pub mod requests;

#[allow(unused_imports)] // each test crate uses only some of it
pub use config::*;
#[allow(unused_imports)]
pub use frames::*;
#[allow(unused_imports)]
pub use ports::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use requests::*;
