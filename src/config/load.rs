//! Reading configuration files: the only place that uses `serde_yaml`.
//!
//! Errors always start with the file and carry `serde_yaml`'s key path and
//! line/column, e.g. `agent.yaml: agent: unknown field `nmae` ... at line 2
//! column 3`. Backend sections keep the flat `type:` shape of SPEC §2: a first
//! pass reads only the `type` values, then the second pass deserializes the
//! whole document with seeds that know which backend struct each section is,
//! so errors inside a backend section keep their position (an internally
//! tagged enum would buffer the section and report line 1 column 1).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};

use super::{AgentConfig, CheckDef, CheckKind, Config, LogFormat, Scope};
use crate::alerters::{
    self, AlerterConfig, CommandConfig, FileConfig, PagerDutyConfig, SlackConfig,
};
use crate::checks::http::{self, HttpCheck, Method, StatusSpec};
use crate::checks::{socket, tcp};
use crate::db::{DbConfig, DynamoDbConfig, MemoryConfig, SqliteConfig};
use crate::env;
use crate::sinks::{KinesisConfig, LogConfig, SinkConfig};
use crate::thresholds::Thresholds;

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

// ---------------------------------------------------------------- agent file

/// The `agent:` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: Option<String>,
    #[serde(default = "default_directory")]
    directory: PathBuf,
    #[serde(rename = "base_interval", default = "default_base_interval_secs")]
    base_interval_secs: f64,
    #[serde(rename = "timeout")]
    timeout_secs: Option<f64>,
    #[serde(rename = "alert_timeout")]
    alert_timeout_secs: Option<f64>,
    #[serde(default = "default_logging")]
    logging: String,
    #[serde(default)]
    log_format: LogFormat,
    sentry_dsn: Option<String>,
    max_concurrency: Option<usize>,
}

fn default_directory() -> PathBuf {
    PathBuf::from("/etc/cimaa/checks.d")
}
fn default_base_interval_secs() -> f64 {
    60.0
}
fn default_logging() -> String {
    "info".into()
}
/// Checks and probes in flight at once unless configured.
const DEFAULT_MAX_CONCURRENCY: usize = 256;

/// Section `type:` values read in the first pass.
#[derive(Deserialize, Default)]
struct TypeProbe {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Probe {
    database: Option<TypeProbe>,
    alerter: Option<TypeProbe>,
    alerters: Option<BTreeMap<String, TypeProbe>>,
    metrics: Option<TypeProbe>,
}

/// The whole file, before validation.
struct RawConfig {
    agent: Option<RawAgent>,
    database: Option<DbConfig>,
    alerter: Option<AlerterConfig>,
    alerters: BTreeMap<String, AlerterConfig>,
    metrics: Option<SinkConfig>,
}

const TOP_KEYS: &[&str] = &["agent", "database", "alerter", "alerters", "metrics"];

struct ConfigSeed {
    database: Option<String>,
    alerter: Option<String>,
    alerters: BTreeMap<String, Option<String>>,
    metrics: Option<String>,
}

impl<'de> DeserializeSeed<'de> for ConfigSeed {
    type Value = RawConfig;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawConfig, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ConfigSeed {
    type Value = RawConfig;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping with `agent`, `database`, `alerter`, `alerters` and `metrics`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
        let mut raw = RawConfig {
            agent: None,
            database: None,
            alerter: None,
            alerters: BTreeMap::new(),
            metrics: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "agent" => raw.agent = Some(map.next_value()?),
                "database" => {
                    raw.database = Some(
                        map.next_value_seed(Section::<DbConfig>::new(self.database.as_deref()))?,
                    );
                }
                "alerter" => {
                    raw.alerter =
                        Some(map.next_value_seed(Section::<AlerterConfig>::new(
                            self.alerter.as_deref(),
                        ))?);
                }
                "alerters" => {
                    raw.alerters = map.next_value_seed(NamedAlerters {
                        types: &self.alerters,
                    })?;
                }
                "metrics" => {
                    raw.metrics = Some(
                        map.next_value_seed(Section::<SinkConfig>::new(self.metrics.as_deref()))?,
                    );
                }
                other => return Err(de::Error::unknown_field(other, TOP_KEYS)),
            }
        }
        Ok(raw)
    }
}

/// `alerters:`: a map of names to alerter sections, each with its own `type`.
struct NamedAlerters<'a> {
    types: &'a BTreeMap<String, Option<String>>,
}

impl<'de> DeserializeSeed<'de> for NamedAlerters<'_> {
    type Value = BTreeMap<String, AlerterConfig>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NamedAlerters<'_> {
    type Value = BTreeMap<String, AlerterConfig>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of alerter names to alerter sections")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut named = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let kind = self.types.get(&name).and_then(Option::as_deref);
            let config = map.next_value_seed(Section::<AlerterConfig>::new(kind))?;
            named.insert(name, config);
        }
        Ok(named)
    }
}

/// A backend enum whose variant is chosen by the section's `type:`.
trait Backend: Sized {
    const TYPES: &'static [&'static str];
    /// Deserializes the section (with `type` already skipped) as variant `kind`.
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error>;
}

impl Backend for DbConfig {
    const TYPES: &'static [&'static str] = &["sqlite", "memory", "dynamodb"];
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        match kind {
            "sqlite" => SqliteConfig::deserialize(d).map(DbConfig::Sqlite),
            "memory" => MemoryConfig::deserialize(d).map(|_| DbConfig::Memory),
            "dynamodb" => DynamoDbConfig::deserialize(d).map(DbConfig::DynamoDb),
            other => Err(de::Error::unknown_variant(other, Self::TYPES)),
        }
    }
}

impl Backend for AlerterConfig {
    const TYPES: &'static [&'static str] = AlerterConfig::TYPES;
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        match kind {
            "pagerduty" => PagerDutyConfig::deserialize(d).map(AlerterConfig::PagerDuty),
            "slack" => SlackConfig::deserialize(d).map(AlerterConfig::Slack),
            "file" => FileConfig::deserialize(d).map(AlerterConfig::File),
            "command" => CommandConfig::deserialize(d).map(AlerterConfig::Command),
            other => Err(de::Error::unknown_variant(other, Self::TYPES)),
        }
    }
}

impl Backend for SinkConfig {
    const TYPES: &'static [&'static str] = SinkConfig::TYPES;
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        match kind {
            "log" => LogConfig::deserialize(d).map(SinkConfig::Log),
            "kinesis" => KinesisConfig::deserialize(d).map(SinkConfig::Kinesis),
            other => Err(de::Error::unknown_variant(other, Self::TYPES)),
        }
    }
}

struct Section<'a, T> {
    kind: Option<&'a str>,
    _marker: std::marker::PhantomData<T>,
}

impl<'a, T> Section<'a, T> {
    fn new(kind: Option<&'a str>) -> Self {
        Section {
            kind,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Backend> DeserializeSeed<'de> for Section<'_, T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Backend> Visitor<'de> for Section<'_, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with `type` (one of {})", T::TYPES.join(", "))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let Some(kind) = self.kind else {
            return Err(de::Error::missing_field("type"));
        };
        T::from_section(kind, de::value::MapAccessDeserializer::new(SkipType(map)))
    }
}

/// A map with its `type` entry hidden, so backend structs can deny unknown fields.
struct SkipType<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipType<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.0.next_key::<String>()? else {
                return Ok(None);
            };
            if key == "type" {
                self.0.next_value::<IgnoredAny>()?;
                continue;
            }
            return seed
                .deserialize(de::value::StringDeserializer::<A::Error>::new(key))
                .map(Some);
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// Replaces `${VAR}` from the environment outside YAML comments; `$${` is a literal `${`.
fn substitute_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let comment = comment_start(line);
        let (body, rest) = line.split_at(comment);
        let mut i = 0;
        let bytes = body.as_bytes();
        while i < body.len() {
            if body[i..].starts_with("$${") {
                out.push_str("${");
                i += 3;
            } else if body[i..].starts_with("${") {
                if let Some(end) = body[i + 2..].find('}') {
                    let var = &body[i + 2..i + 2 + end];
                    match lookup(var) {
                        Some(value) => out.push_str(&value),
                        None => problems.push(format!(
                            "environment variable `{var}` is not set (used at line {} column {})",
                            number + 1,
                            i + 1
                        )),
                    }
                    i += end + 3;
                } else {
                    out.push_str("${");
                    i += 2;
                }
            } else {
                let ch_len = utf8_len(bytes[i]);
                out.push_str(&body[i..i + ch_len]);
                i += ch_len;
            }
        }
        out.push_str(rest);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// Byte offset where a YAML comment starts on this line (or its length).
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, ch) in line.char_indices() {
        match quote {
            Some(q) if ch == q => quote = None,
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '#' && previous.is_whitespace() => return i,
            Some(_) | None => {}
        }
        previous = ch;
    }
    line.len()
}

/// The Sentry DSN and agent name of a configuration that failed to load, if
/// the file parses as YAML and names a valid DSN: startup errors are still
/// reported there (SPEC §9).
#[must_use]
pub fn startup_sentry(path: &Path) -> Option<(String, String)> {
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
    let probe: Probe = serde_yaml::from_str(&text).map_err(|e| invalid(vec![e.to_string()]))?;
    let seed = ConfigSeed {
        database: probe.database.unwrap_or_default().kind,
        alerter: probe.alerter.unwrap_or_default().kind,
        alerters: probe
            .alerters
            .unwrap_or_default()
            .into_iter()
            .map(|(name, probe)| (name, probe.kind))
            .collect(),
        metrics: probe.metrics.unwrap_or_default().kind,
    };
    let raw = seed
        .deserialize(serde_yaml::Deserializer::from_str(&text))
        .map_err(|e| invalid(vec![e.to_string()]))?;
    let base = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    validate(raw, absolute, &base).map_err(invalid)
}

fn validate(raw: RawConfig, path: PathBuf, base: &Path) -> Result<Config, Vec<String>> {
    let mut problems = Vec::new();
    let Some(agent) = raw.agent else {
        return Err(vec!["missing section `agent`".into()]);
    };
    let base_interval = agent.base_interval_secs;
    if !(base_interval.is_finite() && base_interval > 0.0) {
        problems.push(format!(
            "agent.base_interval: must be a positive number of seconds, got `{base_interval}`"
        ));
    }
    let mut seconds = |key: &str, value: Option<f64>, share: f64| -> Duration {
        let secs = value.unwrap_or(base_interval * share);
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if secs > 0.0 => d,
            _ => {
                problems.push(format!(
                    "agent.{key}: must be a positive number of seconds, got `{secs}`"
                ));
                Duration::from_secs(1)
            }
        }
    };
    let timeout = seconds("timeout", agent.timeout_secs, 0.7);
    let alert_timeout = seconds("alert_timeout", agent.alert_timeout_secs, 0.2);
    let max_concurrency = match std::env::var(env::MAX_CONCURRENCY) {
        Ok(value) => value.trim().parse::<usize>().unwrap_or_else(|_| {
            problems.push(format!(
                "environment variable `{}`: `{value}` is not a positive integer",
                env::MAX_CONCURRENCY
            ));
            DEFAULT_MAX_CONCURRENCY
        }),
        Err(_) => agent.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY),
    };
    if max_concurrency == 0 {
        problems.push("agent.max_concurrency: must be at least 1".into());
    }
    let name = match agent.name {
        Some(name) if name.trim().is_empty() => {
            problems.push("agent.name: must not be empty".into());
            name
        }
        Some(name) => name,
        None => crate::host::fqdn(),
    };
    if let Some(dsn) = &agent.sentry_dsn
        && let Err(e) = dsn.parse::<sentry::types::Dsn>()
    {
        problems.push(format!("agent.sentry_dsn: invalid DSN `{dsn}`: {e}"));
    }
    let Some(alerter) = raw.alerter else {
        problems
            .push("missing section `alerter` (an agent that cannot page is not monitoring)".into());
        return Err(problems);
    };
    let alerter = resolve_alerter(alerter, base);
    let alerters: BTreeMap<String, AlerterConfig> = raw
        .alerters
        .into_iter()
        .map(|(name, config)| (name, resolve_alerter(config, base)))
        .collect();
    problems.extend(check_alerters(&alerter, &alerters));
    let database = validate_database(raw.database.unwrap_or_default(), base, &name, &mut problems);
    let metrics = raw.metrics.map(|metrics| match metrics {
        SinkConfig::Log(mut log) => {
            log.path = log.path.map(|p| base.join(p));
            SinkConfig::Log(log)
        }
        other @ SinkConfig::Kinesis(_) => other,
    });
    if let Some(metrics) = &metrics {
        problems.extend(metrics.validate());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        path,
        agent: AgentConfig {
            name,
            directory: base.join(agent.directory),
            base_interval,
            timeout,
            alert_timeout,
            logging: agent.logging,
            log_format: agent.log_format,
            sentry_dsn: agent.sentry_dsn,
            max_concurrency,
        },
        database,
        alerter,
        alerters,
        metrics,
    })
}

/// Resolves relative paths of an alerter section against the config's folder.
fn resolve_alerter(config: AlerterConfig, base: &Path) -> AlerterConfig {
    match config {
        AlerterConfig::File(mut file) => {
            if file.path.as_os_str() != "-" {
                file.path = base.join(&file.path);
            }
            AlerterConfig::File(file)
        }
        other => other,
    }
}

/// Problems of the alerter sections: Slack without a destination, unknown
/// or circular fallbacks, a named alerter called `default`.
fn check_alerters(default: &AlerterConfig, named: &BTreeMap<String, AlerterConfig>) -> Vec<String> {
    let mut problems = Vec::new();
    if named.contains_key(alerters::DEFAULT) {
        problems.push(format!(
            "alerters.{}: the name is reserved for the `alerter` section",
            alerters::DEFAULT
        ));
    }
    let all: Vec<(String, String, &AlerterConfig)> = std::iter::once((
        "alerter".to_string(),
        alerters::DEFAULT.to_string(),
        default,
    ))
    .chain(
        named
            .iter()
            .map(|(name, c)| (format!("alerters.{name}"), name.clone(), c)),
    )
    .collect();
    let lookup = |name: &str| all.iter().find(|(_, n, _)| n == name).map(|(_, _, c)| *c);
    for (key, name, config) in &all {
        if let AlerterConfig::Slack(slack) = config {
            match (&slack.token, &slack.webhook_url) {
                (None, None) => problems.push(format!(
                    "{key}: slack needs `token` (with `channel`) or `webhook_url`"
                )),
                (Some(_), Some(_)) => problems.push(format!(
                    "{key}: give either `token` or `webhook_url`, not both"
                )),
                _ => {}
            }
        }
        let mut seen = vec![name.clone()];
        let mut next = config.fallback();
        while let Some(fallback) = next {
            let Some(target) = lookup(fallback) else {
                problems.push(format!("{key}.fallback: no alerter named `{fallback}`"));
                break;
            };
            if seen.iter().any(|s| s == fallback) {
                problems.push(format!(
                    "{key}.fallback: `{fallback}` leads back to `{name}` (a cycle)"
                ));
                break;
            }
            seen.push(fallback.to_string());
            next = target.fallback();
        }
    }
    problems
}

/// Resolves the `database:` section's paths and collects its problems.
fn validate_database(
    database: DbConfig,
    base: &Path,
    agent: &str,
    problems: &mut Vec<String>,
) -> DbConfig {
    match database {
        DbConfig::Sqlite(mut sqlite) => {
            sqlite.path = base.join(&sqlite.path);
            DbConfig::Sqlite(sqlite)
        }
        other @ DbConfig::Memory => other,
        DbConfig::DynamoDb(dynamodb) => {
            problems.extend(dynamodb.problems());
            if crate::db::dynamodb::is_reserved_agent(agent) {
                problems.push(format!(
                    "agent.name: `{agent}` is reserved by the dynamodb table layout"
                ));
            }
            DbConfig::DynamoDb(dynamodb)
        }
    }
}

// ---------------------------------------------------------------- check files

/// One check entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    command: Option<String>,
    http: Option<RawHttp>,
    tcp: Option<String>,
    socket: Option<String>,
    interval: Option<u64>,
    retry: Option<u32>,
    retry_interval: Option<u64>,
    #[serde(rename = "timeout")]
    timeout_secs: Option<f64>,
    nagios_performance: Option<bool>,
    thresholds: Option<ThresholdLines>,
    alerter: Option<String>,
}

/// The `http:` options as written (SPEC §4 "Network checks").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
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
    headers: std::collections::BTreeMap<String, String>,
    /// Seconds; overrides the check's `timeout` and `agent.timeout`.
    #[serde(rename = "timeout")]
    timeout_secs: Option<f64>,
    /// Follow 3xx responses (default false).
    #[serde(default)]
    follow_redirects: bool,
    /// Verify the server certificate (default true).
    #[serde(default = "default_true")]
    tls_verify: bool,
    /// WARNING when the certificate expires within this many days.
    cert_expiry_days: Option<u32>,
    /// Body bytes read at most: a number or `64 KiB`, `1 MiB` (default 1 MiB).
    #[serde(rename = "body_limit")]
    body_limit_bytes: Option<ByteSize>,
}

fn default_true() -> bool {
    true
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

/// A byte count: a number, or a number and a unit (`B`, `KiB`, `MiB`, `GiB`,
/// `kB`, `MB`, `GB`).
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

/// Validates `http:` options into the probe's settings.
fn build_http(raw: RawHttp) -> Result<HttpCheck, String> {
    let url = Url::parse(raw.url.trim())
        .map_err(|e| format!("http.url: `{}` is not a valid URL: {e}", raw.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "http.url: `{url}` must start with http:// or https://"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("http.url: `{url}` has no host"));
    }
    let mut headers = Vec::with_capacity(raw.headers.len());
    for (name, value) in raw.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("http.headers: `{name}` is not a valid header name"))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("http.headers.{name}: the value is not a valid header value"))?;
        headers.push((header, value));
    }
    if raw.contains.is_some() && raw.method == Method::Head {
        return Err(
            "http.contains: a HEAD response has no body to search; use `method: GET`".into(),
        );
    }
    if raw.cert_expiry_days.is_some() && url.scheme() != "https" {
        return Err(format!(
            "http.cert_expiry_days: `{url}` is not an https URL"
        ));
    }
    let timeout = raw
        .timeout_secs
        .map(|secs| positive_seconds("http.timeout", secs))
        .transpose()?;
    let body_limit = raw
        .body_limit_bytes
        .map_or(http::DEFAULT_BODY_LIMIT, |size| size.0);
    Ok(HttpCheck {
        url,
        method: raw.method,
        status: raw.status,
        contains: raw.contains,
        headers,
        timeout,
        follow_redirects: raw.follow_redirects,
        tls_verify: raw.tls_verify,
        cert_expiry_days: raw.cert_expiry_days,
        body_limit,
    })
}

fn positive_seconds(key: &str, secs: f64) -> Result<Duration, String> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if secs > 0.0 => Ok(d),
        _ => Err(format!(
            "`{key}` must be a positive number of seconds, got `{secs}`"
        )),
    }
}

/// `thresholds:` as a multi-line string or a list of lines.
struct ThresholdLines(Vec<String>);

impl<'de> Deserialize<'de> for ThresholdLines {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LinesVisitor;
        impl<'de> Visitor<'de> for LinesVisitor {
            type Value = ThresholdLines;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a multi-line string or a list of threshold lines")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ThresholdLines, E> {
                Ok(ThresholdLines(text.lines().map(str::to_string).collect()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ThresholdLines, A::Error> {
                let mut lines = Vec::new();
                while let Some(line) = seq.next_element::<String>()? {
                    lines.push(line);
                }
                Ok(ThresholdLines(lines))
            }
        }
        deserializer.deserialize_any(LinesVisitor)
    }
}

/// The checks of one file: fine ones and the ones that only report their error.
fn checks_of_file(scope: &Scope, path: &Path, text: &str) -> Vec<CheckDef> {
    let agent = &scope.agent;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let display = path.display();
    // Fast path: the whole file at once.
    let entries: Result<Vec<(String, RawCheck)>, _> =
        serde_yaml::from_str::<Option<OrderedMap<RawCheck>>>(text)
            .map(|map| map.map(|m| m.0).unwrap_or_default());
    let raw = match entries {
        Ok(entries) => entries
            .into_iter()
            .map(|(k, v)| (k, Ok(v)))
            .collect::<Vec<_>>(),
        Err(whole) => match serde_yaml::from_str::<Option<OrderedMap<IgnoredAny>>>(text) {
            // Not even a mapping of keys: the file cannot be parsed.
            Err(e) => {
                return vec![CheckDef::broken(
                    format!("//{agent}/{stem}/"),
                    path,
                    format!("error parsing {display}: {e}"),
                )];
            }
            // Some entry is bad: isolate each one, so the others still run.
            Ok(keys) => keys
                .map(|m| m.0)
                .unwrap_or_default()
                .into_iter()
                .map(|(key, _)| {
                    let one = OneEntry { key: key.clone() };
                    let result = one
                        .deserialize(serde_yaml::Deserializer::from_str(text))
                        .map_err(|e| e.to_string());
                    let result = result.and_then(|v| v.ok_or_else(|| whole.to_string()));
                    (key, result)
                })
                .collect(),
        },
    };
    raw.into_iter()
        .map(|(key, entry)| {
            let name = if key.starts_with("//") {
                key.clone()
            } else {
                format!("//{agent}/{stem}/{key}")
            };
            match entry.and_then(|raw| build_check(&name, path, raw, scope)) {
                Ok(check) => check,
                Err(detail) => CheckDef::broken(
                    name,
                    path,
                    format!("error loading check {display} [{key}]: {detail}"),
                ),
            }
        })
        .collect()
}

fn build_check(name: &str, path: &Path, raw: RawCheck, scope: &Scope) -> Result<CheckDef, String> {
    if let Some(alerter) = &raw.alerter
        && !scope.alerters.contains(alerter)
    {
        return Err(format!(
            "no alerter named `{alerter}` (known: {})",
            scope
                .alerters
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let kinds = [
        ("command", raw.command.is_some()),
        ("http", raw.http.is_some()),
        ("tcp", raw.tcp.is_some()),
        ("socket", raw.socket.is_some()),
    ];
    let given: Vec<&str> = kinds
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
    let kind = match (given.as_slice(), raw.command, raw.http, raw.tcp, raw.socket) {
        ([_], Some(command), ..) => CheckKind::Command(command),
        ([_], None, Some(http), ..) => CheckKind::Http(Box::new(build_http(http)?)),
        ([_], None, None, Some(tcp), _) => {
            CheckKind::Tcp(tcp::Target::parse(&tcp).map_err(|e| format!("tcp: {e}"))?)
        }
        ([_], None, None, None, Some(socket)) => {
            CheckKind::Socket(socket::Target::parse(&socket).map_err(|e| format!("socket: {e}"))?)
        }
        ([], ..) => {
            return Err(
                "a check needs exactly one of `command`, `http`, `tcp`, `socket`; found none"
                    .into(),
            );
        }
        (several, ..) => {
            return Err(format!(
                "a check needs exactly one of `command`, `http`, `tcp`, `socket`; found {}",
                several
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    let interval = raw.interval.unwrap_or(1);
    let retry_interval = raw.retry_interval.unwrap_or(1);
    if interval == 0 {
        return Err("`interval` must be at least 1".into());
    }
    if retry_interval == 0 {
        return Err("`retry_interval` must be at least 1".into());
    }
    let timeout = raw
        .timeout_secs
        .map(|secs| positive_seconds("timeout", secs))
        .transpose()?;
    let nagios_performance = raw.nagios_performance.unwrap_or(true);
    let thresholds = match raw.thresholds {
        None => Thresholds::default(),
        Some(ThresholdLines(lines)) => {
            if !nagios_performance && matches!(kind, CheckKind::Command(_)) {
                return Err("`thresholds` need metrics, but `nagios_performance` is false".into());
            }
            Thresholds::parse(&lines).map_err(|e| format!("thresholds: {e}"))?
        }
    };
    Ok(CheckDef {
        name: name.to_string(),
        file: path.to_path_buf(),
        kind,
        interval,
        retry: raw.retry.unwrap_or(3),
        retry_interval,
        timeout,
        nagios_performance,
        thresholds,
        alerter: raw.alerter,
    })
}

/// A YAML mapping read in document order.
struct OrderedMap<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of check names to checks")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMap<V>, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                // A set, not a scan of `entries`: a file of 1,000 checks
                // would otherwise compare half a million key pairs.
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value()?;
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!("duplicate check `{key}`")));
                    }
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

/// Deserializes one entry of a check file and skips the others.
struct OneEntry {
    key: String,
}

impl<'de> DeserializeSeed<'de> for OneEntry {
    type Value = Option<RawCheck>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OneEntry {
    type Value = Option<RawCheck>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of check names to checks")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.key && found.is_none() {
                found = Some(map.next_value::<RawCheck>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Loads one check file; never fails: problems become broken checks.
#[must_use]
pub fn load_check_file(scope: &Scope, path: &Path) -> Vec<CheckDef> {
    let agent = &scope.agent;
    match std::fs::read_to_string(path) {
        Ok(text) => checks_of_file(scope, path, &text),
        Err(e) => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            vec![CheckDef::broken(
                format!("//{agent}/{stem}/"),
                path,
                format!("error parsing {}: {e}", path.display()),
            )]
        }
    }
}

/// The `*.yaml`/`*.yml` files of a check directory, sorted.
///
/// # Errors
/// When the directory cannot be listed.
pub fn check_files(directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && path.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Files per thread at least before `load_check_files` uses more threads.
const FILES_PER_THREAD: usize = 8;

/// Loads check files (each as `load_check_file`), in their order, on as
/// many threads as there are cores when there are many files: loading
/// 50,000 checks is mostly YAML parsing.
#[must_use]
pub fn load_check_files(scope: &Scope, paths: &[&Path]) -> Vec<Vec<CheckDef>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = cores.min(paths.len() / FILES_PER_THREAD).max(1);
    let load = |part: &[&Path]| -> Vec<Vec<CheckDef>> {
        part.iter()
            .map(|path| load_check_file(scope, path))
            .collect()
    };
    if threads == 1 {
        return load(paths);
    }
    let chunk = paths.len().div_ceil(threads);
    std::thread::scope(|threads| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| threads.spawn(move || load(part)))
            .collect();
        workers
            .into_iter()
            // A panic while parsing is a bug: raise it here.
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Loads every check file of a directory.
///
/// # Errors
/// When the directory cannot be listed.
pub fn load_check_dir(scope: &Scope, directory: &Path) -> std::io::Result<Vec<CheckDef>> {
    let files = check_files(directory)?;
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    Ok(load_check_files(scope, &paths)
        .into_iter()
        .flatten()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(var: &str) -> Option<String> {
        match var {
            "KEY" => Some("secret".into()),
            _ => None,
        }
    }

    #[test]
    fn env_substitution_cases() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("key: ${KEY}\n", Ok("key: secret\n")),
            ("key: $${KEY}\n", Ok("key: ${KEY}\n")),
            ("key: x # ${UNSET}\n", Ok("key: x # ${UNSET}\n")),
            ("key: 'a # ${KEY}'\n", Ok("key: 'a # secret'\n")),
            (
                "a: 1\nkey: ${UNSET}\n",
                Err("environment variable `UNSET` is not set (used at line 2 column 6)"),
            ),
        ];
        for (text, want) in cases {
            let got = substitute_env(text, &lookup);
            match want {
                Ok(want) => assert_eq!(got.as_deref(), Ok(*want), "{text}"),
                Err(want) => assert_eq!(got.unwrap_err(), vec![(*want).to_string()], "{text}"),
            }
        }
    }

    fn load(text: &str) -> Vec<CheckDef> {
        checks_of_file(&Scope::new("web1"), Path::new("/c/app.yaml"), text)
    }

    #[test]
    fn relative_and_absolute_check_names() {
        let checks = load("disk:\n  command: echo ok\n//meta:\n  command: echo ok\n");
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["//web1/app/disk", "//meta"]);
    }

    #[test]
    fn a_bad_entry_is_isolated_and_the_others_still_load() {
        let checks = load("good:\n  command: echo ok\nbad:\n  command: echo ok\n  intervl: 5\n");
        assert_eq!(checks[0].kind, CheckKind::Command("echo ok".into()));
        assert_eq!(
            checks[1].kind,
            CheckKind::Broken(
                "error loading check /c/app.yaml [bad]: bad: unknown field `intervl`, expected one of `command`, `http`, `tcp`, `socket`, `interval`, `retry`, `retry_interval`, `timeout`, `nagios_performance`, `thresholds`, `alerter` at line 5 column 3".into()
            )
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_one_broken_check() {
        let checks = load("good:\n  command: [unclosed\n");
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "//web1/app/");
        assert!(
            matches!(&checks[0].kind, CheckKind::Broken(m) if m.starts_with("error parsing /c/app.yaml: ")),
            "{:?}",
            checks[0].kind
        );
    }

    #[test]
    fn semantic_problems_of_an_entry_are_reported() {
        let cases = [
            ("x:\n  interval: 2\n", "found none"),
            ("x:\n  command: a\n  tcp: b\n", "found `command`, `tcp`"),
            (
                "x:\n  command: a\n  nagios_performance: false\n  thresholds: a warning > 1\n",
                "`nagios_performance` is false",
            ),
            (
                "x:\n  command: a\n  nagios_performance: maybe\n",
                "nagios_performance: invalid type",
            ),
            (
                "x:\n  command: a\n  thresholds: a warnin > 1\n",
                "thresholds: line 1",
            ),
            (
                "x:\n  command: a\n  interval: 0\n",
                "`interval` must be at least 1",
            ),
        ];
        for (text, want) in cases {
            let checks = load(text);
            match &checks[0].kind {
                CheckKind::Broken(message) => assert!(message.contains(want), "{text}: {message}"),
                other => panic!("{text}: expected a broken check, got {other:?}"),
            }
        }
    }

    #[test]
    fn thresholds_may_be_a_list() {
        let checks =
            load("x:\n  command: a\n  thresholds:\n    - a warning > 1\n    - b ? error < 2\n");
        assert!(matches!(checks[0].kind, CheckKind::Command(_)));
        assert!(!checks[0].thresholds.is_empty());
    }

    #[test]
    fn http_options_load_with_their_defaults() {
        let checks = load(
            "a:\n  http: {url: \"http://127.0.0.1:8080/health\"}\nb:\n  http:\n    url: https://example.com/\n    method: HEAD\n    status: [200, 300-399]\n    headers: {Host: example.org, X-Probe: cimaa}\n    timeout: 2.5\n    follow_redirects: true\n    tls_verify: false\n    cert_expiry_days: 14\n    body_limit: 64 KiB\n  timeout: 9\n",
        );
        let CheckKind::Http(a) = &checks[0].kind else {
            panic!("{:?}", checks[0].kind)
        };
        assert_eq!(
            **a,
            HttpCheck::new(Url::parse("http://127.0.0.1:8080/health").unwrap())
        );
        let CheckKind::Http(b) = &checks[1].kind else {
            panic!("{:?}", checks[1].kind)
        };
        assert_eq!(b.method, Method::Head);
        assert_eq!(b.status.to_string(), "200, 300-399");
        assert_eq!(b.headers[0].0, "host");
        assert_eq!(b.headers[0].1, "example.org");
        assert_eq!(b.timeout, Some(Duration::from_millis(2500)));
        assert!(b.follow_redirects && !b.tls_verify);
        assert_eq!((b.cert_expiry_days, b.body_limit), (Some(14), 65_536));
        assert_eq!(checks[1].timeout, Some(Duration::from_secs(9)));
    }

    #[test]
    fn status_ranges_may_be_written_plainly() {
        for (status, shown) in [
            ("200", "200"),
            ("200-399", "200-399"),
            ("'204, 301-302'", "204, 301-302"),
        ] {
            let checks = load(&format!(
                "a:\n  http: {{url: 'http://h/', status: {status}}}\n"
            ));
            let CheckKind::Http(http) = &checks[0].kind else {
                panic!("{status}: {:?}", checks[0].kind)
            };
            assert_eq!(http.status.to_string(), shown);
        }
    }

    #[test]
    fn tcp_and_socket_targets_load() {
        let checks = load(
            "a:\n  tcp: 127.0.0.1:5432\nb:\n  socket: unix:/run/app.sock\nc:\n  socket: tcp://localhost:9000\n",
        );
        let kinds: Vec<String> = checks
            .iter()
            .map(|c| match &c.kind {
                CheckKind::Tcp(t) => format!("tcp {t}"),
                CheckKind::Socket(s) => format!("socket {s}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "tcp 127.0.0.1:5432",
                "socket unix:/run/app.sock",
                "socket tcp://localhost:9000"
            ]
        );
    }

    #[test]
    fn bad_probe_options_are_load_errors_with_key_and_line() {
        let cases = [
            (
                "x:\n  http:\n    url: http://h/\n    urll: http://h/\n",
                "error loading check /c/app.yaml [x]: x.http: unknown field `urll`, expected one of `url`, `method`, `status`, `contains`, `headers`, `timeout`, `follow_redirects`, `tls_verify`, `cert_expiry_days`, `body_limit` at line 4 column 5",
            ),
            (
                "x:\n  http:\n    url: http://h/\n    method: POST\n",
                "error loading check /c/app.yaml [x]: x.http.method: unknown method `POST` (use GET or HEAD) at line 4 column 13",
            ),
            (
                "x:\n  http:\n    url: http://h/\n    status: 2xx\n",
                "error loading check /c/app.yaml [x]: x.http.status: `2xx` is not a status code (100-599) or a range like `200-399` at line 4 column 13",
            ),
            (
                "x:\n  http:\n    url: http://h/\n    status: [200, 500-400]\n",
                "error loading check /c/app.yaml [x]: x.http.status[1]: the range `500-400` is reversed at line 4 column 19",
            ),
            (
                "x:\n  http: {url: 'not a url'}\n",
                "error loading check /c/app.yaml [x]: http.url: `not a url` is not a valid URL: relative URL without a base",
            ),
            (
                "x:\n  http: {url: 'ftp://h/'}\n",
                "error loading check /c/app.yaml [x]: http.url: `ftp://h/` must start with http:// or https://",
            ),
            (
                "x:\n  http: {url: 'http://h/', method: HEAD, contains: ok}\n",
                "error loading check /c/app.yaml [x]: http.contains: a HEAD response has no body to search; use `method: GET`",
            ),
            (
                "x:\n  http: {url: 'http://h/', cert_expiry_days: 10}\n",
                "error loading check /c/app.yaml [x]: http.cert_expiry_days: `http://h/` is not an https URL",
            ),
            (
                "x:\n  http: {url: 'http://h/', body_limit: 2 parsecs}\n",
                "error loading check /c/app.yaml [x]: x.http.body_limit: unknown unit `parsecs` in `2 parsecs` (use B, KiB, MiB, GiB, kB, MB or GB) at line 2 column 40",
            ),
            (
                "x:\n  http: {url: 'http://h/', headers: {'bad header': x}}\n",
                "error loading check /c/app.yaml [x]: http.headers: `bad header` is not a valid header name",
            ),
            (
                "x:\n  http: {url: 'http://h/', timeout: 0}\n",
                "error loading check /c/app.yaml [x]: `http.timeout` must be a positive number of seconds, got `0`",
            ),
            (
                "x:\n  tcp: localhost\n",
                "error loading check /c/app.yaml [x]: tcp: `localhost` is not HOST:PORT: no port",
            ),
            (
                "x:\n  socket: /run/app.sock\n",
                "error loading check /c/app.yaml [x]: socket: `/run/app.sock` is not `unix:PATH` or `tcp://HOST:PORT`",
            ),
            (
                "x:\n  http: {url: 'http://h/'}\n  tcp: h:1\n",
                "error loading check /c/app.yaml [x]: a check needs exactly one of `command`, `http`, `tcp`, `socket`; found `http`, `tcp`",
            ),
        ];
        for (text, want) in cases {
            match &load(text)[0].kind {
                CheckKind::Broken(message) => assert_eq!(message, want, "{text}"),
                other => panic!("{text}: expected a broken check, got {other:?}"),
            }
        }
    }
}
