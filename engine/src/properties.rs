//! Java `.properties` files, as RocketMQ's `broker.properties` and `namesrv.properties` are written.
//!
//! Supported syntax (java.util.Properties): `key=value`, `key:value` and `key value`; blank lines and
//! lines starting with `#` or `!` are comments; a line ending in an odd number of backslashes continues
//! on the next line (leading white space of the continuation is dropped); escapes `\t \n \r \f \\ \uXXXX`
//! and an escaped separator in keys. Each entry keeps its 1-based line number so that unknown keys can be
//! reported with their location.

use std::path::Path;

/// One `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped, with leading white space removed.
    pub value: String,
    /// The line the entry starts on (1-based).
    pub line: usize,
}

/// Errors reading a properties file.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file's path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Reads and parses a properties file.
pub fn load(path: &Path) -> Result<Vec<Property>, PropertiesError> {
    let text = std::fs::read(path).map_err(|source| PropertiesError::Io {
        path: path.display().to_string(),
        source,
    })?;
    // Properties files are ISO-8859-1 by definition; decode byte-wise so no input is rejected.
    let text: String = match String::from_utf8(text) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    };
    Ok(parse(&text))
}

/// Parses properties text. Never fails: malformed escapes are kept literally.
pub fn parse(text: &str) -> Vec<Property> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((idx, raw)) = lines.next() {
        let first = raw.trim_start();
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_entry(&logical);
        out.push(Property {
            key: unescape(key),
            value: unescape(value),
            line: idx + 1,
        });
    }
    out
}

/// Escapes `value` so that [`parse`] reads it back unchanged after `key=`: backslashes and control
/// characters are escaped (`\\ \t \n \r \f`, others as `\uXXXX`) and a leading space becomes `\ `.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            ' ' if i == 0 => out.push_str("\\ "),
            c if c.is_control() && (c as u32) <= 0xFFFF => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or white space.
fn split_entry(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (key, rest)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) if hex.len() == 4 => {
                        out.push(ch);
                        for _ in 0..4 {
                            chars.next();
                        }
                    }
                    _ => out.push('u'),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_values_parse_back_unchanged() {
        for value in [
            " lead",
            "a\\b\\",
            "t\tn\nr\rf\x0c",
            "\u{1}\u{7f}x",
            "ünï",
            "a=b:c #!",
        ] {
            let text = format!("k={}\n", escape_value(value));
            assert_eq!(parse(&text)[0].value, value, "{text:?}");
        }
        assert_eq!(escape_value(" a\\b"), "\\ a\\\\b");
    }

    #[test]
    fn parses_the_seed_broker_file_shape() {
        let text = "#所属集群名字\nbrokerClusterName=rocketmq-cluster\n\nbrokerId=0\n\
                    namesrvAddr=rocketmq-nameserver1:9876;rocketmq-nameserver2:9876\n\
                    #flushCommitLogLeastPages=4\n  deleteWhen = 04\nkey:value\nspaced value here\n";
        let p = parse(text);
        let kv: Vec<(&str, &str, usize)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str(), p.line))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("brokerClusterName", "rocketmq-cluster", 2),
                ("brokerId", "0", 4),
                (
                    "namesrvAddr",
                    "rocketmq-nameserver1:9876;rocketmq-nameserver2:9876",
                    5
                ),
                ("deleteWhen", "04", 7),
                ("key", "value", 8),
                ("spaced", "value here", 9),
            ]
        );
    }

    #[test]
    fn continuations_and_escapes() {
        let p = parse("a=one\\\n   two\nb\\=c=\\u0041\\t\\\\\nbad=\\uZZ\n");
        assert_eq!(p[0].key, "a");
        assert_eq!(p[0].value, "onetwo");
        assert_eq!(p[1].key, "b=c");
        assert_eq!(p[1].value, "A\t\\");
        assert_eq!(p[2].value, "uZZ");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in ["\\", "=", ":", "\\u", "k\\", "k=\\u12", "\u{00e9}=\\"] {
            let _ = parse(s);
        }
    }
}
