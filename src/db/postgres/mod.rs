//! The `postgres` backend: a PostgreSQL database shared by a fleet (SPEC
//! §15), for teams that run one already and are not on AWS.
//!
//! Its parts: `config` reads the `database:` options and keeps the
//! password out of every shown form of the URL; `connection` keeps a small
//! pool of connections (TLS through rustls when `sslmode` asks for it) and
//! reconnects with jittered backoff after an outage; `schema` creates the
//! tables on first use (and in `setup-db`) and records their version;
//! `rows` reads rows into records, skipping malformed ones; `notices` holds
//! the compare-and-swap of the notification records (SPEC §10). This file
//! holds the `PostgresDb` handle, the writes and `impl Db`.
//!
//! Every write of a tick (`set_faults`: the changed faults and the
//! heartbeat) is one transaction; so are `remove_agent` and `stop_agent`.
//! The rules on `since` and `updated` are `merge_with_stored`'s, shared
//! with the other backends.

mod config;
mod connection;
mod history;
mod notices;
mod rows;
mod schema;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tracing::warn;

pub use self::config::PostgresConfig;
use self::connection::{Pool, detail};
use self::notices::{SELECT_NOTICES, notice_from_row, notice_read};
use self::rows::{
    FAULT_COLUMNS, HEARTBEAT_COLUMNS, SELECT_OPEN_ALERTS, SELECT_STOPPED_AGENTS, column,
    fault_from_row, heartbeat_from_row, key_text, open_alert_from_row, read_rows, squelch_from_row,
    stopped_agent_from_row,
};
use super::{
    AgentFacts, AgentFault, Db, Error, FactsLog, Fault, Heartbeat, HistoryConfig, HistoryQuery,
    HistoryRecord, Notice, OpenAlert, SkipLog, SkippedRow, Squelch, StoppedAgent, TickWriteError,
    merge_with_stored, notice_record, short_key,
};

/// Writes the changed faults of one agent (`$1`) in one statement, one
/// array per column.
const UPSERT_FAULTS: &str = "
INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts,
    monitor_runs, storm, suppressed_by, held, flapping)
SELECT $1::text, * FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[],
    $7::boolean[], $8::boolean[], $9::bigint[], $10::bigint[], $11::boolean[], $12::text[],
    $13::boolean[], $14::boolean[])
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
INSERT INTO heartbeats (agent, updated, version, checks) VALUES ($1, $2, $3, $4)
ON CONFLICT (agent) DO UPDATE SET
    updated = excluded.updated,
    version = excluded.version,
    checks = excluded.checks
";

const UPSERT_SQUELCH: &str = r#"
INSERT INTO squelches (regex, reason, "user", time, permanent, expires)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (regex) DO UPDATE SET
    reason = excluded.reason,
    "user" = excluded."user",
    time = excluded.time,
    permanent = excluded.permanent,
    expires = excluded.expires
"#;

const INSERT_OPEN_ALERT: &str = "
INSERT INTO open_alerts (agent, name, severity, message, since, updated, triggered, escalates,
    attempts, monitor_runs, alerter, stopped, storm, suppressed_by, held, flapping)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
";

/// The tables an agent writes and the privileges it needs on each, for
/// `healthcheck`: `history` is only appended to and pruned.
const TABLES: [(&str, &str); 6] = [
    ("heartbeats", "SELECT, INSERT, UPDATE, DELETE"),
    ("faults", "SELECT, INSERT, UPDATE, DELETE"),
    ("squelches", "SELECT, INSERT, UPDATE, DELETE"),
    ("open_alerts", "SELECT, INSERT, UPDATE, DELETE"),
    ("notices", "SELECT, INSERT, UPDATE, DELETE"),
    ("history", "SELECT, INSERT, DELETE"),
];

/// A handle on one PostgreSQL database: a pool of connections, opened on
/// first use.
#[derive(Debug)]
pub struct PostgresDb {
    pool: Arc<Pool>,
    skipped: Arc<SkipLog>,
    /// What each agent declared its heartbeats record.
    facts: FactsLog,
    /// Counts `remove_agent` and `stop_agent` calls done: a write of the
    /// agent issued before one but still waiting for a connection when it
    /// ran is dropped, or it would bring the heartbeat back (as `sqlite`).
    removals: AtomicU64,
    /// The history's retention (SPEC §12).
    history: HistoryConfig,
    /// When this handle prunes the history next (epoch seconds; 0: at its
    /// first write).
    next_prune: AtomicI64,
}

/// The `SkipLog` entry of the reads of one agent's faults.
fn own_faults_read(agent: &str) -> String {
    format!("faults of {agent}")
}

impl PostgresDb {
    /// A handle on the database of `config`; connects on first use, so an
    /// agent starts while the server is down.
    ///
    /// # Errors
    /// `Error::Postgres` when the options are invalid (the URL quoted
    /// without its password).
    pub fn open(config: &PostgresConfig) -> Result<PostgresDb, Error> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(Error::Postgres {
                url: config.shown_url(),
                detail: problems.join("; "),
            });
        }
        Ok(PostgresDb {
            pool: Arc::new(Pool::new(config)),
            skipped: Arc::new(SkipLog::default()),
            facts: FactsLog::default(),
            removals: AtomicU64::new(0),
            history: config.history,
            next_prune: AtomicI64::new(0),
        })
    }

    /// Prunes the history up to `oldest_kept` in a task of its own, in
    /// statements of their own on a connection of the pool: never in the
    /// time of the write that found it due (SPEC §6).
    fn prune_later(&self, oldest_kept: i64) {
        let pool = Arc::clone(&self.pool);
        tokio::spawn(async move {
            let pruned = match pool.get().await {
                Ok(client) => history::prune(&client, oldest_kept)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = pruned {
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

    /// A driver error as ours; a missing table (dropped by hand) makes the
    /// next call create the tables again.
    fn sql(&self, error: &tokio_postgres::Error) -> Error {
        if error.code() == Some(&SqlState::UNDEFINED_TABLE) {
            warn!(url = %self.pool.shown, "a table of the postgresql database is missing; the next call creates it again");
            self.pool.schema_lost();
        }
        self.pool.error(detail(error))
    }

    /// Whether a removal ran since `issued` (see `removals`).
    fn removed_since(&self, issued: u64) -> bool {
        self.removals.load(Ordering::SeqCst) != issued
    }

    async fn select_heartbeats(
        &self,
        read: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Heartbeat>, Error> {
        let client = self.pool.get().await?;
        let rows = client.query(sql, params).await.map_err(|e| self.sql(&e))?;
        let mut skipped = Vec::new();
        let heartbeats = read_rows(
            &rows,
            "heartbeats",
            |row| key_text(row, 0),
            heartbeat_from_row,
            &mut skipped,
        );
        self.skipped.record(read, skipped);
        Ok(heartbeats)
    }

    /// `set_faults` in one transaction; returns the malformed rows of the
    /// agent it replaced.
    /// Replaces the agent's faults and writes its heartbeat, and appends
    /// `history`, in one transaction (SPEC §15).
    async fn write_faults(
        &self,
        agent: &str,
        faults: &[Fault],
        now: i64,
        history: &[HistoryRecord],
    ) -> Result<Vec<SkippedRow>, Error> {
        let AgentFacts { version, checks } = self.facts.get(agent);
        let checks = checks.and_then(|checks| i64::try_from(checks).ok());
        let mut client = self.pool.get().await?;
        let sql = |e: tokio_postgres::Error| self.sql(&e);
        let transaction = client.transaction().await.map_err(sql)?;
        let rows = transaction
            .query(
                &format!(
                    "SELECT {FAULT_COLUMNS} FROM faults WHERE agent = $1 ORDER BY name FOR UPDATE"
                ),
                &[&agent],
            )
            .await
            .map_err(sql)?;
        let mut malformed = Vec::new();
        let stored = read_rows(
            &rows,
            "faults",
            |row| format!("{}/{}", short_key(agent), key_text(row, 0)),
            |row| fault_from_row(row, 0),
            &mut malformed,
        );
        let merged = merge_with_stored(&stored, faults);
        let kept: HashSet<&str> = merged.iter().map(|fault| fault.name.as_str()).collect();
        // Every stored name not kept goes, malformed rows included (those
        // kept are rewritten below: they are not among `stored`).
        let gone: Vec<String> = rows
            .iter()
            .filter_map(|row| column::<String>(row, 0).ok())
            .filter(|name| !kept.contains(name.as_str()))
            .collect();
        for row in &malformed {
            warn!(row = %row, "replacing a malformed row of this agent's faults");
        }
        if !gone.is_empty() {
            transaction
                .execute(
                    "DELETE FROM faults WHERE agent = $1 AND name = ANY($2)",
                    &[&agent, &gone],
                )
                .await
                .map_err(sql)?;
        }
        // Rewrite only the rows that changed, so an unchanged fault costs a read.
        let stored: HashMap<&str, &Fault> = stored
            .iter()
            .map(|fault| (fault.name.as_str(), fault))
            .collect();
        let changed: Vec<&Fault> = merged
            .iter()
            .filter(|fault| stored.get(fault.name.as_str()) != Some(fault))
            .collect();
        if !changed.is_empty() {
            let names: Vec<&str> = changed.iter().map(|f| f.name.as_str()).collect();
            let severities: Vec<i64> = changed.iter().map(|f| f.severity.0).collect();
            let messages: Vec<&str> = changed.iter().map(|f| f.message.as_str()).collect();
            let since: Vec<i64> = changed.iter().map(|f| f.since).collect();
            let updated: Vec<i64> = changed.iter().map(|f| f.updated).collect();
            let triggered: Vec<bool> = changed.iter().map(|f| f.triggered).collect();
            let escalates: Vec<bool> = changed.iter().map(|f| f.escalates).collect();
            let attempts: Vec<i64> = changed.iter().map(|f| i64::from(f.attempts)).collect();
            let runs: Vec<i64> = changed.iter().map(|f| i64::from(f.monitor_runs)).collect();
            let storm: Vec<bool> = changed.iter().map(|f| f.storm).collect();
            let suppressed: Vec<Option<&str>> =
                changed.iter().map(|f| f.suppressed_by.as_deref()).collect();
            let held: Vec<bool> = changed.iter().map(|f| f.held).collect();
            let flapping: Vec<bool> = changed.iter().map(|f| f.flapping).collect();
            transaction
                .execute(
                    UPSERT_FAULTS,
                    &[
                        &agent,
                        &names,
                        &severities,
                        &messages,
                        &since,
                        &updated,
                        &triggered,
                        &escalates,
                        &attempts,
                        &runs,
                        &storm,
                        &suppressed,
                        &held,
                        &flapping,
                    ],
                )
                .await
                .map_err(sql)?;
        }
        transaction
            .execute(UPSERT_HEARTBEAT, &[&agent, &now, &version, &checks])
            .await
            .map_err(sql)?;
        if !history.is_empty() {
            history::append(&transaction, history).await.map_err(sql)?;
        }
        transaction.commit().await.map_err(sql)?;
        Ok(malformed)
    }
}

#[async_trait]
impl Db for PostgresDb {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("SELECT {FAULT_COLUMNS} FROM faults WHERE agent = $1 ORDER BY name"),
                &[&agent],
            )
            .await
            .map_err(|e| self.sql(&e))?;
        let mut skipped = Vec::new();
        let faults = read_rows(
            &rows,
            "faults",
            |row| format!("{}/{}", short_key(agent), key_text(row, 0)),
            |row| fault_from_row(row, 0),
            &mut skipped,
        );
        self.skipped.record(&own_faults_read(agent), skipped);
        Ok(faults)
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), Error> {
        self.write_tick(agent, faults, now, &[])
            .await
            .map_err(|e| match e {
                TickWriteError::Faults(e) | TickWriteError::History(e) => e,
            })
    }

    async fn write_tick(
        &self,
        agent: &str,
        faults: &[Fault],
        now: i64,
        history: &[HistoryRecord],
    ) -> Result<(), TickWriteError> {
        let issued = self.removals.load(Ordering::SeqCst);
        if self.removed_since(issued) {
            return Ok(());
        }
        let replaced = self
            .write_faults(agent, faults, now, history)
            .await
            .map_err(TickWriteError::Faults)?;
        // What this write replaced is reported once more; the next write
        // finds none and clears it.
        self.skipped.record(&own_faults_read(agent), replaced);
        if self.prune_due(now) {
            self.prune_later(now.saturating_sub(self.history.retention));
        }
        Ok(())
    }

    async fn append_history(&self, records: &[HistoryRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await?;
        history::append(&*client, records)
            .await
            .map_err(|e| self.sql(&e))
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>, Error> {
        let client = self.pool.get().await?;
        let (found, skipped) = history::read(&client, query, self.history.retention)
            .await
            .map_err(|e| self.sql(&e))?;
        self.skipped.record("history", skipped);
        Ok(found)
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), Error> {
        let issued = self.removals.load(Ordering::SeqCst);
        let AgentFacts { version, checks } = self.facts.get(agent);
        let checks = checks.and_then(|checks| i64::try_from(checks).ok());
        let client = self.pool.get().await?;
        if self.removed_since(issued) {
            return Ok(());
        }
        client
            .execute(UPSERT_HEARTBEAT, &[&agent, &now, &version, &checks])
            .await
            .map_err(|e| self.sql(&e))?;
        Ok(())
    }

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.facts.set(agent, facts);
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT agent, {FAULT_COLUMNS} FROM faults
                     WHERE $1::text IS NULL OR agent = $1 ORDER BY agent, name"
                ),
                &[&agent],
            )
            .await
            .map_err(|e| self.sql(&e))?;
        let mut skipped = Vec::new();
        let faults = read_rows(
            &rows,
            "faults",
            |row| format!("{}/{}", key_text(row, 0), key_text(row, 1)),
            |row| {
                Ok(AgentFault {
                    agent: column(row, 0)?,
                    fault: fault_from_row(row, 1)?,
                })
            },
            &mut skipped,
        );
        self.skipped.record(
            &agent.map_or_else(|| "faults".to_owned(), own_faults_read),
            skipped,
        );
        Ok(faults)
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, Error> {
        self.select_heartbeats(
            "heartbeats",
            &format!("SELECT {HEARTBEAT_COLUMNS} FROM heartbeats ORDER BY agent"),
            &[],
        )
        .await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, Error> {
        let cutoff = now.saturating_sub(age);
        self.select_heartbeats(
            "stale heartbeats",
            &format!(
                "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats WHERE updated < $1 ORDER BY agent"
            ),
            &[&cutoff],
        )
        .await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                r#"SELECT regex, reason, "user", time, permanent, expires
                   FROM squelches ORDER BY regex"#,
                &[],
            )
            .await
            .map_err(|e| self.sql(&e))?;
        let mut skipped = Vec::new();
        let squelches = read_rows(
            &rows,
            "squelches",
            |row| key_text(row, 0),
            squelch_from_row,
            &mut skipped,
        );
        self.skipped.record("squelches", skipped);
        Ok(squelches)
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), Error> {
        let client = self.pool.get().await?;
        client
            .execute(
                UPSERT_SQUELCH,
                &[
                    &squelch.regex,
                    &squelch.reason,
                    &squelch.user,
                    &squelch.time,
                    &squelch.permanent,
                    &squelch.expires,
                ],
            )
            .await
            .map_err(|e| self.sql(&e))?;
        Ok(())
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let deleted = client
            .execute("DELETE FROM squelches WHERE regex = $1", &[&regex])
            .await
            .map_err(|e| self.sql(&e))?;
        Ok(deleted > 0)
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        let sql = |e: tokio_postgres::Error| self.sql(&e);
        let transaction = client.transaction().await.map_err(sql)?;
        transaction
            .execute("DELETE FROM heartbeats WHERE agent = $1", &[&agent])
            .await
            .map_err(sql)?;
        transaction
            .execute("DELETE FROM faults WHERE agent = $1", &[&agent])
            .await
            .map_err(sql)?;
        transaction.commit().await.map_err(sql)?;
        self.removals.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        let sql = |e: tokio_postgres::Error| self.sql(&e);
        let transaction = client.transaction().await.map_err(sql)?;
        for table in ["heartbeats", "faults", "open_alerts"] {
            transaction
                .execute(&format!("DELETE FROM {table} WHERE agent = $1"), &[&agent])
                .await
                .map_err(sql)?;
        }
        if !open.is_empty() {
            let insert = transaction.prepare(INSERT_OPEN_ALERT).await.map_err(sql)?;
            for alert in open {
                let fault = &alert.fault;
                transaction
                    .execute(
                        &insert,
                        &[
                            &agent,
                            &fault.name,
                            &fault.severity.0,
                            &fault.message,
                            &fault.since,
                            &fault.updated,
                            &fault.triggered,
                            &fault.escalates,
                            &i64::from(fault.attempts),
                            &i64::from(fault.monitor_runs),
                            &alert.alerter,
                            &now,
                            &fault.storm,
                            &fault.suppressed_by,
                            &fault.held,
                            &fault.flapping,
                        ],
                    )
                    .await
                    .map_err(sql)?;
            }
        }
        transaction.commit().await.map_err(sql)?;
        // A queued write of this agent is dropped, as after `remove_agent`.
        self.removals.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(SELECT_OPEN_ALERTS, &[&agent])
            .await
            .map_err(|e| self.sql(&e))?;
        let mut skipped = Vec::new();
        let alerts = read_rows(
            &rows,
            "open_alerts",
            |row| format!("{}/{}", short_key(agent), key_text(row, 0)),
            open_alert_from_row,
            &mut skipped,
        );
        self.skipped
            .record(&format!("open alerts of {agent}"), skipped);
        Ok(alerts)
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(SELECT_STOPPED_AGENTS, &[])
            .await
            .map_err(|e| self.sql(&e))?;
        let mut skipped = Vec::new();
        let agents = read_rows(
            &rows,
            "open_alerts",
            |row| key_text(row, 0),
            stopped_agent_from_row,
            &mut skipped,
        );
        self.skipped.record("stopped agents", skipped);
        Ok(agents)
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), Error> {
        let issued = self.removals.load(Ordering::SeqCst);
        let client = self.pool.get().await?;
        if self.removed_since(issued) {
            return Ok(());
        }
        client
            .execute("DELETE FROM open_alerts WHERE agent = $1", &[&agent])
            .await
            .map_err(|e| self.sql(&e))?;
        Ok(())
    }

    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let unique: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(SELECT_NOTICES, &[&unique])
            .await
            .map_err(|e| self.sql(&e))?;
        let mut skipped = Vec::new();
        let read = read_rows(
            &rows,
            "notices",
            |row| key_text(row, 0),
            notice_from_row,
            &mut skipped,
        );
        let mut notices = Vec::with_capacity(read.len());
        let mut problems: HashMap<String, SkippedRow> = HashMap::new();
        for (notice, problem) in read {
            if let Some(problem) = problem {
                warn!(row = %problem, "read a malformed notice as an empty one; the next write replaces it");
                problems.insert(notice.name.clone(), problem);
            }
            notices.push(notice);
        }
        for row in &skipped {
            warn!(row = %row, "skipping a malformed notice row");
        }
        for name in unique {
            self.skipped.record(
                &notice_read(name),
                problems.remove(name).into_iter().collect(),
            );
        }
        Ok(notices)
    }

    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, Error> {
        let record = notice_record::write(notice)?;
        let client = self.pool.get().await?;
        let written = notices::put_notice(&client, notice, &record, expected)
            .await
            .map_err(|e| self.sql(&e))?;
        if written {
            // A malformed record it replaced is gone.
            self.skipped.record(&notice_read(&notice.name), Vec::new());
        }
        Ok(written)
    }

    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, Error> {
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        self.select_heartbeats(
            "heartbeats of notice holders",
            &format!(
                "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats WHERE agent = ANY($1) ORDER BY agent"
            ),
            &[&agents],
        )
        .await
    }

    async fn setup(&self, _capacity: Option<super::Capacity>) -> Result<(), Error> {
        // Getting a connection creates (or migrates) the tables.
        self.pool.schema_lost();
        self.pool.get().await.map(drop)
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        let client = self.pool.get().await?;
        let tables: Vec<&str> = TABLES.iter().map(|(table, _)| *table).collect();
        let privileges: Vec<&str> = TABLES.iter().map(|(_, privileges)| *privileges).collect();
        // `has_table_privilege` with a list is true when any one is held:
        // each privilege is asked for alone.
        let row = client
            .query_one(
                "SELECT
                     (SELECT array_agg(t || ' (' || missing || ')' ORDER BY t) FROM
                         (SELECT t, string_agg(privilege, ', ' ORDER BY n) AS missing
                          FROM unnest($1::text[], $2::text[]) AS x(t, p),
                              unnest(string_to_array(p, ', ')) WITH ORDINALITY AS y(privilege, n)
                          WHERE NOT has_table_privilege(t, privilege)
                          GROUP BY t) AS lacking),
                     has_sequence_privilege('history_id_seq', 'USAGE')",
                &[&tables, &privileges],
            )
            .await
            .map_err(|e| self.sql(&e))?;
        let mut missing: Vec<String> = row
            .try_get::<_, Option<Vec<String>>>(0)
            .map_err(|e| self.sql(&e))?
            .unwrap_or_default();
        if !row.try_get::<_, bool>(1).map_err(|e| self.sql(&e))? {
            missing.push("sequence history_id_seq (USAGE)".to_owned());
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.pool.error(format!(
            "the user lacks privileges on {} (see README \"PostgreSQL\")",
            missing.join(", ")
        )))
    }

    fn skipped_rows(&self) -> Vec<SkippedRow> {
        self.skipped.rows()
    }

    fn limit_waits(&self, budget: Duration) {
        self.pool.limit_connect(budget);
    }
}
