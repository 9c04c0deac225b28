//! JSON bodies exchanged with the nameserver, with the field names Java's fastjson writes and reads.
//!
//! Conventions shared by every type here, matching fastjson's defaults so that Java peers and Tern
//! produce the same bytes:
//!
//! | rule | effect |
//! |---|---|
//! | field names | camelCase, as the Java getters name them |
//! | field order | alphabetical (fastjson sorts fields) |
//! | `null` fields | omitted on output, accepted (as absent) on input |
//! | unknown fields | ignored on input |
//! | maps keyed by a number | keys written as JSON strings (`{"0":"host:port"}`) |
//!
//! Every type decodes with [`decode`] (a typed error on malformed input, never a panic) and encodes
//! with [`encode`].

mod cluster;
mod route;
mod topic_config;

pub use cluster::{ClusterInfo, KvTable, TopicList};
pub use route::{BrokerData, QueueData, TopicRouteData, MASTER_ID};
pub use topic_config::{DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};

/// A body that is not the JSON its command expects.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what} body: {reason}")]
pub struct BodyError {
    /// The expected body type.
    pub what: &'static str,
    /// What the JSON parser reported.
    pub reason: String,
}

/// Decodes a JSON body of type `T`. An empty body is an error (callers decide whether a missing body
/// means a default).
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    serde_json::from_slice(body).map_err(|e| BodyError {
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("body"),
        reason: e.to_string(),
    })
}

/// Encodes `value` as compact JSON.
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs (string keys, no non-finite floats) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
