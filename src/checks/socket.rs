//! Socket probes: `socket: unix:PATH | tcp://HOST:PORT` (SPEC §4).
//!
//! Connects, sends nothing, reads to EOF (at most `OUTPUT_LIMIT`; more is
//! the probe's own ERROR) and reads what came as plugin JSON through
//! `json::parse`, with the same `json-error` rule as command checks. The
//! caller bounds the whole exchange by the check's timeout.

use std::fmt;
use std::io;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{CheckOutput, dns, json, tcp};

/// Most bytes a socket may send; one more is an error.
pub(crate) const OUTPUT_LIMIT: u64 = 1024 * 1024;

/// Where a socket check connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tcp://HOST:PORT`
    Tcp(tcp::Target),
}

impl Target {
    /// Parses `unix:PATH` or `tcp://HOST:PORT`.
    ///
    /// # Errors
    /// A sentence saying what is wrong with `text`.
    pub(crate) fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a socket path, e.g. `unix:/run/app.sock`".into());
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        if let Some(address) = text.strip_prefix("tcp://") {
            return tcp::Target::parse(address.trim_end_matches('/')).map(Target::Tcp);
        }
        Err(format!("`{text}` is not `unix:PATH` or `tcp://HOST:PORT`"))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
            Target::Tcp(target) => write!(f, "tcp://{target}"),
        }
    }
}

/// Why a socket probe failed; the message names the target.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Tcp(#[from] tcp::Error),
    #[error("{target}: cannot connect: {source}")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{target}: cannot read: {source}")]
    Read {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{target}: sent more than 1 MiB")]
    TooLong { target: String },
}

/// Connects, reads to EOF and interprets the output as plugin JSON.
///
/// # Errors
/// When the socket cannot be reached or read, or sends more than 1 MiB.
pub(crate) async fn probe(target: &Target, resolver: &dns::Resolver) -> Result<CheckOutput, Error> {
    let output = match target {
        Target::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|source| Error::Connect {
                    target: target.to_string(),
                    source,
                })?;
            read_capped(stream, target).await?
        }
        Target::Tcp(address) => read_capped(tcp::connect(address, resolver).await?, target).await?,
    };
    Ok(interpret(&super::output_text(&output)))
}

async fn read_capped(stream: impl AsyncRead + Unpin, target: &Target) -> Result<Vec<u8>, Error> {
    let mut output = Vec::new();
    stream
        .take(OUTPUT_LIMIT + 1)
        .read_to_end(&mut output)
        .await
        .map_err(|source| Error::Read {
            target: target.to_string(),
            source,
        })?;
    if output.len() as u64 > OUTPUT_LIMIT {
        return Err(Error::TooLong {
            target: target.to_string(),
        });
    }
    Ok(output)
}

/// Plugin JSON, or one escalating `json-error` saying what is wrong.
#[must_use]
pub(crate) fn interpret(text: &str) -> CheckOutput {
    json::output(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::Severity;

    #[test]
    fn targets_parse_and_print_back() {
        let cases = [
            ("unix:/run/app.sock", "unix:/run/app.sock"),
            ("tcp://127.0.0.1:9000", "tcp://127.0.0.1:9000"),
            ("tcp://[::1]:9000/", "tcp://[::1]:9000"),
        ];
        for (text, shown) in cases {
            assert_eq!(Target::parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    #[test]
    fn bad_targets_say_why() {
        let cases = [
            (
                "/run/app.sock",
                "`/run/app.sock` is not `unix:PATH` or `tcp://HOST:PORT`",
            ),
            (
                "unix:",
                "`unix:` needs a socket path, e.g. `unix:/run/app.sock`",
            ),
            ("tcp://host", "`host` is not HOST:PORT: no port"),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn output_is_plugin_json_or_a_json_error() {
        let good = interpret(r#"{"faults": [{"severity": "warning", "message": "slow"}]}"#);
        assert_eq!(good.faults[0].severity, Severity::WARNING);
        let bad = interpret("hello");
        assert_eq!(bad.faults[0].name.as_deref(), Some("json-error"));
        assert!(bad.faults[0].message.starts_with("invalid JSON"));
    }
}
