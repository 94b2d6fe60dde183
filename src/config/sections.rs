//! The agent file's sections (SPEC §2): `agent`, `database`, `alerter`,
//! `alerters` and `metrics`, as written and validated.
//!
//! Backend sections keep the flat `type:` shape of SPEC §2: a first pass
//! (`SectionTypes`) reads only the `type` values, then the second pass
//! deserializes the whole document with seeds that know which backend struct
//! each section is, so errors inside a backend section keep their position
//! (an internally tagged enum would buffer the section and report line 1
//! column 1). `load` runs both passes over the YAML; this module then
//! validates the sections (pure: every problem is collected) into `Config`,
//! resolving relative paths against the configuration's folder.
//!
//! Two kinds of check happen earlier, while serde_yaml reads the value and
//! can still name its line: `agent.logging` (`filter_directives` below) and
//! every `url`, `webhook_url` and `endpoint_url`, which the alerter,
//! database and sink option structs read through `http_url` (an absolute
//! http(s) URL with a host, SPEC §16).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::typed_section::Section;
use super::{AgentConfig, AlertingConfig, Config, LogFormat, Splay};
use crate::alerters::{self, AlerterConfig};
use crate::db::DbConfig;
use crate::sinks::SinkConfig;

/// The `agent:` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of agent options")]
struct RawAgent {
    /// Agent name (default: the host's FQDN).
    name: Option<String>,
    /// Folder of check files, relative to the configuration's folder.
    #[serde(default = "default_directory")]
    directory: PathBuf,
    /// Seconds per tick.
    #[serde(rename = "base_interval", default = "default_base_interval_secs")]
    base_interval_secs: f64,
    /// Default check timeout in seconds (default: 70% of a tick).
    #[serde(rename = "timeout")]
    timeout_secs: Option<f64>,
    /// Bound on each tick's alert deliveries in seconds (default: 20% of a tick).
    #[serde(rename = "alert_timeout")]
    alert_timeout_secs: Option<f64>,
    /// Level or tracing filter directives, checked as the log filter will
    /// read them (here, so that an error has its line).
    #[serde(default = "default_logging", deserialize_with = "filter_directives")]
    logging: String,
    /// `text` (default) or `json`.
    #[serde(default)]
    log_format: LogFormat,
    /// Where errors are reported.
    sentry_dsn: Option<String>,
    /// Checks in flight at once (default `DEFAULT_MAX_CONCURRENCY`).
    max_concurrency: Option<usize>,
    /// HTTP probes in flight to one host at once (default 16).
    connections_per_host: Option<usize>,
    /// Folder for what the agent remembers between runs, relative to the
    /// configuration's folder (default: see `state_dir`).
    state_dir: Option<PathBuf>,
    /// Nameservers the probes resolve through (default: the system's).
    resolver: Option<RawResolver>,
    /// Seconds after each tick's start the agent starts it, or `auto`
    /// (default: a stable offset from the name; `0`: off).
    #[serde(default, deserialize_with = "splay")]
    splay: Splay,
    /// Flap detection defaults `{high, low}` (SPEC §11; 50 and 25).
    #[serde(default, deserialize_with = "crate::flap::agent_levels")]
    flap: crate::flap::Levels,
    /// `IP:PORT` on which the agent serves Prometheus `/metrics` (SPEC
    /// §13; default: none, and nothing is started).
    metrics_listen: Option<std::net::SocketAddr>,
}

/// `agent.resolver` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `nameservers`")]
struct RawResolver {
    /// `IP` or `IP:PORT` entries.
    nameservers: Vec<String>,
}

/// Reads `agent.splay`: `auto` or a number of seconds (also as a string,
/// as `${VAR}` gives it).
fn splay<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Splay, D::Error> {
    struct SplayVisitor;
    impl Visitor<'_> for SplayVisitor {
        type Value = Splay;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("`auto` or a number of seconds")
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Splay, E> {
            Ok(Splay::Seconds(value))
        }

        #[expect(clippy::cast_precision_loss, reason = "a number of seconds")]
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Splay, E> {
            Ok(Splay::Seconds(value as f64))
        }

        #[expect(clippy::cast_precision_loss, reason = "a number of seconds")]
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Splay, E> {
            Ok(Splay::Seconds(value as f64))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Splay, E> {
            let value = value.trim();
            if value == "auto" {
                return Ok(Splay::Auto);
            }
            value.parse::<f64>().map(Splay::Seconds).map_err(|_| {
                E::custom(format!(
                    "expected `auto` or a number of seconds, got `{}`",
                    super::load::excerpt(value)
                ))
            })
        }
    }
    deserializer.deserialize_any(SplayVisitor)
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

/// `logging:`, refused unless tracing-subscriber's `EnvFilter` reads it:
/// the log filter would otherwise fall back to `info` without a word. The
/// check runs in the visitor, while serde_yaml still knows the line.
fn filter_directives<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Directives;
    impl Visitor<'_> for Directives {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a level or tracing filter directives")
        }
        fn visit_str<E: de::Error>(self, directives: &str) -> Result<String, E> {
            match tracing_subscriber::EnvFilter::try_new(directives) {
                Ok(_) => Ok(directives.to_string()),
                Err(e) => Err(E::custom(format!(
                    "`{}` is not a level or tracing filter directives: {e}",
                    super::load::excerpt(directives)
                ))),
            }
        }
    }
    deserializer.deserialize_str(Directives)
}

/// One section read for its `type:` only (the first pass).
#[derive(Deserialize, Default)]
#[serde(expecting = "a mapping with `type`")]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The first pass over the file: the `type:` of each backend section, which
/// tells the second pass which struct each section is.
#[derive(Deserialize)]
#[serde(expecting = "a mapping with `agent`, `database`, `alerter`, `alerters` and `metrics`")]
pub(super) struct SectionTypes {
    database: Option<TypeOnly>,
    alerter: Option<TypeOnly>,
    alerters: Option<BTreeMap<String, TypeOnly>>,
    metrics: Option<TypeOnly>,
}

impl SectionTypes {
    /// The second pass: reads the whole file with these section types.
    pub(super) fn seed(self) -> ConfigSeed {
        ConfigSeed {
            database: self.database.unwrap_or_default().kind,
            alerter: self.alerter.unwrap_or_default().kind,
            alerters: self
                .alerters
                .unwrap_or_default()
                .into_iter()
                .map(|(name, section)| (name, section.kind))
                .collect(),
            metrics: self.metrics.unwrap_or_default().kind,
        }
    }
}

/// The whole file, before validation.
pub(super) struct RawConfig {
    agent: Option<RawAgent>,
    database: Option<DbConfig>,
    alerter: Option<AlerterConfig>,
    alerters: BTreeMap<String, AlerterConfig>,
    metrics: Option<SinkConfig>,
    alerting: Option<AlertingConfig>,
    squelch: crate::squelch::Policy,
    web: Option<super::WebConfig>,
}

/// A top-level key, read as an identifier so that an unknown one is
/// refused where it is read and the message has its line.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TopKey {
    Agent,
    Database,
    Alerter,
    Alerters,
    Metrics,
    Alerting,
    Squelch,
    Web,
}

/// Reads the whole file, each backend section as the struct its `type` names.
pub(super) struct ConfigSeed {
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
            alerting: None,
            squelch: crate::squelch::Policy::default(),
            web: None,
        };
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::Agent => raw.agent = Some(map.next_value()?),
                TopKey::Database => {
                    raw.database = Some(
                        map.next_value_seed(Section::<DbConfig>::new(self.database.as_deref()))?,
                    );
                }
                TopKey::Alerter => {
                    raw.alerter =
                        Some(map.next_value_seed(Section::<AlerterConfig>::new(
                            self.alerter.as_deref(),
                        ))?);
                }
                TopKey::Alerters => {
                    raw.alerters = map.next_value_seed(NamedAlerters {
                        types: &self.alerters,
                    })?;
                }
                TopKey::Alerting => raw.alerting = Some(map.next_value()?),
                TopKey::Squelch => {
                    raw.squelch = map.next_value_seed(super::squelch_section::Seed)?;
                }
                TopKey::Web => raw.web = Some(map.next_value()?),
                TopKey::Metrics => {
                    raw.metrics = Some(
                        map.next_value_seed(Section::<SinkConfig>::new(self.metrics.as_deref()))?,
                    );
                }
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

impl RawConfig {
    /// Validates the file's sections into a `Config`, resolving relative
    /// paths against `base`; `max_concurrency_env` is the value of
    /// `CIMAA_MAX_CONCURRENCY`, which overrides `agent.max_concurrency`.
    /// Pure but for the host name (the default `agent.name`).
    ///
    /// # Errors
    /// Every problem found, each naming its key: `agent`, then the
    /// alerters, `database` and `metrics`.
    pub(super) fn validate(
        self,
        path: PathBuf,
        base: &Path,
        max_concurrency_env: Option<String>,
    ) -> Result<Config, Vec<String>> {
        let Some(agent) = self.agent else {
            return Err(vec!["missing section `agent`".into()]);
        };
        let (agent, mut problems, warnings) = agent.validate(base, max_concurrency_env);
        let Some(alerter) = self.alerter else {
            problems.push(
                "missing section `alerter` (an agent that cannot page is not monitoring)".into(),
            );
            return Err(problems);
        };
        let alerters = AlerterSections {
            default: resolve_alerter(alerter, base),
            named: self
                .alerters
                .into_iter()
                .map(|(name, config)| (name, resolve_alerter(config, base)))
                .collect(),
        };
        problems.extend(alerters.validate());
        let database = resolve_database(self.database.unwrap_or_default(), base);
        let mut agent = agent;
        agent.state_dir = state_dir(agent.state_dir, &database, &agent.name);
        problems.extend(DatabaseSection { config: &database }.validate());
        let metrics = self.metrics.map(|metrics| resolve_metrics(metrics, base));
        if let Some(metrics) = &metrics {
            problems.extend(metrics.validate());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            path,
            agent,
            database,
            alerter: alerters.default,
            alerters: alerters.named,
            metrics,
            alerting: self.alerting.unwrap_or_default(),
            squelch: self.squelch,
            web: self.web.unwrap_or_default(),
            warnings,
        })
    }
}

impl RawAgent {
    /// Validates the `agent:` section, with defaults applied and its
    /// directory resolved against `base` (`max_concurrency_env`: see
    /// `RawConfig::validate`).
    ///
    /// Returns the section even when it has problems, so that the other
    /// sections are still checked against it; the problems are listed in
    /// the order of the file's keys, then the warnings (allowed, but
    /// probably not meant).
    fn validate(
        self,
        base: &Path,
        max_concurrency_env: Option<String>,
    ) -> (AgentConfig, Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let base_interval = match bounded_seconds(self.base_interval_secs) {
            Ok(_) => self.base_interval_secs,
            Err(why) => {
                problems.push(format!("agent.base_interval: {why}"));
                // The timeouts' defaults are shares of a tick; with the tick
                // refused, take the default tick so that they are not
                // reported too (they are not in the file).
                default_base_interval_secs()
            }
        };
        let mut seconds = |key: &str, value: Option<f64>, share: f64| -> Duration {
            let Some(secs) = value else {
                // A share of a valid tick: between 0.02 s and a day.
                return Duration::from_secs_f64(base_interval * share);
            };
            match bounded_seconds(secs) {
                Ok(duration) => {
                    if secs > base_interval {
                        warnings.push(format!(
                            "agent.{key}: `{}` seconds is longer than agent.base_interval \
                             (`{}`), so a tick can run into the next",
                            seconds_text(secs),
                            seconds_text(base_interval)
                        ));
                    }
                    duration
                }
                Err(why) => {
                    problems.push(format!("agent.{key}: {why}"));
                    Duration::from_secs_f64(base_interval * share)
                }
            }
        };
        let timeout = seconds("timeout", self.timeout_secs, 0.7);
        let alert_timeout = seconds("alert_timeout", self.alert_timeout_secs, 0.2);
        let max_concurrency = match max_concurrency_env {
            Some(value) => value.trim().parse::<usize>().unwrap_or_else(|_| {
                problems.push(format!(
                    "environment variable `{}`: `{}` is not a positive integer",
                    crate::env::MAX_CONCURRENCY,
                    super::load::excerpt(&value)
                ));
                DEFAULT_MAX_CONCURRENCY
            }),
            None => self.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY),
        };
        if max_concurrency == 0 {
            problems.push("agent.max_concurrency: must be at least 1".into());
        }
        let per_host = super::load::connections_per_host(self.connections_per_host, &mut problems);
        let name = match self.name {
            Some(name) if name.trim().is_empty() => {
                problems.push("agent.name: must not be empty".into());
                name
            }
            Some(name) => name,
            None => crate::host::fqdn(),
        };
        // The names the database keeps its own rows under (heartbeats,
        // alert claims): refused whatever the database, since a
        // configuration moves between backends and peers share the table.
        if crate::db::dynamodb::is_reserved_agent(&name) {
            problems.push(format!(
                "agent.name: `{}` is reserved by the database layout",
                super::load::excerpt(&name)
            ));
        }
        // An empty DSN (`sentry_dsn: ${SENTRY_DSN}` with the variable set
        // to nothing) means no Sentry, as an absent key does.
        let sentry_dsn = self.sentry_dsn.filter(|dsn| !dsn.is_empty());
        if let Some(dsn) = &sentry_dsn
            && let Err(e) = dsn.parse::<sentry::types::Dsn>()
        {
            problems.push(format!(
                "agent.sentry_dsn: invalid DSN `{}`: {e}",
                super::load::excerpt(dsn)
            ));
        }
        let resolver = nameservers(self.resolver, &mut problems);
        check_splay(self.splay, base_interval, &mut problems);
        let agent = AgentConfig {
            name,
            directory: base.join(self.directory),
            base_interval,
            timeout,
            alert_timeout,
            logging: self.logging,
            log_format: self.log_format,
            sentry_dsn,
            max_concurrency,
            connections_per_host: per_host,
            // Relative to the configuration's folder; empty until the
            // database section gives the default (`state_dir`).
            state_dir: self.state_dir.map(|dir| base.join(dir)).unwrap_or_default(),
            resolver,
            splay: self.splay,
            flap: self.flap,
            metrics_listen: self.metrics_listen,
        };
        (agent, problems, warnings)
    }
}

/// `agent.resolver.nameservers`, each parsed; a bad entry is a problem.
fn nameservers(raw: Option<RawResolver>, problems: &mut Vec<String>) -> Vec<std::net::SocketAddr> {
    let mut resolver = Vec::new();
    for entry in raw.map(|r| r.nameservers).unwrap_or_default() {
        match crate::checks::dns::parse_nameserver(&entry) {
            Ok(address) => resolver.push(address),
            Err(why) => problems.push(format!("agent.resolver.nameservers: {why}")),
        }
    }
    resolver
}

/// Refuses an explicit `agent.splay` that is negative or not shorter than a tick.
fn check_splay(splay: Splay, base_interval: f64, problems: &mut Vec<String>) {
    // An explicit splay of a whole tick or more would start a tick
    // after the next one should have started (SPEC §14).
    if let Splay::Seconds(secs) = splay {
        if !(secs.is_finite() && secs >= 0.0) {
            problems.push(format!(
                "agent.splay: must be `auto` or a number of seconds from 0, got `{}`",
                seconds_text(secs)
            ));
        } else if secs >= base_interval {
            problems.push(format!(
                "agent.splay: `{}` seconds is not shorter than agent.base_interval (`{}`)",
                seconds_text(secs),
                seconds_text(base_interval)
            ));
        }
    }
}

/// `agent.state_dir`: as configured, else a `cimaa-state` folder beside the
/// SQLite file (the agent can write there), none for the `memory` database,
/// else `/var/lib/cimaa/state/AGENT`.
fn state_dir(configured: PathBuf, database: &DbConfig, agent: &str) -> PathBuf {
    if !configured.as_os_str().is_empty() {
        return configured;
    }
    match database {
        DbConfig::Sqlite(sqlite) => sqlite
            .path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("cimaa-state"),
        // A process-local database keeps nothing between runs; neither
        // does the agent then (an empty folder: in memory only).
        DbConfig::Memory(_) => PathBuf::new(),
        DbConfig::DynamoDb(_) | DbConfig::Postgres(_) => {
            Path::new("/var/lib/cimaa/state").join(agent)
        }
    }
}

/// `secs` as a duration option, if within the bounds every duration
/// option shares (`checks::MIN_SECONDS` to `MAX_SECONDS`).
///
/// # Errors
/// Why not, as the end of a sentence that starts with the key.
fn bounded_seconds(secs: f64) -> Result<Duration, String> {
    use crate::checks::{MAX_SECONDS, MIN_SECONDS};
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!(
            "must be a positive number of seconds, got `{}`",
            seconds_text(secs)
        ));
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&secs) {
        return Err(format!(
            "must be between {MIN_SECONDS} and {MAX_SECONDS} seconds (a day), got `{}`",
            seconds_text(secs)
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A number of seconds as a user wrote it, in exponent form when it is huge
/// or tiny (`1e300` rather than 301 digits).
fn seconds_text(secs: f64) -> String {
    if secs != 0.0 && secs.is_finite() && !(1e-6..1e15).contains(&secs.abs()) {
        format!("{secs:e}")
    } else {
        format!("{secs}")
    }
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

/// The `alerter:` section and the `alerters:` map, checked together
/// because fallbacks refer across them.
struct AlerterSections {
    default: AlerterConfig,
    named: BTreeMap<String, AlerterConfig>,
}

impl AlerterSections {
    /// Problems of the alerter sections: Slack without a destination,
    /// unknown or circular fallbacks, a named alerter called `default`. Pure.
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.named.contains_key(alerters::DEFAULT) {
            problems.push(format!(
                "alerters.{}: the name is reserved for the `alerter` section",
                alerters::DEFAULT
            ));
        }
        let all: Vec<(String, String, &AlerterConfig)> = std::iter::once((
            "alerter".to_string(),
            alerters::DEFAULT.to_string(),
            &self.default,
        ))
        .chain(
            self.named
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
}

/// Resolves the `database:` section's paths against the config's folder.
fn resolve_database(database: DbConfig, base: &Path) -> DbConfig {
    match database {
        DbConfig::Sqlite(mut sqlite) => {
            sqlite.path = base.join(&sqlite.path);
            DbConfig::Sqlite(sqlite)
        }
        other => other,
    }
}

/// The `database:` section.
struct DatabaseSection<'a> {
    config: &'a DbConfig,
}

impl DatabaseSection<'_> {
    /// Problems of the `database:` section. Pure.
    fn validate(&self) -> Vec<String> {
        // The backend validates its own options; the reserved agent names
        // are refused with the `agent` section, for every backend.
        match self.config {
            DbConfig::DynamoDb(dynamodb) => dynamodb.validate(),
            DbConfig::Postgres(postgres) => postgres.validate(),
            DbConfig::Sqlite(_) | DbConfig::Memory(_) => Vec::new(),
        }
    }
}

/// Resolves the `metrics:` section's paths against the config's folder.
fn resolve_metrics(metrics: SinkConfig, base: &Path) -> SinkConfig {
    match metrics {
        SinkConfig::Log(mut log) => {
            log.path = log.path.map(|p| base.join(p));
            SinkConfig::Log(log)
        }
        other @ SinkConfig::Kinesis(_) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerters::FileConfig;
    use crate::db::{MemoryConfig, SqliteConfig};

    fn file(fallback: Option<&str>) -> AlerterConfig {
        AlerterConfig::File(FileConfig {
            path: PathBuf::from("-"),
            fallback: fallback.map(str::to_string),
            quiet_hours: None,
            renotify: None,
        })
    }

    fn alerters(default: AlerterConfig, named: &[(&str, AlerterConfig)]) -> AlerterSections {
        AlerterSections {
            default,
            named: named
                .iter()
                .map(|(name, config)| ((*name).to_string(), config.clone()))
                .collect(),
        }
    }

    #[test]
    fn alerter_sections_report_every_fallback_problem() {
        let cases = [
            (
                alerters(file(Some("pager")), &[("pager", file(None))]),
                vec![],
            ),
            (
                alerters(file(Some("nobody")), &[]),
                vec!["alerter.fallback: no alerter named `nobody`"],
            ),
            (
                alerters(
                    file(None),
                    &[("a", file(Some("b"))), ("b", file(Some("a")))],
                ),
                vec![
                    "alerters.a.fallback: `a` leads back to `a` (a cycle)",
                    "alerters.b.fallback: `b` leads back to `b` (a cycle)",
                ],
            ),
            (
                alerters(file(None), &[("default", file(None))]),
                vec!["alerters.default: the name is reserved for the `alerter` section"],
            ),
        ];
        for (sections, want) in cases {
            assert_eq!(sections.validate(), want);
        }
    }

    fn agent(max_concurrency: Option<usize>) -> RawAgent {
        RawAgent {
            name: Some("web1".into()),
            directory: default_directory(),
            base_interval_secs: default_base_interval_secs(),
            timeout_secs: None,
            alert_timeout_secs: None,
            logging: default_logging(),
            log_format: LogFormat::Text,
            sentry_dsn: None,
            max_concurrency,
            connections_per_host: None,
            state_dir: None,
            resolver: None,
            splay: Splay::Auto,
            flap: crate::flap::Levels::default(),
            metrics_listen: None,
        }
    }

    #[test]
    fn the_state_dir_defaults_beside_the_sqlite_file_else_under_var_lib() {
        let sqlite = DbConfig::Sqlite(SqliteConfig {
            path: PathBuf::from("/srv/cimaa/cimaa.db"),
            history: crate::history::HistoryConfig::default(),
        });
        let cases = [
            ("", &sqlite, "/srv/cimaa/cimaa-state"),
            ("", &DbConfig::Memory(MemoryConfig::default()), ""),
            ("/tmp/mine", &sqlite, "/tmp/mine"),
        ];
        for (configured, database, want) in cases {
            assert_eq!(
                state_dir(PathBuf::from(configured), database, "web1"),
                PathBuf::from(want)
            );
        }
    }

    // See: #16
    #[test]
    fn a_splay_of_a_whole_tick_or_more_is_refused_naming_the_key() {
        let cases = [
            (Splay::Auto, vec![]),
            (Splay::Seconds(0.0), vec![]),
            (Splay::Seconds(59.5), vec![]),
            (
                Splay::Seconds(60.0),
                vec!["agent.splay: `60` seconds is not shorter than agent.base_interval (`60`)"],
            ),
            (
                Splay::Seconds(-1.0),
                vec!["agent.splay: must be `auto` or a number of seconds from 0, got `-1`"],
            ),
        ];
        for (splay, want) in cases {
            let mut raw = agent(None);
            raw.splay = splay;
            let (config, problems, _) = raw.validate(Path::new("/etc/cimaa"), None);
            assert_eq!(problems, want, "{splay:?}");
            assert_eq!(config.splay, splay);
        }
    }

    #[test]
    fn connections_per_host_defaults_to_16_and_refuses_0() {
        let base = Path::new("/etc/cimaa");
        let (config, problems, _) = agent(None).validate(base, None);
        assert_eq!((config.connections_per_host, problems.len()), (16, 0));
        let mut raw = agent(None);
        raw.connections_per_host = Some(64);
        let (config, problems, _) = raw.validate(base, None);
        assert_eq!((config.connections_per_host, problems.len()), (64, 0));
        let mut raw = agent(None);
        raw.connections_per_host = Some(0);
        let (_, problems, _) = raw.validate(base, None);
        assert_eq!(problems, ["agent.connections_per_host: must be at least 1"]);
    }

    #[test]
    fn the_environment_overrides_max_concurrency() {
        let base = Path::new("/etc/cimaa");
        let (config, problems, _) = agent(Some(8)).validate(base, None);
        assert_eq!((config.max_concurrency, problems.len()), (8, 0));
        let (config, problems, _) = agent(Some(8)).validate(base, Some(" 32 ".into()));
        assert_eq!((config.max_concurrency, problems.len()), (32, 0));
        let (config, problems, _) = agent(None).validate(base, Some("many".into()));
        assert_eq!(config.max_concurrency, DEFAULT_MAX_CONCURRENCY);
        assert_eq!(
            problems,
            ["environment variable `CIMAA_MAX_CONCURRENCY`: `many` is not a positive integer"]
        );
        assert_eq!(config.directory, Path::new("/etc/cimaa/checks.d"));
        assert_eq!(config.timeout, Duration::from_secs(42));
    }

    // See: #18
    #[test]
    fn durations_are_bounded_and_finite() {
        let ok = [0.1, 1.0, 60.0, 86_400.0];
        for secs in ok {
            assert_eq!(bounded_seconds(secs), Ok(Duration::from_secs_f64(secs)));
        }
        let refused = [
            (
                1e-300,
                "must be between 0.1 and 86400 seconds (a day), got `1e-300`",
            ),
            (
                0.09,
                "must be between 0.1 and 86400 seconds (a day), got `0.09`",
            ),
            (
                86_400.5,
                "must be between 0.1 and 86400 seconds (a day), got `86400.5`",
            ),
            (
                1e300,
                "must be between 0.1 and 86400 seconds (a day), got `1e300`",
            ),
            (0.0, "must be a positive number of seconds, got `0`"),
            (-1.0, "must be a positive number of seconds, got `-1`"),
            (f64::NAN, "must be a positive number of seconds, got `NaN`"),
            (
                f64::INFINITY,
                "must be a positive number of seconds, got `inf`",
            ),
        ];
        for (secs, want) in refused {
            assert_eq!(bounded_seconds(secs), Err(want.to_string()), "{secs}");
        }
    }

    // See: #18
    #[test]
    fn a_bad_base_interval_leaves_the_default_timeouts_alone() {
        let mut raw = agent(None);
        raw.base_interval_secs = 1e-300;
        let (config, problems, warnings) = raw.validate(Path::new("/"), None);
        assert_eq!(
            problems,
            ["agent.base_interval: must be between 0.1 and 86400 seconds (a day), got `1e-300`"]
        );
        assert!(warnings.is_empty());
        assert_eq!(config.timeout, Duration::from_secs(42));
    }

    // See: #18
    #[test]
    fn timeouts_longer_than_a_tick_are_warnings() {
        let mut raw = agent(None);
        raw.base_interval_secs = 10.0;
        raw.timeout_secs = Some(10.0);
        raw.alert_timeout_secs = Some(12.5);
        let (_, problems, warnings) = raw.validate(Path::new("/"), None);
        assert!(problems.is_empty());
        assert_eq!(
            warnings,
            [
                "agent.alert_timeout: `12.5` seconds is longer than agent.base_interval (`10`), so a tick can run into the next"
            ]
        );
    }

    // See: #18
    #[test]
    fn reserved_agent_names_and_an_empty_dsn() {
        for name in ["_", "_alerts"] {
            let mut raw = agent(None);
            raw.name = Some(name.into());
            let (_, problems, _) = raw.validate(Path::new("/"), None);
            assert_eq!(
                problems,
                [format!(
                    "agent.name: `{name}` is reserved by the database layout"
                )]
            );
        }
        let mut raw = agent(None);
        raw.sentry_dsn = Some(String::new());
        let (config, problems, _) = raw.validate(Path::new("/"), None);
        assert_eq!((config.sentry_dsn, problems.len()), (None, 0));
    }
}
