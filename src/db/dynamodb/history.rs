//! The `PREFIX.history` table (SPEC §12): its keys, the items of records,
//! and the three reads — recent across the fleet, by agent, by exact name —
//! each a Query, never a Scan.
//!
//! Keys (see the README, "History"):
//! - hash key `bucket` = `DAY#SHARD`: the day (epoch seconds / 86400) and a
//!   shard (0-15) from a hash of the agent's name. A day bucket keeps the
//!   "recent" read to the days it asks for; the shard spreads one day's
//!   writes over 16 partitions, so that an incident on 10,000 agents at once
//!   does not land on one hot partition, while a read of a day stays 16
//!   Queries;
//! - range key `key` = `TIME#AGENT#SEQ`: the time zero-padded (so keys sort
//!   by time and a Query reads newest first), the agent, and the record's
//!   identity (`Record::id`, given when the agent queued it, so that a
//!   retried write puts the same item again rather than a second one), or
//!   for a record without one a number unique to the writing process that
//!   grows with each record (two records of one second keep their order,
//!   and never overwrite each other);
//! - GSI `history-agent` (`agent`, `key`) for one agent's records, and GSI
//!   `history-name` (`fname`, `key`) for one fault's, `fname` being the
//!   name cut to `NAME_KEY_BYTES` (a GSI key has a size limit; the full
//!   `name` is compared after the read);
//! - `expires` (Number, epoch seconds) = time + retention, the table's TTL
//!   attribute. DynamoDB deletes expired items within days, so reads leave
//!   out what is past the retention themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use tokio::time::Instant;
use tracing::warn;

use super::DynamoDb;
use super::api::{HistoryKey, Write};
use super::item::{Item, number, required_text, string, text, whole_number};
use crate::db::{Error, HistoryQuery, HistoryRecord, SkippedRow};
use crate::history::Event;
use crate::severity::Severity;

/// Shards of one day's bucket.
const SHARDS: u64 = 16;
/// Seconds of one bucket.
const BUCKET_SECONDS: i64 = 86_400;
/// The GSI of one agent's records.
pub(super) const AGENT_INDEX: &str = "history-agent";
/// The GSI of one fault's records.
pub(super) const NAME_INDEX: &str = "history-name";
/// The TTL attribute.
pub(super) const EXPIRES: &str = "expires";
/// The longest `fname` (GSI hash keys are at most 2048 bytes).
const NAME_KEY_BYTES: usize = 1024;
/// Items one Query page asks for at most.
const PAGE: usize = 200;

/// The sequence numbers of this process, from its start time in ns so
/// that a restarted agent does not reuse its predecessor's.
fn next_seq() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(1));
        let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// FNV-1a: a stable shard for an agent, whatever the build.
fn shard(agent: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in agent.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % SHARDS
}

fn bucket(day: i64, shard: u64) -> String {
    format!("{day}#{shard:02}")
}

/// The smallest range key of a record at `time` or later.
fn key_from(time: i64) -> String {
    format!("{:012}", time.max(0))
}

/// `name` cut to `NAME_KEY_BYTES` on a character boundary.
fn name_key(name: &str) -> &str {
    if name.len() <= NAME_KEY_BYTES {
        return name;
    }
    let mut end = NAME_KEY_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The item of one record, kept for `retention` seconds.
pub(super) fn history_item(record: &HistoryRecord, retention: i64) -> Item {
    let mut item = Item::new();
    let day = record.time.div_euclid(BUCKET_SECONDS);
    item.insert("bucket".into(), string(&bucket(day, shard(&record.agent))));
    item.insert(
        "key".into(),
        string(&format!(
            "{}#{}#{:x}",
            key_from(record.time),
            record.agent,
            record.id.unwrap_or_else(next_seq)
        )),
    );
    item.insert("time".into(), number(record.time));
    item.insert("agent".into(), string(&record.agent));
    item.insert("name".into(), string(&record.name));
    item.insert("fname".into(), string(name_key(&record.name)));
    item.insert("event".into(), string(record.event.as_str()));
    item.insert(
        EXPIRES.into(),
        number(record.time.saturating_add(retention)),
    );
    if let Some(severity) = record.severity {
        item.insert("severity".into(), number(severity.0));
    }
    for (key, value) in [
        ("message", &record.message),
        ("alerter", &record.alerter),
        ("user", &record.user),
        ("detail", &record.detail),
    ] {
        // DynamoDB refuses an empty string in a key only; left out anyway.
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            item.insert(key.into(), string(value));
        }
    }
    item
}

/// The record of an item, or why it is not one.
pub(super) fn record_from_item(item: &Item) -> Result<HistoryRecord, Error> {
    let event = required_text(item, "event")?;
    let event: Event = event
        .parse()
        .map_err(|e: crate::history::UnknownEvent| Error::Corrupt {
            key: required_text(item, "key").unwrap_or_default(),
            detail: e.to_string(),
        })?;
    let time = whole_number(item, "time")?.ok_or_else(|| Error::Corrupt {
        key: required_text(item, "key").unwrap_or_default(),
        detail: "`time` is missing".into(),
    })?;
    Ok(HistoryRecord {
        time,
        agent: required_text(item, "agent")?,
        name: required_text(item, "name")?,
        event,
        severity: whole_number(item, "severity")?.map(Severity),
        message: text(item, "message")?,
        alerter: text(item, "alerter")?,
        user: text(item, "user")?,
        detail: text(item, "detail")?,
        id: None,
    })
}

/// Whether the item's TTL has passed at `now` (not deleted yet).
fn expired(item: &Item, now: i64) -> bool {
    // Whole seconds: a fractional TTL (written by another tool) is truncated.
    matches!(item.get(EXPIRES), Some(AttributeValue::N(n))
        if n.split('.').next().and_then(|whole| whole.parse::<i64>().ok()).is_some_and(|e| e <= now))
}

impl DynamoDb {
    /// Puts the records' items, 25 per BatchWriteItem, resending what is
    /// left unprocessed.
    pub(super) async fn put_history(
        &self,
        records: &[HistoryRecord],
        deadline: Instant,
    ) -> Result<(), Error> {
        let writes = records
            .iter()
            .map(|record| Write::Put(history_item(record, self.history.retention)))
            .collect();
        self.write_all_to(&self.history_table, writes, deadline)
            .await
    }

    /// Reads up to `limit` records of one key (a bucket, an agent, a name)
    /// from `since` on, newest first, page after page; leaves out the
    /// expired and those `query` does not ask for, and skips malformed
    /// items.
    async fn read_key(
        &self,
        key: HistoryKey<'_>,
        query: &HistoryQuery,
        deadline: Instant,
        skipped: &mut Vec<SkippedRow>,
    ) -> Result<Vec<HistoryRecord>, Error> {
        let table = self.history_table.as_str();
        let from = key_from(query.since);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .retrying("Query", table, deadline, || {
                    self.api
                        .query_history(table, key, &from, PAGE, start.clone())
                })
                .await?;
            for item in &page.items {
                if expired(item, query.now) {
                    continue;
                }
                match record_from_item(item) {
                    Ok(record) if query.matches(&record, self.history.retention) => {
                        found.push(record);
                    }
                    Ok(_) => {}
                    Err(error) => skipped.push(Self::skip(table, error)?),
                }
            }
            match page.next {
                Some(next) if found.len() < query.limit => start = Some(next),
                _ => break,
            }
        }
        found.truncate(query.limit);
        Ok(found)
    }

    /// The records `query` asks for: through the name index for an exact
    /// name, the agent index for one agent, else the day buckets from the
    /// newest, all shards of a day at a time, until `limit` are found.
    pub(super) async fn read_history(
        &self,
        query: &HistoryQuery,
        deadline: Instant,
    ) -> Result<Vec<HistoryRecord>, Error> {
        let mut skipped = Vec::new();
        let mut found = if let Some(name) = query.exact_name() {
            self.read_key(
                HistoryKey::Name(name_key(&name)),
                query,
                deadline,
                &mut skipped,
            )
            .await?
        } else if let Some(agent) = &query.agent {
            self.read_key(HistoryKey::Agent(agent), query, deadline, &mut skipped)
                .await?
        } else {
            let oldest = query
                .since
                .max(query.now.saturating_sub(self.history.retention));
            let mut found = Vec::new();
            let mut day = query.now.div_euclid(BUCKET_SECONDS);
            while day >= oldest.div_euclid(BUCKET_SECONDS) && found.len() < query.limit {
                // A day's shards at once: a read of a quiet month waits
                // for 31 rounds of requests, not 496 requests in turn.
                let reads = (0..SHARDS).map(|shard| async move {
                    let bucket = bucket(day, shard);
                    let mut skipped = Vec::new();
                    let found = self
                        .read_key(HistoryKey::Bucket(&bucket), query, deadline, &mut skipped)
                        .await?;
                    Ok::<_, Error>((found, skipped))
                });
                for (records, skips) in try_join_all(reads).await? {
                    found.extend(records);
                    skipped.extend(skips);
                }
                day -= 1;
            }
            found
        };
        for row in &skipped {
            warn!(row = %row, "skipping a malformed history item");
        }
        self.skipped.record("history", skipped);
        // Newest first; a stable sort keeps each key's order within a second.
        found.sort_by_key(|record| std::cmp::Reverse(record.time));
        found.truncate(query.limit);
        Ok(found)
    }
}
