//! [`LanguageCode`]: the client language a RocketMQ peer announces in every command header.

/// The implementation language a peer announces, with RocketMQ's names (JSON headers carry the name,
/// ROCKETMQ binary headers the byte code).
///
/// Decoding is lenient: an unknown byte or name becomes [`LanguageCode::Other`], so a newer client
/// with a language this table does not know is still served.
///
/// | variant | byte | JSON name |
/// |---|---|---|
/// | Java | 0 | `JAVA` |
/// | Cpp | 1 | `CPP` |
/// | DotNet | 2 | `DOTNET` |
/// | Python | 3 | `PYTHON` |
/// | Delphi | 4 | `DELPHI` |
/// | Erlang | 5 | `ERLANG` |
/// | Ruby | 6 | `RUBY` |
/// | Other | 7 | `OTHER` |
/// | Http | 8 | `HTTP` |
/// | Go | 9 | `GO` |
/// | Php | 10 | `PHP` |
/// | Oms | 11 | `OMS` |
/// | Rust | 12 | `RUST` |
/// | NodeJs | 13 | `NODE_JS` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LanguageCode {
    /// `JAVA` (0): the reference client and broker; Tern's default for what it sends.
    #[default]
    Java,
    /// `CPP` (1).
    Cpp,
    /// `DOTNET` (2).
    DotNet,
    /// `PYTHON` (3).
    Python,
    /// `DELPHI` (4).
    Delphi,
    /// `ERLANG` (5).
    Erlang,
    /// `RUBY` (6).
    Ruby,
    /// `OTHER` (7); also what unknown codes and names decode to.
    Other,
    /// `HTTP` (8).
    Http,
    /// `GO` (9).
    Go,
    /// `PHP` (10).
    Php,
    /// `OMS` (11).
    Oms,
    /// `RUST` (12).
    Rust,
    /// `NODE_JS` (13).
    NodeJs,
}

/// Every variant in byte-code order (index == byte code).
const ALL: [LanguageCode; 14] = [
    LanguageCode::Java,
    LanguageCode::Cpp,
    LanguageCode::DotNet,
    LanguageCode::Python,
    LanguageCode::Delphi,
    LanguageCode::Erlang,
    LanguageCode::Ruby,
    LanguageCode::Other,
    LanguageCode::Http,
    LanguageCode::Go,
    LanguageCode::Php,
    LanguageCode::Oms,
    LanguageCode::Rust,
    LanguageCode::NodeJs,
];

impl LanguageCode {
    /// The byte code used by the ROCKETMQ binary header.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The language for a byte code; unknown codes give [`LanguageCode::Other`].
    pub fn from_code(code: u8) -> Self {
        ALL.get(usize::from(code))
            .copied()
            .unwrap_or(LanguageCode::Other)
    }

    /// The name used by JSON headers (`"JAVA"`, `"NODE_JS"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LanguageCode::Java => "JAVA",
            LanguageCode::Cpp => "CPP",
            LanguageCode::DotNet => "DOTNET",
            LanguageCode::Python => "PYTHON",
            LanguageCode::Delphi => "DELPHI",
            LanguageCode::Erlang => "ERLANG",
            LanguageCode::Ruby => "RUBY",
            LanguageCode::Other => "OTHER",
            LanguageCode::Http => "HTTP",
            LanguageCode::Go => "GO",
            LanguageCode::Php => "PHP",
            LanguageCode::Oms => "OMS",
            LanguageCode::Rust => "RUST",
            LanguageCode::NodeJs => "NODE_JS",
        }
    }

    /// The language for a JSON name (exact, upper case as RocketMQ writes it); unknown names give
    /// [`LanguageCode::Other`].
    pub fn from_name(name: &str) -> Self {
        ALL.iter()
            .copied()
            .find(|l| l.name() == name)
            .unwrap_or(LanguageCode::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for (i, l) in ALL.iter().enumerate() {
            assert_eq!(usize::from(l.code()), i);
            assert_eq!(LanguageCode::from_code(l.code()), *l);
            assert_eq!(LanguageCode::from_name(l.name()), *l);
        }
        assert_eq!(LanguageCode::Rust.code(), 12);
        assert_eq!(LanguageCode::NodeJs.name(), "NODE_JS");
    }

    #[test]
    fn unknown_is_other() {
        assert_eq!(LanguageCode::from_code(14), LanguageCode::Other);
        assert_eq!(LanguageCode::from_code(255), LanguageCode::Other);
        assert_eq!(LanguageCode::from_name("COBOL"), LanguageCode::Other);
        assert_eq!(LanguageCode::from_name("java"), LanguageCode::Other);
    }
}
