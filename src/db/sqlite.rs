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
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, Row, TransactionBehavior, params};

use super::{AgentFault, Db, Error, Fault, Heartbeat, Squelch, merge_with_stored};
use crate::severity::Severity;

/// How long a write waits for another agent's transaction on the same file.
///
/// Writes are a handful of rows per tick, so 5 s is far beyond any honest wait
/// and still well below a base interval.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before trying again to switch a contended file to WAL.
const WAL_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The version `SCHEMA` creates, kept in the file's `user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The schema; every statement is idempotent, so agents racing to create it
/// in a new file do no harm.
///
/// Times are integer epoch seconds and booleans 0/1. The index on
/// `heartbeats.updated` lets `old_agents` read only the stale rows.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS heartbeats (
    agent TEXT NOT NULL PRIMARY KEY,
    updated INTEGER NOT NULL
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
";

/// One agent's faults; columns in the order `fault_from_row` reads them.
const SELECT_FAULTS: &str = "
SELECT name, severity, message, since, updated, triggered, escalates, attempts
FROM faults WHERE agent = ?1 ORDER BY name
";

/// Every agent's faults, or one's when `?1` is not NULL: one statement (and
/// one cached plan) for both cases.
const LIST_FAULTS: &str = "
SELECT agent, name, severity, message, since, updated, triggered, escalates, attempts
FROM faults WHERE ?1 IS NULL OR agent = ?1 ORDER BY agent, name
";

const UPSERT_FAULT: &str = "
INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (agent, name) DO UPDATE SET
    severity = excluded.severity,
    message = excluded.message,
    since = excluded.since,
    updated = excluded.updated,
    triggered = excluded.triggered,
    escalates = excluded.escalates,
    attempts = excluded.attempts
";

const UPSERT_HEARTBEAT: &str = "
INSERT INTO heartbeats (agent, updated) VALUES (?1, ?2)
ON CONFLICT (agent) DO UPDATE SET updated = excluded.updated
";

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
    connection: Arc<Mutex<Connection>>,
}

impl SqliteDb {
    /// Opens (or creates) the database file at `path`, creating its folder and
    /// the schema when they are missing.
    ///
    /// # Errors
    /// `Error::CreateFolder` when the folder cannot be created, `Error::Open`
    /// when the file cannot be opened, switched to WAL or given its schema, and
    /// `Error::Task` when the blocking task dies.
    pub async fn open(path: &Path) -> Result<SqliteDb, Error> {
        let path = path.to_owned();
        let connection = tokio::task::spawn_blocking(move || open_blocking(&path))
            .await
            .map_err(|err| Error::Task(err.to_string()))??;
        Ok(SqliteDb {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` with the connection on the blocking pool.
    async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves the connection usable: an
            // open `Transaction` rolls back when it is dropped during the
            // unwind. So a poisoned lock is taken over rather than turned into
            // an error every later call would repeat.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))?
    }
}

/// Creates the folder, opens the file and sets it up; blocks.
fn open_blocking(path: &Path) -> Result<Connection, Error> {
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
        connection.busy_timeout(BUSY_TIMEOUT)?;
        enable_wal(&connection)?;
        create_schema(&connection)?;
        Ok(connection)
    };
    setup().map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })
}

/// Creates the tables in a file that lacks them.
///
/// `user_version` (0 in a new file) records the schema version, so an open of
/// an existing file only reads; a user who may read but not write the file
/// (`cimaa faults`) can still open it. Agents that find a new file together
/// all run the idempotent script: IMMEDIATE makes them take turns.
fn create_schema(connection: &Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    connection.execute_batch(&format!(
        "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
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

/// Reads the fault columns of `SELECT_FAULTS` starting at column `first`.
fn fault_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Fault> {
    Ok(Fault {
        name: row.get(first)?,
        severity: Severity(row.get(first + 1)?),
        message: row.get(first + 2)?,
        since: row.get(first + 3)?,
        updated: row.get(first + 4)?,
        triggered: row.get(first + 5)?,
        escalates: row.get(first + 6)?,
        // Out-of-range values fail as `IntegralValueOutOfRange` rather than wrap.
        attempts: row.get(first + 7)?,
    })
}

fn heartbeat_from_row(row: &Row<'_>) -> rusqlite::Result<Heartbeat> {
    Ok(Heartbeat {
        name: row.get(0)?,
        updated: row.get(1)?,
    })
}

/// The stored faults of one agent, ordered by name.
fn select_faults(connection: &Connection, agent: &str) -> rusqlite::Result<Vec<Fault>> {
    let mut statement = connection.prepare_cached(SELECT_FAULTS)?;
    statement
        .query_map([agent], |row| fault_from_row(row, 0))?
        .collect()
}

/// `set_faults` in one IMMEDIATE transaction; blocks.
fn set_faults_blocking(
    connection: &mut Connection,
    agent: &str,
    faults: &[Fault],
    now: i64,
) -> Result<(), Error> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = select_faults(&transaction, agent)?;
    let merged = merge_with_stored(&stored, faults);

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
        ])?;
    }
    transaction.execute(UPSERT_HEARTBEAT, params![agent, now])?;

    drop(delete);
    drop(upsert);
    transaction.commit()?;
    Ok(())
}

#[async_trait]
impl Db for SqliteDb {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, Error> {
        let agent = agent.to_owned();
        self.run(move |connection| Ok(select_faults(connection, &agent)?))
            .await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), Error> {
        let agent = agent.to_owned();
        let faults = faults.to_vec();
        self.run(move |connection| set_faults_blocking(connection, &agent, &faults, now))
            .await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), Error> {
        let agent = agent.to_owned();
        self.run(move |connection| {
            connection.execute(UPSERT_HEARTBEAT, params![agent, now])?;
            Ok(())
        })
        .await
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, Error> {
        let agent = agent.map(str::to_owned);
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(LIST_FAULTS)?;
            let faults = statement
                .query_map([agent], |row| {
                    Ok(AgentFault {
                        agent: row.get(0)?,
                        fault: fault_from_row(row, 1)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(faults)
        })
        .await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, Error> {
        self.run(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT agent, updated FROM heartbeats ORDER BY agent")?;
            let agents = statement
                .query_map([], heartbeat_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(agents)
        })
        .await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, Error> {
        let cutoff = now.saturating_sub(age);
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT agent, updated FROM heartbeats WHERE updated < ?1 ORDER BY agent",
            )?;
            let agents = statement
                .query_map([cutoff], heartbeat_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(agents)
        })
        .await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, Error> {
        self.run(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT regex, reason, user, time, permanent, expires
                 FROM squelches ORDER BY regex",
            )?;
            let squelches = statement
                .query_map([], |row| {
                    Ok(Squelch {
                        regex: row.get(0)?,
                        reason: row.get(1)?,
                        user: row.get(2)?,
                        time: row.get(3)?,
                        permanent: row.get(4)?,
                        expires: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
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
            let deleted = connection.execute("DELETE FROM squelches WHERE regex = ?1", [regex])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), Error> {
        let agent = agent.to_owned();
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            transaction.execute("DELETE FROM heartbeats WHERE agent = ?1", [&agent])?;
            transaction.execute("DELETE FROM faults WHERE agent = ?1", [&agent])?;
            transaction.commit()?;
            Ok(())
        })
        .await
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
