//! TCP probes: `tcp: HOST:PORT` (SPEC §4 "Network checks").
//!
//! Owns the `HOST:PORT` target (parsed once, at load) and the connect step,
//! which `socket` reuses for `tcp://` targets. A probe resolves the host,
//! tries its addresses in order and closes the connection at once; the only
//! metric is `connect_time` (resolving included). The caller (`checks::run`)
//! bounds the whole probe by the check's timeout and turns an `Error` into
//! the check's own ERROR fault, so every message here names the target.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::TcpStream;

use super::dns::{self, ResolveError};
use super::{CheckOutput, RawMetric};

/// `HOST:PORT`, with IPv6 addresses in brackets (`[::1]:22`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Parses `HOST:PORT` or `[IPV6]:PORT`.
    ///
    /// # Errors
    /// A sentence saying what is wrong with `text`.
    pub(crate) fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let bad = |why: &str| format!("`{text}` is not HOST:PORT: {why}");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("no `:PORT` after `]`"))?;
            (host, port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.contains(':') {
                return Err(bad("write IPv6 addresses in brackets, e.g. `[::1]:22`"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.chars().any(char::is_whitespace) {
            return Err(bad("the host contains a space"));
        }
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad(&format!("`{port}` is not a port (1-65535)"))),
            Ok(port) => port,
        };
        Ok(Target {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a connection could not be made; the message names the target.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{target}: cannot resolve host: {source}")]
    Resolve {
        target: String,
        #[source]
        source: ResolveError,
    },
    #[error("{target}: the host has no address")]
    NoAddress { target: String },
    #[error("{target}: connection refused")]
    Refused { target: String },
    #[error("{target}: {what} unreachable")]
    Unreachable { target: String, what: &'static str },
    #[error("{target}: cannot connect: {source}")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
}

/// Resolves `target` and connects to the first address that accepts.
///
/// Without a timeout: the caller bounds the whole probe.
///
/// # Errors
/// Resolution failed, or no address accepted (the last address's reason).
pub(crate) async fn connect(target: &Target, resolver: &dns::Resolver) -> Result<TcpStream, Error> {
    let addresses = resolver
        .resolve(&target.host)
        .await
        .map(|ips| ips.into_iter().map(|ip| SocketAddr::new(ip, target.port)));
    connect_to(target, addresses).await
}

/// Connects to the first of the resolved addresses that accepts.
async fn connect_to(
    target: &Target,
    resolved: Result<impl Iterator<Item = SocketAddr>, ResolveError>,
) -> Result<TcpStream, Error> {
    let name = || target.to_string();
    let addresses = resolved.map_err(|source| Error::Resolve {
        target: name(),
        source,
    })?;
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let Some(error) = last else {
        return Err(Error::NoAddress { target: name() });
    };
    Err(match error.kind() {
        io::ErrorKind::ConnectionRefused => Error::Refused { target: name() },
        io::ErrorKind::HostUnreachable => Error::Unreachable {
            target: name(),
            what: "host",
        },
        io::ErrorKind::NetworkUnreachable => Error::Unreachable {
            target: name(),
            what: "network",
        },
        _ => Error::Connect {
            target: name(),
            source: error,
        },
    })
}

/// Connects, closes, and reports `connect_time`.
///
/// # Errors
/// See [`connect`].
pub(crate) async fn probe(target: &Target, resolver: &dns::Resolver) -> Result<CheckOutput, Error> {
    let started = Instant::now();
    let stream = connect(target, resolver).await?;
    let connect_time = started.elapsed().as_secs_f64();
    drop(stream);
    Ok(CheckOutput {
        metrics: vec![RawMetric {
            name: "connect_time".into(),
            value: connect_time,
            units: "s".into(),
            timestamp: None,
        }],
        ..CheckOutput::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        let cases = [
            ("127.0.0.1:5432", "127.0.0.1", 5432, "127.0.0.1:5432"),
            (
                " db.example.com:22 ",
                "db.example.com",
                22,
                "db.example.com:22",
            ),
            ("[::1]:8080", "::1", 8080, "[::1]:8080"),
        ];
        for (text, host, port, shown) in cases {
            let target = Target::parse(text).unwrap();
            assert_eq!((target.host.as_str(), target.port), (host, port), "{text}");
            assert_eq!(target.to_string(), shown);
        }
    }

    #[test]
    fn bad_targets_say_why() {
        let cases = [
            ("localhost", "`localhost` is not HOST:PORT: no port"),
            (":80", "`:80` is not HOST:PORT: no host"),
            (
                "host:http",
                "`host:http` is not HOST:PORT: `http` is not a port (1-65535)",
            ),
            (
                "host:0",
                "`host:0` is not HOST:PORT: `0` is not a port (1-65535)",
            ),
            (
                "::1:80",
                "`::1:80` is not HOST:PORT: write IPv6 addresses in brackets, e.g. `[::1]:22`",
            ),
            ("[::1:80", "`[::1:80` is not HOST:PORT: `[` without `]`"),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text).unwrap_err(), want, "{text}");
        }
    }

    #[tokio::test]
    async fn a_listening_port_connects_and_a_closed_one_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Target::parse(&format!("127.0.0.1:{port}")).unwrap();
        let resolver = dns::Resolver::default();
        let output = probe(&target, &resolver).await.unwrap();
        assert_eq!(output.metrics[0].name, "connect_time");
        assert_eq!(output.metrics[0].units, "s");
        drop(listener);
        let error = probe(&target, &resolver).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("127.0.0.1:{port}: connection refused")
        );
    }

    #[tokio::test]
    async fn resolution_failures_and_empty_answers_name_the_target() {
        // Real lookups of unknown names would ask the network's resolver; the
        // mapping of what it answers is what matters here.
        let target = Target::parse("db.example.invalid:5432").unwrap();
        let failed: Result<std::vec::IntoIter<SocketAddr>, ResolveError> =
            Err(ResolveError::Failed("request timed out".into()));
        let error = connect_to(&target, failed).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "db.example.invalid:5432: cannot resolve host: the resolver failed: request timed out"
        );
        let empty = connect_to(&target, Ok(Vec::new().into_iter()))
            .await
            .unwrap_err();
        assert_eq!(
            empty.to_string(),
            "db.example.invalid:5432: the host has no address"
        );
    }
}
