//! Every configuration key as a command-line flag and an environment variable.
//!
//! A *knob* is one `broker.properties`-style key (camelCase, as RocketMQ spells it). For each knob
//! the binaries accept:
//!
//! | source | spelling | example for `flushCommitLogLeastPages` |
//! |---|---|---|
//! | flag | kebab case | `--flush-commit-log-least-pages 8` |
//! | environment | `<PREFIX>` + upper snake case | `TERN_BROKER_FLUSH_COMMIT_LOG_LEAST_PAGES=8` |
//!
//! Precedence, highest first: flag > environment > properties file > built-in default. The flags
//! carry no clap default (that would hide the file's value); their help shows the built-in default
//! instead. Values stay strings here: the config's own `set` validates them and names the key on
//! error, so a flag, a variable and a file line are checked by the same code.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

/// One key offered as a flag and an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knob {
    /// The properties key, e.g. `listenPort`.
    pub key: String,
    /// The built-in default as `-p` prints it.
    pub default: String,
    /// What the key does, with its unit.
    pub help: String,
    /// Extra long flag names kept for compatibility.
    pub aliases: &'static [&'static str],
    /// A one-letter flag, if any.
    pub short: Option<char>,
}

/// Where a knob's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An environment variable.
    Env,
    /// A command-line flag.
    Flag,
}

/// `listenPort` → `listen-port`, `brokerIP1` → `broker-ip1`.
pub fn flag_name(key: &str) -> String {
    snake(key, '-').to_ascii_lowercase()
}

/// `listenPort` with prefix `TERN_BROKER_` → `TERN_BROKER_LISTEN_PORT`.
pub fn env_name(prefix: &str, key: &str) -> String {
    format!("{prefix}{}", snake(key, '_').to_ascii_uppercase())
}

/// Splits camelCase words with `sep`: a boundary is an upper-case letter after a lower-case letter
/// or digit (so runs such as `IP` stay together).
fn snake(key: &str, sep: char) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    let mut prev: Option<char> = None;
    for c in key.chars() {
        if c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push(sep);
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// clap wants `'static` names; the knob list is built once per process, so leaking it is bounded.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Adds one flag per knob (with its environment variable) to `cmd` under `heading`.
pub fn add_args(
    mut cmd: Command,
    env_prefix: &str,
    heading: &'static str,
    knobs: &[Knob],
) -> Command {
    for k in knobs {
        let flag = leak(flag_name(&k.key));
        let default = if k.default.is_empty() {
            "unset".to_string()
        } else {
            k.default.clone()
        };
        let mut arg = Arg::new(leak(k.key.clone()))
            .long(flag)
            .value_name("VALUE")
            .env(leak(env_name(env_prefix, &k.key)))
            .help(leak(format!("{} ({}) [default: {default}]", k.help, k.key)))
            .help_heading(heading);
        for a in k.aliases {
            arg = arg.visible_alias(*a);
        }
        if let Some(s) = k.short {
            arg = arg.short(s);
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// The knobs given on the command line or in the environment, as `(key, value, source)`, in the
/// order they must be applied: every environment value first, then every flag.
pub fn given(matches: &ArgMatches, knobs: &[Knob]) -> Vec<(String, String, Source)> {
    let mut env = Vec::new();
    let mut flags = Vec::new();
    for k in knobs {
        let Some(value) = matches.get_one::<String>(&k.key) else {
            continue;
        };
        match matches.value_source(&k.key) {
            Some(ValueSource::EnvVariable) => env.push((k.key.clone(), value.clone(), Source::Env)),
            Some(ValueSource::CommandLine) => {
                flags.push((k.key.clone(), value.clone(), Source::Flag))
            }
            _ => {}
        }
    }
    env.extend(flags);
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(flag_name("listenPort"), "listen-port");
        assert_eq!(flag_name("brokerIP1"), "broker-ip1");
        assert_eq!(
            flag_name("mapedFileSizeCommitLog"),
            "maped-file-size-commit-log"
        );
        assert_eq!(
            env_name("TERN_BROKER_", "flushCommitLogLeastPages"),
            "TERN_BROKER_FLUSH_COMMIT_LOG_LEAST_PAGES"
        );
        assert_eq!(
            env_name("TERN_BROKER_", "brokerIP1"),
            "TERN_BROKER_BROKER_IP1"
        );
    }

    fn knob(key: &str) -> Knob {
        Knob {
            key: key.into(),
            default: "1".into(),
            help: "a knob".into(),
            aliases: &[],
            short: None,
        }
    }

    #[test]
    fn flags_are_applied_after_environment() {
        let knobs = [knob("aKnobForTests"), knob("otherKnobForTests")];
        // Only this test sets these variables; clap reads them when the argument is built.
        std::env::set_var("TERN_KNOBS_TEST_A_KNOB_FOR_TESTS", "env");
        std::env::set_var("TERN_KNOBS_TEST_OTHER_KNOB_FOR_TESTS", "env2");
        let cmd = add_args(Command::new("t"), "TERN_KNOBS_TEST_", "Settings", &knobs);
        let m = cmd.get_matches_from(["t", "--a-knob-for-tests", "flag"]);
        let got = given(&m, &knobs);
        assert_eq!(
            got,
            vec![
                ("otherKnobForTests".into(), "env2".into(), Source::Env),
                ("aKnobForTests".into(), "flag".into(), Source::Flag),
            ]
        );
    }
}
