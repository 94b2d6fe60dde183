//! The `http:` options of a check (SPEC §4 "Network checks"): as written
//! (`RawHttp`, with the serde of `method`, `status` and `body_limit`), their
//! validation (`RawHttp::validate`) and the validated `HttpCheck` the probe
//! runs.
//!
//! The YAML itself is read by `config` (the only user of `serde_yaml`); the
//! serde here is format-neutral. Values that can be checked while they are
//! read (`method`, `status`, `body_limit`) are checked inside their visitors,
//! so their errors keep the key path and line; the rest (URL, headers,
//! combinations) is checked afterwards and names its key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::DEFAULT_BODY_LIMIT;
use crate::checks::positive_seconds;

/// `method:` GET (default) or HEAD, in any case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Method {
    #[default]
    Get,
    Head,
}

impl Method {
    pub(super) fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
        }
    }
}

/// `status:` accepted codes, as inclusive ranges (a single code is `c..=c`).
///
/// No ranges means the default, 200-399: most checks keep it, and an empty
/// `Vec` costs no allocation per check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatusSpec(Vec<(u16, u16)>);

/// The ranges of the default `status`.
const DEFAULT_STATUS: &[(u16, u16)] = &[(200, 399)];

impl StatusSpec {
    /// Builds a spec from its items, each a code or a range.
    ///
    /// # Errors
    /// When there are no items.
    pub(crate) fn new(items: Vec<(u16, u16)>) -> Result<StatusSpec, String> {
        if items.is_empty() {
            return Err("needs at least one status code".into());
        }
        Ok(StatusSpec(items))
    }

    /// Parses one item: `200` or `200-399`.
    ///
    /// # Errors
    /// When it is neither, a code is outside 100-599 or a range is reversed.
    pub(crate) fn item(text: &str) -> Result<(u16, u16), String> {
        let code = |part: &str| -> Result<u16, String> {
            match part.trim().parse::<u16>() {
                Ok(code @ 100..=599) => Ok(code),
                _ => Err(format!(
                    "`{text}` is not a status code (100-599) or a range like `200-399`"
                )),
            }
        };
        match text.split_once('-') {
            None => code(text).map(|c| (c, c)),
            Some((low, high)) => {
                let (low, high) = (code(low)?, code(high)?);
                if low > high {
                    return Err(format!("the range `{text}` is reversed"));
                }
                Ok((low, high))
            }
        }
    }

    fn ranges(&self) -> &[(u16, u16)] {
        if self.0.is_empty() {
            DEFAULT_STATUS
        } else {
            &self.0
        }
    }

    #[must_use]
    pub(crate) fn matches(&self, status: u16) -> bool {
        self.ranges()
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(low, high)) in self.ranges().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

/// A validated `http:` check.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HttpCheck {
    pub url: Url,
    pub method: Method,
    pub status: StatusSpec,
    /// Text the body (the part read) must contain.
    pub contains: Option<String>,
    /// Request headers (a `Host` header here is sent as given). A list,
    /// not a `HeaderMap`, which is large even when empty.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `http.timeout`: overrides the check's and the agent's timeout.
    pub timeout: Option<Duration>,
    pub follow_redirects: bool,
    pub tls_verify: bool,
    /// WARNING when the certificate expires within this many days.
    pub cert_expiry_days: Option<u32>,
    /// Body bytes read at most.
    pub body_limit: u64,
}

impl HttpCheck {
    /// An HTTP check of `url` with every option at its default.
    #[must_use]
    #[cfg(test)]
    pub(crate) fn new(url: Url) -> HttpCheck {
        HttpCheck {
            url,
            method: Method::Get,
            status: StatusSpec::default(),
            contains: None,
            headers: Vec::new(),
            timeout: None,
            follow_redirects: false,
            tls_verify: true,
            cert_expiry_days: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// The `http:` options as written (SPEC §4 "Network checks").
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "the `http` options (a mapping with `url`)"
)]
pub(crate) struct RawHttp {
    /// The URL probed (http or https).
    url: String,
    /// GET (default) or HEAD.
    #[serde(default)]
    method: Method,
    /// Accepted status codes: a code, a range `200-399` or a list of them.
    #[serde(default)]
    status: StatusSpec,
    /// Text the body must contain.
    contains: Option<String>,
    /// Request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Seconds; overrides the check's `timeout` and `agent.timeout`.
    #[serde(rename = "timeout")]
    timeout_secs: Option<f64>,
    /// Follow 3xx responses (default false).
    #[serde(default)]
    follow_redirects: bool,
    /// Verify the server certificate (default true).
    #[serde(default = "default_tls_verify")]
    tls_verify: bool,
    /// WARNING when the certificate expires within this many days.
    cert_expiry_days: Option<u32>,
    /// Body bytes read at most: a number or `64 KiB`, `1 MiB` (default 1 MiB).
    #[serde(rename = "body_limit")]
    body_limit_bytes: Option<ByteSize>,
}

fn default_tls_verify() -> bool {
    true
}

impl RawHttp {
    /// Validates the options into the probe's settings. Pure.
    ///
    /// # Errors
    /// The first problem, naming its key (`http.url: ...`): a check with a
    /// bad option is one broken check, reported with one message.
    pub(crate) fn validate(self) -> Result<HttpCheck, String> {
        let url = Url::parse(self.url.trim())
            .map_err(|e| format!("http.url: `{}` is not a valid URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "http.url: `{url}` must start with http:// or https://"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("http.url: `{url}` has no host"));
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in self.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("http.headers: `{name}` is not a valid header name"))?;
            let value = HeaderValue::from_str(&value).map_err(|_| {
                format!("http.headers.{name}: the value is not a valid header value")
            })?;
            headers.push((header, value));
        }
        if self.contains.is_some() && self.method == Method::Head {
            return Err(
                "http.contains: a HEAD response has no body to search; use `method: GET`".into(),
            );
        }
        if self.cert_expiry_days.is_some() && url.scheme() != "https" {
            return Err(format!(
                "http.cert_expiry_days: `{url}` is not an https URL"
            ));
        }
        let timeout = self
            .timeout_secs
            .map(|secs| positive_seconds("http.timeout", secs))
            .transpose()?;
        let body_limit = self
            .body_limit_bytes
            .map_or(DEFAULT_BODY_LIMIT, |size| size.0);
        Ok(HttpCheck {
            url,
            method: self.method,
            status: self.status,
            contains: self.contains,
            headers,
            timeout,
            follow_redirects: self.follow_redirects,
            tls_verify: self.tls_verify,
            cert_expiry_days: self.cert_expiry_days,
            body_limit,
        })
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl<'de> Visitor<'de> for StatusVisitor {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code, a range like `200-399`, or a list of them")
            }
            fn visit_u64<E: de::Error>(self, code: u64) -> Result<StatusSpec, E> {
                let item = StatusSpec::item(&code.to_string()).map_err(E::custom)?;
                StatusSpec::new(vec![item]).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, code: i64) -> Result<StatusSpec, E> {
                let item = StatusSpec::item(&code.to_string()).map_err(E::custom)?;
                StatusSpec::new(vec![item]).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<StatusSpec, E> {
                let items = text
                    .split(',')
                    .map(|item| StatusSpec::item(item.trim()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(E::custom)?;
                StatusSpec::new(items).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<StatusSpec, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<StatusItem>()? {
                    items.push(item.0);
                }
                StatusSpec::new(items).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(StatusVisitor)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MethodVisitor;
        impl Visitor<'_> for MethodVisitor {
            type Value = Method;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("GET or HEAD")
            }
            // Checked inside the visitor, so the error keeps its line.
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Method, E> {
                if name.eq_ignore_ascii_case("GET") {
                    Ok(Method::Get)
                } else if name.eq_ignore_ascii_case("HEAD") {
                    Ok(Method::Head)
                } else {
                    Err(E::custom(format_args!(
                        "unknown method `{name}` (use GET or HEAD)"
                    )))
                }
            }
        }
        deserializer.deserialize_str(MethodVisitor)
    }
}

/// One element of a `status:` list: a code or a range.
struct StatusItem((u16, u16));

impl<'de> Deserialize<'de> for StatusItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl Visitor<'_> for ItemVisitor {
            type Value = StatusItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code or a range like `200-399`")
            }
            fn visit_u64<E: de::Error>(self, code: u64) -> Result<StatusItem, E> {
                self.visit_str(&code.to_string())
            }
            fn visit_i64<E: de::Error>(self, code: i64) -> Result<StatusItem, E> {
                self.visit_str(&code.to_string())
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<StatusItem, E> {
                StatusSpec::item(text.trim())
                    .map(StatusItem)
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

/// `body_limit`: a byte count, a number or a number and a unit (`B`, `KiB`,
/// `MiB`, `GiB`, `kB`, `MB`, `GB`).
///
/// Hand-written rather than the `bytesize` crate's parser: that one also
/// takes fractions, lower-case and larger units and words its errors
/// differently, and SPEC §4's syntax and this message are part of the
/// configuration contract.
struct ByteSize(u64);

impl ByteSize {
    fn parse(text: &str) -> Result<u64, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}` (use B, KiB, MiB, GiB, kB, MB or GB)"
                ));
            }
        };
        number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .ok_or_else(|| format!("`{text}` is not a byte count"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of bytes or a size like `64 KiB`")
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                ByteSize::parse(text).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_items_parse_and_print() {
        let spec = StatusSpec::new(vec![
            StatusSpec::item("200").unwrap(),
            StatusSpec::item("300-399").unwrap(),
        ])
        .unwrap();
        assert_eq!(spec.to_string(), "200, 300-399");
        assert!(spec.matches(200) && spec.matches(301) && !spec.matches(204));
        assert_eq!(StatusSpec::default().to_string(), "200-399");
        let bad = [
            (
                "2xx",
                "`2xx` is not a status code (100-599) or a range like `200-399`",
            ),
            (
                "600",
                "`600` is not a status code (100-599) or a range like `200-399`",
            ),
            ("399-200", "the range `399-200` is reversed"),
        ];
        for (text, want) in bad {
            assert_eq!(StatusSpec::item(text).unwrap_err(), want);
        }
    }

    #[test]
    fn byte_sizes_parse_with_their_units() {
        let good = [
            ("0", 0),
            ("512", 512),
            ("64 KiB", 65_536),
            ("64KiB", 65_536),
            ("1 MiB", 1 << 20),
            ("2 GiB", 2 << 30),
            ("3 kB", 3_000),
            ("3 KB", 3_000),
            ("4 MB", 4_000_000),
            ("5 GB", 5_000_000_000),
            (" 7 B ", 7),
        ];
        for (text, want) in good {
            assert_eq!(ByteSize::parse(text), Ok(want), "{text}");
        }
        let bad = [
            (
                "2 parsecs",
                "unknown unit `parsecs` in `2 parsecs` (use B, KiB, MiB, GiB, kB, MB or GB)",
            ),
            (
                "1.5 MiB",
                "unknown unit `.5 MiB` in `1.5 MiB` (use B, KiB, MiB, GiB, kB, MB or GB)",
            ),
            ("KiB", "`KiB` is not a byte count"),
            (
                "99999999999999 GiB",
                "`99999999999999 GiB` is not a byte count",
            ),
        ];
        for (text, want) in bad {
            assert_eq!(ByteSize::parse(text).unwrap_err(), want, "{text}");
        }
    }
}
