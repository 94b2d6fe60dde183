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
