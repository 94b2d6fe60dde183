//! Alerters: how faults reach people (SPEC §7).
//!
//! Owns the `Alerter` trait (`trigger`, `resolve`), its error type, the
//! `alerter:` configuration enum and `build()`. One file per backend. The
//! agent decides *when* to alert and bounds every call by `alert_timeout`;
//! an alerter only delivers.

pub(crate) mod command;
pub(crate) mod file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

pub use command::CommandAlerter;
pub use file::FileAlerter;

/// Delivers alerts. Errors (and timeouts, applied by the caller) are failures.
#[async_trait]
pub trait Alerter: Send + Sync {
    /// Opens (or updates) the alert for fault `name`.
    async fn trigger(&self, name: &str, message: &str) -> Result<(), Error>;
    /// Closes the alert for fault `name`.
    async fn resolve(&self, name: &str) -> Result<(), Error>;
}

/// Why an alert was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write alert to `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start alert command")]
    Spawn(#[source] std::io::Error),
    #[error("alert command {status}{}", stderr_suffix(.stderr))]
    CommandFailed { status: String, stderr: String },
    #[error("alert command timed out")]
    CommandTimedOut,
    /// The receiver refused the event as invalid: resending it cannot help.
    #[error("alert refused as invalid: {0}")]
    Refused(String),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl Error {
    /// True when resending the same event cannot succeed (e.g. `PagerDuty` 400).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Refused(_))
    }
}

/// `alerter:` section.
#[derive(Clone, Debug, PartialEq)]
pub enum AlerterConfig {
    File(FileConfig),
    Command(CommandConfig),
}

impl AlerterConfig {
    /// The `type:` values the configuration accepts.
    pub const TYPES: &'static [&'static str] = &["file", "command"];
}

/// `alerter: {type: file}`: one JSON line per event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// File to append to; `-` is standard output.
    pub path: PathBuf,
}

/// `alerter: {type: command}`: a shell command per event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Command line run with `/bin/sh -c`; gets `CIMAA_ACTION`, `CIMAA_NAME`, `CIMAA_MESSAGE`.
    pub command: String,
}

/// What every alerter may need from the agent.
#[derive(Clone, Debug)]
pub struct Context {
    /// This agent's name.
    pub agent: String,
    /// Bound on each delivery (the agent also enforces it).
    pub alert_timeout: Duration,
}

/// Builds the configured alerter.
#[must_use]
pub fn build(config: &AlerterConfig, context: &Context) -> Arc<dyn Alerter> {
    match config {
        AlerterConfig::File(file) => Arc::new(FileAlerter::new(file, context)),
        AlerterConfig::Command(command) => Arc::new(CommandAlerter::new(command, context)),
    }
}

/// `//host/stem/key#fault` → `host stem key#fault`, the name people read.
#[must_use]
pub fn friendly_name(name: &str) -> String {
    let trimmed = name.trim_start_matches('/');
    trimmed
        .split('/')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_names_replace_slashes_with_spaces() {
        let cases = [
            ("//web1/app/disk", "web1 app disk"),
            ("//web1/app/disk#speed", "web1 app disk#speed"),
            ("//meta#web2", "meta#web2"),
            ("web1#alerts", "web1#alerts"),
            ("//web1/broken/", "web1 broken"),
        ];
        for (name, want) in cases {
            assert_eq!(friendly_name(name), want, "{name}");
        }
    }
}
