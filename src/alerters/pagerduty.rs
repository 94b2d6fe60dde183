//! `pagerduty` alerter: Events API v2 (PROTOCOLS.md §2).
//!
//! The dedup key is the fault name, so triggers from several agents for one
//! `//meta` fault merge into one incident. 202 is success; 400 is a refusal
//! (not resent until the message changes); 429, 5xx and network errors are
//! failures the next tick retries. An error quotes the HTTP status and
//! PagerDuty's `message` and `errors` (a refused routing key says so there).

use std::fmt::Write as _;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::http::{describe, excerpt};
use super::{Alerter, Context, Error, PagerDutyConfig, friendly_name};

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_CHARS: usize = 1024;
/// PagerDuty's limit on `dedup_key`.
const DEDUP_CHARS: usize = 255;
/// Characters of a long name kept before `#` and its SHA-256.
const DEDUP_PREFIX_CHARS: usize = 190;

/// Sends events to PagerDuty.
pub(crate) struct PagerDutyAlerter {
    client: reqwest::Client,
    url: String,
    routing_key: String,
    agent: String,
}

/// The wire event; field names are PagerDuty's.
#[derive(Serialize)]
#[expect(clippy::struct_field_names, reason = "PagerDuty's field names")]
struct Event<'a> {
    routing_key: &'a str,
    event_action: &'a str,
    dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Payload<'a>>,
}

#[derive(Serialize)]
struct Payload<'a> {
    summary: String,
    source: &'a str,
    severity: &'a str,
    custom_details: Details<'a>,
}

#[derive(Serialize)]
struct Details<'a> {
    name: &'a str,
    agent: &'a str,
    message: &'a str,
}

impl PagerDutyAlerter {
    /// Builds the alerter with the agent's shared HTTP client.
    #[must_use]
    pub(crate) fn new(
        config: &PagerDutyConfig,
        context: &Context,
        client: reqwest::Client,
    ) -> Self {
        PagerDutyAlerter {
            client,
            url: config.url.clone(),
            routing_key: config.routing_key.clone(),
            agent: context.agent.clone(),
        }
    }

    async fn send(&self, event: &Event<'_>) -> Result<(), Error> {
        let body = serde_json::to_vec(event).map_err(|e| Error::Http(e.to_string()))?;
        let response = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Http(format!("PagerDuty: {}", describe(&e))))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match status.as_u16() {
            200..=299 => Ok(()),
            400 => Err(Error::Refused(format!(
                "PagerDuty: HTTP 400: {}",
                refusal(&text)
            ))),
            429 => Err(Error::Http("PagerDuty: rate limited (429)".into())),
            code => Err(Error::Http(format!(
                "PagerDuty: HTTP {code}: {}",
                explanation(&text)
            ))),
        }
    }
}

/// PagerDuty's explanation of a 400: its message and errors.
fn refusal(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return format!("invalid event: {}", excerpt(body, 200));
    };
    let message = value["message"].as_str().unwrap_or("invalid event");
    let errors: Vec<String> = value["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        message.to_string()
    } else {
        format!("{message}: {}", errors.join("; "))
    }
}

/// What an answer other than 202, 400 or 429 says: PagerDuty's message
/// and errors when the body is its JSON, else the start of the body.
fn explanation(body: &str) -> String {
    let is_pagerduty = serde_json::from_str::<Value>(body)
        .is_ok_and(|value| value["message"].is_string() || value["errors"].is_array());
    if is_pagerduty {
        refusal(body)
    } else {
        excerpt(body, 200)
    }
}

/// The dedup key: the fault name, or for names over 255 characters its
/// first 190 characters, `#` and the SHA-256 of the whole name in hex.
#[must_use]
pub(crate) fn dedup_key(name: &str) -> String {
    if name.chars().count() <= DEDUP_CHARS {
        return name.to_string();
    }
    let prefix: String = name.chars().take(DEDUP_PREFIX_CHARS).collect();
    let digest = Sha256::digest(name.as_bytes());
    let hex = digest
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        });
    format!("{prefix}#{hex}")
}

/// `friendly: message` within 1024 characters, keeping the start and the end.
#[must_use]
pub(crate) fn summary(name: &str, message: &str) -> String {
    let full = if message.is_empty() {
        friendly_name(name)
    } else {
        format!("{}: {message}", friendly_name(name))
    };
    let chars: Vec<char> = full.chars().collect();
    if chars.len() <= SUMMARY_CHARS {
        return full;
    }
    let marker = " ... ";
    let room = SUMMARY_CHARS - marker.len();
    let head = room / 2;
    let tail = room - head;
    let mut out: String = chars[..head].iter().collect();
    out.push_str(marker);
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[async_trait]
impl Alerter for PagerDutyAlerter {
    async fn trigger(&self, name: &str, message: &str) -> Result<(), Error> {
        self.send(&Event {
            routing_key: &self.routing_key,
            event_action: "trigger",
            dedup_key: dedup_key(name),
            payload: Some(Payload {
                summary: summary(name, message),
                source: &self.agent,
                severity: "critical",
                custom_details: Details {
                    name,
                    agent: &self.agent,
                    message,
                },
            }),
        })
        .await
    }

    async fn resolve(&self, name: &str) -> Result<(), Error> {
        self.send(&Event {
            routing_key: &self.routing_key,
            event_action: "resolve",
            dedup_key: dedup_key(name),
            payload: None,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_their_own_dedup_key() {
        assert_eq!(dedup_key("//meta#web2"), "//meta#web2");
        let exact = "x".repeat(255);
        assert_eq!(dedup_key(&exact), exact);
    }

    #[test]
    fn long_names_become_a_prefix_and_their_hash() {
        let name = format!("//{}", "a".repeat(300));
        let key = dedup_key(&name);
        assert_eq!(key.chars().count(), 255);
        assert!(key.starts_with(&name[..190]));
        assert_eq!(&key[190..191], "#");
        let hex = &key[191..];
        assert_eq!(hex.len(), 64);
        assert_eq!(dedup_key(&name), key, "stable");
        assert_ne!(dedup_key(&format!("{name}b")), key);
    }

    #[test]
    fn summaries_keep_start_and_end_within_1024_characters() {
        let message = format!("START{}END", "é".repeat(3000));
        let got = summary("//web1/app/disk", &message);
        assert_eq!(got.chars().count(), 1024);
        assert!(got.starts_with("web1 app disk: START"));
        assert!(got.ends_with("END"));
        assert!(got.contains(" ... "));
        assert_eq!(summary("//web1/app/disk", "full"), "web1 app disk: full");
    }

    #[test]
    fn refusals_quote_pagerduty() {
        assert_eq!(
            refusal(
                r#"{"status":"invalid event","message":"Event object is invalid","errors":["'routing_key' is invalid"]}"#
            ),
            "Event object is invalid: 'routing_key' is invalid"
        );
        assert_eq!(refusal("nope"), "invalid event: nope");
    }

    // See: #22
    #[test]
    fn other_answers_quote_pagerduty_when_it_explains() {
        assert_eq!(
            explanation(r#"{"status":"unrecognized","message":"Invalid routing key","errors":[]}"#),
            "Invalid routing key"
        );
        assert_eq!(explanation("<html>boom</html>"), "<html>boom</html>");
    }
}
