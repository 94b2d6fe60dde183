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
//!
//! Its parts: `connection` opens the file (folder, busy timeout, WAL) and
//! opens it again when it is deleted or replaced; `schema` creates the
//! tables and migrates a file of an older version; `rows` holds the reading
//! statements and turns rows into records, skipping malformed ones;
//! `notices` reads and writes the notification records of fleet faults.
//! This file holds the `SqliteDb` handle, the writes and `impl Db`.

mod connection;
mod history;
mod notices;
mod rows;
mod schema;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use tracing::warn;

use self::connection::{BUSY_TIMEOUT, BUSY_TIMEOUT_MS, Handle, identity, open_blocking};
use self::notices::{
    SELECT_NOTICES, json_names, notice_from_row, notice_read, put_notice_blocking,
};
use self::rows::{
    HEARTBEAT_COLUMNS, LIST_FAULTS, SELECT_OPEN_ALERTS, SELECT_STOPPED_AGENTS, column,
    fault_from_row, key_text, open_alert_from_row, read_rows, select_faults, select_heartbeats,
    squelch_from_row, stopped_agent_from_row,
};
use self::schema::SCHEMA;
use super::{
    AgentFacts, AgentFault, Db, Error, FactsLog, Fault, Heartbeat, HistoryConfig, HistoryQuery,
    HistoryRecord, Notice, OpenAlert, SkipLog, SkippedRow, Squelch, StoppedAgent,
    merge_with_stored, short_key,
};

const UPSERT_FAULT: &str = "
INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts,
    monitor_runs, storm, suppressed_by, held, flapping)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
ON CONFLICT (agent, name) DO UPDATE SET
    severity = excluded.severity,
    message = excluded.message,
    since = excluded.since,
    updated = excluded.updated,
    triggered = excluded.triggered,
    escalates = excluded.escalates,
    attempts = excluded.attempts,
    monitor_runs = excluded.monitor_runs,
    storm = excluded.storm,
    suppressed_by = excluded.suppressed_by,
    held = excluded.held,
    flapping = excluded.flapping
";

/// A heartbeat replaces the facts too: NULL when the writer declared none.
const UPSERT_HEARTBEAT: &str = "
INSERT INTO heartbeats (agent, updated, version, checks) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (agent) DO UPDATE SET
    updated = excluded.updated,
    version = excluded.version,
    checks = excluded.checks
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
    /// The history's retention (SPEC §12).
    history: HistoryConfig,
    /// When this handle prunes the history next (epoch seconds; 0: at its
    /// first write).
    next_prune: Arc<AtomicI64>,
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
            history: HistoryConfig::default(),
            next_prune: Arc::new(AtomicI64::new(0)),
        })
    }

    /// The same handle keeping history records for `history.retention`.
    #[must_use]
    pub fn with_history(mut self, history: HistoryConfig) -> SqliteDb {
        self.history = history;
        self
    }

    /// Prunes the history up to `oldest_kept` in a blocking task of its
    /// own, a small batch at a time: never in the time of the write that
    /// found it due (SPEC §6).
    fn prune_later(&self, oldest_kept: i64) {
        let handle = Arc::clone(&self.handle);
        let path = self.path.clone();
        let busy_ms = self.busy_ms.load(Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let batch = |delete: &mut dyn FnMut(&Connection) -> Result<usize, Error>| {
                let mut handle = handle.lock().unwrap_or_else(PoisonError::into_inner);
                delete(handle.current(&path, busy_ms)?)
            };
            if let Err(e) = history::prune_blocking(batch, oldest_kept) {
                warn!(error = %e, "cannot prune the history; trying again in an hour");
            }
        });
    }

    /// Whether the write at `now` prunes the history: at most once an hour
    /// per handle (SPEC §12).
    fn prune_due(&self, now: i64) -> bool {
        let next = self.next_prune.load(Ordering::Relaxed);
        now >= next
            && self
                .next_prune
                .compare_exchange(
                    next,
                    now + history::PRUNE_EVERY,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
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

/// Whether `error` says a table is missing (dropped by hand).
fn missing_table(error: &Error) -> bool {
    matches!(
        error,
        Error::Sqlite(rusqlite::Error::SqliteFailure(_, Some(message)))
            if message.starts_with("no such table")
    )
}

/// The `SkipLog` entry of the reads of one agent's faults.
fn own_faults_read(agent: &str) -> String {
    format!("faults of {agent}")
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
            fault.suppressed_by,
            fault.held,
            fault.flapping,
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

const INSERT_OPEN_ALERT: &str = "
INSERT INTO open_alerts (agent, name, severity, message, since, updated, triggered, escalates,
    attempts, monitor_runs, alerter, stopped, storm, suppressed_by, held, flapping)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
";

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
            fault.suppressed_by,
            fault.held,
            fault.flapping,
        ])?;
    }
    drop(insert);
    transaction.commit()?;
    Ok(())
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
        let prune = self
            .prune_due(now)
            .then(|| now.saturating_sub(self.history.retention));
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
        .await?;
        if let Some(oldest_kept) = prune {
            self.prune_later(oldest_kept);
        }
        Ok(())
    }

    async fn append_history(&self, records: &[HistoryRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.run(move |connection| history::append_blocking(connection, &records))
            .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>, Error> {
        let record = self.skipping("history".to_owned());
        let query = query.clone();
        let retention = self.history.retention;
        self.run(move |connection| {
            let (found, skipped) = history::read_blocking(connection, &query, retention)?;
            record(skipped);
            Ok(found)
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

    async fn remove_expired_squelch(&self, regex: &str, now: i64) -> Result<bool, Error> {
        let regex = regex.to_owned();
        self.run(move |connection| {
            let deleted = connection.execute(
                "DELETE FROM squelches WHERE regex = ?1 AND expires IS NOT NULL AND expires <= ?2",
                params![regex, now],
            )?;
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
    use crate::severity::Severity;

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
                suppressed_by: None,
                held: false,
                flapping: false,
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
