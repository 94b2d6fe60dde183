//! Reading PostgreSQL rows into records: the reading statements, one reader
//! per table, and `read_rows`, which skips (and describes) a row that does
//! not fit (a negative counter, a NULL where a value belongs, written by
//! hand or by another tool) instead of failing the whole read.

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::db::{Fault, Heartbeat, OpenAlert, SkippedRow, Squelch, StoppedAgent, short_key};
use crate::severity::Severity;

/// The fault columns, in the order `fault_from_row` reads them.
pub(super) const FAULT_COLUMNS: &str = "name, severity, message, since, updated, triggered, \
    escalates, attempts, monitor_runs, storm, suppressed_by, held, flapping";

/// The columns `heartbeat_from_row` reads, in its order.
pub(super) const HEARTBEAT_COLUMNS: &str = "agent, updated, version, checks";

/// One column as `T`, or what is wrong with it (for a `SkippedRow`).
pub(super) fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, String> {
    row.try_get(index).map_err(|_| {
        let name = row.columns().get(index).map_or("?", |c| c.name());
        match row.try_get::<_, Option<&str>>(index) {
            Ok(None) => format!("column `{name}` holds NULL"),
            _ => format!("column `{name}` holds a value of the wrong type"),
        }
    })
}

/// A counter column (`BIGINT`) as `T`, or why it does not fit.
pub(super) fn counter<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T, String> {
    let value: i64 = column(row, index)?;
    T::try_from(value).map_err(|_| {
        let name = row.columns().get(index).map_or("?", |c| c.name());
        format!("column `{name}` holds {value}, out of range")
    })
}

/// A key column as text, whatever it holds: it names a skipped row.
pub(super) fn key_text(row: &Row, index: usize) -> String {
    short_key(
        &row.try_get::<_, Option<String>>(index)
            .ok()
            .flatten()
            .unwrap_or_else(|| "NULL".to_owned()),
    )
}

/// Turns `rows` into records: a row `convert` refuses is left out and
/// described in `skipped` (`key` names it).
pub(super) fn read_rows<T>(
    rows: &[Row],
    table: &str,
    key: impl Fn(&Row) -> String,
    mut convert: impl FnMut(&Row) -> Result<T, String>,
    skipped: &mut Vec<SkippedRow>,
) -> Vec<T> {
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        match convert(row) {
            Ok(record) => records.push(record),
            Err(problem) => skipped.push(SkippedRow {
                table: table.to_owned(),
                key: key(row),
                problem,
            }),
        }
    }
    records
}

/// Reads the `FAULT_COLUMNS` starting at column `first`.
pub(super) fn fault_from_row(row: &Row, first: usize) -> Result<Fault, String> {
    Ok(Fault {
        name: column(row, first)?,
        severity: Severity(column(row, first + 1)?),
        message: column(row, first + 2)?,
        since: column(row, first + 3)?,
        updated: column(row, first + 4)?,
        triggered: column(row, first + 5)?,
        escalates: column(row, first + 6)?,
        attempts: counter(row, first + 7)?,
        monitor_runs: counter(row, first + 8)?,
        storm: column(row, first + 9)?,
        suppressed_by: column(row, first + 10)?,
        held: column(row, first + 11)?,
        flapping: column(row, first + 12)?,
    })
}

/// Reads a row of `HEARTBEAT_COLUMNS`. A fact that does not fit reads as
/// not recorded: the heartbeat itself still counts (SPEC §17).
pub(super) fn heartbeat_from_row(row: &Row) -> Result<Heartbeat, String> {
    Ok(Heartbeat {
        name: column(row, 0)?,
        updated: column(row, 1)?,
        version: row.try_get::<_, Option<String>>(2).ok().flatten(),
        checks: row
            .try_get::<_, Option<i64>>(3)
            .ok()
            .flatten()
            .and_then(|checks| u64::try_from(checks).ok()),
    })
}

/// Reads a row of `regex, reason, "user", time, permanent, expires`.
pub(super) fn squelch_from_row(row: &Row) -> Result<Squelch, String> {
    Ok(Squelch {
        regex: column(row, 0)?,
        reason: column(row, 1)?,
        user: column(row, 2)?,
        time: column(row, 3)?,
        permanent: column(row, 4)?,
        expires: column(row, 5)?,
    })
}

/// The kept open alerts of one agent: the fault columns, then `alerter`.
pub(super) const SELECT_OPEN_ALERTS: &str = "
SELECT name, severity, message, since, updated, triggered, escalates, attempts, monitor_runs,
    storm, suppressed_by, held, flapping, alerter
FROM open_alerts WHERE agent = $1 ORDER BY name
";

/// Reads a row of `SELECT_OPEN_ALERTS`.
pub(super) fn open_alert_from_row(row: &Row) -> Result<OpenAlert, String> {
    Ok(OpenAlert {
        fault: fault_from_row(row, 0)?,
        alerter: column(row, 13)?,
    })
}

/// Agents with kept open alerts and no heartbeat: those that have not
/// started since they stopped.
pub(super) const SELECT_STOPPED_AGENTS: &str = "
SELECT o.agent, MAX(o.stopped), COUNT(*) FROM open_alerts o
WHERE NOT EXISTS (SELECT 1 FROM heartbeats h WHERE h.agent = o.agent)
GROUP BY o.agent ORDER BY o.agent
";

pub(super) fn stopped_agent_from_row(row: &Row) -> Result<StoppedAgent, String> {
    Ok(StoppedAgent {
        name: column(row, 0)?,
        stopped: column(row, 1)?,
        open_alerts: counter(row, 2)?,
    })
}
