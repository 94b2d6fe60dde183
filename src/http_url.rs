//! The one rule for the URL options of the agent configuration (SPEC §16):
//! every `url`, `webhook_url` and `endpoint_url` is an absolute `http://` or
//! `https://` URL with a host.
//!
//! The check runs while the configuration is read: the alerter, database
//! and sink option structs name these deserializers on their URL fields, so
//! the check runs inside serde_yaml, which adds the key path and line to
//! the error (`alerters.ops.webhook_url: ... at line 12 column 18`). A
//! value that is not a URL (`z`, `slack.com/api`, a `${VAR}` set to
//! nothing) then stops `validate` and the agent at start, instead of
//! failing the first real alert with `relative URL without a base`.
//! Whether a key or token is accepted only the receiver can tell: that is
//! `cimaa test-alert`'s job, not this module's.
//!
//! A Slack webhook URL is a secret (whoever has it can post), so a bad
//! `webhook_url` is described without quoting it.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// `text` as an absolute http(s) URL with a host.
///
/// # Errors
/// Why not, as the end of a sentence that starts with the key, quoting
/// the value unless `secret`.
pub(crate) fn check(text: &str, secret: bool) -> Result<reqwest::Url, String> {
    let shown = if secret {
        "the value (not shown: a webhook URL is a secret)".to_string()
    } else {
        format!("`{text}`")
    };
    let trimmed = text.trim();
    let not_absolute =
        || format!("{shown} is not an absolute URL: it must start with `https://` (or `http://`)");
    // `SCHEME://` first: without it the text is a relative URL (`z`,
    // `slack.com/api`), or `localhost:4567` or `https:host`, which parse
    // as something else than what was meant.
    let Some((scheme, rest)) = trimmed.split_once(':') else {
        return Err(not_absolute());
    };
    let scheme_like = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_like || !rest.starts_with("//") {
        return Err(not_absolute());
    }
    let url =
        reqwest::Url::parse(trimmed).map_err(|e| format!("{shown} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{shown} is not an http(s) URL (its scheme is `{}`): it must start with `https://` \
             (or `http://`)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown} has no host"));
    }
    Ok(url)
}

/// Reads a string that must be an absolute http(s) URL (see `check`); the
/// error is raised where the value is read, so it carries its key and line.
struct UrlVisitor {
    secret: bool,
}

impl Visitor<'_> for UrlVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an absolute http(s) URL")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        // Stored as checked: ` https://x ` would reach the HTTP client (or
        // the AWS SDK) with its spaces.
        let text = text.trim();
        check(text, self.secret)
            .map(|_| text.to_string())
            .map_err(E::custom)
    }
}

/// `Option<String>` of a URL: absent or null is `None`.
struct OptionalUrlVisitor {
    secret: bool,
}

impl<'de> Visitor<'de> for OptionalUrlVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an absolute http(s) URL")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer
            .deserialize_str(UrlVisitor {
                secret: self.secret,
            })
            .map(Some)
    }
}

/// `deserialize_with` for a URL option (`url`).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_str(UrlVisitor { secret: false })
}

/// `deserialize_with` for an optional URL option (`endpoint_url`); pair it
/// with `#[serde(default)]`.
pub(crate) fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_option(OptionalUrlVisitor { secret: false })
}

/// `deserialize_with` for an optional URL that is a secret (`webhook_url`):
/// its errors never quote it.
pub(crate) fn deserialize_secret_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_option(OptionalUrlVisitor { secret: true })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde::de::value::{Error as ValueError, StrDeserializer};

    use super::*;

    #[test]
    fn absolute_http_urls_with_a_host_are_accepted() {
        for text in [
            "https://events.pagerduty.com/v2/enqueue",
            "http://127.0.0.1:8000",
            "HTTPS://hooks.slack.com/services/T0/B0/x",
            "http://[::1]:4567/",
            " https://slack.com/api/chat.postMessage ",
        ] {
            assert!(check(text, false).is_ok(), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let cases = [
            (
                "z",
                "`z` is not an absolute URL: it must start with `https://` (or `http://`)",
            ),
            (
                "slack.com/api",
                "`slack.com/api` is not an absolute URL: it must start with `https://` (or `http://`)",
            ),
            (
                "",
                "`` is not an absolute URL: it must start with `https://` (or `http://`)",
            ),
            (
                "ftp://files.example.com/x",
                "`ftp://files.example.com/x` is not an http(s) URL (its scheme is `ftp`): it must start with `https://` (or `http://`)",
            ),
            (
                "localhost:4567",
                "`localhost:4567` is not an absolute URL: it must start with `https://` (or `http://`)",
            ),
            (
                "https:slack.com",
                "`https:slack.com` is not an absolute URL: it must start with `https://` (or `http://`)",
            ),
            ("http://", "`http://` is not a valid URL: empty host"),
            (
                "http://127.0.0.1:99999",
                "`http://127.0.0.1:99999` is not a valid URL: invalid port number",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(check(text, false).unwrap_err(), want, "{text:?}");
        }
    }

    #[test]
    fn a_secret_is_never_quoted() {
        let why = check("hooks.slack.com/services/T0/B0/SECRET", true).unwrap_err();
        assert_eq!(
            why,
            "the value (not shown: a webhook URL is a secret) is not an absolute URL: it must start with `https://` (or `http://`)"
        );
    }

    #[derive(Debug, Deserialize)]
    struct Options {
        #[serde(deserialize_with = "deserialize")]
        url: String,
    }

    #[test]
    fn the_deserializers_check_what_they_read() {
        let read = |text: &str| deserialize(StrDeserializer::<ValueError>::new(text));
        assert_eq!(read("http://x").unwrap(), "http://x");
        assert_eq!(
            read(" http://x \n").unwrap(),
            "http://x",
            "stored as checked"
        );
        assert!(read("x").is_err());
        let value = |text: Option<&str>| text.map_or(serde_json::Value::Null, Into::into);
        let optional =
            |text: Option<&str>| deserialize_option(value(text)).map_err(|e| e.to_string());
        assert_eq!(optional(None), Ok(None));
        assert_eq!(optional(Some("http://x")), Ok(Some("http://x".into())));
        assert!(optional(Some("x")).is_err());
        let secret =
            |text: Option<&str>| deserialize_secret_option(value(text)).map_err(|e| e.to_string());
        assert_eq!(secret(None), Ok(None));
        let error = secret(Some("x/SECRET")).unwrap_err();
        assert!(!error.contains("SECRET"), "{error}");
        let options = |url: &str| {
            Options::deserialize(serde::de::value::MapDeserializer::<_, ValueError>::new(
                [("url", url)].into_iter(),
            ))
        };
        assert_eq!(options("https://x").unwrap().url, "https://x");
        assert!(options("z").is_err());
    }
}
