//! The shared database: heartbeats, faults and squelches (SPEC §6), and the
//! open alerts an agent keeps when it stops cleanly (SPEC §14).
//!
//! Owns the `Db` trait every backend implements, the records it stores, the
//! `database:` configuration enum and `build()`. Backends live one per file
//! (`memory`, `sqlite`, `dynamodb`); `notice_record` is the stored form of
//! the notices they share; callers pass `now` in, so no backend
//! reads the clock for anything a test needs to control.

pub(crate) mod dynamodb;
pub(crate) mod memory;
pub(crate) mod notice_record;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

pub use crate::fault::{AgentFault, Fault};
pub use crate::history::{HistoryConfig, Query as HistoryQuery, Record as HistoryRecord};
pub use crate::meta::{Heartbeat, StoppedAgent};
pub use crate::notice::{Claim, LastSent, Notice, Pending};
pub use crate::squelch::Squelch;
pub use dynamodb::{DynamoDb, DynamoDbConfig};
pub use memory::MemoryDb;
pub use postgres::{PostgresConfig, PostgresDb};
pub use sqlite::SqliteDb;

/// Database failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open sqlite database `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create folder `{path}` for the sqlite database")]
    CreateFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sqlite request failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
    #[error("stored record `{key}` is invalid: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("no AWS region: set `region` in the `database` section, or `AWS_REGION`")]
    NoRegion,
    #[error("dynamodb table `{table}` does not exist (create it with `cimaa setup-db`)")]
    TableMissing { table: String },
    #[error("dynamodb table `{table}` does not fit cimaa: {detail}")]
    TableMismatch { table: String, detail: String },
    #[error(
        "dynamodb kept throttling `{operation}` on `{table}` after {attempts} attempt(s) (raise its capacity)"
    )]
    Throttled {
        operation: &'static str,
        table: String,
        attempts: u32,
    },
    #[error("dynamodb `{operation}` on `{table}` failed after {attempts} attempt(s): {detail}")]
    DynamoDb {
        operation: &'static str,
        table: String,
        attempts: u32,
        detail: String,
    },
    #[error(
        "dynamodb left {items} item(s) of a batch write to `{table}` unprocessed after {attempts} attempt(s)"
    )]
    Unprocessed {
        table: String,
        items: usize,
        attempts: u32,
    },
    /// A PostgreSQL failure; `url` is shown without its password.
    #[error("postgresql `{url}`: {detail}")]
    Postgres { url: String, detail: String },
    #[error("database call `{operation}` did not finish within {millis} ms")]
    Timeout {
        operation: &'static str,
        millis: u64,
    },
}

/// A stored row a read skipped because it does not fit the layout (a text
/// severity, a blob name, a NULL, an out-of-range number): written by a peer,
/// by zc.cimaa or by hand, it must not hide every other row (SPEC §17).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SkippedRow {
    /// The table (`faults`, `heartbeats`, `squelches`).
    pub table: String,
    /// The row's key as far as it can be read, e.g. `web1/disk`.
    pub key: String,
    /// What is wrong with it, e.g. ``column `severity` holds text``.
    pub problem: String,
}

impl fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table `{}` key `{}`: {}",
            self.table, self.key, self.problem
        )
    }
}

/// Longest key a `SkippedRow` quotes: a 70,000-character name is a key too.
const SKIPPED_KEY_CHARS: usize = 200;

/// Cuts a key read from a malformed row to `SKIPPED_KEY_CHARS`, with a
/// marker, and escapes its control characters: it is logged and printed.
#[must_use]
pub(crate) fn short_key(key: &str) -> String {
    let mut short = String::new();
    for (count, c) in key.chars().enumerate() {
        if count == SKIPPED_KEY_CHARS {
            short.push('…');
            break;
        }
        if c.is_control() {
            short.extend(c.escape_default());
        } else {
            short.push(c);
        }
    }
    short
}

/// Malformed rows a message names one by one; it counts the rest.
const SKIPPED_LISTED: usize = 5;

/// Describes skipped rows in one line, the first few by table and key: the
/// message of `AGENT#database` and of the meta-check's `database` fault.
#[must_use]
pub(crate) fn skipped_message(rows: &[SkippedRow]) -> String {
    let listed: Vec<String> = rows
        .iter()
        .take(SKIPPED_LISTED)
        .map(ToString::to_string)
        .collect();
    let mut message = format!(
        "Skipped {} malformed database row(s): {}",
        rows.len(),
        listed.join("; ")
    );
    if rows.len() > SKIPPED_LISTED {
        let _ = write!(message, "; and {} more", rows.len() - SKIPPED_LISTED);
    }
    message
}

/// What the latest read of each kind skipped, so that a malformed row is
/// reported while it is there and forgotten once a read no longer finds it.
///
/// Keyed by the read (`faults`, `faults of web1`, `squelches`, ...): a read
/// replaces only its own entry, so a narrow read never clears what a wider
/// one found.
#[derive(Debug, Default)]
pub(crate) struct SkipLog {
    reads: Mutex<BTreeMap<String, Vec<SkippedRow>>>,
}

impl SkipLog {
    /// Records what the read `read` skipped (nothing clears its entry).
    pub(crate) fn record(&self, read: &str, rows: Vec<SkippedRow>) {
        // One map operation under the lock, so a poisoned lock is taken over.
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        if rows.is_empty() {
            reads.remove(read);
        } else {
            reads.insert(read.to_owned(), rows);
        }
    }

    /// Every row the latest reads skipped, sorted, each once.
    pub(crate) fn rows(&self) -> Vec<SkippedRow> {
        let reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rows: Vec<SkippedRow> = reads.values().flatten().cloned().collect();
        rows.sort();
        rows.dedup();
        rows
    }
}

/// What an agent says about itself in its heartbeat (SPEC §14): shown by
/// `cimaa agents`, judged by nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentFacts {
    /// The agent's version, what `cimaa --version` prints after the name.
    pub version: Option<String>,
    /// How many checks it runs: last good versions included, placeholders
    /// for broken files not. `None` until its first scan.
    pub checks: Option<u64>,
}

impl AgentFacts {
    /// The facts of this build running `checks` checks (`None`: not known yet).
    #[must_use]
    pub fn of_this_build(checks: Option<u64>) -> AgentFacts {
        AgentFacts {
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            checks,
        }
    }
}

/// The facts each agent declared through one handle (`Db::set_facts`),
/// which its next heartbeat writes carry. Keyed by agent, so agents sharing
/// a handle (tests, the in-process fleet) never record each other's facts.
/// Holds an entry per agent that declared facts: one in an agent process.
#[derive(Debug, Default)]
pub(crate) struct FactsLog {
    agents: Mutex<BTreeMap<String, AgentFacts>>,
}

impl FactsLog {
    /// Records what `agent` declared, replacing what it declared before.
    pub(crate) fn set(&self, agent: &str, facts: AgentFacts) {
        // One map operation under the lock, so a poisoned lock is taken over.
        self.agents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(agent.to_owned(), facts);
    }

    /// What `agent` declared last; nothing known when it declared nothing.
    pub(crate) fn get(&self, agent: &str) -> AgentFacts {
        self.agents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .cloned()
            .unwrap_or_default()
    }
}

/// An alert an agent left open when it stopped cleanly (SPEC §14), kept
/// under a reserved key until its next start (or `cimaa forget`) takes it.
///
/// It keeps the whole fault record, not only name, message and severity:
/// the failure counter (`attempts`) and `monitor_runs` are what keep an
/// escalated fault CRITICAL across the restart, so a fault still failing is
/// neither resolved nor triggered again by the next start.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAlert {
    /// The fault as the agent held it when it stopped.
    pub fault: Fault,
    /// The check's `alerter:` route; `None` is the default alerter.
    pub alerter: Option<String>,
}

/// Provisioned throughput for `setup-db` (on-demand billing without it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Read capacity units of each table and index.
    pub read: i64,
    /// Write capacity units of each table and index.
    pub write: i64,
}

/// What failed of a tick's write (`Db::write_tick`).
#[derive(Debug)]
pub enum TickWriteError {
    /// The faults and heartbeat were not written (the records neither,
    /// where one transaction holds both).
    Faults(Error),
    /// The faults were written; the history records were not.
    History(Error),
}

/// The contract every backend passes (see `tests/db_contract.rs`).
#[async_trait]
pub trait Db: Send + Sync {
    /// The stored faults of one agent.
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, Error>;

    /// Replaces the agent's fault set and writes its heartbeat at `now`.
    ///
    /// A fault already stored under the same name keeps its `since`.
    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), Error>;

    /// Writes the agent's heartbeat at `now` without touching its faults.
    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), Error>;

    /// Declares what every later heartbeat of `agent` written through this
    /// handle (by `heartbeat` and `set_faults`) records about it (SPEC §14):
    /// a setter rather than an argument of every write, since the facts
    /// change rarely and the writes are many. Writes nothing by itself; a
    /// heartbeat written without a declaration records no facts.
    ///
    /// By default ignored: a test double without a place for facts writes
    /// heartbeats without them, as zc.cimaa does.
    fn set_facts(&self, _agent: &str, _facts: AgentFacts) {}

    /// Faults of every agent (or of one), ordered by agent and name.
    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, Error>;

    /// Every known agent and its heartbeat, ordered by name.
    async fn agents(&self) -> Result<Vec<Heartbeat>, Error>;

    /// Agents whose heartbeat is older than `age` seconds at `now`.
    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, Error>;

    /// The regexes of the squelches in force at `now`.
    async fn get_squelches(&self, now: i64) -> Result<Vec<String>, Error> {
        Ok(self
            .get_squelch_details()
            .await?
            .into_iter()
            .filter(|s| s.active(now))
            .map(|s| s.regex)
            .collect())
    }

    /// Every stored squelch, ordered by regex.
    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, Error>;

    /// Adds (or replaces) a squelch.
    async fn squelch(&self, squelch: &Squelch) -> Result<(), Error>;

    /// Removes a squelch; false when there was none.
    async fn unsquelch(&self, regex: &str) -> Result<bool, Error>;

    /// Removes the squelch on `regex` only if it has expired at `now` (its
    /// `expires` is at or before `now`); true when this call removed it
    /// (SPEC §12). Conditional, so that of two agents that both saw it
    /// expired only one records the removal, and a squelch set again on
    /// the same regex meanwhile (a later expiry, or none) stays.
    ///
    /// By default a read then `unsquelch`, which is not atomic; every
    /// backend does it in one conditional request.
    async fn remove_expired_squelch(&self, regex: &str, now: i64) -> Result<bool, Error> {
        let expired = self
            .get_squelch_details()
            .await?
            .iter()
            .any(|squelch| squelch.regex == regex && !squelch.active(now));
        if !expired {
            return Ok(false);
        }
        self.unsquelch(regex).await
    }

    /// Every agent's `AGENT#alerts` fault: the agents whose alerts fail.
    async fn alert_failures(&self) -> Result<Vec<AgentFault>, Error> {
        Ok(self
            .list_faults(None)
            .await?
            .into_iter()
            .filter(|f| f.fault.name == format!("{}#alerts", f.agent))
            .collect())
    }

    /// Removes an agent's heartbeat and faults.
    async fn remove_agent(&self, agent: &str) -> Result<(), Error>;

    /// Deregisters an agent that stops cleanly (SPEC §9, §14): removes its
    /// heartbeat and faults as `remove_agent` does and keeps `open`, stopped
    /// at `now`, in place of whatever it kept before; with `open` empty it
    /// keeps nothing (and removes what was kept). Atomic where the backend
    /// can be (one `SQLite` transaction); DynamoDB writes the kept alerts
    /// before it deletes anything, so a failure part way loses nothing.
    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), Error>;

    /// The open alerts `agent` kept at its last clean stop, by fault name.
    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, Error>;

    /// The agents that stopped cleanly leaving open alerts and have not
    /// started since (no heartbeat), by name: for the meta-check, read
    /// without scanning the fleet.
    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, Error>;

    /// Removes the open alerts `agent` kept, and nothing else: a start calls
    /// it once they are part of its stored faults.
    async fn clear_open_alerts(&self, agent: &str) -> Result<(), Error>;

    /// The notification records of these fleet faults (SPEC §10), ordered
    /// by name, each once; names without a record are left out. A malformed record (written by
    /// a newer or broken agent) is logged, listed in `skipped_rows`, and
    /// read as an empty notice that the next `put_notice` over its version
    /// replaces: never an error.
    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, Error>;

    /// Compare-and-swap of one notice: stores `notice` with version
    /// `expected + 1` if the stored record's version is `expected` (0: no
    /// record stored); a notice that `is_empty` is removed instead. Returns
    /// false, writing nothing, when the stored version differs (another
    /// agent wrote first): the caller reads again and decides again.
    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, Error>;

    /// The heartbeats of these agents, ordered by name, each once; agents
    /// without one (never seen, deregistered, forgotten) are left out. For
    /// judging whether a notice's holders and claimer are alive without
    /// reading the fleet.
    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, Error>;

    /// Appends records to the history (SPEC §12). Records older than the
    /// retention may be left out; a backend prunes (or lets expire) what
    /// passes the retention.
    async fn append_history(&self, records: &[HistoryRecord]) -> Result<(), Error>;

    /// A tick's write: `set_faults`, then `append_history` of `history`
    /// when there are records. A backend with transactions writes both in
    /// one (SPEC §15), so that the state and its records are stored
    /// together or not at all; this default writes one after the other.
    ///
    /// # Errors
    /// `TickWriteError::Faults` when the faults were not written (nor, in
    /// one transaction, the records); `TickWriteError::History` when only
    /// the records were not.
    async fn write_tick(
        &self,
        agent: &str,
        faults: &[Fault],
        now: i64,
        history: &[HistoryRecord],
    ) -> Result<(), TickWriteError> {
        self.set_faults(agent, faults, now)
            .await
            .map_err(TickWriteError::Faults)?;
        if history.is_empty() {
            return Ok(());
        }
        self.append_history(history)
            .await
            .map_err(TickWriteError::History)
    }

    /// The history records `query` asks for, newest first (records of the
    /// same second: the later appended first), at most `query.limit`.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>, Error>;

    /// Creates what the backend stores into (idempotent) and waits until it
    /// is usable; `capacity` asks for provisioned throughput where that
    /// means something. Opening a `sqlite` file already creates its schema
    /// and `memory` has none, so by default there is nothing to do.
    async fn setup(&self, _capacity: Option<Capacity>) -> Result<(), Error> {
        Ok(())
    }

    /// Checks, without changing anything, that the agent could write here
    /// (`validate --healthchecks`). By default a read: enough for `memory`.
    async fn healthcheck(&self) -> Result<(), Error> {
        self.agents().await.map(drop)
    }
    /// The malformed rows the latest reads skipped (each read kind replaces
    /// what it found before), for `AGENT#database` and the CLI's warnings.
    /// A backend that cannot hold a malformed row has none.
    fn skipped_rows(&self) -> Vec<SkippedRow> {
        Vec::new()
    }

    /// Bounds how long one call may wait for a lock or on retries, so that a
    /// stuck database costs a tick at most `budget` (SPEC §6). Backends whose
    /// calls never wait ignore it.
    fn limit_waits(&self, _budget: Duration) {}
}

/// `database:` section of the agent configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum DbConfig {
    /// Embedded `SQLite` file (the default).
    Sqlite(SqliteConfig),
    /// Process-local, for tests and demos.
    Memory(MemoryConfig),
    /// Amazon DynamoDB, shared by a fleet.
    DynamoDb(DynamoDbConfig),
    /// PostgreSQL, shared by a fleet (SPEC §15).
    Postgres(PostgresConfig),
}

/// `database: {type: sqlite}` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file; created with its schema on first use.
    #[serde(default = "default_sqlite_path")]
    pub path: PathBuf,
    /// `history: {retention: 30d}` (SPEC §12).
    #[serde(default)]
    pub history: HistoryConfig,
}

/// `database: {type: memory}` options: only the history's retention.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// `history: {retention: 30d}` (SPEC §12).
    #[serde(default)]
    pub history: HistoryConfig,
}

pub(crate) fn default_sqlite_path() -> PathBuf {
    PathBuf::from("/var/lib/cimaa/cimaa.db")
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig::Sqlite(SqliteConfig {
            path: default_sqlite_path(),
            history: HistoryConfig::default(),
        })
    }
}

impl DbConfig {
    /// The `history:` options of whichever backend (SPEC §12).
    #[must_use]
    pub fn history(&self) -> HistoryConfig {
        match self {
            DbConfig::Sqlite(sqlite) => sqlite.history,
            DbConfig::Memory(memory) => memory.history,
            DbConfig::DynamoDb(dynamodb) => dynamodb.history,
            DbConfig::Postgres(postgres) => postgres.history,
        }
    }
}

/// Runs one database call, giving up with `Error::Timeout` after `budget`:
/// the one bound both the agent (per tick) and DynamoDB (per call, retries
/// included) put on a call.
pub(crate) async fn within<T>(
    operation: &'static str,
    budget: Duration,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(budget, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout {
                operation,
                millis: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
            })
        })
}

/// Opens the configured backend.
///
/// # Errors
/// When the backend cannot be opened (e.g. the `SQLite` file's folder is
/// missing, or no AWS region is configured).
pub(crate) async fn build(config: &DbConfig) -> Result<Arc<dyn Db>, Error> {
    match config {
        DbConfig::Sqlite(sqlite) => Ok(Arc::new(
            SqliteDb::open(&sqlite.path)
                .await?
                .with_history(sqlite.history),
        )),
        DbConfig::Memory(memory) => Ok(Arc::new(MemoryDb::default().with_history(memory.history))),
        DbConfig::DynamoDb(dynamodb) => Ok(Arc::new(DynamoDb::open(dynamodb).await?)),
        DbConfig::Postgres(postgres) => Ok(Arc::new(PostgresDb::open(postgres)?)),
    }
}

/// Carries `since` over from the stored faults: a fault that is still there
/// keeps the time it was first seen; `updated` changes only when the record does.
#[must_use]
pub(crate) fn merge_with_stored(stored: &[Fault], new: &[Fault]) -> Vec<Fault> {
    new.iter()
        .map(|fault| {
            let mut fault = fault.clone();
            if let Some(old) = stored.iter().find(|old| old.name == fault.name) {
                fault.since = old.since.min(fault.since);
                if old.same_record(&fault) {
                    fault.updated = old.updated;
                }
            }
            fault
        })
        .collect()
}
