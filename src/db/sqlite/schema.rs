//! The `sqlite` file's schema: the tables, the version kept in the file's
//! `user_version`, and the migrations that bring an older file up to date.

use rusqlite::Connection;

/// The version `SCHEMA` creates, kept in the file's `user_version`.
///
/// 1: the first schema. 2: `faults.monitor_runs` (SPEC §14), added to a
/// version-1 file by `MIGRATE_MONITOR_RUNS`, and the `open_alerts` table
/// (SPEC §14), created by `SCHEMA`'s idempotent statements. 3:
/// `heartbeats.version` and `heartbeats.checks` (SPEC §14), added to an
/// older file by `MIGRATE_HEARTBEAT_FACTS`. 4: `faults.storm` and
/// `open_alerts.storm` (SPEC §10), added by `MIGRATE_FAULTS_STORM` and
/// `MIGRATE_OPEN_ALERTS_STORM`, and the `notices` table (SPEC §10),
/// created by `SCHEMA`. 5: `suppressed_by` and `held` (SPEC §11) on
/// `faults` and `open_alerts`, added by `MIGRATE_SUPPRESSED_HELD`. 6: the
/// `history` table (SPEC §12) and its indexes, created by `SCHEMA`. 7:
/// `history.rid`, a record's identity with its agent (unique: a retried
/// write stores a record once), added by `MIGRATE_HISTORY_RID`. 8:
/// `flapping` (SPEC §1, §11) on `faults` and `open_alerts`, added by
/// `migrate_flapping`.
const SCHEMA_VERSION: i64 = 8;

/// Brings the history of a version-6 file to version 7, before `SCHEMA`
/// creates the unique index on the new column. Older binaries write no
/// `rid` (NULL: never a conflict).
const MIGRATE_HISTORY_RID: &str = "ALTER TABLE history ADD COLUMN rid INTEGER NULL";

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

/// Brings a table of faults (`faults`, `open_alerts`) of a version-4 or
/// older file to version 5: nullable `suppressed_by` (NULL: not
/// suppressed) and `held` with a default, so an older binary still writes.
fn migrate_suppressed_held(table: &str) -> String {
    format!(
        "ALTER TABLE {table} ADD COLUMN suppressed_by TEXT NULL;
ALTER TABLE {table} ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
    )
}

/// Brings a table of faults (`faults`, `open_alerts`) of a version-7 or
/// older file to version 8: `flapping` with a default, so an older binary
/// still writes (its faults read as not flapping).
fn migrate_flapping(table: &str) -> String {
    format!("ALTER TABLE {table} ADD COLUMN flapping INTEGER NOT NULL DEFAULT 0")
}

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
/// `history` holds the history (SPEC §12), one row per record in the order
/// appended (`id`), NULL where a field does not apply; its indexes serve the
/// reads by time, by agent and by name, and the pruning by time.
/// `notices` holds the notification record of each fleet fault (SPEC §10):
/// its `version` (bumped by every write, the compare-and-swap's witness)
/// and the rest of the record as a JSON object in `record` (see
/// `notice_record`), so the record can grow without a migration.
pub(super) const SCHEMA: &str = "
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
    suppressed_by TEXT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    flapping INTEGER NOT NULL DEFAULT 0,
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
    suppressed_by TEXT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    flapping INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, name)
);
CREATE TABLE IF NOT EXISTS notices (
    name TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    agent TEXT NOT NULL,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    severity INTEGER NULL,
    message TEXT NULL,
    alerter TEXT NULL,
    user TEXT NULL,
    detail TEXT NULL,
    rid INTEGER NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS history_rid ON history (agent, rid);
CREATE INDEX IF NOT EXISTS history_time ON history (time);
CREATE INDEX IF NOT EXISTS history_agent ON history (agent, time);
CREATE INDEX IF NOT EXISTS history_name ON history (name, time);
";

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
pub(super) fn create_schema(connection: &Connection) -> rusqlite::Result<()> {
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
        // The column `SCHEMA`'s index needs, on a table of an older version.
        if has_table(connection, "history")? && !has_column(connection, "history", "rid")? {
            connection.execute_batch(MIGRATE_HISTORY_RID)?;
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
        for table in ["faults", "open_alerts"] {
            if !has_column(connection, table, "held")? {
                connection.execute_batch(&migrate_suppressed_held(table))?;
            }
            if !has_column(connection, table, "flapping")? {
                connection.execute_batch(&migrate_flapping(table))?;
            }
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

/// Whether the file has a table named `table`.
fn has_table(connection: &Connection, table: &str) -> rusqlite::Result<bool> {
    connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |row| row.get(0),
    )
}

/// Whether `table` has a column named `column`.
fn has_column(connection: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut statement = connection.prepare(&format!("PRAGMA table_info({table})"))?;
    let mut names = statement.query_map([], |row| row.get::<_, String>(1))?;
    names.try_fold(false, |found, name| Ok(found || name? == column))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::SCHEMA_VERSION;
    use crate::db::sqlite::SqliteDb;
    use crate::db::{AgentFacts, Db, Fault, Heartbeat, Notice};
    use crate::severity::Severity;

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
            suppressed_by: None,
            held: false,
            flapping: false,
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

    /// The faults and open alerts tables of version 7 (before `flapping`),
    /// with a row each.
    const VERSION_7_FAULTS: &str = "
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
        storm INTEGER NOT NULL DEFAULT 0,
        suppressed_by TEXT NULL,
        held INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, name)
    );
    INSERT INTO faults VALUES ('web1', '//web1/app/x#monitor-status', 40, 'exit status 127: (no output)', 10, 20, 0, 0, 2, 0, 0, NULL, 0);
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
        storm INTEGER NOT NULL DEFAULT 0,
        suppressed_by TEXT NULL,
        held INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, name)
    );
    INSERT INTO open_alerts VALUES ('web2', '//web1/app/x#monitor-status', 40, 'exit status 127: (no output)', 10, 20, 0, 0, 2, 0, NULL, 30, 0, NULL, 0);
    PRAGMA user_version = 7;
    ";

    // See: #17, #21
    #[tokio::test]
    async fn a_version_7_file_keeps_its_rows_and_gains_flapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(VERSION_7_FAULTS)
            .unwrap();

        let db = SqliteDb::open(&path).await.unwrap();
        assert_eq!(db.get_faults("web1").await.unwrap(), [broken_monitor(0)]);
        let kept = db.open_alerts("web2").await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].fault, broken_monitor(0));
        let flapping = Fault {
            flapping: true,
            ..broken_monitor(0)
        };
        db.set_faults("web1", std::slice::from_ref(&flapping), 40)
            .await
            .unwrap();
        assert_eq!(db.get_faults("web1").await.unwrap(), [flapping]);

        let sql = Connection::open(&path).unwrap();
        let version: i64 = sql
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A binary of version 7 still writes the file: it names its columns.
        sql.execute(
            "INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates,
                 attempts, monitor_runs, storm, suppressed_by, held)
             VALUES ('web3', 'x', 40, 'm', 1, 1, 0, 1, 0, 0, 0, NULL, 1)",
            [],
        )
        .unwrap();
        let old_binarys = &db.get_faults("web3").await.unwrap()[0];
        assert!(old_binarys.held && !old_binarys.flapping);
    }

    /// The history table as version 6 created it (before `rid`).
    const VERSION_6_HISTORY: &str = "
    CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        agent TEXT NOT NULL,
        name TEXT NOT NULL,
        event TEXT NOT NULL,
        severity INTEGER NULL,
        message TEXT NULL,
        alerter TEXT NULL,
        user TEXT NULL,
        detail TEXT NULL
    );
    INSERT INTO history (time, agent, name, event) VALUES (100, 'web1', 'web1', 'started');
    PRAGMA user_version = 6;
    ";

    // See: #12
    #[tokio::test]
    async fn a_version_6_history_keeps_its_rows_and_stores_a_record_appended_again_once() {
        use crate::history::{Event, Query, Record};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(VERSION_6_HISTORY)
            .unwrap();

        let db = SqliteDb::open(&path).await.unwrap();
        let record = Record {
            id: Some(7),
            ..Record::new(200, "web1", "//web1/app/disk", Event::Triggered)
        };
        for _ in 0..2 {
            db.append_history(std::slice::from_ref(&record))
                .await
                .unwrap();
        }
        let stored = db.history(&Query::recent(0, 300, 10)).await.unwrap();
        assert_eq!(
            stored,
            [
                Record::new(200, "web1", "//web1/app/disk", Event::Triggered),
                Record::new(100, "web1", "web1", Event::Started),
            ]
        );
        let version: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
