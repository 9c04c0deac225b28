//! Command-line reading shared by the examples (`mod common;` in each; not an example itself).

/// The word after `flag` on the command line, if any (`-n 127.0.0.1:9876`).
pub fn flag_value(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The word after `flag`, or `default` when the flag is absent.
#[allow(dead_code)] // hello_consumer uses only flag_value
pub fn arg(flag: &str, default: &str) -> String {
    flag_value(flag).unwrap_or_else(|| default.to_string())
}
