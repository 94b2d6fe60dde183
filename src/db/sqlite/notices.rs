//! The notification records of fleet faults (SPEC §10) in the `sqlite`
//! file: reading a `notices` row (lenient with a malformed one) and the
//! compare-and-swap write of `put_notice`.

use rusqlite::{Connection, Row, TransactionBehavior, params};

use super::rows::column;
use crate::db::{Error, Notice, SkippedRow, notice_record, short_key};

/// The stored version of a notice row (column `first`): what the
/// compare-and-swap compares with. A version that is not a positive
/// integer (NULL, text, a real, a negative number: written by a broken or
/// newer agent) reads as 0, like an absent record, so that a `put_notice`
/// expecting 0 replaces the row; with its description.
fn notice_version(row: &Row<'_>, index: usize) -> (u64, Option<String>) {
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
/// notice at its stored version (see `notice_version`), with what is wrong
/// with it: the next `put_notice` over that version replaces it.
pub(super) fn notice_from_row(row: &Row<'_>) -> Result<(Notice, Option<SkippedRow>), String> {
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

/// The notices of the names in the JSON array `?1`, by name.
pub(super) const SELECT_NOTICES: &str = "
SELECT name, version, record FROM notices
WHERE name IN (SELECT value FROM json_each(?1)) ORDER BY name
";

/// The `SkipLog` entry of the reads of one notice: each name has its own,
/// so a read of other names (or a put that replaced the record) forgets
/// nothing else.
pub(super) fn notice_read(name: &str) -> String {
    format!("notice {name}")
}

/// `names` as a JSON array, the parameter of `... IN json_each(?1)`.
pub(super) fn json_names(names: &[String]) -> Result<String, Error> {
    serde_json::to_string(names).map_err(|error| Error::Task(error.to_string()))
}

/// `put_notice` in one IMMEDIATE transaction; blocks.
pub(super) fn put_notice_blocking(
    connection: &mut Connection,
    notice: &Notice,
    expected: u64,
) -> Result<bool, Error> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = {
        let mut statement =
            transaction.prepare_cached("SELECT version FROM notices WHERE name = ?1")?;
        let mut rows = statement.query([&notice.name])?;
        match rows.next()? {
            Some(row) => notice_version(row, 0).0,
            None => 0,
        }
    };
    if stored != expected {
        // Nothing written: dropping the transaction rolls it back.
        return Ok(false);
    }
    if notice.is_empty() {
        transaction.execute("DELETE FROM notices WHERE name = ?1", [&notice.name])?;
    } else {
        let version = expected
            .checked_add(1)
            .and_then(|next| i64::try_from(next).ok())
            .ok_or_else(|| Error::Corrupt {
                key: short_key(&notice.name),
                detail: format!("notice version {expected} cannot grow"),
            })?;
        let record = notice_record::write(notice)?;
        transaction.execute(
            "INSERT INTO notices (name, version, record) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, record = excluded.record",
            params![notice.name, version, record],
        )?;
    }
    transaction.commit()?;
    Ok(true)
}
