//! The notification records of fleet faults (SPEC §10) in PostgreSQL:
//! reading a `notices` row (lenient with a malformed one) and the
//! compare-and-swap of `put_notice`, each a single conditional statement
//! (`INSERT ... ON CONFLICT`, `UPDATE`/`DELETE ... WHERE version = $n`), so
//! two agents racing for a claim never both win and never wait for a lock
//! longer than the other's statement.

use tokio_postgres::{Client, Row};

use super::rows::column;
use crate::db::{Notice, SkippedRow, notice_record, short_key};

/// The notices of the names in `$1`, by name; the record as text.
pub(super) const SELECT_NOTICES: &str = "
SELECT name, version, record::text FROM notices WHERE name = ANY($1) ORDER BY name
";

/// The stored version of a notice row: a negative one (written by a broken
/// or newer agent) reads as 0, like an absent record, so that a put
/// expecting 0 replaces it; with its description.
fn notice_version(row: &Row, index: usize) -> (u64, Option<String>) {
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
/// notice at its stored version, with what is wrong with it: the next
/// `put_notice` over that version replaces it.
pub(super) fn notice_from_row(row: &Row) -> Result<(Notice, Option<SkippedRow>), String> {
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

/// The `SkipLog` entry of the reads of one notice.
pub(super) fn notice_read(name: &str) -> String {
    format!("notice {name}")
}

/// `put_notice` with `notice`'s `record` (`notice_record::write`): one
/// conditional statement (two for removing a record expected absent).
/// Returns whether it wrote.
pub(super) async fn put_notice(
    client: &Client,
    notice: &Notice,
    record: &str,
    expected: u64,
) -> Result<bool, tokio_postgres::Error> {
    // A version beyond i64 cannot be stored, so none such is stored.
    let Ok(expected_sql) = i64::try_from(expected) else {
        return Ok(false);
    };
    if notice.is_empty() {
        if expected == 0 {
            // Absent or malformed (a negative version) counts as 0.
            client
                .execute(
                    "DELETE FROM notices WHERE name = $1 AND version <= 0",
                    &[&notice.name],
                )
                .await?;
            let newer = client
                .query_opt(
                    "SELECT 1 FROM notices WHERE name = $1 AND version > 0",
                    &[&notice.name],
                )
                .await?;
            return Ok(newer.is_none());
        }
        let deleted = client
            .execute(
                "DELETE FROM notices WHERE name = $1 AND version = $2",
                &[&notice.name, &expected_sql],
            )
            .await?;
        return Ok(deleted == 1);
    }
    let Some(version) = expected_sql.checked_add(1) else {
        return Ok(false);
    };
    let written = if expected == 0 {
        client
            .execute(
                "INSERT INTO notices (name, version, record) VALUES ($1, $2, $3::text::jsonb)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, record = excluded.record
                 WHERE notices.version <= 0",
                &[&notice.name, &version, &record],
            )
            .await?
    } else {
        client
            .execute(
                "UPDATE notices SET version = $2, record = $3::text::jsonb
                 WHERE name = $1 AND version = $4",
                &[&notice.name, &version, &record, &expected_sql],
            )
            .await?
    };
    Ok(written == 1)
}
