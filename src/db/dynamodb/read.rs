//! Reading the faults and squelches tables: paged Query and Scan, BatchGetItem
//! of known keys (asking again for unprocessed ones), and the reads that
//! turn items into records, skipping (and recording) a malformed item
//! instead of failing the whole read. Every request goes through
//! `DynamoDb::retrying`, within the deadline of its `Db` call.

use std::cmp::Ordering;

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::time::Instant;
use tracing::debug;

use super::api::Query;
use super::item::{
    ALERTS_AGENT, Item, fault_from_item, fault_key, marker_from_item, required_text,
};
use super::write_plan::Written;
use super::{DynamoDb, RETRIES, bounded, own_faults_read};
use crate::db::{Error, SkippedRow};

/// Where a read finds its items: a Query of the faults table or a Scan.
#[derive(Clone, Copy, Debug)]
pub(super) enum Read<'a> {
    Query(Query<'a>),
    /// Every item of this table.
    Scan(&'a str),
}

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_LIMIT: usize = 100;

impl DynamoDb {
    /// Every item `read` finds, page after page.
    pub(super) async fn read_all(
        &self,
        read: Read<'_>,
        deadline: Instant,
    ) -> Result<Vec<Item>, Error> {
        let (operation, table) = match read {
            Read::Query(_) => ("Query", self.faults_table.as_str()),
            Read::Scan(table) => ("Scan", table),
        };
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .retrying(operation, table, deadline, || match read {
                    Read::Query(query) => self.api.query(table, query, start.clone()),
                    Read::Scan(_) => self.api.scan(table, start.clone()),
                })
                .await?;
            items.extend(page.items);
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// A skipped row of `table` for the item `convert` refused with `error`;
    /// any other error stays an error.
    pub(super) fn skip(table: &str, error: Error) -> Result<SkippedRow, Error> {
        match error {
            Error::Corrupt { key, detail } => Ok(SkippedRow {
                table: table.to_owned(),
                key,
                problem: detail,
            }),
            error => Err(error),
        }
    }

    /// One reading `Db` call within the call budget: the records `convert`
    /// makes of the items `read` finds (`None` leaves an item out), in
    /// `order`. An item `convert` finds malformed is skipped and recorded
    /// under `read_key`; the others still count.
    pub(super) async fn read_sorted<T>(
        &self,
        operation: &'static str,
        read: Read<'_>,
        read_key: &str,
        convert: impl Fn(&Item) -> Result<Option<T>, Error>,
        order: impl Fn(&T, &T) -> Ordering,
    ) -> Result<Vec<T>, Error> {
        let table = match read {
            Read::Query(_) => self.faults_table.as_str(),
            Read::Scan(table) => table,
        };
        bounded(operation, self.budget(), |deadline| async move {
            let mut records = Vec::new();
            let mut skipped = Vec::new();
            for item in &self.read_all(read, deadline).await? {
                match convert(item) {
                    Ok(record) => records.extend(record),
                    Err(error) => skipped.push(Self::skip(table, error)?),
                }
            }
            self.skipped.record(read_key, skipped);
            records.sort_by(order);
            Ok(records)
        })
        .await
    }

    /// The stored faults and alert marker of one agent; its malformed items
    /// are recorded as skipped and kept in `Written` to be replaced.
    pub(super) async fn read_agent(
        &self,
        agent: &str,
        deadline: Instant,
    ) -> Result<Written, Error> {
        let table = self.faults_table.as_str();
        let mut written = Written::default();
        let mut skipped = Vec::new();
        for item in self
            .read_all(Read::Query(Query::Agent(agent)), deadline)
            .await?
        {
            match fault_from_item(&item) {
                Ok((_, fault)) => {
                    written.faults.insert(fault.name.clone(), fault);
                }
                Err(error) => {
                    // The range key is always a String: the item can be deleted.
                    if let Some(AttributeValue::S(name)) = item.get("name") {
                        written.malformed.insert(name.clone());
                    }
                    skipped.push(Self::skip(table, error)?);
                }
            }
        }
        let marker = self
            .retrying("GetItem", table, deadline, || {
                self.api.get(table, fault_key(ALERTS_AGENT, agent))
            })
            .await?;
        if let Some(item) = marker {
            match marker_from_item(&item) {
                Ok(marker) => written.marker = Some(marker.fault),
                Err(error) => {
                    written.marker_malformed = true;
                    skipped.push(Self::skip(table, error)?);
                }
            }
        }
        self.skipped.record(&own_faults_read(agent), skipped);
        Ok(written)
    }

    /// The items of these (distinct) keys of the faults table that exist,
    /// in BatchGetItem calls of at most 100 keys, asking again for the
    /// unprocessed ones with backoff.
    pub(super) async fn get_all(
        &self,
        keys: Vec<Item>,
        deadline: Instant,
    ) -> Result<Vec<Item>, Error> {
        let table = self.faults_table.as_str();
        let mut items = Vec::new();
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut pending = chunk.to_vec();
            let mut rounds = RETRIES.start(Some(deadline));
            loop {
                let fetched = self
                    .retrying("BatchGetItem", table, deadline, || {
                        self.api.batch_get(table, pending.clone())
                    })
                    .await?;
                items.extend(fetched.items);
                if fetched.unprocessed.is_empty() {
                    break;
                }
                let round = rounds.attempt();
                let Some(delay) = rounds.next_delay() else {
                    return Err(Error::DynamoDb {
                        operation: "BatchGetItem",
                        table: table.to_owned(),
                        attempts: round,
                        detail: format!("{} key(s) left unprocessed", fetched.unprocessed.len()),
                    });
                };
                debug!(
                    table,
                    unprocessed = fetched.unprocessed.len(),
                    "dynamodb left keys unprocessed; asking again"
                );
                tokio::time::sleep(delay).await;
                pending = fetched.unprocessed;
            }
        }
        Ok(items)
    }

    /// The range keys (`name`) of every item of one `agent` key.
    pub(super) async fn item_names(
        &self,
        agent: &str,
        deadline: Instant,
    ) -> Result<Vec<String>, Error> {
        let read = Read::Query(Query::Agent(agent));
        self.read_all(read, deadline)
            .await?
            .iter()
            .map(|item| required_text(item, "name"))
            .collect()
    }
}
