//! The PostgreSQL schema: the tables, and the version kept in
//! `cimaa_schema` so that a later release can migrate a database an older
//! one created.

use tokio_postgres::Client;

/// The version `SCHEMA` creates, kept in `cimaa_schema.version`.
///
/// 1: the first PostgreSQL schema (the SQLite schema 6's tables and
/// columns: faults, heartbeats, squelches, open alerts, notices, history).
/// 2: `history.rid`, a record's identity with its agent (unique: a retried
/// write stores a record once), added to a version-1 database by `SCHEMA`'s
/// `ALTER TABLE ... IF NOT EXISTS`. 3: `flapping` (SPEC §1, §11) on
/// `faults` and `open_alerts`, added to an older database the same way
/// (with a default, so an older agent still writes).
pub(super) const SCHEMA_VERSION: i32 = 3;

/// Taken by the agent that creates or migrates the tables, so that agents
/// finding an empty database together do it one after another (racing
/// `CREATE TABLE IF NOT EXISTS` statements can fail in PostgreSQL).
const SCHEMA_LOCK: i64 = 0x6369_6d61_6100_0001;

/// The tables; every statement is idempotent.
///
/// Times are epoch seconds (`BIGINT`), counters `BIGINT` (checked when
/// read), names and regexes `TEXT` compared in the "C" collation, so that
/// listings come back in the byte order every backend sorts by. `notices`
/// keeps a notice's record as `jsonb` beside the `version` that its
/// compare-and-swap compares (SPEC §10); `open_alerts` holds the alerts
/// agents kept at a clean stop (SPEC §14); `history` the history (SPEC
/// §12), one row per record, `id` in the order they were appended.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS cimaa_schema (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeats (
    agent TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    updated BIGINT NOT NULL,
    version TEXT NULL,
    checks BIGINT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_updated ON heartbeats (updated);
CREATE TABLE IF NOT EXISTS faults (
    agent TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    severity BIGINT NOT NULL,
    message TEXT NOT NULL,
    since BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    triggered BOOLEAN NOT NULL,
    escalates BOOLEAN NOT NULL,
    attempts BIGINT NOT NULL,
    monitor_runs BIGINT NOT NULL DEFAULT 0,
    storm BOOLEAN NOT NULL DEFAULT FALSE,
    suppressed_by TEXT NULL,
    held BOOLEAN NOT NULL DEFAULT FALSE,
    flapping BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (agent, name)
);
CREATE TABLE IF NOT EXISTS squelches (
    regex TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    reason TEXT NOT NULL,
    "user" TEXT NOT NULL,
    time BIGINT NOT NULL,
    permanent BOOLEAN NOT NULL,
    expires BIGINT NULL
);
CREATE TABLE IF NOT EXISTS open_alerts (
    agent TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    severity BIGINT NOT NULL,
    message TEXT NOT NULL,
    since BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    triggered BOOLEAN NOT NULL,
    escalates BOOLEAN NOT NULL,
    attempts BIGINT NOT NULL,
    monitor_runs BIGINT NOT NULL,
    alerter TEXT NULL,
    stopped BIGINT NOT NULL,
    storm BOOLEAN NOT NULL DEFAULT FALSE,
    suppressed_by TEXT NULL,
    held BOOLEAN NOT NULL DEFAULT FALSE,
    flapping BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (agent, name)
);
CREATE TABLE IF NOT EXISTS notices (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL,
    record JSONB NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id BIGSERIAL PRIMARY KEY,
    time BIGINT NOT NULL,
    agent TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    event TEXT NOT NULL,
    severity BIGINT NULL,
    message TEXT NULL,
    alerter TEXT NULL,
    "user" TEXT NULL,
    detail TEXT NULL,
    rid BIGINT NULL
);
ALTER TABLE history ADD COLUMN IF NOT EXISTS rid BIGINT NULL;
ALTER TABLE faults ADD COLUMN IF NOT EXISTS flapping BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE open_alerts ADD COLUMN IF NOT EXISTS flapping BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX IF NOT EXISTS history_rid ON history (agent, rid);
CREATE INDEX IF NOT EXISTS history_time ON history (time, id);
CREATE INDEX IF NOT EXISTS history_agent ON history (agent, time, id);
CREATE INDEX IF NOT EXISTS history_name ON history (name, time, id);
"#;

/// Makes sure the tables exist at our version.
///
/// A database at our version (or a newer one: its additions must keep
/// older agents working) costs one read, which a user who may only read
/// (`cimaa faults`) can do. Otherwise one agent at a time, under an
/// advisory lock, creates what is missing and records the version; a later
/// release adds its migrations here, between the two.
pub(super) async fn ensure(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    if stored_version(client)
        .await?
        .is_some_and(|v| v >= SCHEMA_VERSION)
    {
        return Ok(());
    }
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    transaction.batch_execute(SCHEMA).await?;
    transaction
        .execute(
            "INSERT INTO cimaa_schema (id, version) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET version = GREATEST(cimaa_schema.version, $1)",
            &[&SCHEMA_VERSION],
        )
        .await?;
    transaction.commit().await
}

/// The recorded version; `None` when the version table is missing.
async fn stored_version(client: &Client) -> Result<Option<i32>, tokio_postgres::Error> {
    let exists = client
        .query_one("SELECT to_regclass('cimaa_schema') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt("SELECT version FROM cimaa_schema WHERE id = 1", &[])
        .await?
        .map(|row| row.get(0)))
}
