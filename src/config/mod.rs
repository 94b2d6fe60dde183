//! Configuration: the agent file (SPEC §2) and the check files (SPEC §3).
//!
//! `load.rs` reads YAML (the only user of `serde_yaml`) into raw serde structs
//! with file/key/line errors; this module holds the validated types the rest
//! of the agent uses. A bad agent configuration is an error (exit 2); a bad
//! check file becomes a check that reports a CRITICAL fault, never a dead agent.

pub(crate) mod load;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alerters::AlerterConfig;
use crate::db::DbConfig;
use crate::sinks::SinkConfig;
use crate::thresholds::Thresholds;

pub use load::{load_agent_config, load_check_dir, load_check_file, startup_sentry};

/// A validated agent configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Absolute path of the file it came from (passed to plugins as `CIMAA_CONFIG`).
    pub path: PathBuf,
    pub agent: AgentConfig,
    pub database: DbConfig,
    pub alerter: AlerterConfig,
    /// Further alerters by name (`alerters:`), for routing and fallbacks.
    pub alerters: BTreeMap<String, AlerterConfig>,
    pub metrics: Option<SinkConfig>,
}

/// What loading a check file needs from the agent configuration.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Agent name, part of every relative check name.
    pub agent: String,
    /// Alerter names a check may route to.
    pub alerters: BTreeSet<String>,
}

impl Scope {
    /// A scope with only the default alerter.
    #[must_use]
    pub fn new(agent: &str) -> Scope {
        Scope {
            agent: agent.to_string(),
            alerters: BTreeSet::from([crate::alerters::DEFAULT.to_string()]),
        }
    }
}

impl Config {
    /// The scope check files of this agent load in.
    #[must_use]
    pub fn scope(&self) -> Scope {
        Scope {
            agent: self.agent.name.clone(),
            alerters: self.alerter_names(),
        }
    }

    /// Names a check's `alerter:` may use: `default` and the `alerters:` keys.
    #[must_use]
    pub fn alerter_names(&self) -> BTreeSet<String> {
        std::iter::once(crate::alerters::DEFAULT.to_string())
            .chain(self.alerters.keys().cloned())
            .collect()
    }
}

/// `log_format`: how log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The `agent:` section, validated, with defaults applied.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Agent name (default: the host's FQDN).
    pub name: String,
    /// Folder of check files.
    pub directory: PathBuf,
    /// Seconds per tick.
    pub base_interval: f64,
    /// Default check timeout.
    pub timeout: Duration,
    /// Bound on each tick's alert deliveries.
    pub alert_timeout: Duration,
    /// Level or tracing filter directives.
    pub logging: String,
    pub log_format: LogFormat,
    pub sentry_dsn: Option<String>,
    /// Checks in flight at once.
    pub max_concurrency: usize,
}

/// One check, as the agent schedules and runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckDef {
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
}

/// What a check does.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// A plugin run with `/bin/sh -c`.
    Command(String),
    /// An HTTP probe (boxed: it is much larger than the other kinds).
    Http(Box<crate::checks::http::HttpCheck>),
    /// A TCP connect probe.
    Tcp(crate::checks::tcp::Target),
    /// A socket that returns plugin JSON.
    Socket(crate::checks::socket::Target),
    /// A configuration problem, reported as a CRITICAL fault on every run.
    Broken(String),
}

impl CheckDef {
    /// A check that only reports its configuration error.
    #[must_use]
    pub fn broken(name: String, file: &Path, message: String) -> CheckDef {
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
        }
    }
}
