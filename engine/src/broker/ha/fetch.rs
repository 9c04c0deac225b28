//! HA_FETCH: the replication request a slave core sends for its shard, and the master's answer.
//! Both are ordinary remoting frames (JSON header, extension fields sorted by key); the answer's
//! body is raw CommitLog bytes.
//!
//! | request field (extFields) | meaning |
//! |---|---|
//! | `shard` | the CommitLog shard (core index) to replicate |
//! | `offset` | the slave's write position in that shard: everything below is confirmed, and the master continues from here |
//! | `cores` | the slave's core count (must equal the master's) |
//! | `maxBytes` | about how many bytes the answer may carry |
//! | `waitMillis` | how long the master may hold the request when it has nothing new |
//!
//! | response field | meaning |
//! |---|---|
//! | `offset` | physical offset of the body's first byte (the request's `offset`) |
//! | `masterMaxOffset` | the master's write position in the shard |
//! | body | whole records from `offset` (see `tern_store`'s replica module), possibly empty |
//!
//! A refusal is a SYSTEM_ERROR response whose remark says why (core count differs, offset not
//! held by the master, corrupt data).

use tern_net::RemotingCommand;

/// Tern's request code for HA_FETCH (not a RocketMQ code; only Tern brokers send it).
pub const HA_FETCH: i32 = 9101;

/// A malformed HA_FETCH request or response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("HA_FETCH field {0} is missing or not a number")]
pub struct FetchFieldError(pub &'static str);

fn field<T: std::str::FromStr>(
    cmd: &RemotingCommand,
    name: &'static str,
) -> Result<T, FetchFieldError> {
    cmd.ext(name)
        .and_then(|v| v.parse().ok())
        .ok_or(FetchFieldError(name))
}

/// What a slave core asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    /// Shard (core index).
    pub shard: u32,
    /// The slave's write position in the shard.
    pub offset: u64,
    /// The slave's core count.
    pub cores: u32,
    /// Soft size limit of the answer.
    pub max_bytes: u32,
    /// Longest hold when there is nothing new.
    pub wait_millis: u64,
}

impl FetchRequest {
    /// The request frame.
    pub fn to_command(&self) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(HA_FETCH);
        for (k, v) in [
            ("shard", self.shard.to_string()),
            ("offset", self.offset.to_string()),
            ("cores", self.cores.to_string()),
            ("maxBytes", self.max_bytes.to_string()),
            ("waitMillis", self.wait_millis.to_string()),
        ] {
            cmd.ext_fields.insert(k.to_string(), v);
        }
        cmd
    }

    /// Parses a request frame.
    pub fn from_command(cmd: &RemotingCommand) -> Result<Self, FetchFieldError> {
        Ok(FetchRequest {
            shard: field(cmd, "shard")?,
            offset: field(cmd, "offset")?,
            cores: field(cmd, "cores")?,
            max_bytes: field(cmd, "maxBytes")?,
            wait_millis: field(cmd, "waitMillis")?,
        })
    }
}

/// The header of a successful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchAnswer {
    /// Physical offset of the body's first byte.
    pub offset: u64,
    /// The master's write position in the shard.
    pub master_max_offset: u64,
}

impl FetchAnswer {
    /// The SUCCESS response to `req` carrying `body`.
    pub fn to_command(&self, req: &RemotingCommand, body: Vec<u8>) -> RemotingCommand {
        let mut cmd = RemotingCommand::response_to(req, tern_net::code::response::SUCCESS, None);
        cmd.ext_fields
            .insert("offset".to_string(), self.offset.to_string());
        cmd.ext_fields.insert(
            "masterMaxOffset".to_string(),
            self.master_max_offset.to_string(),
        );
        cmd.with_body(body)
    }

    /// Parses a SUCCESS response's header.
    pub fn from_command(cmd: &RemotingCommand) -> Result<Self, FetchFieldError> {
        Ok(FetchAnswer {
            offset: field(cmd, "offset")?,
            master_max_offset: field(cmd, "masterMaxOffset")?,
        })
    }
}
