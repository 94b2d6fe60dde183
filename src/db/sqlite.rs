//! The `sqlite` backend: the embedded default, one file per host.
//!
//! Owns the file's schema (created on first use), its connection settings and
//! the SQL behind every `Db` method. It leaves the `since`/`updated` rules to
//! `merge_with_stored`, shared with the other backends.
//!
//! Several agents on one host may share the file, each through its own
//! `SqliteDb`: the file runs in WAL mode (readers don't block the writer), a
//! busy timeout makes a writer wait for the lock instead of failing, and every
//! read-then-write runs in an IMMEDIATE transaction, which takes the write lock
//! up front. A deferred transaction would read first and then fail with
//! `SQLITE_BUSY` when upgrading, without waiting, if another agent wrote since.
//!
//! rusqlite blocks, so every call runs on tokio's blocking pool with the
//! connection behind an `Arc<std::sync::Mutex<_>>`; a slow disk or a held lock
//! never stalls the runtime that schedules checks.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::types::{FromSql, ValueRef};
use rusqlite::{Connection, ErrorCode, Row, Statement, TransactionBehavior, params};
use tracing::warn;

use super::{
    AgentFacts, AgentFault, Db, Error, FactsLog, Fault, Heartbeat, Notice, OpenAlert, SkipLog,
    SkippedRow, Squelch, StoppedAgent, merge_with_stored, notice_record, short_key,
};
use crate::severity::Severity;

/// How long a write waits for another agent's transaction on the same file.
///
/// Writes are a handful of rows per tick, so 5 s is far beyond any honest wait
/// and still well below a base interval.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before trying again to switch a contended file to WAL.
const WAL_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The version `SCHEMA` creates, kept in the file's `user_version`.
///
/// 1: the first schema. 2: `faults.monitor_runs` (SPEC §14), added to a
/// version-1 file by `MIGRATE_MONITOR_RUNS`, and the `open_alerts` table
/// (SPEC §14), created by `SCHEMA`'s idempotent statements. 3:
/// `heartbeats.version` and `heartbeats.checks` (SPEC §14), added to an
/// older file by `MIGRATE_HEARTBEAT_FACTS`. 4: `faults.storm` and
/// `open_alerts.storm` (SPEC §10), added by `MIGRATE_FAULTS_STORM` and
/// `MIGRATE_OPEN_ALERTS_STORM`, and the `notices` table (SPEC §10),
/// created by `SCHEMA`.
const SCHEMA_VERSION: i64 = 4;

/// Brings a version-1 file to version 2. An older binary still reads and
/// writes the file: it names its columns, and the new one has a default.
const MIGRATE_MONITOR_RUNS: &str =
    "ALTER TABLE faults ADD COLUMN monitor_runs INTEGER NOT NULL DEFAULT 0";

/// Brings a version-2 file to version 3. The columns are nullable (NULL:
/// not recorded), so an older binary that writes only `agent` and
/// `updated` still can; its heartbeat then keeps the facts a newer binary
/// wrote last.
const MIGRATE_HEARTBEAT_FACTS: &str = "
ALTER TABLE heartbeats ADD COLUMN version TEXT NULL;
ALTER TABLE heartbeats ADD COLUMN checks INTEGER NULL;
";

/// Brings the faults of a version-3 file to version 4. An older binary
/// still writes the file: it names its columns, and the new one has a
/// default (an older binary's update leaves `storm` as it was).
const MIGRATE_FAULTS_STORM: &str = "ALTER TABLE faults ADD COLUMN storm INTEGER NOT NULL DEFAULT 0";

/// Brings the kept open alerts of a version-2 or -3 file to version 4.
const MIGRATE_OPEN_ALERTS_STORM: &str =
    "ALTER TABLE open_alerts ADD COLUMN storm INTEGER NOT NULL DEFAULT 0";

/// The schema; every statement is idempotent, so agents racing to create it
/// in a new file do no harm.
///
/// Times are integer epoch seconds and booleans 0/1. The index on
/// `heartbeats.updated` lets `old_agents` read only the stale rows;
/// `heartbeats.version` and `checks` are what the agent says about itself
/// (NULL: not recorded).
/// `open_alerts` holds the alerts agents kept at a clean stop (SPEC §14),
/// a fault row each plus its `alerter` route (NULL: the default) and the
/// agent's `stopped` time.
/// `notices` holds the notification record of each fleet fault (SPEC §10):
/// its `version` (bumped by every write, the compare-and-swap's witness)
/// and the rest of the record as a JSON object in `record` (see
/// `notice_record`), so the record can grow without a migration.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS heartbeats (
    agent TEXT NOT NULL PRIMARY KEY,
    updated INTEGER NOT NULL,
    version TEXT NULL,
    checks INTEGER NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_updated ON heartbeats (updated);
CREATE TABLE IF NOT EXISTS faults (
    agent TEXT NOT NULL,
    name TEXT NOT NULL,
    severity INTEGER NOT NULL,
    message TEXT NOT NULL,
    since INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    triggered INTEGER NOT NULL,
    escalates INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    monitor_runs INTEGER NOT NULL DEFAULT 0,
    storm INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, name)
);
CREATE TABLE IF NOT EXISTS squelches (
    regex TEXT NOT NULL PRIMARY KEY,
    reason TEXT NOT NULL,
    user TEXT NOT NULL,
    time INTEGER NOT NULL,
    permanent INTEGER NOT NULL,
    expires INTEGER NULL
);
CREATE TABLE IF NOT EXISTS open_alerts (
    agent TEXT NOT NULL,
    name TEXT NOT NULL,
    severity INTEGER NOT NULL,
    message TEXT NOT NULL,
    since INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    triggered INTEGER NOT NULL,
    escalates INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    monitor_runs INTEGER NOT NULL,
    alerter TEXT NULL,
    stopped INTEGER NOT NULL,
    storm INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, name)
);
CREATE TABLE IF NOT EXISTS notices (
    name TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL,
    record TEXT NOT NULL
);
";

/// One agent's faults: the row id, then the columns in the order
/// `fault_from_row` reads them.
const SELECT_FAULTS: &str = "
SELECT rowid, name, severity, message, since, updated, triggered, escalates, attempts,
    monitor_runs, storm
FROM faults WHERE agent = ?1 ORDER BY name
";

/// Every agent's faults, or one's when `?1` is not NULL: one statement (and
/// one cached plan) for both cases.
const LIST_FAULTS: &str = "
SELECT agent, name, severity, message, since, updated, triggered, escalates, attempts,
    monitor_runs, storm
FROM faults WHERE ?1 IS NULL OR agent = ?1 ORDER BY agent, name
";

const UPSERT_FAULT: &str = "
INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts,
    monitor_runs, storm)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (agent, name) DO UPDATE SET
    severity = excluded.severity,
    message = excluded.message,
    since = excluded.since,
    updated = excluded.updated,
    triggered = excluded.triggered,
    escalates = excluded.escalates,
    attempts = excluded.attempts,
    monitor_runs = excluded.monitor_runs,
    storm = excluded.storm
";

/// A heartbeat replaces the facts too: NULL when the writer declared none.
const UPSERT_HEARTBEAT: &str = "
INSERT INTO heartbeats (agent, updated, version, checks) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (agent) DO UPDATE SET
    updated = excluded.updated,
    version = excluded.version,
    checks = excluded.checks
";

/// The columns `heartbeat_from_row` reads, in its order.
const HEARTBEAT_COLUMNS: &str = "agent, updated, version, checks";

const UPSERT_SQUELCH: &str = "
INSERT INTO squelches (regex, reason, user, time, permanent, expires)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (regex) DO UPDATE SET
    reason = excluded.reason,
    user = excluded.user,
    time = excluded.time,
    permanent = excluded.permanent,
    expires = excluded.expires
";

/// A handle on one `sqlite` database file.
///
/// One handle holds one connection, so its calls run one at a time; agents
/// sharing a file each open their own handle and the file's locks order them.
#[derive(Debug)]
pub struct SqliteDb {
    path: PathBuf,
    handle: Arc<Mutex<Handle>>,
    /// The longest a call waits for another connection's lock, in ms.
    busy_ms: Arc<AtomicU64>,
    skipped: Arc<SkipLog>,
    /// What each agent declared its heartbeats record.
    facts: FactsLog,
    /// Counts `remove_agent` calls done. A write issued before a removal
    /// but still queued behind the connection's lock when it ran (a write
    /// the agent gave up on at SIGTERM: its blocking closure cannot be
    /// cancelled) is dropped, or it would bring the heartbeat back and
    /// peers would page about an agent that stopped cleanly.
    removals: Arc<AtomicU64>,
}

/// The open connection and the identity of the file it opened.
#[derive(Debug)]
struct Handle {
    /// `None` after a reopen failed: the next call tries again.
    connection: Option<Connection>,
    /// Device and inode of the file when it was opened.
    identity: Option<(u64, u64)>,
    /// The busy timeout set on `connection`, in ms.
    busy_ms: u64,
}

/// Device and inode of the file at `path`; `None` when it is gone.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|metadata| (metadata.dev(), metadata.ino()))
}

/// Whether the file at `path` is no longer the one `opened` names: deleted,
/// or replaced. A `stat` that fails for another reason (a permission
/// changed) says nothing, so it does not count.
fn replaced(path: &Path, opened: Option<(u64, u64)>) -> bool {
    match std::fs::metadata(path) {
        Ok(metadata) => Some((metadata.dev(), metadata.ino())) != opened,
        Err(error) => error.kind() == std::io::ErrorKind::NotFound,
    }
}

/// `BUSY_TIMEOUT` in ms.
#[expect(clippy::cast_possible_truncation, reason = "5 s in ms fits")]
const BUSY_TIMEOUT_MS: u64 = BUSY_TIMEOUT.as_millis() as u64;

impl SqliteDb {
    /// Opens (or creates) the database file at `path`, creating its folder and
    /// the schema when they are missing.
    ///
    /// # Errors
    /// `Error::CreateFolder` when the folder cannot be created, `Error::Open`
    /// when the file cannot be opened, switched to WAL or given its schema, and
    /// `Error::Task` when the blocking task dies.
    pub async fn open(path: &Path) -> Result<SqliteDb, Error> {
        let owned = path.to_owned();
        let (connection, identity) = tokio::task::spawn_blocking(move || {
            let connection = open_blocking(&owned, BUSY_TIMEOUT)?;
            Ok::<_, Error>((connection, identity(&owned)))
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))??;
        Ok(SqliteDb {
            path: path.to_owned(),
            handle: Arc::new(Mutex::new(Handle {
                connection: Some(connection),
                identity,
                busy_ms: BUSY_TIMEOUT_MS,
            })),
            busy_ms: Arc::new(AtomicU64::new(BUSY_TIMEOUT_MS)),
            skipped: Arc::new(SkipLog::default()),
            facts: FactsLog::default(),
            removals: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Runs `work` with the connection on the blocking pool.
    ///
    /// First makes sure the connection still writes into the file at `path`:
    /// a file deleted (or replaced) under a running agent would otherwise take
    /// every later write while peers see an empty database. One `stat` per
    /// call finds that. A table dropped by hand is created again and `work`
    /// runs once more.
    async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let handle = Arc::clone(&self.handle);
        let path = self.path.clone();
        let busy_ms = self.busy_ms.load(Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves the connection usable: an
            // open `Transaction` rolls back when it is dropped during the
            // unwind. So a poisoned lock is taken over rather than turned into
            // an error every later call would repeat.
            let mut handle = handle.lock().unwrap_or_else(PoisonError::into_inner);
            let connection = handle.current(&path, busy_ms)?;
            match work(connection) {
                Err(error) if missing_table(&error) => {
                    warn!(path = %path.display(), error = %error, "a table of the sqlite database is missing; creating it again");
                    connection.execute_batch(SCHEMA)?;
                    work(connection)
                }
                done => done,
            }
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))?
    }

    /// Records what the read `read` skipped.
    fn skipping(&self, read: String) -> impl Fn(Vec<SkippedRow>) + Send + 'static {
        let log = Arc::clone(&self.skipped);
        move |rows| log.record(&read, rows)
    }
}

impl Handle {
    /// The connection, opened again when the file at `path` is not the one
    /// it opened (deleted, or replaced); blocks.
    fn current(&mut self, path: &Path, busy_ms: u64) -> Result<&mut Connection, Error> {
        if self.connection.is_some() && replaced(path, self.identity) {
            warn!(
                path = %path.display(),
                "the sqlite database file was deleted or replaced; opening it again and writing the full state"
            );
            // Closed before the new open: closing the last connection of the
            // old file removes the `-wal` file by name, which is the new
            // file's by then.
            self.connection = None;
        }
        if self.connection.is_none() {
            let connection = open_blocking(path, Duration::from_millis(busy_ms))?;
            self.identity = identity(path);
            self.busy_ms = busy_ms;
            self.connection = Some(connection);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(Error::Task("sqlite connection vanished".to_owned()));
        };
        if self.busy_ms != busy_ms {
            connection.busy_timeout(Duration::from_millis(busy_ms))?;
            self.busy_ms = busy_ms;
        }
        Ok(connection)
    }
}

/// Whether `error` says a table is missing (dropped by hand).
fn missing_table(error: &Error) -> bool {
    matches!(
        error,
        Error::Sqlite(rusqlite::Error::SqliteFailure(_, Some(message)))
            if message.starts_with("no such table")
    )
}

/// Creates the folder, opens the file and sets it up; blocks.
fn open_blocking(path: &Path, busy: Duration) -> Result<Connection, Error> {
    // `parent()` of a bare file name is `""`: the current folder, which exists.
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|source| Error::CreateFolder {
            path: folder.to_owned(),
            source,
        })?;
    }
    let setup = || -> rusqlite::Result<Connection> {
        let connection = Connection::open(path)?;
        // Set before anything else, so that switching to WAL and creating the
        // schema wait for an agent that opens the same new file right now.
        connection.busy_timeout(busy)?;
        enable_wal(&connection)?;
        create_schema(&connection)?;
        Ok(connection)
    };
    setup().map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })
}

/// Creates the tables in a file that lacks them, and migrates a file of an
/// older schema version.
///
/// `user_version` (0 in a new file) records the schema version, so an open of
/// a current file only reads; a user who may read but not write the file
/// (`cimaa faults`) can still open it. Agents that find a new (or old) file
/// together all take the write lock in turn (IMMEDIATE) and read the version
/// again under it, so only the first one migrates. A version-1 file gets
/// its new column, and keeps its rows: the agent that opens it first after
/// an upgrade adds it. A newer version than ours is left alone (a newer
/// binary's file; its additions have defaults).
fn create_schema(connection: &Connection) -> rusqlite::Result<()> {
    let version = |connection: &Connection| -> rusqlite::Result<i64> {
        connection.pragma_query_value(None, "user_version", |row| row.get(0))
    };
    if version(connection)? >= SCHEMA_VERSION {
        return Ok(());
    }
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        let found = version(connection)?;
        if found >= SCHEMA_VERSION {
            return Ok(());
        }
        // Every statement of `SCHEMA` is idempotent: a table of an older
        // version stays as it is and gets its new columns below.
        connection.execute_batch(SCHEMA)?;
        if !has_column(connection, "faults", "monitor_runs")? {
            connection.execute_batch(MIGRATE_MONITOR_RUNS)?;
        }
        if !has_column(connection, "heartbeats", "checks")? {
            connection.execute_batch(MIGRATE_HEARTBEAT_FACTS)?;
        }
        if !has_column(connection, "faults", "storm")? {
            connection.execute_batch(MIGRATE_FAULTS_STORM)?;
        }
        if !has_column(connection, "open_alerts", "storm")? {
            connection.execute_batch(MIGRATE_OPEN_ALERTS_STORM)?;
        }
        connection.pragma_update(None, "user_version", SCHEMA_VERSION)
    })();
    match migrated {
        Ok(()) => connection.execute_batch("COMMIT"),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Whether `table` has a column named `column`.
fn has_column(connection: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut statement = connection.prepare(&format!("PRAGMA table_info({table})"))?;
    let mut names = statement.query_map([], |row| row.get::<_, String>(1))?;
    names.try_fold(false, |found, name| Ok(found || name? == column))
}

/// Switches the file to WAL mode (it stays so: the mode is kept in the file).
///
/// The switch needs an exclusive lock, and the library answers `SQLITE_BUSY` at
/// once, without calling the busy handler, when two connections race for it
/// (waiting could deadlock). That happens when agents open a new file
/// together, so the switch is retried until `BUSY_TIMEOUT` runs out.
fn enable_wal(connection: &Connection) -> rusqlite::Result<()> {
    // Asking first keeps the open of a file already in WAL mode read-only.
    let mode: String = connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        // The pragma answers with the mode now in force; a file system
        // without WAL support keeps the rollback journal, which still works.
        let switched = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        match switched {
            Err(err)
                if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                // On the blocking pool, so sleeping stalls no async task.
                std::thread::sleep(WAL_RETRY_PAUSE);
            }
            switched => return switched.map(drop),
        }
    }
}

/// One column as `T`, or what is wrong with it (for a `SkippedRow`).
fn column<T: FromSql>(row: &Row<'_>, index: usize) -> Result<T, String> {
    row.get(index).map_err(|_| {
        let name = row.as_ref().column_name(index).unwrap_or("?");
        let holds = match row.get_ref(index) {
            Ok(ValueRef::Null) => "NULL",
            // Integers fail only when out of range (e.g. `attempts` 2^63-1).
            Ok(ValueRef::Integer(_)) => "an integer out of range",
            Ok(ValueRef::Real(_)) => "a real number",
            Ok(ValueRef::Text(text)) if std::str::from_utf8(text).is_err() => {
                "text that is not UTF-8"
            }
            Ok(ValueRef::Text(_)) => "text",
            Ok(ValueRef::Blob(_)) => "a blob",
            Err(_) => "nothing readable",
        };
        format!("column `{name}` holds {holds}")
    })
}

/// A key column as text, whatever it holds: it names a skipped row.
fn key_text(row: &Row<'_>, index: usize) -> String {
    let text = match row.get_ref(index) {
        Ok(ValueRef::Text(text)) => String::from_utf8_lossy(text).into_owned(),
        Ok(ValueRef::Integer(value)) => value.to_string(),
        Ok(ValueRef::Real(value)) => value.to_string(),
        Ok(ValueRef::Blob(bytes)) => {
            let mut hex = String::from("x'");
            for byte in bytes.iter().take(32) {
                let _ = write!(hex, "{byte:02x}");
            }
            if bytes.len() > 32 {
                hex.push('…');
            }
            hex.push('\'');
            hex
        }
        Ok(ValueRef::Null) | Err(_) => "NULL".to_owned(),
    };
    short_key(&text)
}

/// Reads the rows of `statement` one by one: a row `convert` refuses is
/// left out and described in `skipped` (`key` names it), so one malformed
/// row never hides the others. Failures of the query itself are errors.
fn read_rows<T, P: rusqlite::Params>(
    statement: &mut Statement<'_>,
    params: P,
    table: &str,
    key: impl Fn(&Row<'_>) -> String,
    mut convert: impl FnMut(&Row<'_>) -> Result<T, String>,
    skipped: &mut Vec<SkippedRow>,
) -> rusqlite::Result<Vec<T>> {
    let mut rows = statement.query(params)?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        match convert(row) {
            Ok(record) => records.push(record),
            Err(problem) => skipped.push(SkippedRow {
                table: table.to_owned(),
                key: key(row),
                problem,
            }),
        }
    }
    Ok(records)
}

/// Reads the fault columns of `SELECT_FAULTS` starting at column `first`.
fn fault_from_row(row: &Row<'_>, first: usize) -> Result<Fault, String> {
    Ok(Fault {
        name: column(row, first)?,
        severity: Severity(column(row, first + 1)?),
        message: column(row, first + 2)?,
        since: column(row, first + 3)?,
        updated: column(row, first + 4)?,
        triggered: column(row, first + 5)?,
        escalates: column(row, first + 6)?,
        // Out-of-range values fail as `IntegralValueOutOfRange` rather than wrap.
        attempts: column(row, first + 7)?,
        monitor_runs: column(row, first + 8)?,
        storm: column(row, first + 9)?,
    })
}

/// Reads a row of `HEARTBEAT_COLUMNS`. A fact of the wrong type (written
/// by hand or by another tool) reads as not recorded: the heartbeat itself
/// still counts for the meta-check (SPEC §17).
fn heartbeat_from_row(row: &Row<'_>) -> Result<Heartbeat, String> {
    Ok(Heartbeat {
        name: column(row, 0)?,
        updated: column(row, 1)?,
        version: row.get::<_, Option<String>>(2).ok().flatten(),
        checks: row.get::<_, Option<u64>>(3).ok().flatten(),
    })
}

fn squelch_from_row(row: &Row<'_>) -> Result<Squelch, String> {
    Ok(Squelch {
        regex: column(row, 0)?,
        reason: column(row, 1)?,
        user: column(row, 2)?,
        time: column(row, 3)?,
        permanent: column(row, 4)?,
        expires: column(row, 5)?,
    })
}

/// The `SkipLog` entry of the reads of one agent's faults.
fn own_faults_read(agent: &str) -> String {
    format!("faults of {agent}")
}

/// A malformed row: its row id (to delete it) and what is wrong with it.
type Malformed = (i64, SkippedRow);

/// The stored faults of one agent, ordered by name, and the row ids of its
/// malformed rows with what is wrong with them.
fn select_faults(
    connection: &Connection,
    agent: &str,
) -> rusqlite::Result<(Vec<Fault>, Vec<Malformed>)> {
    let mut statement = connection.prepare_cached(SELECT_FAULTS)?;
    let mut bad = Vec::new();
    let mut skipped = Vec::new();
    let faults = read_rows(
        &mut statement,
        [agent],
        "faults",
        |row| format!("{}/{}", short_key(agent), key_text(row, 1)),
        |row| {
            fault_from_row(row, 1).inspect_err(|_| {
                bad.push(row.get::<_, i64>(0).unwrap_or_default());
            })
        },
        &mut skipped,
    )?;
    Ok((faults, bad.into_iter().zip(skipped).collect()))
}

/// `set_faults` in one IMMEDIATE transaction; blocks. The agent's malformed
/// rows go too: `set_faults` replaces the whole set. Returns them. The
/// heartbeat records `facts`.
fn set_faults_blocking(
    connection: &mut Connection,
    agent: &str,
    faults: &[Fault],
    now: i64,
    facts: &AgentFacts,
) -> Result<Vec<SkippedRow>, Error> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (stored, malformed) = select_faults(&transaction, agent)?;
    let merged = merge_with_stored(&stored, faults);

    let mut delete_row = transaction.prepare_cached("DELETE FROM faults WHERE rowid = ?1")?;
    for (rowid, row) in &malformed {
        warn!(row = %row, "replacing a malformed row of this agent's faults");
        delete_row.execute([rowid])?;
    }
    let kept: HashSet<&str> = merged.iter().map(|fault| fault.name.as_str()).collect();
    let mut delete =
        transaction.prepare_cached("DELETE FROM faults WHERE agent = ?1 AND name = ?2")?;
    for old in stored
        .iter()
        .filter(|old| !kept.contains(old.name.as_str()))
    {
        delete.execute(params![agent, old.name])?;
    }

    // Rewrite only the rows that changed, so an unchanged fault costs a read.
    let stored: HashMap<&str, &Fault> = stored
        .iter()
        .map(|fault| (fault.name.as_str(), fault))
        .collect();
    let mut upsert = transaction.prepare_cached(UPSERT_FAULT)?;
    for fault in merged
        .iter()
        .filter(|fault| stored.get(fault.name.as_str()) != Some(fault))
    {
        upsert.execute(params![
            agent,
            fault.name,
            fault.severity.0,
            fault.message,
            fault.since,
            fault.updated,
            fault.triggered,
            fault.escalates,
            fault.attempts,
            fault.monitor_runs,
            fault.storm,
        ])?;
    }
    transaction.execute(
        UPSERT_HEARTBEAT,
        params![agent, now, facts.version, facts.checks],
    )?;

    drop(delete_row);
    drop(delete);
    drop(upsert);
    transaction.commit()?;
    Ok(malformed.into_iter().map(|(_, row)| row).collect())
}

/// Reads heartbeats with `sql` (`HEARTBEAT_COLUMNS`), skipping malformed rows.
fn select_heartbeats(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    skipped: &mut Vec<SkippedRow>,
) -> rusqlite::Result<Vec<Heartbeat>> {
    let mut statement = connection.prepare_cached(sql)?;
    read_rows(
        &mut statement,
        params,
        "heartbeats",
        |row| key_text(row, 0),
        heartbeat_from_row,
        skipped,
    )
}

/// The kept open alerts of one agent, ordered by name.
const SELECT_OPEN_ALERTS: &str = "
SELECT name, severity, message, since, updated, triggered, escalates, attempts, monitor_runs, alerter,
    storm
FROM open_alerts WHERE agent = ?1 ORDER BY name
";

const INSERT_OPEN_ALERT: &str = "
INSERT INTO open_alerts (agent, name, severity, message, since, updated, triggered, escalates,
    attempts, monitor_runs, alerter, stopped, storm)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
";

/// Agents with kept open alerts and no heartbeat: those that have not
/// started since they stopped.
const SELECT_STOPPED_AGENTS: &str = "
SELECT agent, MAX(stopped), COUNT(*) FROM open_alerts
WHERE agent NOT IN (SELECT agent FROM heartbeats)
GROUP BY agent ORDER BY agent
";

/// Reads a row of `SELECT_OPEN_ALERTS`.
fn open_alert_from_row(row: &Row<'_>) -> Result<OpenAlert, String> {
    Ok(OpenAlert {
        fault: Fault {
            name: column(row, 0)?,
            severity: Severity(column(row, 1)?),
            message: column(row, 2)?,
            since: column(row, 3)?,
            updated: column(row, 4)?,
            triggered: column(row, 5)?,
            escalates: column(row, 6)?,
            attempts: column(row, 7)?,
            monitor_runs: column(row, 8)?,
            storm: column(row, 10)?,
        },
        alerter: column(row, 9)?,
    })
}

fn stopped_agent_from_row(row: &Row<'_>) -> Result<StoppedAgent, String> {
    Ok(StoppedAgent {
        name: column(row, 0)?,
        stopped: column(row, 1)?,
        open_alerts: column(row, 2)?,
    })
}

/// `stop_agent` in one IMMEDIATE transaction; blocks.
fn stop_agent_blocking(
    connection: &mut Connection,
    agent: &str,
    open: &[OpenAlert],
    now: i64,
) -> Result<(), Error> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute("DELETE FROM heartbeats WHERE agent = ?1", [agent])?;
    transaction.execute("DELETE FROM faults WHERE agent = ?1", [agent])?;
    transaction.execute("DELETE FROM open_alerts WHERE agent = ?1", [agent])?;
    let mut insert = transaction.prepare_cached(INSERT_OPEN_ALERT)?;
    for alert in open {
        let fault = &alert.fault;
        insert.execute(params![
            agent,
            fault.name,
            fault.severity.0,
            fault.message,
            fault.since,
            fault.updated,
            fault.triggered,
            fault.escalates,
            fault.attempts,
            fault.monitor_runs,
            alert.alerter,
            now,
            fault.storm,
        ])?;
    }
    drop(insert);
    transaction.commit()?;
    Ok(())
}

/// The stored version of a notice row (column `first`): what the
/// compare-and-swap compares with. A version that is not a positive
/// integer (NULL, text, a real, a negative number: written by a broken or
/// newer agent) reads as 0, like an absent record, so that a `put_notice`
/// expecting 0 replaces the row; with its description.
fn notice_version(row: &Row<'_>, index: usize) -> (u64, Option<String>) {
    match column::<i64>(row, index) {
        Ok(version) => match u64::try_from(version) {
            Ok(version) => (version, None),
            Err(_) => (
                0,
                Some("column `version` holds a negative number".to_owned()),
            ),
        },
        Err(problem) => (0, Some(problem)),
    }
}

/// Reads a row of `SELECT_NOTICES`. A malformed record is read as an empty
/// notice at its stored version (see `notice_version`), with what is wrong
/// with it: the next `put_notice` over that version replaces it.
fn notice_from_row(row: &Row<'_>) -> Result<(Notice, Option<SkippedRow>), String> {
    let name: String = column(row, 0)?;
    let (version, mut problem) = notice_version(row, 1);
    let notice = column::<String>(row, 2).and_then(|text| {
        notice_record::read(&name, version, &text)
            .map_err(|detail| format!("column `record` is not a notice: {detail}"))
    });
    let notice = match notice {
        Ok(notice) if problem.is_none() => notice,
        Ok(_) => Notice::new(&name),
        Err(detail) => {
            problem = Some(problem.map_or(detail.clone(), |first| format!("{first}; {detail}")));
            Notice {
                version,
                ..Notice::new(&name)
            }
        }
    };
    let skipped = problem.map(|problem| SkippedRow {
        table: "notices".to_owned(),
        key: short_key(&name),
        problem,
    });
    Ok((notice, skipped))
}

/// The notices of the names in the JSON array `?1`, by name.
const SELECT_NOTICES: &str = "
SELECT name, version, record FROM notices
WHERE name IN (SELECT value FROM json_each(?1)) ORDER BY name
";

/// The `SkipLog` entry of the reads of one notice: each name has its own,
/// so a read of other names (or a put that replaced the record) forgets
/// nothing else.
fn notice_read(name: &str) -> String {
    format!("notice {name}")
}

/// `names` as a JSON array, the parameter of `... IN json_each(?1)`.
fn json_names(names: &[String]) -> Result<String, Error> {
    serde_json::to_string(names).map_err(|error| Error::Task(error.to_string()))
}

/// `put_notice` in one IMMEDIATE transaction; blocks.
fn put_notice_blocking(
    connection: &mut Connection,
    notice: &Notice,
    expected: u64,
) -> Result<bool, Error> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = {
        let mut statement =
            transaction.prepare_cached("SELECT version FROM notices WHERE name = ?1")?;
        let mut rows = statement.query([&notice.name])?;
        match rows.next()? {
            Some(row) => notice_version(row, 0).0,
            None => 0,
        }
    };
    if stored != expected {
        // Nothing written: dropping the transaction rolls it back.
        return Ok(false);
    }
    if notice.is_empty() {
        transaction.execute("DELETE FROM notices WHERE name = ?1", [&notice.name])?;
    } else {
        let version = expected
            .checked_add(1)
            .and_then(|next| i64::try_from(next).ok())
            .ok_or_else(|| Error::Corrupt {
                key: short_key(&notice.name),
                detail: format!("notice version {expected} cannot grow"),
            })?;
        let record = notice_record::write(notice)?;
        transaction.execute(
            "INSERT INTO notices (name, version, record) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, record = excluded.record",
            params![notice.name, version, record],
        )?;
    }
    transaction.commit()?;
    Ok(true)
}

#[async_trait]
impl Db for SqliteDb {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, Error> {
        let record = self.skipping(own_faults_read(agent));
        let agent = agent.to_owned();
        self.run(move |connection| {
            let (faults, malformed) = select_faults(connection, &agent)?;
            record(malformed.into_iter().map(|(_, row)| row).collect());
            Ok(faults)
        })
        .await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), Error> {
        let record = self.skipping(own_faults_read(agent));
        let agent = agent.to_owned();
        let faults = faults.to_vec();
        let facts = self.facts.get(&agent);
        let removals = Arc::clone(&self.removals);
        let issued = removals.load(Ordering::SeqCst);
        self.run(move |connection| {
            if removals.load(Ordering::SeqCst) != issued {
                return Ok(());
            }
            // What this write replaced is reported once more; the next
            // write finds none and clears it.
            record(set_faults_blocking(
                connection, &agent, &faults, now, &facts,
            )?);
            Ok(())
        })
        .await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), Error> {
        let AgentFacts { version, checks } = self.facts.get(agent);
        let agent = agent.to_owned();
        let removals = Arc::clone(&self.removals);
        let issued = removals.load(Ordering::SeqCst);
        self.run(move |connection| {
            if removals.load(Ordering::SeqCst) != issued {
                return Ok(());
            }
            connection.execute(UPSERT_HEARTBEAT, params![agent, now, version, checks])?;
            Ok(())
        })
        .await
    }

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.facts.set(agent, facts);
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, Error> {
        let record = self.skipping(agent.map_or_else(|| "faults".to_owned(), own_faults_read));
        let agent = agent.map(str::to_owned);
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(LIST_FAULTS)?;
            let mut skipped = Vec::new();
            let faults = read_rows(
                &mut statement,
                [&agent],
                "faults",
                |row| format!("{}/{}", key_text(row, 0), key_text(row, 1)),
                |row| {
                    Ok(AgentFault {
                        agent: column(row, 0)?,
                        fault: fault_from_row(row, 1)?,
                    })
                },
                &mut skipped,
            )?;
            record(skipped);
            Ok(faults)
        })
        .await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, Error> {
        let record = self.skipping("heartbeats".to_owned());
        self.run(move |connection| {
            let mut skipped = Vec::new();
            let agents = select_heartbeats(
                connection,
                &format!("SELECT {HEARTBEAT_COLUMNS} FROM heartbeats ORDER BY agent"),
                [],
                &mut skipped,
            )?;
            record(skipped);
            Ok(agents)
        })
        .await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, Error> {
        let record = self.skipping("stale heartbeats".to_owned());
        let cutoff = now.saturating_sub(age);
        self.run(move |connection| {
            let mut skipped = Vec::new();
            // Text and blobs sort after every number, so a malformed
            // `updated` would never look stale: the second range reads them
            // too (to report them), and both ranges use the index.
            let agents = select_heartbeats(
                connection,
                &format!(
                    "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats
                     WHERE updated < ?1 OR updated >= '' ORDER BY agent"
                ),
                [cutoff],
                &mut skipped,
            )?;
            record(skipped);
            Ok(agents)
        })
        .await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, Error> {
        let record = self.skipping("squelches".to_owned());
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT regex, reason, user, time, permanent, expires
                 FROM squelches ORDER BY regex",
            )?;
            let mut skipped = Vec::new();
            let squelches = read_rows(
                &mut statement,
                [],
                "squelches",
                |row| key_text(row, 0),
                squelch_from_row,
                &mut skipped,
            )?;
            record(skipped);
            Ok(squelches)
        })
        .await
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), Error> {
        let squelch = squelch.clone();
        self.run(move |connection| {
            connection.execute(
                UPSERT_SQUELCH,
                params![
                    squelch.regex,
                    squelch.reason,
                    squelch.user,
                    squelch.time,
                    squelch.permanent,
                    squelch.expires,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, Error> {
        let regex = regex.to_owned();
        self.run(move |connection| {
            let deleted = connection.execute("DELETE FROM squelches WHERE regex = ?1", [&regex])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), Error> {
        let agent = agent.to_owned();
        let removals = Arc::clone(&self.removals);
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            transaction.execute("DELETE FROM heartbeats WHERE agent = ?1", [&agent])?;
            transaction.execute("DELETE FROM faults WHERE agent = ?1", [&agent])?;
            transaction.commit()?;
            removals.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), Error> {
        let agent = agent.to_owned();
        let open = open.to_vec();
        let removals = Arc::clone(&self.removals);
        self.run(move |connection| {
            stop_agent_blocking(connection, &agent, &open, now)?;
            // A write of this agent still queued behind the lock is dropped,
            // as after `remove_agent`: it would bring the heartbeat back, or
            // (a queued `clear_open_alerts`) delete what was just kept.
            removals.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, Error> {
        let record = self.skipping(format!("open alerts of {agent}"));
        let agent = agent.to_owned();
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_OPEN_ALERTS)?;
            let mut skipped = Vec::new();
            let alerts = read_rows(
                &mut statement,
                [&agent],
                "open_alerts",
                |row| format!("{}/{}", short_key(&agent), key_text(row, 0)),
                open_alert_from_row,
                &mut skipped,
            )?;
            record(skipped);
            Ok(alerts)
        })
        .await
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, Error> {
        let record = self.skipping("stopped agents".to_owned());
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_STOPPED_AGENTS)?;
            let mut skipped = Vec::new();
            let agents = read_rows(
                &mut statement,
                [],
                "open_alerts",
                |row| key_text(row, 0),
                stopped_agent_from_row,
                &mut skipped,
            )?;
            record(skipped);
            Ok(agents)
        })
        .await
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), Error> {
        let agent = agent.to_owned();
        let removals = Arc::clone(&self.removals);
        let issued = removals.load(Ordering::SeqCst);
        self.run(move |connection| {
            if removals.load(Ordering::SeqCst) != issued {
                return Ok(());
            }
            connection.execute("DELETE FROM open_alerts WHERE agent = ?1", [&agent])?;
            Ok(())
        })
        .await
    }

    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let json = json_names(names)?;
        let log = Arc::clone(&self.skipped);
        let names = names.to_vec();
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_NOTICES)?;
            let mut skipped = Vec::new();
            let read = read_rows(
                &mut statement,
                [&json],
                "notices",
                |row| key_text(row, 0),
                notice_from_row,
                &mut skipped,
            )?;
            let mut notices = Vec::with_capacity(read.len());
            let mut problems: HashMap<String, SkippedRow> = HashMap::new();
            for (notice, problem) in read {
                if let Some(problem) = problem {
                    warn!(row = %problem, "read a malformed notice as an empty one; the next write replaces it");
                    problems.insert(notice.name.clone(), problem);
                }
                notices.push(notice);
            }
            // Only a name that is not text (not a key this read asked for)
            // lands in `skipped`: it is reported under the read of all names.
            for row in &skipped {
                warn!(row = %row, "skipping a malformed notice row");
            }
            for name in &names {
                log.record(&notice_read(name), problems.remove(name).into_iter().collect());
            }
            Ok(notices)
        })
        .await
    }

    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, Error> {
        let log = Arc::clone(&self.skipped);
        let notice = notice.clone();
        self.run(move |connection| {
            let written = put_notice_blocking(connection, &notice, expected)?;
            if written {
                // A malformed record it replaced is gone.
                log.record(&notice_read(&notice.name), Vec::new());
            }
            Ok(written)
        })
        .await
    }

    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, Error> {
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let json = json_names(agents)?;
        let record = self.skipping("heartbeats of notice holders".to_owned());
        self.run(move |connection| {
            let mut skipped = Vec::new();
            let heartbeats = select_heartbeats(
                connection,
                &format!(
                    "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats
                     WHERE agent IN (SELECT value FROM json_each(?1)) ORDER BY agent"
                ),
                [&json],
                &mut skipped,
            )?;
            record(skipped);
            Ok(heartbeats)
        })
        .await
    }

    fn skipped_rows(&self) -> Vec<SkippedRow> {
        self.skipped.rows()
    }

    fn limit_waits(&self, budget: Duration) {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        self.busy_ms
            .store(ms.clamp(1, BUSY_TIMEOUT_MS), Ordering::Relaxed);
    }
    async fn healthcheck(&self) -> Result<(), Error> {
        self.run(|connection| Ok(take_write_lock(connection)?))
            .await
    }
}

/// Takes the write lock and lets it go, writing nothing (`BEGIN IMMEDIATE;
/// ROLLBACK`): fails on a read-only file or folder, or a lock held too long.
fn take_write_lock(connection: &mut Connection) -> rusqlite::Result<()> {
    connection
        .transaction_with_behavior(TransactionBehavior::Immediate)?
        .rollback()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The faults table as version 1 (before `monitor_runs`) created it.
    const VERSION_1_FAULTS: &str = "
    CREATE TABLE faults (
        agent TEXT NOT NULL,
        name TEXT NOT NULL,
        severity INTEGER NOT NULL,
        message TEXT NOT NULL,
        since INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        triggered INTEGER NOT NULL,
        escalates INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        PRIMARY KEY (agent, name)
    );
    INSERT INTO faults VALUES ('web1', '//web1/app/x#monitor-status', 40, 'exit status 127: (no output)', 10, 20, 0, 0, 2);
    PRAGMA user_version = 1;
    ";

    fn broken_monitor(monitor_runs: u32) -> Fault {
        Fault {
            name: "//web1/app/x#monitor-status".into(),
            severity: Severity::ERROR,
            message: "exit status 127: (no output)".into(),
            since: 10,
            updated: 20,
            triggered: false,
            escalates: false,
            attempts: 2,
            monitor_runs,
            storm: false,
        }
    }

    // See: #22
    #[tokio::test]
    async fn a_version_1_file_keeps_its_rows_and_gains_monitor_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(VERSION_1_FAULTS)
            .unwrap();

        let db = SqliteDb::open(&path).await.unwrap();
        assert_eq!(db.get_faults("web1").await.unwrap(), [broken_monitor(0)]);
        db.set_faults("web1", &[broken_monitor(7)], 30)
            .await
            .unwrap();
        assert_eq!(db.get_faults("web1").await.unwrap(), [broken_monitor(7)]);

        let sql = Connection::open(&path).unwrap();
        let version: i64 = sql
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A binary of version 1 still writes the file: it names its columns.
        sql.execute(
            "INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts)
             VALUES ('web2', 'x', 40, 'm', 1, 1, 0, 1, 0)",
            [],
        )
        .unwrap();
        assert_eq!(db.get_faults("web2").await.unwrap()[0].monitor_runs, 0);
    }

    // See: #22
    #[tokio::test]
    async fn opening_a_migrated_file_again_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(VERSION_1_FAULTS)
            .unwrap();
        drop(SqliteDb::open(&path).await.unwrap());
        let db = SqliteDb::open(&path).await.unwrap();
        assert_eq!(db.get_faults("web1").await.unwrap(), [broken_monitor(0)]);
    }

    /// Polls `call` once: far enough to read the removal generation and
    /// queue its blocking work (behind the held connection), no further.
    async fn poll_once<T>(call: std::pin::Pin<&mut impl Future<Output = T>>) {
        let mut call = Some(call);
        std::future::poll_fn(|context| {
            if let Some(call) = call.as_mut() {
                assert!(
                    call.as_mut().poll(context).is_pending(),
                    "it waits for the lock"
                );
            }
            std::task::Poll::Ready(())
        })
        .await;
    }

    /// The heartbeats table of version 2 (before its facts), with a row.
    const VERSION_2_HEARTBEATS: &str = "
    CREATE TABLE heartbeats (
        agent TEXT NOT NULL PRIMARY KEY,
        updated INTEGER NOT NULL
    );
    CREATE INDEX heartbeats_updated ON heartbeats (updated);
    INSERT INTO heartbeats VALUES ('web1', 100);
    PRAGMA user_version = 2;
    ";

    // See: #16
    #[tokio::test]
    async fn a_version_2_file_keeps_its_heartbeats_and_gains_their_facts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(VERSION_2_HEARTBEATS)
            .unwrap();

        let db = SqliteDb::open(&path).await.unwrap();
        let old = Heartbeat {
            name: "web1".into(),
            updated: 100,
            version: None,
            checks: None,
        };
        assert_eq!(db.agents().await.unwrap(), [old]);
        let facts = AgentFacts {
            version: Some("1.2.3".into()),
            checks: Some(12),
        };
        db.set_facts("web1", facts);
        db.heartbeat("web1", 160).await.unwrap();
        let new = Heartbeat {
            name: "web1".into(),
            updated: 160,
            version: Some("1.2.3".into()),
            checks: Some(12),
        };
        assert_eq!(db.agents().await.unwrap(), std::slice::from_ref(&new));

        let sql = Connection::open(&path).unwrap();
        let version: i64 = sql
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A binary of version 2 still writes the file: it names its columns
        // and leaves the facts as they were.
        sql.execute(
            "INSERT INTO heartbeats (agent, updated) VALUES ('web1', 220)
             ON CONFLICT (agent) DO UPDATE SET updated = excluded.updated",
            [],
        )
        .unwrap();
        assert_eq!(
            db.agents().await.unwrap(),
            [Heartbeat {
                updated: 220,
                ..new
            }]
        );
    }

    // See: #16
    #[tokio::test]
    async fn a_version_1_file_gains_the_heartbeat_facts_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(&VERSION_2_HEARTBEATS.replace("user_version = 2", "user_version = 1"))
            .unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch(VERSION_1_FAULTS)
            .unwrap();

        let db = SqliteDb::open(&path).await.unwrap();
        db.set_facts("web1", AgentFacts::of_this_build(Some(3)));
        db.set_faults("web1", &[broken_monitor(7)], 30)
            .await
            .unwrap();

        let agents = db.agents().await.unwrap();
        assert_eq!(agents[0].checks, Some(3));
        assert_eq!(
            agents[0].version.as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(db.get_faults("web1").await.unwrap(), [broken_monitor(7)]);
    }

    /// The faults and open alerts tables of version 3 (before `storm`),
    /// with a row each.
    const VERSION_3_FAULTS: &str = "
    CREATE TABLE faults (
        agent TEXT NOT NULL,
        name TEXT NOT NULL,
        severity INTEGER NOT NULL,
        message TEXT NOT NULL,
        since INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        triggered INTEGER NOT NULL,
        escalates INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        monitor_runs INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, name)
    );
    INSERT INTO faults VALUES ('web1', '//web1/app/x#monitor-status', 40, 'exit status 127: (no output)', 10, 20, 0, 0, 2, 0);
    CREATE TABLE open_alerts (
        agent TEXT NOT NULL,
        name TEXT NOT NULL,
        severity INTEGER NOT NULL,
        message TEXT NOT NULL,
        since INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        triggered INTEGER NOT NULL,
        escalates INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        monitor_runs INTEGER NOT NULL,
        alerter TEXT NULL,
        stopped INTEGER NOT NULL,
        PRIMARY KEY (agent, name)
    );
    INSERT INTO open_alerts VALUES ('web2', '//web1/app/x#monitor-status', 40, 'exit status 127: (no output)', 10, 20, 0, 0, 2, 0, NULL, 30);
    PRAGMA user_version = 3;
    ";

    // See: #11
    #[tokio::test]
    async fn a_version_3_file_keeps_its_rows_and_gains_storm_and_notices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(VERSION_3_FAULTS)
            .unwrap();

        let db = SqliteDb::open(&path).await.unwrap();
        assert_eq!(db.get_faults("web1").await.unwrap(), [broken_monitor(0)]);
        let kept = db.open_alerts("web2").await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].fault, broken_monitor(0));
        let folded = Fault {
            storm: true,
            ..broken_monitor(0)
        };
        db.set_faults("web1", std::slice::from_ref(&folded), 40)
            .await
            .unwrap();
        assert_eq!(db.get_faults("web1").await.unwrap(), [folded]);
        let notice = Notice {
            holders: ["web1".to_owned()].into(),
            ..Notice::new("//meta")
        };
        assert!(db.put_notice(&notice, 0).await.unwrap());
        assert_eq!(
            db.notices(&["//meta".to_owned()]).await.unwrap()[0].version,
            1
        );

        let sql = Connection::open(&path).unwrap();
        let version: i64 = sql
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A binary of version 3 still writes the file: it names its columns.
        sql.execute(
            "INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts, monitor_runs)
             VALUES ('web3', 'x', 40, 'm', 1, 1, 0, 1, 0, 0)",
            [],
        )
        .unwrap();
        assert!(!db.get_faults("web3").await.unwrap()[0].storm);
    }

    // See: #18. At SIGTERM the agent gives up on a write stuck behind a
    // lock, but its blocking closure still runs once the lock is free; if
    // it ran after the deregistration, the heartbeat would come back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(
        clippy::await_holding_lock,
        reason = "the test holds the connection to queue a write behind it"
    )]
    async fn a_write_queued_behind_a_removal_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(SqliteDb::open(&dir.path().join("c.db")).await.unwrap());
        db.heartbeat("web1", 100).await.unwrap();
        // The write waits for the connection, as behind a held lock.
        let guard = db.handle.lock().unwrap();
        let mut write = std::pin::pin!(db.heartbeat("web1", 200));
        poll_once(write.as_mut()).await;
        // A removal is done meanwhile (as `remove_agent` counts it).
        db.removals.fetch_add(1, Ordering::SeqCst);
        drop(guard);
        write.await.unwrap();
        let updated: Vec<i64> = db
            .agents()
            .await
            .unwrap()
            .iter()
            .map(|a| a.updated)
            .collect();
        assert_eq!(updated, [100], "the queued write was dropped");
        db.heartbeat("web1", 300).await.unwrap();
        let updated: Vec<i64> = db
            .agents()
            .await
            .unwrap()
            .iter()
            .map(|a| a.updated)
            .collect();
        assert_eq!(updated, [300], "a write issued after the removal lands");
    }

    // See: #22. A start removes the alerts its last stop kept once it wrote
    // them as faults; if that removal waits behind a lock until after a
    // SIGTERM kept new ones, it must not delete those.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(
        clippy::await_holding_lock,
        reason = "the test holds the connection to queue a removal behind it"
    )]
    async fn a_removal_of_kept_alerts_queued_behind_a_stop_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(SqliteDb::open(&dir.path().join("c.db")).await.unwrap());
        let kept = OpenAlert {
            fault: Fault {
                name: "//web1/app/down".into(),
                severity: Severity::CRITICAL,
                message: "down".into(),
                since: 100,
                updated: 100,
                triggered: true,
                escalates: true,
                attempts: 3,
                monitor_runs: 0,
                storm: false,
            },
            alerter: None,
        };
        db.stop_agent("web1", std::slice::from_ref(&kept), 100)
            .await
            .unwrap();
        // The removal waits for the connection, as behind a held lock.
        let guard = db.handle.lock().unwrap();
        let mut clear = std::pin::pin!(db.clear_open_alerts("web1"));
        poll_once(clear.as_mut()).await;
        // A stop is done meanwhile (as `stop_agent` counts it).
        db.removals.fetch_add(1, Ordering::SeqCst);
        drop(guard);
        clear.await.unwrap();
        assert_eq!(
            db.open_alerts("web1").await.unwrap(),
            vec![kept],
            "the queued removal was dropped"
        );
        db.clear_open_alerts("web1").await.unwrap();
        assert_eq!(
            db.open_alerts("web1").await.unwrap(),
            vec![],
            "a removal issued after the stop still removes"
        );
    }
}
