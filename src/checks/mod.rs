//! Checks: what a check is and running one into raw faults and metrics.
//!
//! Owns `CheckDef` and `CheckKind` (a check as the agent schedules it), the
//! choice of a check's kind from its entry (`KindOptions::validate`; each
//! kind's own options, their serde and validation live in that kind's file,
//! while `config` reads the YAML and the options every kind shares), the
//! check-run result types and `run()`, which dispatches on the
//! check's kind: command plugins (`command`, with `json` for plugin JSON)
//! and the in-process probes `tcp`, `http` and `socket`, which resolve
//! their hosts through the caching resolver `dns`. The `meta` kind
//! (the meta-check in-process) owns its options here but reads the
//! database, which a check kind may not use: `agent::run_check` runs it and
//! hands every other kind to `run`. `run` also takes the
//! check's slot of the agent's `max_concurrency` (an HTTP probe first queues
//! for its host, see `http`) and bounds each probe by its timeout, turning a
//! probe's own failure into the check's own ERROR. It does not decide
//! escalation, alerting or storage: those are `fault` (pure) and `agent`.
//! Thresholds are applied by `apply_thresholds()` here because they turn
//! this run's metrics into this run's faults.

pub(crate) mod command;
pub(crate) mod dns;
pub(crate) mod http;
pub(crate) mod json;
pub(crate) mod meta;
pub(crate) mod socket;
pub(crate) mod tcp;

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::fault::RawFault;
use crate::severity::Severity;
use crate::thresholds::Thresholds;

/// One check, as the agent schedules and runs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CheckDef {
    /// Full name: `//AGENT/STEM/KEY`, or the key itself when it starts with `//`.
    pub name: String,
    /// The check file it came from.
    pub file: PathBuf,
    pub kind: CheckKind,
    /// Runs on ticks where `tick % interval == 0`.
    pub interval: u64,
    /// Retries after a failure before escalating.
    pub retry: u32,
    /// While failing, runs every `retry_interval` ticks after the last failure.
    pub retry_interval: u64,
    /// Overrides the agent's check timeout.
    pub timeout: Option<Duration>,
    /// Parse Nagios perfdata into metrics.
    pub nagios_performance: bool,
    pub thresholds: Thresholds,
    /// Named alerter for this check's alerts (`None`: the default).
    pub alerter: Option<String>,
    /// Consecutive runs with a broken monitor (`monitor-*`, `json-error`)
    /// after which those faults become CRITICAL; 0 never (SPEC §14).
    pub monitor_retry: u32,
    /// Who notifies about a fleet fault of this check (SPEC §10).
    pub notify: Notify,
    /// `flap:`: flap detection with the agent's levels, off, or its own (SPEC §11).
    pub flap: crate::flap::Setting,
    /// `depends_on` as written (SPEC §11); resolved by the agent against
    /// the other checks (`agent::dependencies`).
    pub depends_on: Vec<String>,
    /// The line of `depends_on` in the check file, for its errors.
    pub depends_on_line: Option<usize>,
}

/// `notify:`: who notifies about the faults of a check with an absolute
/// name (SPEC §10). Checks with relative names are their agent's alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Notify {
    /// The fleet: one notification per incident, coordinated through the
    /// shared database.
    #[default]
    Fleet,
    /// Each agent that finds the fault, as SPEC §5 says.
    PerAgent,
}

/// `monitor_retry` when a check does not say (SPEC §14).
pub(crate) const DEFAULT_MONITOR_RETRY: u32 = 10;

/// What a check does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CheckKind {
    /// A plugin run with `/bin/sh -c`.
    Command(String),
    /// An HTTP probe (boxed: it is much larger than the other kinds).
    Http(Box<http::HttpCheck>),
    /// A TCP connect probe.
    Tcp(tcp::Target),
    /// A socket that returns plugin JSON.
    Socket(socket::Target),
    /// The meta-check, run inside the agent over its database.
    Meta(meta::MetaCheck),
    /// A configuration problem, reported as a CRITICAL fault on every run.
    Broken(String),
}

impl CheckDef {
    /// A check that only reports its configuration error.
    #[must_use]
    pub(crate) fn broken(name: String, file: &Path, message: String) -> CheckDef {
        CheckDef {
            name,
            file: file.to_path_buf(),
            kind: CheckKind::Broken(message),
            interval: 1,
            retry: 0,
            retry_interval: 1,
            timeout: None,
            nagios_performance: false,
            thresholds: Thresholds::default(),
            alerter: None,
            monitor_retry: DEFAULT_MONITOR_RETRY,
            notify: Notify::Fleet,
            flap: crate::flap::Setting::Agent,
            depends_on: Vec::new(),
            depends_on_line: None,
        }
    }

    /// Whether running this check reads the database (a `meta:` check).
    #[must_use]
    pub(crate) fn reads_database(&self) -> bool {
        matches!(self.kind, CheckKind::Meta(_))
    }
}

/// The kind keys of one check entry as written; exactly one must be set.
///
/// Not a serde struct of its own: the entry denies unknown fields, which
/// serde cannot combine with `flatten`, so `config` reads the kind keys
/// beside the shared ones and hands them over here.
pub(crate) struct KindOptions {
    /// `command:` a plugin command line.
    pub command: Option<String>,
    /// `http:` the HTTP probe's options.
    pub http: Option<http::RawHttp>,
    /// `tcp:` `HOST:PORT`.
    pub tcp: Option<String>,
    /// `socket:` `unix:PATH` or `tcp://HOST:PORT`.
    pub socket: Option<String>,
    /// `meta:` the meta-check's options (`meta:` alone: the defaults).
    pub meta: Option<meta::RawMeta>,
}

/// The kind keys, in the order messages list them.
const KIND_KEYS: &str = "`command`, `http`, `tcp`, `socket`, `meta`";

impl KindOptions {
    /// The check's kind, with its options validated. Pure.
    ///
    /// # Errors
    /// When not exactly one kind is given, or the given one's options are bad.
    pub(crate) fn validate(self) -> Result<CheckKind, String> {
        let kinds = [
            ("command", self.command.is_some()),
            ("http", self.http.is_some()),
            ("tcp", self.tcp.is_some()),
            ("socket", self.socket.is_some()),
            ("meta", self.meta.is_some()),
        ];
        let given: Vec<&str> = kinds
            .iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| *k)
            .collect();
        Ok(
            match (
                given.as_slice(),
                self.command,
                self.http,
                self.tcp,
                self.socket,
                self.meta,
            ) {
                ([_], Some(command), ..) => CheckKind::Command(command),
                ([_], None, Some(http), ..) => CheckKind::Http(Box::new(http.validate()?)),
                ([_], None, None, Some(tcp), ..) => {
                    CheckKind::Tcp(tcp::Target::parse(&tcp).map_err(|e| format!("tcp: {e}"))?)
                }
                ([_], None, None, None, Some(socket), _) => CheckKind::Socket(
                    socket::Target::parse(&socket).map_err(|e| format!("socket: {e}"))?,
                ),
                ([_], None, None, None, None, Some(meta)) => CheckKind::Meta(meta.validate()?),
                ([], ..) => {
                    return Err(format!(
                        "a check needs exactly one of {KIND_KEYS}; found none"
                    ));
                }
                (several, ..) => {
                    return Err(format!(
                        "a check needs exactly one of {KIND_KEYS}; found {}",
                        several
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            },
        )
    }
}

/// What a plugin printed, as text: invalid UTF-8 and NUL bytes become
/// U+FFFD (a NUL is refused in PostgreSQL text, and no reader of a message
/// wants one).
pub(crate) fn output_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text.into_owned()
    }
}

/// Shortest duration option (a tick, a timeout) in seconds: shorter ones
/// make the agent spin rather than wait (#18).
pub(crate) const MIN_SECONDS: f64 = 0.1;
/// Longest duration option in seconds: a day.
pub(crate) const MAX_SECONDS: f64 = 86_400.0;

/// A timeout option in seconds as a `Duration`, between `MIN_SECONDS` and
/// `MAX_SECONDS`.
///
/// # Errors
/// When `secs` is not a positive number (NaN and infinities included) or
/// is out of bounds; the message names `key`.
pub(crate) fn positive_seconds(key: &str, secs: f64) -> Result<Duration, String> {
    // A huge or tiny value is shown in exponent form, not as 300 digits.
    let shown = if secs != 0.0 && secs.is_finite() && !(1e-6..1e15).contains(&secs.abs()) {
        format!("{secs:e}")
    } else {
        format!("{secs}")
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!(
            "`{key}` must be a positive number of seconds, got `{shown}`"
        ));
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&secs) {
        return Err(format!(
            "`{key}` must be between {MIN_SECONDS} and {MAX_SECONDS} seconds (a day), got `{shown}`"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A metric as a check reports it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawMetric {
    pub name: String,
    pub value: f64,
    pub units: String,
    /// When measured; `None` means "at the check run".
    pub timestamp: Option<DateTime<Utc>>,
}

/// What the process did, kept for `cimaa check`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawRun {
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Everything one run of a check produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CheckOutput {
    pub faults: Vec<RawFault>,
    pub metrics: Vec<RawMetric>,
    pub raw: Option<RawRun>,
}

/// What a check run needs from the agent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunContext<'a> {
    /// Absolute agent configuration path, passed as `CIMAA_CONFIG`.
    pub config_path: &'a Path,
    /// The agent's default check timeout.
    pub default_timeout: Duration,
    /// State shared by every probe of the agent.
    pub probes: &'a Probes,
}

/// What probes share across checks and ticks: the caching resolver, the
/// HTTP clients (built on first use, resolving through it) and the
/// per-host connection limits.
#[derive(Debug)]
pub(crate) struct Probes {
    pub dns: Arc<dns::Resolver>,
    pub http: http::Clients,
}

impl Default for Probes {
    fn default() -> Probes {
        Probes::with_nameservers(Vec::new(), http::CONNECTIONS_PER_HOST)
    }
}

impl Probes {
    /// Probes resolving through the system's resolver configuration.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn new() -> Probes {
        Probes::default()
    }

    /// Probes resolving through `nameservers` (`agent.resolver`; empty:
    /// the system's configuration), with at most `per_host` HTTP probes in
    /// flight to one host (`agent.connections_per_host`).
    #[must_use]
    pub(crate) fn with_nameservers(nameservers: Vec<SocketAddr>, per_host: usize) -> Probes {
        let dns = Arc::new(dns::Resolver::new(nameservers));
        Probes {
            http: http::Clients::new(dns.clone(), per_host),
            dns,
        }
    }

    /// Starts a tick of these checks (counts HTTP probes per host, starts
    /// the resolver's record of names asked).
    pub(crate) fn begin_tick<'a>(&self, checks: impl Iterator<Item = &'a CheckDef>) {
        self.dns.begin_tick();
        self.http
            .begin_tick(checks.filter_map(|check| match &check.kind {
                CheckKind::Http(http) => Some(http.as_ref()),
                _ => None,
            }));
    }
}

/// Output kept per stream of a command plugin.
pub(crate) const OUTPUT_CAP: usize = 64 * 1024;

/// The timeout of one run: `http.timeout`, else the check's, else `default`.
#[must_use]
pub(crate) fn timeout_of(check: &CheckDef, default: Duration) -> Duration {
    match &check.kind {
        CheckKind::Http(http) => http.timeout.or(check.timeout).unwrap_or(default),
        _ => check.timeout.unwrap_or(default),
    }
}

/// The target a check shares with others, if any: an HTTP probe's
/// `scheme://host:port`, a TCP probe's address. The agent takes turns
/// between targets when it starts a tick's checks.
#[must_use]
pub(crate) fn target_key(check: &CheckDef) -> Option<String> {
    match &check.kind {
        CheckKind::Http(http) => Some(http::host_key(&http.url)),
        CheckKind::Tcp(target) => Some(target.to_string()),
        _ => None,
    }
}

/// Runs a check once. The caller holds its `max_concurrency` slot; an HTTP
/// probe also waits for a slot of its host (see `http`). A `meta:` check
/// given here has no database to read, which is its own ERROR; callers run
/// checks through `agent::run_check`, which gives it one.
///
/// # Panics
/// Only on purpose: when `CIMAA_PANIC_CHECK` names this check (fault
/// injection that tests the agent's crash handling).
pub(crate) async fn run(check: &CheckDef, context: &RunContext<'_>) -> CheckOutput {
    let injected =
        std::env::var_os(crate::env::PANIC_CHECK).is_some_and(|name| name == check.name.as_str());
    assert!(
        !injected,
        "{} asked this check to panic",
        crate::env::PANIC_CHECK
    );
    let timeout = timeout_of(check, context.default_timeout);
    match &check.kind {
        CheckKind::Command(command) => {
            // Relative plugin paths in a check file are relative to that file.
            command::run(
                command,
                check.file.parent(),
                check.nagios_performance,
                timeout,
                context.config_path,
            )
            .await
        }
        CheckKind::Http(probe) => {
            let host = context.probes.http.host_slot(&probe.url);
            let _host_slot = host.acquire().await;
            let close = host.start();
            let work = http::probe(probe, &context.probes.http, close);
            bounded(&probe.url, timeout, work).await
        }
        CheckKind::Tcp(target) => {
            bounded(target, timeout, tcp::probe(target, &context.probes.dns)).await
        }
        CheckKind::Socket(target) => {
            bounded(target, timeout, socket::probe(target, &context.probes.dns)).await
        }
        CheckKind::Meta(_) => CheckOutput {
            faults: vec![RawFault::monitor(
                "database",
                "meta-check: no database to read",
            )],
            ..CheckOutput::default()
        },
        CheckKind::Broken(message) => CheckOutput {
            faults: vec![RawFault {
                name: None,
                severity: Severity::CRITICAL,
                message: message.clone(),
                escalates: true,
            }],
            ..CheckOutput::default()
        },
    }
}

/// Runs a probe within `timeout`; its own failure (or the timeout) becomes
/// one escalating ERROR of the check itself, naming the target.
pub(crate) async fn bounded<E: Display>(
    target: &(dyn Display + Sync),
    timeout: Duration,
    probe: impl Future<Output = Result<CheckOutput, E>>,
) -> CheckOutput {
    let message = match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(output)) => return output,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!(
            "{target}: timed out after {} s",
            crate::thresholds::format_value(timeout.as_secs_f64())
        ),
    };
    own_error(message)
}

/// One escalating ERROR of the check itself (no `#name`).
fn own_error(message: String) -> CheckOutput {
    CheckOutput {
        faults: vec![RawFault {
            name: None,
            severity: Severity::ERROR,
            message,
            escalates: true,
        }],
        ..CheckOutput::default()
    }
}

/// Adds the check's threshold faults to its output.
///
/// `was_failing(metric)` tells whether the metric's stored fault is ERROR or
/// CRITICAL, which keeps a `clear` threshold sticky across runs and restarts.
pub(crate) fn apply_thresholds(
    check: &CheckDef,
    output: &mut CheckOutput,
    was_failing: &dyn Fn(&str) -> bool,
) {
    if check.thresholds.is_empty() {
        return;
    }
    let metrics = &output.metrics;
    let value = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    let faults = check.thresholds.evaluate(&value, was_failing);
    output.faults.extend(faults);
}
