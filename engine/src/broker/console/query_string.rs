//! The query string of a console request: `name=value` pairs split on `&`, `+` read as a space
//! and `%XX` escapes decoded (as browsers' `URLSearchParams` encodes them).
//!
//! A malformed escape or a value that is not UTF-8 once decoded is a [`QueryError`], never a panic.

/// A query string that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `%` not followed by two hex digits.
    #[error("bad percent escape in {0:?}")]
    BadEscape(String),
    /// The decoded bytes are not UTF-8.
    #[error("parameter {0:?} is not UTF-8")]
    NotUtf8(String),
}

/// The decoded parameters of a request target, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes everything after the first `?` of `target` (no `?`: no parameters).
    pub fn parse(target: &str) -> Result<Self, QueryError> {
        let Some((_, raw)) = target.split_once('?') else {
            return Ok(Query::default());
        };
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Query { pairs })
    }

    /// The first value of `name` that is not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// The path of a request target (before `?`).
pub fn path(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &str) -> Result<String, QueryError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(hex);
                let lo = bytes.next().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push((h << 4) | l),
                    _ => return Err(QueryError::BadEscape(s.to_string())),
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_plus_and_escapes() {
        let q = Query::parse("/api/message?topic=T_1&key=%3Cb%3E+x%26y&empty=&flag").unwrap();
        assert_eq!(q.get("topic"), Some("T_1"));
        assert_eq!(q.get("key"), Some("<b> x&y"));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.get("flag"), None);
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse("/api/topics").unwrap(), Query::default());
        assert_eq!(Query::parse("/x?k=%C3%A9").unwrap().get("k"), Some("é"));
        assert_eq!(path("/api/message?id=1"), "/api/message");
    }

    #[test]
    fn rejects_bad_escapes_and_non_utf8() {
        for bad in ["/?k=%", "/?k=%4", "/?k=%zz", "/?%g1=v"] {
            assert!(
                matches!(Query::parse(bad), Err(QueryError::BadEscape(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Query::parse("/?k=%ff"),
            Err(QueryError::NotUtf8("%ff".into()))
        );
    }
}
