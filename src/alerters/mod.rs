//! Alerters: how faults reach people (SPEC §7).
//!
//! Owns the `Alerter` trait (`trigger`, `resolve`), its error type, the
//! alerter configuration enum, and `Alerters`: the default alerter plus the
//! named ones, with per-check routing and `fallback` chains, and
//! `healthcheck`, which tests a configured alerter without sending an alert
//! (`validate --healthchecks`). One file per backend. The agent decides *when* to alert and bounds every delivery by
//! `alert_timeout`; alerters only deliver.

pub(crate) mod command;
pub(crate) mod file;
pub(crate) mod http;
pub(crate) mod pagerduty;
pub(crate) mod slack;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

pub(crate) use command::CommandAlerter;
pub(crate) use file::FileAlerter;
pub(crate) use pagerduty::PagerDutyAlerter;
pub(crate) use slack::SlackAlerter;

use crate::quiet::QuietHours;

/// Delivers alerts. Errors (and timeouts, applied by the caller) are failures.
#[async_trait]
pub trait Alerter: Send + Sync {
    /// Opens (or updates) the alert for fault `name`.
    async fn trigger(&self, name: &str, message: &str) -> Result<(), Error>;
    /// Closes the alert for fault `name`.
    async fn resolve(&self, name: &str) -> Result<(), Error>;
}

/// Why an alert was not delivered. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write alert to `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start alert command")]
    Spawn(#[source] std::io::Error),
    #[error("alert command {status}{}", stderr_suffix(.stderr))]
    CommandFailed { status: String, stderr: String },
    #[error("alert command timed out")]
    CommandTimedOut,
    /// A remote service failed or could not be reached; retrying may help.
    #[error("alert delivery failed: {0}")]
    Http(String),
    /// The alerter (any kind) did not finish within its share of `alert_timeout`.
    #[error("alert delivery failed: timed out")]
    TimedOut,
    /// The receiver refused the event as invalid: resending it cannot help.
    #[error("alert refused as invalid: {0}")]
    Refused(String),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl Error {
    /// True when resending the same event cannot succeed (e.g. PagerDuty 400).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Refused(_))
    }
}

/// One alerter section (`alerter:` or an entry of `alerters:`).
#[derive(Clone, Debug, PartialEq)]
pub enum AlerterConfig {
    File(FileConfig),
    Command(CommandConfig),
    PagerDuty(PagerDutyConfig),
    Slack(SlackConfig),
}

impl AlerterConfig {
    /// The `type:` values the configuration accepts.
    pub const TYPES: &'static [&'static str] = &["pagerduty", "slack", "file", "command"];

    /// Its `type:` value.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            AlerterConfig::File(_) => "file",
            AlerterConfig::Command(_) => "command",
            AlerterConfig::PagerDuty(_) => "pagerduty",
            AlerterConfig::Slack(_) => "slack",
        }
    }

    /// Its `renotify` in seconds: as configured, else 1 hour for Slack
    /// (every send is a new message) and 0 (every change) for the others,
    /// whose receivers update one incident.
    #[must_use]
    pub fn renotify_secs(&self) -> i64 {
        let (configured, default) = match self {
            AlerterConfig::File(c) => (c.renotify, 0),
            AlerterConfig::Command(c) => (c.renotify, 0),
            AlerterConfig::PagerDuty(c) => (c.renotify, 0),
            AlerterConfig::Slack(c) => (c.renotify, crate::renotify::SLACK_DEFAULT),
        };
        configured.unwrap_or(default)
    }

    /// The alerter used for the same event when this one fails.
    #[must_use]
    pub fn fallback(&self) -> Option<&str> {
        match self {
            AlerterConfig::File(c) => c.fallback.as_deref(),
            AlerterConfig::Command(c) => c.fallback.as_deref(),
            AlerterConfig::PagerDuty(c) => c.fallback.as_deref(),
            AlerterConfig::Slack(c) => c.fallback.as_deref(),
        }
    }

    /// Its quiet hours, if any (SPEC §11).
    #[must_use]
    pub(crate) fn quiet_hours(&self) -> Option<&QuietHours> {
        match self {
            AlerterConfig::File(c) => c.quiet_hours.as_ref(),
            AlerterConfig::Command(c) => c.quiet_hours.as_ref(),
            AlerterConfig::PagerDuty(c) => c.quiet_hours.as_ref(),
            AlerterConfig::Slack(c) => c.quiet_hours.as_ref(),
        }
    }
}

/// `type: file`: one JSON line per event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// File to append to; `-` is standard output.
    pub path: PathBuf,
    /// Alerter to use when this one fails.
    #[serde(default)]
    pub fallback: Option<String>,
    /// When this alerter delivers nothing (SPEC §11).
    #[serde(default)]
    pub(crate) quiet_hours: Option<QuietHours>,
    /// Least seconds between two sends of an open alert whose message
    /// changed while its reported severity did not (SPEC §11); `None`: the
    /// type's default.
    #[serde(default, deserialize_with = "crate::renotify::deserialize")]
    pub renotify: Option<i64>,
}

/// `type: command`: a shell command per event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Command line run with `/bin/sh -c`; gets `CIMAA_ACTION`, `CIMAA_NAME`, `CIMAA_MESSAGE`.
    pub command: String,
    /// Alerter to use when this one fails.
    #[serde(default)]
    pub fallback: Option<String>,
    /// When this alerter delivers nothing (SPEC §11).
    #[serde(default)]
    pub(crate) quiet_hours: Option<QuietHours>,
    /// Least seconds between two sends of an open alert whose message
    /// changed while its reported severity did not (SPEC §11); `None`: the
    /// type's default.
    #[serde(default, deserialize_with = "crate::renotify::deserialize")]
    pub renotify: Option<i64>,
}

/// `type: pagerduty`: Events API v2.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Integration (routing) key of the PagerDuty service.
    pub routing_key: String,
    /// Complete URL events are POSTed to (EU: `https://events.eu.pagerduty.com/v2/enqueue`);
    /// an absolute http(s) URL.
    #[serde(
        default = "default_pagerduty_url",
        deserialize_with = "crate::http_url::deserialize"
    )]
    pub url: String,
    /// Alerter to use when this one fails.
    #[serde(default)]
    pub fallback: Option<String>,
    /// When this alerter delivers nothing (SPEC §11).
    #[serde(default)]
    pub(crate) quiet_hours: Option<QuietHours>,
    /// Least seconds between two sends of an open alert whose message
    /// changed while its reported severity did not (SPEC §11); `None`: the
    /// type's default.
    #[serde(default, deserialize_with = "crate::renotify::deserialize")]
    pub renotify: Option<i64>,
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

/// `type: slack`: chat.postMessage with a bot token, or an incoming webhook.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Bot token (`xoxb-...`) for chat.postMessage.
    #[serde(default)]
    pub token: Option<String>,
    /// Channel name or ID.
    #[serde(default = "default_slack_channel")]
    pub channel: String,
    /// Prefixed to every message, e.g. `<!channel>` or `<!here>`.
    #[serde(default)]
    pub target: Option<String>,
    /// An incoming webhook URL instead of `token` + `channel` (a secret:
    /// never quoted in errors).
    #[serde(
        default,
        deserialize_with = "crate::http_url::deserialize_secret_option"
    )]
    pub webhook_url: Option<String>,
    /// Complete URL of chat.postMessage; an absolute http(s) URL.
    #[serde(
        default = "default_slack_url",
        deserialize_with = "crate::http_url::deserialize"
    )]
    pub url: String,
    /// Alerter to use when this one fails.
    #[serde(default)]
    pub fallback: Option<String>,
    /// When this alerter delivers nothing (SPEC §11).
    #[serde(default)]
    pub(crate) quiet_hours: Option<QuietHours>,
    /// Least seconds between two sends of an open alert whose message
    /// changed while its reported severity did not (SPEC §11); `None`: the
    /// type's default.
    #[serde(default, deserialize_with = "crate::renotify::deserialize")]
    pub renotify: Option<i64>,
}

fn default_slack_channel() -> String {
    "#general".into()
}

fn default_slack_url() -> String {
    "https://slack.com/api/chat.postMessage".into()
}

/// What every alerter may need from the agent.
#[derive(Clone, Debug)]
pub struct Context {
    /// This agent's name.
    pub agent: String,
    /// Bound on each tick's deliveries (the agent enforces it).
    pub alert_timeout: Duration,
}

/// The name of the `alerter:` section among the named alerters.
pub(crate) const DEFAULT: &str = "default";

/// Builds one alerter; `http` gives the shared HTTP client, made on first
/// use so that an agent without remote alerters never builds one (it costs
/// about 2 MB of memory).
///
/// # Errors
/// When the HTTP client cannot be built.
pub(crate) fn build(
    config: &AlerterConfig,
    context: &Context,
    http: &mut dyn FnMut() -> Result<reqwest::Client, Error>,
) -> Result<Arc<dyn Alerter>, Error> {
    Ok(match config {
        AlerterConfig::File(file) => Arc::new(FileAlerter::new(file, context)),
        AlerterConfig::Command(command) => Arc::new(CommandAlerter::new(command, context)),
        AlerterConfig::PagerDuty(pd) => Arc::new(PagerDutyAlerter::new(pd, context, http()?)),
        AlerterConfig::Slack(slack) => Arc::new(SlackAlerter::new(slack, http()?)),
    })
}

/// The shared HTTP client, built on the first call only.
fn lazy_client() -> impl FnMut() -> Result<reqwest::Client, Error> {
    let mut client: Option<reqwest::Client> = None;
    move || {
        if let Some(client) = &client {
            return Ok(client.clone());
        }
        let made = http::client()?;
        client = Some(made.clone());
        Ok(made)
    }
}

/// `healthcheck` of the default alerter and of every named one, in order,
/// each labelled `alerter `NAME` (TYPE)`.
pub(crate) async fn healthchecks(
    default: &AlerterConfig,
    named: &BTreeMap<String, AlerterConfig>,
) -> Vec<(String, Result<String, String>)> {
    let mut shared = lazy_client();
    let mut outcomes = Vec::new();
    let all = std::iter::once((DEFAULT, default)).chain(named.iter().map(|(n, c)| (n.as_str(), c)));
    for (name, config) in all {
        let outcome = healthcheck(config, &mut shared).await;
        outcomes.push((format!("alerter `{name}` ({})", config.kind()), outcome));
    }
    outcomes
}

/// Checks what can be checked of an alerter without sending an alert
/// (`validate --healthchecks`): a file alerter's path is writable, a command
/// alerter's program is found and executable, a remote alerter's host is
/// reachable (DNS, TCP, TLS) and a Slack token is accepted by `auth.test`.
/// `http` gives the shared HTTP client, as for `build`.
///
/// # Errors
/// What failed, as one lower-case sentence naming the path, program or host.
async fn healthcheck(
    config: &AlerterConfig,
    http: &mut dyn FnMut() -> Result<reqwest::Client, Error>,
) -> Result<String, String> {
    let client = |http: &mut dyn FnMut() -> Result<reqwest::Client, Error>| {
        http().map_err(|e| format!("cannot build the HTTP client: {e}"))
    };
    match config {
        AlerterConfig::File(file) => file::healthcheck(&file.path),
        AlerterConfig::Command(command) => command_healthcheck(
            &command.command,
            &std::env::current_dir().unwrap_or_default(),
            std::env::var_os("PATH").as_deref(),
        ),
        AlerterConfig::PagerDuty(pd) => http::reachable(&client(http)?, &pd.url).await,
        AlerterConfig::Slack(config) => slack::healthcheck(config, &client(http)?).await,
    }
}

/// Checks that the program a command alerter's line starts with can run
/// from `folder` (where the agent runs it) on `search_path`, by the rule
/// `cimaa validate` applies to command checks (`program::check`).
fn command_healthcheck(
    line: &str,
    folder: &std::path::Path,
    search_path: Option<&std::ffi::OsStr>,
) -> Result<String, String> {
    if line.trim().is_empty() {
        return Err("the command is empty".into());
    }
    crate::program::check(line, folder, search_path)
        .map(|()| match crate::program::program_of(line) {
            Some(program) => format!("`{program}` can run"),
            None => "run by the shell".to_owned(),
        })
        .map_err(|problem| problem.to_string())
}

/// The default alerter and the named ones, each with its fallback.
pub struct Alerters {
    entries: BTreeMap<String, (Arc<dyn Alerter>, Option<String>)>,
    /// Told of every attempt `deliver` makes (the agent's `/metrics`);
    /// set once, by an agent with `metrics_listen`.
    observer: OnceLock<Arc<dyn Observer>>,
}

/// Told of each alerter's attempt to deliver an event: one call per alerter
/// tried, so a fallback's delivery counts as the primary's failure and the
/// fallback's success.
pub trait Observer: Send + Sync {
    /// `alerter` tried `action` (`trigger` or `resolve`) and `delivered` it or not.
    fn attempted(&self, alerter: &str, action: &'static str, delivered: bool);
}

/// How one event fared along its chain.
#[derive(Debug)]
pub struct Delivery {
    /// Which alerter delivered it, if any did.
    pub delivered_by: Option<String>,
    /// Every failure on the way, as `(alerter, error)`.
    pub failures: Vec<(String, Error)>,
}

impl Alerters {
    /// Builds every configured alerter; `named` must not contain `default`.
    ///
    /// # Errors
    /// When the HTTP client for remote alerters cannot be built.
    pub fn build(
        default: &AlerterConfig,
        named: &BTreeMap<String, AlerterConfig>,
        context: &Context,
    ) -> Result<Alerters, Error> {
        let mut shared = lazy_client();
        let mut entries = BTreeMap::new();
        let all =
            std::iter::once((DEFAULT, default)).chain(named.iter().map(|(n, c)| (n.as_str(), c)));
        for (name, config) in all {
            let alerter = build(config, context, &mut shared)?;
            entries.insert(
                name.to_string(),
                (alerter, config.fallback().map(str::to_string)),
            );
        }
        Ok(Alerters {
            entries,
            observer: OnceLock::new(),
        })
    }

    /// One alerter as the default, without fallbacks (tests, tools).
    #[must_use]
    pub fn single(alerter: Arc<dyn Alerter>) -> Alerters {
        Alerters {
            entries: BTreeMap::from([(DEFAULT.to_string(), (alerter, None))]),
            observer: OnceLock::new(),
        }
    }

    /// Sets who is told of every delivery attempt; only the first call counts.
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        let _ = self.observer.set(observer);
    }

    /// The names of the configured alerters (`default` among them).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The alerter named `name` alone, without its fallback (`test-alert`
    /// tests each one on its own).
    #[must_use]
    pub fn alone(&self, name: &str) -> Option<Arc<dyn Alerter>> {
        self.entries
            .get(name)
            .map(|(alerter, _)| Arc::clone(alerter))
    }

    /// The chain of alerter names starting at `route` (default when `None`).
    #[must_use]
    pub fn chain(&self, route: Option<&str>) -> Vec<String> {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(route.unwrap_or(DEFAULT).to_string());
        while let Some(name) = next {
            if !seen.insert(name.clone()) || !self.entries.contains_key(&name) {
                break;
            }
            next = self
                .entries
                .get(&name)
                .and_then(|(_, fallback)| fallback.clone());
            chain.push(name);
        }
        if chain.is_empty() {
            chain.push(DEFAULT.to_string());
        }
        chain
    }

    /// Delivers an event along its chain until one alerter succeeds.
    ///
    /// The time until `deadline` is shared: with a chain of n alerters, the
    /// k-th may use up to k/n of it, so a hanging primary still leaves its
    /// fallbacks time to deliver.
    pub async fn deliver(
        &self,
        route: Option<&str>,
        event: Event<'_>,
        deadline: tokio::time::Instant,
    ) -> Delivery {
        let chain = self.chain(route);
        let start = tokio::time::Instant::now();
        let total = deadline.saturating_duration_since(start);
        let hops = u32::try_from(chain.len()).unwrap_or(u32::MAX).max(1);
        let mut failures = Vec::new();
        for (index, name) in (1u32..).zip(&chain) {
            let Some((alerter, _)) = self.entries.get(name) else {
                continue;
            };
            let hop_deadline = start + total * index / hops;
            let send = async {
                match event {
                    Event::Trigger { name, message } => alerter.trigger(name, message).await,
                    Event::Resolve { name } => alerter.resolve(name).await,
                }
            };
            let outcome = match tokio::time::timeout_at(hop_deadline, send).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Error::TimedOut),
            };
            if let Some(observer) = self.observer.get() {
                observer.attempted(name, event.action(), outcome.is_ok());
            }
            match outcome {
                Ok(()) => {
                    return Delivery {
                        delivered_by: Some(name.clone()),
                        failures,
                    };
                }
                Err(error) => failures.push((name.clone(), error)),
            }
        }
        Delivery {
            delivered_by: None,
            failures,
        }
    }
}

/// The fault name of `cimaa test-alert`'s alert through alerter `alerter`
/// of agent `agent`: one incident per agent and alerter, and a name no
/// application check is likely to have (`//AGENT/cimaa/test-alert#NAME`).
#[must_use]
pub(crate) fn test_alert_name(agent: &str, alerter: &str) -> String {
    format!("//{agent}/cimaa/test-alert#{alerter}")
}

/// The step of a test alert that failed.
#[derive(Debug)]
pub(crate) enum TestFailure {
    /// The trigger was not delivered; no resolve was sent.
    Trigger(Error),
    /// The trigger was delivered, the resolve was not: the test alert is
    /// still open.
    Resolve(Error),
}

/// Sends a test alert through `alerter` alone: the trigger of `name` with
/// `message`, then its resolve, each within `timeout` (`alert_timeout`).
///
/// No resolve follows a failed trigger: a refused key or token would
/// refuse it too. A trigger that timed out may still have opened an
/// incident: the next successful test of the same alerter resolves it,
/// since the name is the same.
///
/// # Errors
/// The step that failed and why.
pub(crate) async fn send_test(
    alerter: &dyn Alerter,
    name: &str,
    message: &str,
    timeout: Duration,
) -> Result<(), TestFailure> {
    let bounded = |outcome: Result<Result<(), Error>, tokio::time::error::Elapsed>| {
        outcome.unwrap_or(Err(Error::TimedOut))
    };
    bounded(tokio::time::timeout(timeout, alerter.trigger(name, message)).await)
        .map_err(TestFailure::Trigger)?;
    bounded(tokio::time::timeout(timeout, alerter.resolve(name)).await)
        .map_err(TestFailure::Resolve)
}

/// An alert event.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Trigger { name: &'a str, message: &'a str },
    Resolve { name: &'a str },
}

impl Event<'_> {
    /// `trigger` or `resolve`: the `action` label of the agent's `/metrics`.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            Event::Trigger { .. } => "trigger",
            Event::Resolve { .. } => "resolve",
        }
    }
}

/// `//host/stem/key#fault` → `host stem key#fault`, the name people read.
#[must_use]
pub(crate) fn friendly_name(name: &str) -> String {
    let trimmed = name.trim_start_matches('/');
    trimmed
        .split('/')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_names_replace_slashes_with_spaces() {
        let cases = [
            ("//web1/app/disk", "web1 app disk"),
            ("//web1/app/disk#speed", "web1 app disk#speed"),
            ("//meta#web2", "meta#web2"),
            ("web1#alerts", "web1#alerts"),
            ("//web1/broken/", "web1 broken"),
        ];
        for (name, want) in cases {
            assert_eq!(friendly_name(name), want, "{name}");
        }
    }

    // See: #18
    #[test]
    fn a_command_alerter_needs_its_program() {
        let path = Some(std::ffi::OsStr::new("/usr/bin:/bin"));
        let here = std::path::Path::new("/");
        assert!(command_healthcheck("sh -c 'exit 0'", here, path).is_ok());
        assert!(command_healthcheck("LANG=C exec sh x", here, path).is_ok());
        assert!(command_healthcheck("echo $CIMAA_NAME >> /tmp/x", here, path).is_ok());
        assert_eq!(
            command_healthcheck("no-such-notifier --page", here, path),
            Err("program `no-such-notifier` not found in PATH (/usr/bin:/bin)".into())
        );
        assert_eq!(
            command_healthcheck("/nonexistent/notify", here, path),
            Err("program `/nonexistent/notify` not found (no file `/nonexistent/notify`)".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("notify");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let line = format!("{} --page", plain.display());
        let error = command_healthcheck(&line, here, path).unwrap_err();
        assert!(error.contains("is not executable"), "{error}");
        assert!(command_healthcheck("  ", here, path).is_err());
    }

    struct Fails;
    #[async_trait]
    impl Alerter for Fails {
        async fn trigger(&self, _: &str, _: &str) -> Result<(), Error> {
            Err(Error::Http("down".into()))
        }
        async fn resolve(&self, _: &str) -> Result<(), Error> {
            Err(Error::Http("down".into()))
        }
    }

    struct Hangs;
    #[async_trait]
    impl Alerter for Hangs {
        async fn trigger(&self, _: &str, _: &str) -> Result<(), Error> {
            std::future::pending().await
        }
        async fn resolve(&self, _: &str) -> Result<(), Error> {
            std::future::pending().await
        }
    }

    struct Works;
    #[async_trait]
    impl Alerter for Works {
        async fn trigger(&self, _: &str, _: &str) -> Result<(), Error> {
            Ok(())
        }
        async fn resolve(&self, _: &str) -> Result<(), Error> {
            Ok(())
        }
    }

    fn set(entries: Vec<(&str, Arc<dyn Alerter>, Option<&str>)>) -> Alerters {
        Alerters {
            entries: entries
                .into_iter()
                .map(|(name, alerter, fallback)| {
                    (name.to_string(), (alerter, fallback.map(str::to_string)))
                })
                .collect(),
            observer: OnceLock::new(),
        }
    }

    #[test]
    fn chains_follow_fallbacks_and_stop_at_cycles() {
        let alerters = set(vec![
            (DEFAULT, Arc::new(Works), Some("slack")),
            ("slack", Arc::new(Works), Some("default")),
            ("ops", Arc::new(Works), None),
        ]);
        assert_eq!(alerters.chain(None), ["default", "slack"]);
        assert_eq!(alerters.chain(Some("ops")), ["ops"]);
        assert_eq!(alerters.chain(Some("slack")), ["slack", "default"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fallback_delivers_when_the_primary_fails() {
        let alerters = set(vec![
            (DEFAULT, Arc::new(Fails), Some("backup")),
            ("backup", Arc::new(Works), None),
        ]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let delivery = alerters
            .deliver(None, Event::Resolve { name: "x" }, deadline)
            .await;
        assert_eq!(delivery.delivered_by.as_deref(), Some("backup"));
        assert_eq!(delivery.failures.len(), 1);
    }

    #[tokio::test]
    async fn the_observer_hears_each_alerter_tried_along_the_chain() {
        #[derive(Default)]
        struct Heard(std::sync::Mutex<Vec<(String, &'static str, bool)>>);
        impl Observer for Heard {
            fn attempted(&self, alerter: &str, action: &'static str, delivered: bool) {
                self.0
                    .lock()
                    .unwrap()
                    .push((alerter.to_string(), action, delivered));
            }
        }
        let alerters = set(vec![
            (DEFAULT, Arc::new(Fails), Some("backup")),
            ("backup", Arc::new(Works), None),
        ]);
        let heard = Arc::new(Heard::default());
        alerters.observe(heard.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let event = Event::Trigger {
            name: "x",
            message: "down",
        };
        alerters.deliver(None, event, deadline).await;
        assert_eq!(
            *heard.0.lock().unwrap(),
            [
                (DEFAULT.to_string(), "trigger", false),
                ("backup".to_string(), "trigger", true)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_primary_leaves_its_fallback_time() {
        let alerters = set(vec![
            (DEFAULT, Arc::new(Hangs), Some("backup")),
            ("backup", Arc::new(Works), None),
        ]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let delivery = alerters
            .deliver(
                None,
                Event::Trigger {
                    name: "x",
                    message: "m",
                },
                deadline,
            )
            .await;
        assert_eq!(delivery.delivered_by.as_deref(), Some("backup"));
        assert_eq!(
            delivery.failures[0].1.to_string(),
            "alert delivery failed: timed out"
        );
    }

    /// Records the events it is given.
    #[derive(Default)]
    struct Records(std::sync::Mutex<Vec<String>>);
    #[async_trait]
    impl Alerter for Records {
        async fn trigger(&self, name: &str, message: &str) -> Result<(), Error> {
            self.0
                .lock()
                .unwrap()
                .push(format!("trigger {name}: {message}"));
            Ok(())
        }
        async fn resolve(&self, name: &str) -> Result<(), Error> {
            self.0.lock().unwrap().push(format!("resolve {name}"));
            Ok(())
        }
    }

    // See: #22
    #[tokio::test]
    async fn a_test_alert_triggers_then_resolves_the_same_name() {
        let alerter = Records::default();
        let name = test_alert_name("web1", "ops");
        send_test(&alerter, &name, "test", Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            *alerter.0.lock().unwrap(),
            [
                "trigger //web1/cimaa/test-alert#ops: test",
                "resolve //web1/cimaa/test-alert#ops"
            ]
        );
    }

    // See: #22
    #[tokio::test(start_paused = true)]
    async fn a_test_alert_stops_at_a_failed_or_hanging_trigger() {
        let failure = send_test(&Fails, "x", "m", Duration::from_secs(1)).await;
        assert!(matches!(failure, Err(TestFailure::Trigger(Error::Http(_)))));
        let failure = send_test(&Hangs, "x", "m", Duration::from_secs(1)).await;
        assert!(matches!(
            failure,
            Err(TestFailure::Trigger(Error::TimedOut))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_no_alerter_delivers_lists_every_failure() {
        let alerters = set(vec![
            (DEFAULT, Arc::new(Fails), Some("backup")),
            ("backup", Arc::new(Fails), None),
        ]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let delivery = alerters
            .deliver(None, Event::Resolve { name: "x" }, deadline)
            .await;
        assert!(delivery.delivered_by.is_none());
        assert_eq!(delivery.failures.len(), 2);
    }
}
