//! Reading `sqlite` rows into records: the reading statements, one reader
//! per table, and `read_rows`, which skips (and describes) a malformed row
//! instead of failing the whole read.

use std::fmt::Write as _;

use rusqlite::types::{FromSql, ValueRef};
use rusqlite::{Connection, Row, Statement};

use crate::db::{Fault, Heartbeat, OpenAlert, SkippedRow, Squelch, StoppedAgent, short_key};
use crate::severity::Severity;

/// One agent's faults: the row id, then the columns in the order
/// `fault_from_row` reads them.
pub(super) const SELECT_FAULTS: &str = "
SELECT rowid, name, severity, message, since, updated, triggered, escalates, attempts,
    monitor_runs, storm, suppressed_by, held, flapping
FROM faults WHERE agent = ?1 ORDER BY name
";

/// Every agent's faults, or one's when `?1` is not NULL: one statement (and
/// one cached plan) for both cases.
pub(super) const LIST_FAULTS: &str = "
SELECT agent, name, severity, message, since, updated, triggered, escalates, attempts,
    monitor_runs, storm, suppressed_by, held, flapping
FROM faults WHERE ?1 IS NULL OR agent = ?1 ORDER BY agent, name
";

/// The columns `heartbeat_from_row` reads, in its order.
pub(super) const HEARTBEAT_COLUMNS: &str = "agent, updated, version, checks";

/// The kept open alerts of one agent, ordered by name.
pub(super) const SELECT_OPEN_ALERTS: &str = "
SELECT name, severity, message, since, updated, triggered, escalates, attempts, monitor_runs, alerter,
    storm, suppressed_by, held, flapping
FROM open_alerts WHERE agent = ?1 ORDER BY name
";

/// Agents with kept open alerts and no heartbeat: those that have not
/// started since they stopped.
pub(super) const SELECT_STOPPED_AGENTS: &str = "
SELECT agent, MAX(stopped), COUNT(*) FROM open_alerts
WHERE agent NOT IN (SELECT agent FROM heartbeats)
GROUP BY agent ORDER BY agent
";

/// One column as `T`, or what is wrong with it (for a `SkippedRow`).
pub(super) fn column<T: FromSql>(row: &Row<'_>, index: usize) -> Result<T, String> {
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
pub(super) fn key_text(row: &Row<'_>, index: usize) -> String {
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
pub(super) fn read_rows<T, P: rusqlite::Params>(
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
pub(super) fn fault_from_row(row: &Row<'_>, first: usize) -> Result<Fault, String> {
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
        suppressed_by: column(row, first + 10)?,
        held: column(row, first + 11)?,
        flapping: column(row, first + 12)?,
    })
}

/// Reads a row of `HEARTBEAT_COLUMNS`. A fact of the wrong type (written
/// by hand or by another tool) reads as not recorded: the heartbeat itself
/// still counts for the meta-check (SPEC §17).
pub(super) fn heartbeat_from_row(row: &Row<'_>) -> Result<Heartbeat, String> {
    Ok(Heartbeat {
        name: column(row, 0)?,
        updated: column(row, 1)?,
        version: row.get::<_, Option<String>>(2).ok().flatten(),
        checks: row.get::<_, Option<u64>>(3).ok().flatten(),
    })
}

pub(super) fn squelch_from_row(row: &Row<'_>) -> Result<Squelch, String> {
    Ok(Squelch {
        regex: column(row, 0)?,
        reason: column(row, 1)?,
        user: column(row, 2)?,
        time: column(row, 3)?,
        permanent: column(row, 4)?,
        expires: column(row, 5)?,
    })
}

/// A malformed row: its row id (to delete it) and what is wrong with it.
pub(super) type Malformed = (i64, SkippedRow);

/// The stored faults of one agent, ordered by name, and the row ids of its
/// malformed rows with what is wrong with them.
pub(super) fn select_faults(
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

/// Reads heartbeats with `sql` (`HEARTBEAT_COLUMNS`), skipping malformed rows.
pub(super) fn select_heartbeats(
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

/// Reads a row of `SELECT_OPEN_ALERTS`.
pub(super) fn open_alert_from_row(row: &Row<'_>) -> Result<OpenAlert, String> {
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
            suppressed_by: column(row, 11)?,
            held: column(row, 12)?,
            flapping: column(row, 13)?,
        },
        alerter: column(row, 9)?,
    })
}

pub(super) fn stopped_agent_from_row(row: &Row<'_>) -> Result<StoppedAgent, String> {
    Ok(StoppedAgent {
        name: column(row, 0)?,
        stopped: column(row, 1)?,
        open_alerts: column(row, 2)?,
    })
}
