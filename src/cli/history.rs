//! `cimaa history` (SPEC §12): what changed, newest first, as a table in
//! local time or as JSON records with all nine fields.

use chrono::{DateTime, Local};

use super::table::print_table;
use super::{Printer, open_db, warn_skipped};
use crate::config::Config;
use crate::db::{HistoryQuery, HistoryRecord};
use crate::error::{CliError, ExitStatus};

/// The window without `--since`: the last 24 hours.
const DEFAULT_SINCE: i64 = 86_400;
/// Records without `--limit`.
pub(super) const DEFAULT_LIMIT: usize = 100;
/// The most a `--name` regex may compile to, as for squelches (SPEC §17).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What the command line asked for.
pub(super) struct Options<'a> {
    pub agent: Option<&'a str>,
    pub name: Option<&'a str>,
    pub since: Option<&'a str>,
    pub limit: usize,
    pub json: bool,
}

pub(super) async fn history(
    config: &Config,
    options: &Options<'_>,
) -> Result<ExitStatus, CliError> {
    let name = options
        .name
        .map(|regex| {
            regex::RegexBuilder::new(regex)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| CliError::usage(format!("--name: invalid regex `{regex}`: {e}")))
        })
        .transpose()?;
    let since = match options.since {
        None => DEFAULT_SINCE,
        Some(text) => crate::squelch::parse_duration(text)
            .map_err(|e| CliError::usage(format!("--since: {e}")))?,
    };
    let now = chrono::Utc::now().timestamp();
    let query = HistoryQuery {
        agent: options.agent.map(str::to_owned),
        name,
        since: now.saturating_sub(since),
        now,
        limit: options.limit,
    };
    let db = open_db(config).await?;
    let records = db.history(&query).await.map_err(CliError::failure)?;
    warn_skipped(db.as_ref());
    if options.json {
        Printer::line(&serde_json::to_string_pretty(&records).map_err(CliError::failure)?);
        return Ok(ExitStatus::Success);
    }
    if records.is_empty() {
        Printer::line("no history records");
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<[String; 6]> = records.iter().map(row).collect();
    print_table(
        ["TIME", "AGENT", "NAME", "EVENT", "MESSAGE", "BY"],
        [25, 32, 80, 15, 120, 60],
        &rows,
    );
    Ok(ExitStatus::Success)
}

/// One table row: the time in local time with its offset; `BY` is who
/// (a squelch's user) or which alerter, with the detail of a delivery.
fn row(record: &HistoryRecord) -> [String; 6] {
    let time = DateTime::from_timestamp(record.time, 0).map_or_else(
        || record.time.to_string(),
        |time| {
            time.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        },
    );
    let who = [
        record.user.as_deref(),
        record.alerter.as_deref(),
        record.detail.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let message = match (record.severity, record.message.as_deref()) {
        (Some(severity), Some(message)) => format!("{severity}: {message}"),
        (None, Some(message)) => message.to_owned(),
        (Some(severity), None) => severity.to_string(),
        (None, None) => String::new(),
    };
    [
        time,
        record.agent.clone(),
        record.name.clone(),
        record.event.to_string(),
        message,
        who,
    ]
}
