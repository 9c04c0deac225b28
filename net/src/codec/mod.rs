//! The remoting codec: [`RemotingCommand`] and its wire form.
//!
//! [`frame`] splits a byte stream into frames and converts frames to and from commands; the header
//! inside a frame is serialized as JSON or as RocketMQ's binary layout ([`SerializeType`]).

mod binary_header;
mod command;
mod ext_fields;
pub mod frame;
mod json_header;
mod language;

pub use command::{RemotingCommand, SerializeType, FLAG_ONEWAY, FLAG_RESPONSE};
pub use ext_fields::{ExtFields, FieldName};
pub use language::LanguageCode;

/// Calls `f` with `fields` sorted by key, without allocating for the usual handful of fields.
/// Both header encoders write fields in this order, so output is deterministic.
pub(crate) fn with_sorted_fields<R>(fields: &ExtFields, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
    const INLINE: usize = 32;
    let mut inline = [("", ""); INLINE];
    let mut spilled = Vec::new();
    let entries: &mut [(&str, &str)] = if fields.len() <= INLINE {
        for (slot, kv) in inline.iter_mut().zip(fields.iter()) {
            *slot = kv;
        }
        &mut inline[..fields.len()]
    } else {
        spilled.extend(fields.iter());
        &mut spilled
    };
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    f(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_fields_are_sorted_too() {
        let mut cmd = RemotingCommand::request(34);
        for i in 0..40 {
            cmd.ext_fields.insert(format!("k{i:02}"), i.to_string());
        }
        let keys = with_sorted_fields(&cmd.ext_fields, |entries| {
            entries
                .iter()
                .map(|(k, _)| k.to_string())
                .collect::<Vec<_>>()
        });
        let mut expected: Vec<String> = cmd.ext_fields.keys().map(str::to_owned).collect();
        expected.sort();
        assert_eq!(keys, expected);
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            cmd.serialize_type = serialize_type;
            let mut out = Vec::new();
            frame::encode(&cmd, &mut out);
            assert_eq!(frame::decode(&out), Ok(cmd.clone()));
        }
    }
}
