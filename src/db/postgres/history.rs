//! The `history` table (SPEC §12) in PostgreSQL: appending a tick's
//! records in one statement, reading them newest first by time, agent or
//! exact name (through the table's indexes), and pruning what passed the
//! retention, at most once an hour per handle in small batches.

use tokio_postgres::{Client, GenericClient, Row};
use tracing::{debug, warn};

use super::rows::{column, key_text, read_rows};
use crate::db::{HistoryQuery, HistoryRecord, SkippedRow};
use crate::history::Event;
use crate::severity::Severity;

/// Seconds between two prunings by one handle.
pub(super) const PRUNE_EVERY: i64 = 3600;
/// Rows one pruning statement deletes at most.
const PRUNE_BATCH: i64 = 500;
/// Batches one pruning runs at most; the rest waits for the next hour.
const PRUNE_BATCHES: usize = 20;
/// Rows read per page while filtering by a regex.
const PAGE: i64 = 500;

/// Appends the records, one array per column: one statement for a tick.
/// A record whose identity (`rid`, with its agent) is stored already is
/// not stored again: a write retried after a failure stores it once.
const INSERT: &str = r#"
INSERT INTO history (time, agent, name, event, severity, message, alerter, "user", detail, rid)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::bigint[])
ON CONFLICT (agent, rid) DO NOTHING
"#;

/// The columns `record_from_row` reads, after `id`.
const COLUMNS: &str = r#"id, time, agent, name, event, severity, message, alerter, "user", detail"#;

/// Appends `records`, in their order (`id` grows with it).
pub(super) async fn append<C: GenericClient + Sync>(
    client: &C,
    records: &[HistoryRecord],
) -> Result<(), tokio_postgres::Error> {
    let times: Vec<i64> = records.iter().map(|r| r.time).collect();
    let agents: Vec<&str> = records.iter().map(|r| r.agent.as_str()).collect();
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    let events: Vec<&str> = records.iter().map(|r| r.event.as_str()).collect();
    let severities: Vec<Option<i64>> = records.iter().map(|r| r.severity.map(|s| s.0)).collect();
    let messages: Vec<Option<&str>> = records.iter().map(|r| r.message.as_deref()).collect();
    let alerters: Vec<Option<&str>> = records.iter().map(|r| r.alerter.as_deref()).collect();
    let users: Vec<Option<&str>> = records.iter().map(|r| r.user.as_deref()).collect();
    let details: Vec<Option<&str>> = records.iter().map(|r| r.detail.as_deref()).collect();
    let ids: Vec<Option<i64>> = records
        .iter()
        .map(|r| r.id.and_then(|id| i64::try_from(id).ok()))
        .collect();
    client
        .execute(
            INSERT,
            &[
                &times,
                &agents,
                &names,
                &events,
                &severities,
                &messages,
                &alerters,
                &users,
                &details,
                &ids,
            ],
        )
        .await
        .map(drop)
}

/// Deletes records at or before `oldest_kept`, `PRUNE_BATCH` rows per
/// statement (each its own transaction), at most `PRUNE_BATCHES` of them.
/// Returns how many went.
pub(super) async fn prune(client: &Client, oldest_kept: i64) -> Result<u64, tokio_postgres::Error> {
    let mut deleted = 0;
    for _ in 0..PRUNE_BATCHES {
        let batch = client
            .execute(
                "DELETE FROM history WHERE id IN
                 (SELECT id FROM history WHERE time <= $1 ORDER BY time LIMIT $2)",
                &[&oldest_kept, &PRUNE_BATCH],
            )
            .await?;
        deleted += batch;
        if batch < PRUNE_BATCH.unsigned_abs() {
            break;
        }
    }
    if deleted > 0 {
        debug!(deleted, "pruned history records past the retention");
    }
    Ok(deleted)
}

/// One record of a row of `COLUMNS`, or what is wrong with it.
fn record_from_row(row: &Row) -> Result<HistoryRecord, String> {
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

/// The records `query` asks for (with `retention`), newest first, and the
/// malformed rows skipped. Reads page by page from the newest, through
/// the index of the agent or exact name when the query has one, else of
/// the time, and filters each page by the name regex, until `limit`
/// records are found.
pub(super) async fn read(
    client: &Client,
    query: &HistoryQuery,
    retention: i64,
) -> Result<(Vec<HistoryRecord>, Vec<SkippedRow>), tokio_postgres::Error> {
    let since = query.since.max(query.now.saturating_sub(retention) + 1);
    let (filter, key): (&str, Option<String>) = match (&query.agent, query.exact_name()) {
        (_, Some(name)) => ("name = $5", Some(name)),
        (Some(agent), None) => ("agent = $5", Some(agent.clone())),
        (None, None) => ("$5::text IS NULL", None),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM history
         WHERE {filter} AND time >= $1 AND (time < $2 OR (time = $2 AND id < $3))
         ORDER BY time DESC, id DESC LIMIT $4"
    );
    let statement = client.prepare(&sql).await?;
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    // Where the next page starts: before (time, id).
    let (mut time, mut id) = (i64::MAX, i64::MAX);
    loop {
        let rows = client
            .query(&statement, &[&since, &time, &id, &PAGE, &key])
            .await?;
        let last = rows.last().and_then(|row| {
            Some((
                row.try_get::<_, i64>(1).ok()?,
                row.try_get::<_, i64>(0).ok()?,
            ))
        });
        let page = read_rows(
            &rows,
            "history",
            |row| key_text(row, 3),
            record_from_row,
            &mut skipped,
        );
        found.extend(
            page.into_iter()
                .filter(|record| query.matches(record, retention)),
        );
        if found.len() >= query.limit {
            found.truncate(query.limit);
            break;
        }
        match last {
            Some(next) if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= PAGE => {
                (time, id) = next;
            }
            _ => break,
        }
    }
    for row in &skipped {
        warn!(row = %row, "skipping a malformed history row");
    }
    Ok((found, skipped))
}
