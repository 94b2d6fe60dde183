//! The `history` table (SPEC §12): appending records, reading them newest
//! first by time, agent or exact name (through the table's indexes), and
//! pruning what passed the retention, at most once an hour in small
//! batches so that no agent sharing the file waits long for the lock.

use rusqlite::{Connection, Row, TransactionBehavior, params};
use tracing::{debug, warn};

use super::rows::{column, key_text, read_rows};
use crate::db::{Error, HistoryQuery, HistoryRecord, SkippedRow};
use crate::history::Event;
use crate::severity::Severity;

/// Seconds between two prunings by one handle.
pub(super) const PRUNE_EVERY: i64 = 3600;
/// Rows one pruning transaction deletes at most.
const PRUNE_BATCH: usize = 500;
/// Batches one pruning runs at most; the rest waits for the next hour.
const PRUNE_BATCHES: usize = 20;
/// Rows read per page while filtering by a regex.
const PAGE: usize = 500;

/// A record whose identity (`rid`, with its agent) is stored already is
/// not stored again: a write retried after a failure stores it once.
const INSERT: &str = "
INSERT INTO history (time, agent, name, event, severity, message, alerter, user, detail, rid)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (agent, rid) DO NOTHING
";

/// The columns `record_from_row` reads, after `id`.
const COLUMNS: &str = "id, time, agent, name, event, severity, message, alerter, user, detail";

/// Appends `records` in one transaction; blocks.
pub(super) fn append_blocking(
    connection: &mut Connection,
    records: &[HistoryRecord],
) -> Result<(), Error> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut insert = transaction.prepare_cached(INSERT)?;
    for record in records {
        insert.execute(params![
            record.time,
            record.agent,
            record.name,
            record.event.as_str(),
            record.severity.map(|severity| severity.0),
            record.message,
            record.alerter,
            record.user,
            record.detail,
            record.id.and_then(|id| i64::try_from(id).ok()),
        ])?;
    }
    drop(insert);
    transaction.commit()?;
    Ok(())
}

/// Deletes records at or before `oldest_kept`, `PRUNE_BATCH` rows per
/// transaction, at most `PRUNE_BATCHES` of them, each batch under the
/// connection's lock taken anew (`with_connection`), so that a write of
/// the agent waits for one batch at most; blocks. Returns how many went.
pub(super) fn prune_blocking(
    mut with_connection: impl FnMut(
        &mut dyn FnMut(&Connection) -> Result<usize, Error>,
    ) -> Result<usize, Error>,
    oldest_kept: i64,
) -> Result<usize, Error> {
    let mut deleted = 0;
    for _ in 0..PRUNE_BATCHES {
        let batch = with_connection(&mut |connection| {
            let mut delete = connection.prepare_cached(
                "DELETE FROM history WHERE id IN
                 (SELECT id FROM history WHERE time <= ?1 ORDER BY time LIMIT ?2)",
            )?;
            Ok(delete.execute(params![oldest_kept, PRUNE_BATCH])?)
        })?;
        deleted += batch;
        if batch < PRUNE_BATCH {
            break;
        }
    }
    if deleted > 0 {
        debug!(deleted, "pruned history records past the retention");
    }
    Ok(deleted)
}

/// One record of a row of `COLUMNS`, or what is wrong with it.
fn record_from_row(row: &Row<'_>) -> Result<HistoryRecord, String> {
    let event: String = column(row, 4)?;
    let event: Event = event
        .parse()
        .map_err(|e: crate::history::UnknownEvent| e.to_string())?;
    Ok(HistoryRecord {
        time: column(row, 1)?,
        agent: column(row, 2)?,
        name: column(row, 3)?,
        event,
        severity: column::<Option<i64>>(row, 5)?.map(Severity),
        message: column(row, 6)?,
        alerter: column(row, 7)?,
        user: column(row, 8)?,
        detail: column(row, 9)?,
        id: None,
    })
}

/// The records `query` asks for (with `retention`), newest first; blocks.
/// Reads page by page from the newest, through the index of the agent or
/// exact name when the query has one, else of the time, and filters each
/// page by the name regex, until `limit` records are found. Returns them
/// and the malformed rows it skipped.
pub(super) fn read_blocking(
    connection: &Connection,
    query: &HistoryQuery,
    retention: i64,
) -> Result<(Vec<HistoryRecord>, Vec<SkippedRow>), Error> {
    let since = query.since.max(query.now.saturating_sub(retention) + 1);
    let (filter, key): (&str, Option<String>) = match (&query.agent, query.exact_name()) {
        (_, Some(name)) => ("name = ?5", Some(name)),
        (Some(agent), None) => ("agent = ?5", Some(agent.clone())),
        (None, None) => ("?5 IS NULL", None),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM history
         WHERE {filter} AND time >= ?1 AND (time < ?2 OR (time = ?2 AND id < ?3))
         ORDER BY time DESC, id DESC LIMIT ?4"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    // Where the next page starts: before (time, id).
    let (mut time, mut id) = (i64::MAX, i64::MAX);
    loop {
        let mut last = None;
        let mut rows = 0usize;
        let page = read_rows(
            &mut statement,
            params![since, time, id, PAGE, key],
            "history",
            |row| key_text(row, 0),
            |row| {
                rows += 1;
                last = Some((column::<i64>(row, 1)?, column::<i64>(row, 0)?));
                record_from_row(row)
            },
            &mut skipped,
        )?;
        found.extend(
            page.into_iter()
                .filter(|record| query.matches(record, retention)),
        );
        if found.len() >= query.limit {
            found.truncate(query.limit);
            break;
        }
        match last {
            Some(next) if rows >= PAGE => (time, id) = next,
            _ => break,
        }
    }
    for row in &skipped {
        warn!(row = %row, "skipping a malformed history row");
    }
    Ok((found, skipped))
}
