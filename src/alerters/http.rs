//! The HTTP client alerters share, and how HTTP failures become alert errors.
//!
//! One reqwest client per agent (rustls, connection reuse). Errors never carry
//! the request URL: a Slack webhook URL is a secret, and PagerDuty routing
//! keys and Slack tokens travel in bodies and headers that we never log.

use std::time::Duration;

use super::Error;

/// Bounds connecting separately from the agent's `alert_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for alert deliveries.
///
/// # Errors
/// When the TLS backend cannot be initialised.
pub(crate) fn client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("cimaa/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Http(describe(&e)))
}

/// A reqwest error described without its URL.
#[must_use]
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    crate::error::push_causes(&mut text, std::error::Error::source(error));
    text
}

/// At most `limit` characters of a response body, for error messages.
#[must_use]
pub(crate) fn excerpt(body: &str, limit: usize) -> String {
    let body = body.trim();
    match body.char_indices().nth(limit) {
        Some((cut, _)) => format!("{} ...", &body[..cut]),
        None => body.to_string(),
    }
}

/// Checks that the host of `url` is reachable, step by step, without
/// sending it an event: DNS, a TCP connection and, for `https`, a TLS
/// handshake (made by a `HEAD /` request, whose answer, whatever its
/// status, proves the handshake). Says which step failed; names the host
/// and port, never the whole URL (a webhook URL is a secret).
///
/// # Errors
/// What failed, as one lower-case sentence.
pub(crate) async fn reachable(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| "the URL has no host".to_string())?
        .to_string();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("no port for scheme `{}`", parsed.scheme()))?;
    let place = format!("{host}:{port}");
    // `lookup_host` wants a bare IPv6 address, without the URL's brackets.
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addresses: Vec<std::net::SocketAddr> =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| format!("cannot resolve `{host}`: timed out"))?
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .collect();
    let Some(first) = addresses.first() else {
        return Err(format!("cannot resolve `{host}`: no address"));
    };
    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(first))
        .await
        .map_err(|_| format!("cannot connect to `{place}`: timed out"))?
        .map_err(|e| format!("cannot connect to `{place}`: {e}"))?;
    if parsed.scheme() != "https" {
        return Ok(format!("reached `{place}` (DNS, TCP)"));
    }
    let mut origin = parsed.clone();
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    tokio::time::timeout(CONNECT_TIMEOUT * 2, client.head(origin).send())
        .await
        .map_err(|_| format!("TLS handshake with `{place}` timed out"))?
        .map_err(|e| format!("TLS handshake with `{place}` failed: {}", describe(&e)))?;
    Ok(format!("reached `{place}` (DNS, TCP, TLS)"))
}
