//! Configuration: the agent file (SPEC §2) and the check files (SPEC §3).
//!
//! This module holds the validated agent configuration the rest of the agent
//! uses (`Config`, `AgentConfig`, `Scope`); the work is split by concern:
//!
//! - `load`: reading YAML (the only user of `serde_yaml`) with file, key,
//!   line and column in every error, and the error type;
//! - `env_subst`: `${VAR}` substitution inside the scalar values YAML reads;
//! - `sections`: the agent file's sections as written and their validation;
//! - `check_file`: check files, the check directory and parallel loading;
//!
//! A check's own options (HTTP, TCP, socket, command) and `CheckDef` belong
//! to `checks`; this module only reads the YAML they come in. A bad agent
//! configuration is an error (exit 2); a bad check file becomes a check that
//! reports a CRITICAL fault, never a dead agent.

mod check_file;
mod env_subst;
pub(crate) mod load;
mod sections;
mod squelch_section;
mod typed_section;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::alerters::AlerterConfig;
use crate::db::DbConfig;
use crate::sinks::SinkConfig;

pub(crate) use check_file::{
    Loaded, check_files, load_check_dir, load_check_file, load_check_files, parse_check_text,
    placeholder, split_stem_clashes,
};
pub use load::load_agent_config;
pub(crate) use load::startup_sentry;

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
    /// `alerting:`: how the fleet and the agent fold notifications (SPEC §10).
    pub alerting: AlertingConfig,
    /// `squelch:`: limits on new squelches (SPEC §12).
    pub squelch: crate::squelch::Policy,
    /// `web:`: where `cimaa web` listens and the token that allows changes (SPEC §13).
    pub web: WebConfig,
    /// Things that are allowed but probably not meant (a `timeout` longer
    /// than a tick): `cimaa validate` prints them, the agent logs them.
    pub warnings: Vec<String>,
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

/// The `alerting:` section (SPEC §10), with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Base intervals after which an agent's heartbeat is too old for it to
    /// hold a fleet fault (default 5, the meta-check's default `-e`).
    pub holder_timeout: u32,
    /// More triggers than this through one alerter in one tick become one
    /// `AGENT#storm` notification (default 10; 0: off).
    pub storm_threshold: usize,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            holder_timeout: 5,
            storm_threshold: 10,
        }
    }
}

/// The address `cimaa web` listens on without `--listen` or `web.listen`.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8642";

/// The `web:` section (SPEC §13).
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// `web.listen`: the address `cimaa web` listens on (default
    /// `127.0.0.1:8642`); `--listen` overrides it.
    pub listen: Option<String>,
    /// `web.token`: what a login or a bearer header must give for changes
    /// (`$CIMAA_WEB_TOKEN` overrides it); none: the web view is read-only.
    pub token: Option<String>,
}

/// Never the token itself: a `{:?}` of the configuration may be logged.
impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
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

/// `agent.splay`: how long after each tick's start the agent starts it
/// (SPEC §14).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Splay {
    /// A stable offset from the agent's name (`scheduler::splay_offset`).
    #[default]
    Auto,
    /// This many seconds (`0`: off), shorter than the base interval.
    Seconds(f64),
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
    /// HTTP probes in flight to one host (scheme, name, port) at once.
    pub connections_per_host: usize,
    /// Folder for what the agent remembers between runs (last good check
    /// files, the meta-check's observations): `agent.state_dir`, else a
    /// `cimaa-state` folder beside the SQLite file, none (empty: kept in
    /// memory only) with the `memory` database, else
    /// `/var/lib/cimaa/state/AGENT`. Created when first written.
    pub state_dir: PathBuf,
    /// Nameservers the network probes resolve through (`agent.resolver`);
    /// empty: the system's configuration (`/etc/resolv.conf`).
    pub resolver: Vec<std::net::SocketAddr>,
    /// How long after each tick's start the agent starts it.
    pub splay: Splay,
    /// `agent.flap`: the flap detection levels of checks without their own
    /// (SPEC §11).
    pub flap: crate::flap::Levels,
    /// `agent.metrics_listen`: where the agent serves Prometheus `/metrics`
    /// (SPEC §13); `None` (the default): no listener, no registry.
    pub metrics_listen: Option<std::net::SocketAddr>,
}
