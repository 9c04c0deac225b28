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
            cmd.ext_fields.insert(k, v);
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
        cmd.ext_fields.insert("offset", self.offset.to_string());
        cmd.ext_fields
            .insert("masterMaxOffset", self.master_max_offset.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole frame: 4-byte length, JSON type byte + 24-bit header length, header, body.
    fn frame(cmd: &RemotingCommand) -> Vec<u8> {
        let mut out = Vec::new();
        tern_net::frame::encode(cmd, &mut out);
        out
    }

    fn expected(header: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
        out.push(0); // JSON
        out.extend_from_slice(&(header.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn request_frame_is_byte_exact_and_round_trips() {
        let req = FetchRequest {
            shard: 1,
            offset: (1 << 56) + 4096,
            cores: 2,
            max_bytes: 1 << 20,
            wait_millis: 5000,
        };
        let mut cmd = req.to_command();
        cmd.opaque = 7;
        let header = concat!(
            r#"{"code":9101,"extFields":{"cores":"2","maxBytes":"1048576","#,
            r#""offset":"72057594037932032","shard":"1","waitMillis":"5000"},"#,
            r#""flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":0}"#
        );
        let bytes = frame(&cmd);
        assert_eq!(bytes, expected(header, b""));
        let decoded = tern_net::frame::decode(&bytes).expect("decode");
        assert_eq!(FetchRequest::from_command(&decoded), Ok(req));
    }

    #[test]
    fn answer_frame_is_byte_exact_and_round_trips() {
        let mut req = RemotingCommand::request(HA_FETCH);
        req.opaque = 9;
        let answer = FetchAnswer {
            offset: 256,
            master_max_offset: 1024,
        };
        let cmd = answer.to_command(&req, b"REC".to_vec());
        let header = concat!(
            r#"{"code":0,"extFields":{"masterMaxOffset":"1024","offset":"256"},"#,
            r#""flag":1,"language":"JAVA","opaque":9,"serializeTypeCurrentRPC":"JSON","version":0}"#
        );
        let bytes = frame(&cmd);
        assert_eq!(bytes, expected(header, b"REC"));
        let decoded = tern_net::frame::decode(&bytes).expect("decode");
        assert_eq!(FetchAnswer::from_command(&decoded), Ok(answer));
        assert_eq!(decoded.body, b"REC");
    }

    #[test]
    fn missing_fields_are_typed_errors() {
        let mut cmd = RemotingCommand::request(HA_FETCH);
        assert_eq!(
            FetchRequest::from_command(&cmd),
            Err(FetchFieldError("shard"))
        );
        cmd.ext_fields.insert("shard", "x".into());
        assert_eq!(
            FetchRequest::from_command(&cmd),
            Err(FetchFieldError("shard"))
        );
    }
}
