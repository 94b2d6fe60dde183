//! Reading configuration files: the only place that uses `serde_yaml`
//! (deprecated upstream, so its uses are kept in one file), and the agent
//! configuration's error type.
//!
//! Errors always start with the file and carry `serde_yaml`'s key path and
//! line/column, e.g. `agent.yaml: agent: unknown field `nmae` ... at line 2
//! column 3`. The agent file is read in two passes (see `sections`); check
//! files are read by `check_file` through `from_yaml` and `from_yaml_seed`.
//! The agent file goes through `env_subst::Subst`, which replaces `${VAR}`
//! inside scalar values as serde_yaml hands them over (check files do not:
//! their commands are shell). A value quoted back in a message is cut to a
//! short excerpt (`excerpt`, `shorten_quoted`): a 300-digit number or a
//! pasted file has no place in an error line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeSeed;

use super::Config;
use super::env_subst::{Lookup, Subst};
use super::sections::SectionTypes;

/// Agent configuration problems; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One or more problems in the file, each a full sentence with key and line.
    #[error("{}", problems.iter().map(|p| format!("{}: {p}", path.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// The Sentry DSN and agent name of a configuration that failed to load, if
/// the file parses as YAML and names a valid DSN: startup errors are still
/// reported there (SPEC §9).
#[must_use]
pub(crate) fn startup_sentry(path: &Path) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Lenient {
        agent: Option<LenientAgent>,
    }
    #[derive(Deserialize)]
    struct LenientAgent {
        name: Option<String>,
        sentry_dsn: Option<String>,
    }
    let text = std::fs::read_to_string(path).ok()?;
    // Lenient: an unset variable stays as written rather than failing the
    // whole file (the DSN is then invalid, any other key does not matter).
    let lookup = |var: &str| Some(std::env::var(var).unwrap_or_else(|_| format!("${{{var}}}")));
    let agent = from_agent_yaml::<Lenient>(&text, &lookup).ok()?.agent?;
    let dsn = agent.sentry_dsn?;
    dsn.parse::<sentry::types::Dsn>().ok()?;
    Some((dsn, agent.name.unwrap_or_else(crate::host::fqdn)))
}

/// Reads and validates the agent configuration.
///
/// # Errors
/// When the file cannot be read, is not valid YAML, has unknown keys, bad
/// values or unset `${VAR}`s; every problem found is listed.
pub fn load_agent_config(path: &Path) -> Result<Config, Error> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |problems: Vec<String>| Error::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let lookup = |var: &str| std::env::var(var).ok();
    let types: SectionTypes = from_agent_yaml(&text, &lookup).map_err(|e| invalid(vec![e]))?;
    let raw = from_agent_yaml_seed(types.seed(), &text, &lookup).map_err(|e| invalid(vec![e]))?;
    let base = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    let max_concurrency = std::env::var(crate::env::MAX_CONCURRENCY).ok();
    raw.validate(absolute, &base, max_concurrency)
        .map_err(invalid)
}

/// Reads the agent file's YAML `text` into `T`, substituting `${VAR}` in
/// scalar values from `lookup`. A UTF-8 byte order mark at the start is
/// dropped (editors on Windows write one; serde_yaml would otherwise take it
/// for the start of a second document).
///
/// # Errors
/// `serde_yaml`'s message, with the key path, line and column, and long
/// values cut short; an unset variable is named.
fn from_agent_yaml<'de, T: Deserialize<'de>>(
    text: &'de str,
    lookup: Lookup<'_>,
) -> Result<T, String> {
    from_agent_yaml_seed(std::marker::PhantomData::<T>, text, lookup)
}

/// `from_agent_yaml` with a seed.
fn from_agent_yaml_seed<'de, S: DeserializeSeed<'de>>(
    seed: S,
    text: &'de str,
    lookup: Lookup<'_>,
) -> Result<S::Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    seed.deserialize(Subst::new(serde_yaml::Deserializer::from_str(text), lookup))
        .map_err(|e| shorten_quoted(&e.to_string()))
}

/// Longest value quoted whole in a message, in characters.
const EXCERPT_CHARS: usize = 40;

/// `agent.connections_per_host` (default `checks::http::CONNECTIONS_PER_HOST`):
/// 0 is a problem, read as 1.
pub(super) fn connections_per_host(raw: Option<usize>, problems: &mut Vec<String>) -> usize {
    let value = raw.unwrap_or(crate::checks::http::CONNECTIONS_PER_HOST);
    if value == 0 {
        problems.push("agent.connections_per_host: must be at least 1".into());
    }
    value.max(1)
}

/// `value`, or its start and an ellipsis when it is long.
pub(super) fn excerpt(value: &str) -> String {
    if value.chars().count() <= EXCERPT_CHARS {
        return value.to_string();
    }
    let start: String = value.chars().take(EXCERPT_CHARS - 8).collect();
    format!("{start}…")
}

/// A parser's message with every quoted value (in backticks, or after
/// `string "`) cut to an excerpt.
pub(super) fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(512));
    let mut rest = message;
    loop {
        let tick = rest.find('`');
        let quote = rest.find("string \"").map(|at| at + "string ".len());
        match (tick, quote) {
            (Some(t), q) if q.is_none_or(|q| t < q) => {
                let Some(end) = rest[t + 1..].find('`') else {
                    break;
                };
                out.push_str(&rest[..=t]);
                out.push_str(&excerpt(&rest[t + 1..t + 1 + end]));
                out.push('`');
                rest = &rest[t + 2 + end..];
            }
            (_, Some(q)) => {
                // serde writes the string with Rust escapes; its end is the
                // last `"` before what serde appends (`, expected ...`).
                let Some(end) = rest[q + 1..]
                    .find("\", expected")
                    .or_else(|| rest[q + 1..].rfind('"'))
                else {
                    break;
                };
                out.push_str(&rest[..=q]);
                out.push_str(&excerpt(&rest[q + 1..q + 1 + end]));
                out.push('"');
                rest = &rest[q + 2 + end..];
            }
            _ => break,
        }
    }
    out.push_str(rest);
    out
}

/// Reads YAML `text` into `T`.
///
/// # Errors
/// `serde_yaml`'s message, with the key path, line and column.
pub(super) fn from_yaml<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, String> {
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

/// Reads YAML `text` with a seed (a deserializer that carries state, such
/// as the section types of the first pass).
///
/// # Errors
/// `serde_yaml`'s message, with the key path, line and column.
pub(super) fn from_yaml_seed<'de, S: DeserializeSeed<'de>>(
    seed: S,
    text: &'de str,
) -> Result<S::Value, String> {
    seed.deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::LogFormat;

    /// Every kind of value the agent configuration has.
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        text: String,
        number: f64,
        count: usize,
        flag: bool,
        maybe: Option<String>,
        list: Vec<String>,
        map: BTreeMap<String, String>,
        format: LogFormat,
    }

    const NASTY: &[&str] = &[
        "xoxb-abc #def",
        "a\nmetrics:\n  type: log",
        "k: v",
        "\"q",
        "'q",
        "{x",
        "[x",
        "*a",
        "&a",
        "!t",
        "",
        " padded ",
        "${NESTED}",
    ];

    fn sample(value: &str) -> Result<Sample, String> {
        let lookup = |var: &str| match var {
            "V" => Some(value.to_string()),
            "N" => Some("2.5".into()),
            "C" => Some(" 7 ".into()),
            "B" => Some("true".into()),
            "F" => Some("json".into()),
            _ => None,
        };
        // In a flow collection YAML ends a plain scalar at `{` and `}`, so
        // `${V}` is quoted there, as it must be in a real file.
        let text = "text: ${V}\nnumber: ${N}\ncount: ${C}\nflag: ${B}\nmaybe: ${V}\n\
                    list: [\"${V}\", '${V}']\nmap: {\"${V}\": \"${V}\"}\nformat: ${F} # ${UNSET}\n";
        from_agent_yaml(text, &lookup)
    }

    // See: #18
    #[test]
    fn a_variable_is_exactly_one_value_of_its_keys_type() {
        for value in NASTY {
            let got = sample(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
            let want = Sample {
                text: (*value).to_string(),
                number: 2.5,
                count: 7,
                flag: true,
                maybe: Some((*value).to_string()),
                list: vec![(*value).to_string(); 2],
                // Keys are names: not substituted.
                map: BTreeMap::from([("${V}".to_string(), (*value).to_string())]),
                format: LogFormat::Json,
            };
            assert_eq!(got, want, "{value:?}");
        }
    }

    // See: #18
    #[test]
    fn an_unset_variable_is_an_error_at_its_key_and_line() {
        let lookup = |_: &str| None;
        let got = from_agent_yaml::<BTreeMap<String, String>>("a: x\nb: y${UNSET}\n", &lookup);
        assert_eq!(
            got.unwrap_err(),
            "b: environment variable `UNSET` is not set at line 2 column 4"
        );
    }

    // See: #18
    #[test]
    fn a_variable_that_is_not_a_number_is_refused_as_one() {
        let lookup = |_: &str| Some("5 # seconds".to_string());
        let got = from_agent_yaml::<BTreeMap<String, f64>>("a: ${X}\n", &lookup);
        assert_eq!(
            got.unwrap_err(),
            "a: invalid type: string \"5 # seconds\", expected f64 at line 1 column 4"
        );
    }

    // See: #18
    #[test]
    fn a_byte_order_mark_is_dropped() {
        let lookup = |_: &str| None;
        let got = from_agent_yaml::<BTreeMap<String, u64>>("\u{feff}a: 1\n", &lookup);
        assert_eq!(got, Ok(BTreeMap::from([("a".to_string(), 1)])));
    }

    // See: #18
    #[test]
    fn long_quoted_values_are_cut_to_an_excerpt() {
        let long = "9".repeat(300);
        let cases = [
            (
                "short `value` kept".to_string(),
                "short `value` kept".to_string(),
            ),
            (
                format!("a: invalid type: floating point `{long}`, expected usize at line 1"),
                format!(
                    "a: invalid type: floating point `{}…`, expected usize at line 1",
                    "9".repeat(32)
                ),
            ),
            (
                format!("a: invalid type: string \"{long}\", expected f64 at line 1"),
                format!(
                    "a: invalid type: string \"{}…\", expected f64 at line 1",
                    "9".repeat(32)
                ),
            ),
            (
                "unbalanced ` tick".to_string(),
                "unbalanced ` tick".to_string(),
            ),
        ];
        for (message, want) in cases {
            assert_eq!(shorten_quoted(&message), want);
        }
        assert_eq!(
            excerpt("é".repeat(41).as_str()),
            format!("{}…", "é".repeat(32))
        );
    }
}
