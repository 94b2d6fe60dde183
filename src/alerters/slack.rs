//! `slack` alerter: chat.postMessage with a bot token, or an incoming webhook
//! (PROTOCOLS.md §3).
//!
//! chat.postMessage answers HTTP 200 even on failure: the JSON `ok` decides,
//! and `error` says why. HTTP 429 carries `Retry-After`; we wait that long and
//! try once more, all within the agent's `alert_timeout`. A webhook answers
//! 200 with the plain text `ok`. The webhook URL is a secret: it never appears
//! in errors or logs.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::http::{describe, excerpt};
use super::{Alerter, Error, SlackConfig, friendly_name};

/// Longest wait honoured for one `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Where messages go.
enum Target {
    Api {
        url: String,
        token: String,
        channel: String,
    },
    Webhook {
        url: String,
    },
}

/// Posts alerts to Slack.
pub(crate) struct SlackAlerter {
    client: reqwest::Client,
    target: Target,
    mention: Option<String>,
}

#[derive(Serialize)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
}

impl SlackAlerter {
    /// Builds the alerter with the agent's shared HTTP client.
    #[must_use]
    pub(crate) fn new(config: &SlackConfig, client: reqwest::Client) -> Self {
        let target = match &config.webhook_url {
            Some(url) => Target::Webhook { url: url.clone() },
            None => Target::Api {
                url: config.url.clone(),
                token: config.token.clone().unwrap_or_default(),
                channel: config.channel.clone(),
            },
        };
        SlackAlerter {
            client,
            target,
            mention: config.target.clone(),
        }
    }

    fn text(&self, body: String) -> String {
        match &self.mention {
            Some(mention) => format!("{mention} {body}"),
            None => body,
        }
    }

    async fn post(&self, text: &str) -> Result<(), Error> {
        let mut retried = false;
        loop {
            let request = match &self.target {
                Target::Api {
                    url,
                    token,
                    channel,
                } => self
                    .client
                    .post(url)
                    .bearer_auth(token)
                    .header("Content-Type", "application/json; charset=utf-8")
                    .body(body(&Message {
                        channel: Some(channel),
                        text,
                        username: Some("cimaa"),
                    })?),
                Target::Webhook { url } => self
                    .client
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(body(&Message {
                        channel: None,
                        text,
                        username: None,
                    })?),
            };
            let response = request
                .send()
                .await
                .map_err(|e| Error::Http(format!("Slack: {}", describe(&e))))?;
            let status = response.status().as_u16();
            if status == 429 && !retried {
                let wait = retry_after(response.headers()).min(MAX_RETRY_AFTER);
                tracing::warn!(retry_in = ?wait, "Slack rate limit: waiting before one retry");
                tokio::time::sleep(wait).await;
                retried = true;
                continue;
            }
            let reply = response.text().await.unwrap_or_default();
            return match (&self.target, status) {
                (_, 429) => Err(Error::Http("Slack: rate limited (429)".into())),
                (Target::Api { .. }, 200) => api_reply(&reply),
                (Target::Webhook { .. }, 200) if reply.trim() == "ok" => Ok(()),
                (_, code) => Err(Error::Http(format!(
                    "Slack: HTTP {code}: {}",
                    excerpt(&reply, 200)
                ))),
            };
        }
    }
}

/// Checks the Slack configuration without posting: the endpoint is
/// reachable and, with a bot token, `auth.test` (a read-only call next to
/// chat.postMessage) accepts the token.
///
/// # Errors
/// What failed, as one lower-case sentence.
pub(crate) async fn healthcheck(
    config: &SlackConfig,
    client: &reqwest::Client,
) -> Result<String, String> {
    if let Some(webhook) = &config.webhook_url {
        return super::http::reachable(client, webhook).await;
    }
    let reached = super::http::reachable(client, &config.url).await?;
    let token = config.token.as_deref().unwrap_or_default();
    let url = auth_test_url(&config.url)?;
    let mut response = client
        .post(url)
        .bearer_auth(token)
        .timeout(HEALTHCHECK_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("Slack auth.test failed: {}", describe(&e)))?;
    let status = response.status().as_u16();
    // A reply is a small JSON object; read at most `HEALTHCHECK_BODY` of it
    // (the request's timeout also bounds the time a trickling body takes).
    let mut body = Vec::new();
    while body.len() < HEALTHCHECK_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(HEALTHCHECK_BODY);
    let reply = String::from_utf8_lossy(&body);
    if status != 200 {
        return Err(format!(
            "Slack auth.test answered HTTP {status}: {}",
            excerpt(&reply, 200)
        ));
    }
    match api_reply(&reply) {
        Ok(()) => Ok(format!("{reached}; token accepted by auth.test")),
        Err(Error::Http(why)) => Err(format!("token refused by auth.test: {why}")),
        Err(other) => Err(other.to_string()),
    }
}

/// The longest `validate --healthchecks` waits for `auth.test`.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of `auth.test`'s reply that is read.
const HEALTHCHECK_BODY: usize = 64 * 1024;

/// `auth.test` beside the configured chat.postMessage URL.
fn auth_test_url(post_url: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(post_url).map_err(|e| format!("invalid URL: {e}"))?;
    let path = url.path();
    let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
    let path = format!("{folder}/auth.test");
    url.set_path(&path);
    url.set_query(None);
    Ok(url)
}

fn body(message: &Message<'_>) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(message).map_err(|e| Error::Http(e.to_string()))
}

/// chat.postMessage's verdict: `ok`, else its `error` code.
fn api_reply(reply: &str) -> Result<(), Error> {
    let value: Value = serde_json::from_str(reply)
        .map_err(|_| Error::Http(format!("Slack: unexpected reply: {}", excerpt(reply, 200))))?;
    if value["ok"].as_bool() == Some(true) {
        return Ok(());
    }
    let code = value["error"].as_str().unwrap_or("unknown error");
    match error_hint(code) {
        Some(hint) => Err(Error::Http(format!("Slack: {code} ({hint})"))),
        None => Err(Error::Http(format!("Slack: {code}"))),
    }
}

/// What to do about chat.postMessage's common error codes (PROTOCOLS §3).
fn error_hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "not_authed" | "invalid_auth" | "token_revoked" | "token_expired" | "account_inactive" => {
            "check `token`: a bot token, `xoxb-...`, of an installed app"
        }
        "missing_scope" => "the bot token needs the `chat:write` scope",
        "channel_not_found" => "check `channel`: a channel ID (`C...`) or name the bot can see",
        "not_in_channel" => {
            "invite the bot to the channel, or give it the `chat:write.public` scope"
        }
        "is_archived" => "the channel is archived",
        _ => return None,
    })
}

/// `Retry-After` in seconds (default 1 s).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

#[async_trait]
impl Alerter for SlackAlerter {
    async fn trigger(&self, name: &str, message: &str) -> Result<(), Error> {
        let text = self.text(format!("Alert: *{}*: {message}", friendly_name(name)));
        self.post(&text).await
    }

    async fn resolve(&self, name: &str) -> Result<(), Error> {
        let text = self.text(format!("Clear: *{}*", friendly_name(name)));
        self.post(&text).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_replies_are_judged_by_ok() {
        assert!(api_reply(r#"{"ok":true,"ts":"1"}"#).is_ok());
        let err = api_reply(r#"{"ok":false,"error":"channel_not_found"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "alert delivery failed: Slack: channel_not_found (check `channel`: a channel ID (`C...`) or name the bot can see)"
        );
        let err = api_reply(r#"{"ok":false,"error":"fatal_error"}"#).unwrap_err();
        assert_eq!(err.to_string(), "alert delivery failed: Slack: fatal_error");
        assert!(api_reply("<html>").is_err());
    }

    // See: #18
    #[test]
    fn auth_test_sits_beside_post_message() {
        let url = auth_test_url("https://slack.com/api/chat.postMessage").unwrap();
        assert_eq!(url.as_str(), "https://slack.com/api/auth.test");
        let url = auth_test_url("http://127.0.0.1:9/chat.postMessage?x=1").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/auth.test");
    }
}
