//! The JSON header (RocketMQ's `RemotingSerializable`, written by fastjson).
//!
//! ```json
//! {"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":7,
//!  "remark":"...","serializeTypeCurrentRPC":"JSON","version":0}
//! ```
//!
//! Encoding writes the fields in fastjson's order (alphabetical), omits `remark` when there is none
//! and `extFields` when empty, and writes the extension fields sorted by key.
//!
//! Decoding is lenient, as a Java broker is:
//! - every field is optional (`code`, `opaque`, `flag`, `version` default to 0, `language` to `JAVA`);
//! - unknown fields (`serializeTypeCurrentRPC` included: the frame's type byte decides) are ignored;
//! - integer fields may be JSON numbers or numeric strings;
//! - `language` may be a name (unknown names are `OTHER`) or a byte code;
//! - `extFields` values that are numbers or booleans become their text, nested objects and arrays
//!   their compact JSON text, and `null` values are dropped.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::ext_fields::intern;
use super::frame::HeaderError;
use super::{
    with_sorted_fields, ExtFields, FieldName, LanguageCode, RemotingCommand, SerializeType,
};

/// Appends `cmd`'s JSON header to `out`.
pub(crate) fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"code\":");
    push_int(out, cmd.code);
    if !cmd.ext_fields.is_empty() {
        out.extend_from_slice(b",\"extFields\":{");
        with_sorted_fields(&cmd.ext_fields, |entries| {
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, key);
                out.push(b':');
                push_str(out, value);
            }
        });
        out.push(b'}');
    }
    out.extend_from_slice(b",\"flag\":");
    push_int(out, cmd.flag);
    out.extend_from_slice(b",\"language\":\"");
    out.extend_from_slice(cmd.language.name().as_bytes());
    out.extend_from_slice(b"\",\"opaque\":");
    push_int(out, cmd.opaque);
    if let Some(remark) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        push_str(out, remark);
    }
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    push_int(out, cmd.version);
    out.push(b'}');
}

fn push_int(out: &mut Vec<u8>, n: i32) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{n}");
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly what JSON requires; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The header as received; every field optional.
#[derive(Deserialize)]
struct Incoming {
    #[serde(default, deserialize_with = "lenient_i32")]
    code: i32,
    #[serde(default)]
    language: Option<Language>,
    #[serde(default, deserialize_with = "lenient_i32")]
    version: i32,
    #[serde(default, deserialize_with = "lenient_i32")]
    opaque: i32,
    #[serde(default, deserialize_with = "lenient_i32")]
    flag: i32,
    #[serde(default)]
    remark: Option<ExtValue>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<IncomingFields>,
}

/// Decodes a JSON header (the frame's header bytes only). The body and serialize type are left for
/// the caller to set.
pub(crate) fn decode(header: &[u8]) -> Result<RemotingCommand, HeaderError> {
    match serde_json::from_slice::<Incoming>(header) {
        Ok(h) => Ok(RemotingCommand {
            code: h.code,
            language: h.language.map_or(LanguageCode::Java, |l| l.0),
            version: h.version,
            opaque: h.opaque,
            flag: h.flag,
            remark: h.remark.and_then(|r| r.0),
            ext_fields: h.ext_fields.map(|e| e.0).unwrap_or_default(),
            serialize_type: SerializeType::Json,
            body: Vec::new(),
        }),
        Err(e) => Err(HeaderError {
            opaque: salvage_opaque(header),
            serialize_type: SerializeType::Json,
            reason: format!("invalid JSON header: {e}"),
        }),
    }
}

/// The opaque of a header that failed to decode, when it is well-formed JSON with a usable `opaque`.
fn salvage_opaque(header: &[u8]) -> Option<i32> {
    let value: serde_json::Value = serde_json::from_slice(header).ok()?;
    match value.get("opaque")? {
        serde_json::Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An `i32` given as a JSON number (integral, in range), a numeric string, or null (0).
fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a 32-bit integer or a numeric string")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("{v} out of range for int")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("{v} out of range for int")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i32, E> {
            let in_range = (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v);
            if v.fract() == 0.0 && in_range {
                Ok(v as i32)
            } else {
                Err(E::custom(format!("{v} is not an int")))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("{v:?} is not an int")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
            Ok(0)
        }
    }
    d.deserialize_any(V)
}

/// `language`: a name (unknown → OTHER) or a byte code.
struct Language(LanguageCode);

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Language;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a language name or code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Language, E> {
                Ok(Language(LanguageCode::from_name(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Language, E> {
                Ok(Language(
                    u8::try_from(v).map_or(LanguageCode::Other, LanguageCode::from_code),
                ))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Language, E> {
                Ok(Language(LanguageCode::Other))
            }
        }
        d.deserialize_any(V)
    }
}

/// `extFields` with every non-null value turned into a string; known names interned.
struct IncomingFields(ExtFields);

impl<'de> Deserialize<'de> for IncomingFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IncomingFields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IncomingFields, A::Error> {
                let mut fields = ExtFields::with_capacity(map.size_hint().unwrap_or(16).min(64));
                while let Some(FieldKey(key)) = map.next_key::<FieldKey>()? {
                    if let Some(value) = map.next_value::<ExtValue>()?.0 {
                        fields.push_decoded(key, value);
                    }
                }
                fields.finish_decoding();
                Ok(IncomingFields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// An `extFields` name, interned when it is a known one (borrowed from the input when it has no
/// escapes, so a known name costs no allocation).
struct FieldKey(FieldName);

impl<'de> Deserialize<'de> for FieldKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldKey, E> {
                Ok(FieldKey(intern(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One `extFields` value as text; `None` for JSON null.
struct ExtValue(Option<String>);

impl<'de> Deserialize<'de> for ExtValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExtValue, E> {
                Ok(ExtValue(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ExtValue, E> {
                Ok(ExtValue(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ExtValue, E> {
                Ok(ExtValue(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExtValue, E> {
                Ok(ExtValue(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExtValue, E> {
                Ok(ExtValue(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExtValue, E> {
                Ok(ExtValue(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ExtValue, E> {
                Ok(ExtValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ExtValue, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ExtValue(Some(v.to_string())))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<ExtValue, A::Error> {
                let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(ExtValue(Some(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_fastjson_order() {
        let mut req = RemotingCommand::request(105);
        req.opaque = 3;
        let mut rsp = RemotingCommand::response_to(&req, 17, Some("No topic route info".into()))
            .with_ext("b", "2")
            .with_ext("a", "\u{1}x\"");
        rsp.version = 475;
        let mut out = Vec::new();
        encode(&rsp, &mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"code":17,"extFields":{"a":"\u0001x\"","b":"2"},"flag":1,"language":"JAVA","opaque":3,"remark":"No topic route info","serializeTypeCurrentRPC":"JSON","version":475}"#
        );
        assert_eq!(decode(&out).unwrap(), rsp);
    }

    #[test]
    fn lenient_types() {
        let h = br#"{"code":"34","language":"NODE_JS","opaque":9.0,"flag":null,"remark":5,
            "extFields":{"n":12,"b":true,"f":1.5,"z":null,"o":{"k":[1]},"s":"x"},"whatever":[1,2]}"#;
        let cmd = decode(h).unwrap();
        assert_eq!(cmd.code, 34);
        assert_eq!(cmd.language, LanguageCode::NodeJs);
        assert_eq!(cmd.opaque, 9);
        assert_eq!(cmd.flag, 0);
        assert_eq!(cmd.remark.as_deref(), Some("5"));
        assert_eq!(cmd.ext("n"), Some("12"));
        assert_eq!(cmd.ext("b"), Some("true"));
        assert_eq!(cmd.ext("f"), Some("1.5"));
        assert_eq!(cmd.ext("z"), None);
        assert_eq!(cmd.ext("o"), Some(r#"{"k":[1]}"#));
        assert_eq!(cmd.ext("s"), Some("x"));
    }

    #[test]
    fn wrong_types_keep_the_opaque() {
        let err = decode(br#"{"code":{"x":1},"opaque":42}"#).unwrap_err();
        assert_eq!(err.opaque, Some(42));
        assert_eq!(err.serialize_type, SerializeType::Json);
        let err = decode(br#"{"code":1,"opaque":"7","flag":"yes"}"#).unwrap_err();
        assert_eq!(err.opaque, Some(7));
        let err = decode(b"{not json").unwrap_err();
        assert_eq!(err.opaque, None);
    }
}
