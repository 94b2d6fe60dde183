//! Reading configuration files: the only place that uses `serde_yaml`
//! (deprecated upstream, so its uses are kept in one file), and the agent
//! configuration's error type.
//!
//! Errors always start with the file and carry `serde_yaml`'s key path and
//! line/column, e.g. `agent.yaml: agent: unknown field `nmae` ... at line 2
//! column 3`. The agent file is read in two passes (see `sections`); check
//! files are read by `check_file` through `from_yaml` and `from_yaml_seed`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeSeed;

use super::Config;
use super::env_subst::substitute_env;
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
    let text = substitute_env(&text, &|var| std::env::var(var).ok()).unwrap_or(text);
    let agent = serde_yaml::from_str::<Lenient>(&text).ok()?.agent?;
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
    let text = substitute_env(&text, &|var| std::env::var(var).ok()).map_err(invalid)?;
    let types: SectionTypes = from_yaml(&text).map_err(|e| invalid(vec![e]))?;
    let raw = from_yaml_seed(types.seed(), &text).map_err(|e| invalid(vec![e]))?;
    let base = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    let max_concurrency = std::env::var(crate::env::MAX_CONCURRENCY).ok();
    raw.validate(absolute, &base, max_concurrency)
        .map_err(invalid)
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
