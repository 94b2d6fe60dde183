//! The `dynamodb` backend: one shared database for a whole fleet (SPEC §6).
//!
//! Owns the item layout, the write plan of `set_faults`, retries, time bounds
//! and `setup-db`'s tables. The `since`/`updated` rules come from
//! `merge_with_stored`, shared with the other backends.
//!
//! # Layout (compatible with zc.cimaa, so a fleet can migrate host by host)
//! - `PREFIX.faults`: hash key `agent`, range key `name`; global secondary
//!   index `updated` on (`agent`, `updated` Number) projecting name, since and
//!   updated. A fault item holds `severity` (integer Number), `message` (left
//!   out when empty), `since` and `updated` (integer Numbers), `triggered`
//!   (`"y"`, left out when false) and the attributes zc.cimaa ignores:
//!   `escalates` (BOOL) and `attempts` (Number).
//! - Heartbeats are items of agent `_` with name = the agent and `updated`.
//! - Markers of failing alerts are items of agent `_alerts` with name = the
//!   agent and the attributes of its `AGENT#alerts` fault, so the meta-check
//!   finds them with one query instead of a scan of the fleet. zc.cimaa never
//!   reads that key.
//! - `PREFIX.squelches`: hash key `regex`, with `reason`, `user`, `time`,
//!   `permanent` (`"p"`, left out when false) and `expires` (Number, optional).
//!
//! Reading is lenient with what zc.cimaa wrote: times may be fractional
//! Numbers (truncated), `escalates` may be a Number (0 = false) or missing
//! (true), `message` may be missing (empty) and `attempts` missing (0).
//!
//! # Cost
//! `set_faults` keeps what this process last wrote for each agent and
//! rewrites only the items that changed, plus the heartbeat. It reads the
//! stored items only when it has no such record: on its first call, or after a
//! failed call (a failure forgets the record, so the next call compares with
//! what is really stored and rewrites whatever is missing). The record assumes
//! this process is the only writer of its agent's items, which is how agents
//! work. In steady state a tick therefore costs one write request (the
//! heartbeat) and one scan of the small squelch table.
//!
//! # Failures and time bounds
//! Every request goes through `Api`, a narrow seam over the SDK client that
//! tests replace with an in-memory fake. The SDK's own retries are off; this
//! module retries throttling, 5xx answers and transport failures with capped,
//! jittered exponential backoff ("full jitter") and a bounded number of
//! attempts, resends `UnprocessedItems`, and bounds every `Db` call by
//! `CALL_BUDGET`, so a database outage costs a tick seconds, not minutes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb as sdk;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType, ProvisionedThroughput,
    PutRequest, ReturnConsumedCapacity, ReturnValue, ScalarAttributeType, TableStatus,
    WriteRequest,
};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{AgentFault, Capacity, Db, Error, Fault, Heartbeat, Squelch, merge_with_stored};
use crate::retry::Backoff;
use crate::severity::Severity;

/// `agent` of heartbeat items (zc.cimaa's key).
const HEARTBEAT_AGENT: &str = "_";
/// `agent` of the markers of agents whose alerts fail.
const ALERTS_AGENT: &str = "_alerts";
/// The global secondary index on (`agent`, `updated`).
const UPDATED_INDEX: &str = "updated";
/// Attributes the `updated` index projects besides its keys (zc.cimaa's list).
const UPDATED_INDEX_INCLUDES: [&str; 3] = ["name", "since", "updated"];
/// BatchWriteItem takes at most 25 requests.
const BATCH_LIMIT: usize = 25;

/// Time to open a TCP/TLS connection before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one request, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one `Db` call, retries and pages included. The agent awaits its
/// database calls inside a tick, so this is what an outage can cost a tick.
const CALL_BUDGET: Duration = Duration::from_secs(10);
/// Time `setup-db` waits for new tables to become ACTIVE.
const SETUP_BUDGET: Duration = Duration::from_mins(5);
/// Pause between two looks at a table that is being created.
const SETUP_POLL: Duration = Duration::from_millis(500);

/// Retries of every request: at most 5 attempts, pausing 25-50 ms,
/// 50-100 ms, 100-200 ms and 200-400 ms between them, well within `CALL_BUDGET`.
const RETRIES: Backoff = Backoff {
    first: Duration::from_millis(50),
    cap: Duration::from_secs(1),
    attempts: 5,
};

// ---------------------------------------------------------------- config

/// `database: {type: dynamodb}` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbConfig {
    /// AWS region (e.g. `us-east-1`); default: the standard chain
    /// (`AWS_REGION`, the profile, instance metadata).
    pub region: Option<String>,
    /// Table name prefix: the tables are `PREFIX.faults` and
    /// `PREFIX.squelches` (a prefix ending in `.` gets no second one).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Another endpoint, e.g. a local DynamoDB-compatible server for tests;
    /// default: AWS's endpoint for the region.
    pub endpoint_url: Option<String>,
}

fn default_prefix() -> String {
    "cimaa".to_owned()
}

impl DynamoDbConfig {
    /// The name of table `kind` (`faults` or `squelches`), as zc.cimaa names it.
    #[must_use]
    pub fn table(&self, kind: &str) -> String {
        if self.prefix.ends_with('.') {
            format!("{}{kind}", self.prefix)
        } else {
            format!("{}.{kind}", self.prefix)
        }
    }

    /// Problems of the options, one sentence each (pure).
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        // DynamoDB table names: 3-255 characters of `a-z A-Z 0-9 _ - .`.
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if self.prefix.is_empty() || !self.prefix.chars().all(allowed) {
            problems.push(format!(
                "database.prefix: `{}` must be letters, digits, `_`, `-` or `.`",
                self.prefix
            ));
        } else if self.table("squelches").len() > 255 {
            problems.push("database.prefix: too long for a DynamoDB table name".to_owned());
        }
        if let Some(region) = &self.region
            && region.trim().is_empty()
        {
            problems.push("database.region: must not be empty".to_owned());
        }
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!(
                "database.endpoint_url: `{url}` must start with `http://` or `https://`"
            ));
        }
        problems
    }
}

/// Agent names the layout reserves for its own items.
#[must_use]
pub fn is_reserved_agent(name: &str) -> bool {
    name == HEARTBEAT_AGENT || name == ALERTS_AGENT
}

// ---------------------------------------------------------------- the seam

/// One DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// One request of a BatchWriteItem.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Write {
    /// Puts the whole item.
    Put(Item),
    /// Deletes the item with this key.
    Delete(Item),
}

/// The queries this backend makes, all on the faults table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Query<'a> {
    /// Every item of one `agent` key, strongly consistent.
    Agent(&'a str),
    /// Heartbeats older than `before`, through the `updated` index.
    StaleHeartbeats { before: i64 },
}

/// One page of a Query or Scan.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub items: Vec<Item>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Item>,
}

/// The two tables `setup-db` creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableKind {
    Faults,
    Squelches,
}

/// What DescribeTable says about a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TableState {
    Missing,
    /// Being created or updated (the table or one of its indexes).
    Busy(String),
    /// Usable, with its key attributes (hash first) and its index names.
    Active {
        keys: Vec<String>,
        indexes: Vec<String>,
    },
}

/// Why a request failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Throttling: ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded.
    Throttled,
    /// 5xx answers, timeouts, connection failures.
    Unavailable,
    /// ResourceNotFoundException: the table does not exist.
    TableMissing,
    /// ResourceInUseException: the table exists (or is being created).
    TableExists,
    /// Anything else (validation, access denied, ...): retrying won't help.
    Rejected,
}

impl Failure {
    fn retryable(self) -> bool {
        matches!(self, Failure::Throttled | Failure::Unavailable)
    }

    /// Classifies a service error by its code and HTTP status (pure).
    pub(crate) fn of(code: Option<&str>, status: u16) -> Failure {
        match code {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "Throttling"
                | "RequestLimitExceeded",
            ) => Failure::Throttled,
            Some("ResourceNotFoundException") => Failure::TableMissing,
            Some("ResourceInUseException") => Failure::TableExists,
            _ if status >= 500 => Failure::Unavailable,
            _ => Failure::Rejected,
        }
    }
}

/// A failed request: its class and the full error text.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub failure: Failure,
    pub detail: String,
}

/// The DynamoDB requests this backend makes; the seam tests replace.
#[async_trait]
pub(crate) trait Api: Send + Sync {
    /// GetItem (strongly consistent).
    async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, ApiError>;
    /// PutItem.
    async fn put(&self, table: &str, item: Item) -> Result<(), ApiError>;
    /// DeleteItem; true when an item was there.
    async fn delete(&self, table: &str, key: Item) -> Result<bool, ApiError>;
    /// One page of a Query.
    async fn query(
        &self,
        table: &str,
        query: Query<'_>,
        start: Option<Item>,
    ) -> Result<Page, ApiError>;
    /// One page of a (strongly consistent) Scan.
    async fn scan(&self, table: &str, start: Option<Item>) -> Result<Page, ApiError>;
    /// One BatchWriteItem of at most 25 writes; returns the unprocessed ones.
    async fn batch_write(&self, table: &str, writes: Vec<Write>) -> Result<Vec<Write>, ApiError>;
    /// DescribeTable.
    async fn describe(&self, table: &str) -> Result<TableState, ApiError>;
    /// CreateTable; `None` capacity is on-demand billing.
    async fn create(
        &self,
        table: &str,
        kind: TableKind,
        capacity: Option<Capacity>,
    ) -> Result<(), ApiError>;
}

// ---------------------------------------------------------------- request statistics

/// Requests sent so far by one `DynamoDb`, every attempt counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RequestStats {
    /// GetItem, Query, Scan and DescribeTable requests.
    pub read_requests: u64,
    /// PutItem, DeleteItem, BatchWriteItem and CreateTable requests.
    pub write_requests: u64,
    /// Items put or deleted (each costs at least one write unit).
    pub items_written: u64,
    /// Write capacity units the server reported as consumed.
    pub write_units: f64,
}

#[derive(Debug, Default)]
struct Counters {
    read_requests: AtomicU64,
    write_requests: AtomicU64,
    items_written: AtomicU64,
    /// Thousandths of a unit, so an atomic integer can add them up.
    write_millis: AtomicU64,
}

impl Counters {
    fn read(&self) {
        self.read_requests.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, items: usize) {
        self.write_requests.fetch_add(1, Ordering::Relaxed);
        self.items_written
            .fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "consumed units are small and never negative"
    )]
    fn units(&self, units: Option<f64>) {
        if let Some(units) = units {
            self.write_millis
                .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }

    #[expect(
        clippy::cast_precision_loss,
        reason = "a count of thousandths stays far below 2^52"
    )]
    fn snapshot(&self) -> RequestStats {
        RequestStats {
            read_requests: self.read_requests.load(Ordering::Relaxed),
            write_requests: self.write_requests.load(Ordering::Relaxed),
            items_written: self.items_written.load(Ordering::Relaxed),
            write_units: self.write_millis.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

// ---------------------------------------------------------------- the SDK behind the seam

/// `Api` on the AWS SDK client.
struct SdkApi {
    client: sdk::Client,
    counters: Arc<Counters>,
}

/// Classifies an SDK error for retrying.
fn classify<E>(error: &SdkError<E, sdk::config::http::HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Failure::Unavailable,
        // Connection failures and timeouts; not a missing credential, which
        // the next attempt would not find either.
        SdkError::DispatchFailure(dispatch) if dispatch.is_io() || dispatch.is_timeout() => {
            Failure::Unavailable
        }
        SdkError::ServiceError(service) => {
            Failure::of(error.code(), service.raw().status().as_u16())
        }
        _ => Failure::Rejected,
    };
    ApiError {
        failure,
        // The SDK's top-level message alone ("service error") says too
        // little; its `DisplayErrorContext` would append a Debug dump.
        detail: crate::error::chain(error),
    }
}

fn invalid_request(error: &sdk::error::BuildError) -> ApiError {
    ApiError {
        failure: Failure::Rejected,
        detail: error.to_string(),
    }
}

fn write_request(write: Write) -> Result<WriteRequest, ApiError> {
    Ok(match write {
        Write::Put(item) => WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| invalid_request(&e))?,
            )
            .build(),
        Write::Delete(key) => WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| invalid_request(&e))?,
            )
            .build(),
    })
}

fn write_of(request: &WriteRequest) -> Option<Write> {
    if let Some(put) = request.put_request() {
        return Some(Write::Put(put.item().clone()));
    }
    request
        .delete_request()
        .map(|delete| Write::Delete(delete.key().clone()))
}

fn key_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, ApiError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| invalid_request(&e))
}

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, ApiError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(|e| invalid_request(&e))
}

fn throughput(capacity: Capacity) -> Result<ProvisionedThroughput, ApiError> {
    ProvisionedThroughput::builder()
        .read_capacity_units(capacity.read)
        .write_capacity_units(capacity.write)
        .build()
        .map_err(|e| invalid_request(&e))
}

#[async_trait]
impl Api for SdkApi {
    async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, ApiError> {
        self.counters.read();
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output.item)
    }

    async fn put(&self, table: &str, item: Item) -> Result<(), ApiError> {
        self.counters.write(1);
        let output = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        self.counters.units(
            output
                .consumed_capacity()
                .and_then(sdk::types::ConsumedCapacity::capacity_units),
        );
        Ok(())
    }

    async fn delete(&self, table: &str, key: Item) -> Result<bool, ApiError> {
        self.counters.write(1);
        let output = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        self.counters.units(
            output
                .consumed_capacity()
                .and_then(sdk::types::ConsumedCapacity::capacity_units),
        );
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn query(
        &self,
        table: &str,
        query: Query<'_>,
        start: Option<Item>,
    ) -> Result<Page, ApiError> {
        self.counters.read();
        // `agent` and `name` are DynamoDB reserved words: always go through
        // expression attribute names.
        let request = self
            .client
            .query()
            .table_name(table)
            .set_exclusive_start_key(start)
            .expression_attribute_names("#agent", "agent");
        let request = match query {
            Query::Agent(agent) => request
                .key_condition_expression("#agent = :agent")
                .expression_attribute_values(":agent", string(agent))
                .consistent_read(true),
            // Index reads are eventually consistent only.
            Query::StaleHeartbeats { before } => request
                .index_name(UPDATED_INDEX)
                .key_condition_expression("#agent = :agent AND #updated < :before")
                .expression_attribute_names("#updated", "updated")
                .expression_attribute_values(":agent", string(HEARTBEAT_AGENT))
                .expression_attribute_values(":before", number(before)),
        };
        let output = request.send().await.map_err(|e| classify(&e))?;
        Ok(Page {
            items: output.items.unwrap_or_default(),
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
        })
    }

    async fn scan(&self, table: &str, start: Option<Item>) -> Result<Page, ApiError> {
        self.counters.read();
        let output = self
            .client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(Page {
            items: output.items.unwrap_or_default(),
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
        })
    }

    async fn batch_write(&self, table: &str, writes: Vec<Write>) -> Result<Vec<Write>, ApiError> {
        self.counters.write(writes.len());
        let requests = writes
            .into_iter()
            .map(write_request)
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .batch_write_item()
            .request_items(table, requests)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        for consumed in output.consumed_capacity() {
            self.counters.units(consumed.capacity_units());
        }
        Ok(output
            .unprocessed_items
            .and_then(|mut tables| tables.remove(table))
            .unwrap_or_default()
            .iter()
            .filter_map(write_of)
            .collect())
    }

    async fn describe(&self, table: &str) -> Result<TableState, ApiError> {
        self.counters.read();
        let output = match self.client.describe_table().table_name(table).send().await {
            Ok(output) => output,
            Err(error) => {
                let error = classify(&error);
                return match error.failure {
                    Failure::TableMissing => Ok(TableState::Missing),
                    _ => Err(error),
                };
            }
        };
        let Some(description) = output.table() else {
            return Ok(TableState::Missing);
        };
        let status = description.table_status();
        if status != Some(&TableStatus::Active) {
            return Ok(TableState::Busy(format!("table is {status:?}")));
        }
        let indexes = description.global_secondary_indexes();
        if let Some(busy) = indexes
            .iter()
            .find(|index| index.index_status() != Some(&IndexStatus::Active))
        {
            return Ok(TableState::Busy(format!(
                "index `{}` is {:?}",
                busy.index_name().unwrap_or_default(),
                busy.index_status()
            )));
        }
        let mut keys: Vec<&KeySchemaElement> = description.key_schema().iter().collect();
        keys.sort_by_key(|key| *key.key_type() != KeyType::Hash);
        Ok(TableState::Active {
            keys: keys
                .iter()
                .map(|key| key.attribute_name().to_owned())
                .collect(),
            indexes: indexes
                .iter()
                .filter_map(|index| index.index_name().map(str::to_owned))
                .collect(),
        })
    }

    async fn create(
        &self,
        table: &str,
        kind: TableKind,
        capacity: Option<Capacity>,
    ) -> Result<(), ApiError> {
        self.counters.write(0);
        let mut request = self.client.create_table().table_name(table);
        request = match capacity {
            None => request.billing_mode(BillingMode::PayPerRequest),
            Some(capacity) => request
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(throughput(capacity)?),
        };
        request = match kind {
            TableKind::Squelches => request
                .attribute_definitions(attribute("regex", ScalarAttributeType::S)?)
                .key_schema(key_element("regex", KeyType::Hash)?),
            TableKind::Faults => {
                let mut projection = Projection::builder().projection_type(ProjectionType::Include);
                for name in UPDATED_INDEX_INCLUDES {
                    projection = projection.non_key_attributes(name);
                }
                let mut index = GlobalSecondaryIndex::builder()
                    .index_name(UPDATED_INDEX)
                    .key_schema(key_element("agent", KeyType::Hash)?)
                    .key_schema(key_element("updated", KeyType::Range)?)
                    .projection(projection.build());
                if let Some(capacity) = capacity {
                    // A GSI short of write capacity throttles the table: give it as much.
                    index = index.provisioned_throughput(throughput(capacity)?);
                }
                request
                    .attribute_definitions(attribute("agent", ScalarAttributeType::S)?)
                    .attribute_definitions(attribute("name", ScalarAttributeType::S)?)
                    .attribute_definitions(attribute("updated", ScalarAttributeType::N)?)
                    .key_schema(key_element("agent", KeyType::Hash)?)
                    .key_schema(key_element("name", KeyType::Range)?)
                    .global_secondary_indexes(index.build().map_err(|e| invalid_request(&e))?)
            }
        };
        request.send().await.map_err(|e| classify(&e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------- items (pure)

fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn number(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The key of a faults-table item.
fn fault_key(agent: &str, name: &str) -> Item {
    HashMap::from([
        ("agent".to_owned(), string(agent)),
        ("name".to_owned(), string(name)),
    ])
}

fn squelch_key(regex: &str) -> Item {
    HashMap::from([("regex".to_owned(), string(regex))])
}

/// A fault item in zc.cimaa's layout plus `escalates` and `attempts`.
pub(crate) fn fault_item(agent: &str, fault: &Fault) -> Item {
    let mut item = fault_key(agent, &fault.name);
    item.insert("severity".to_owned(), number(fault.severity.0));
    if !fault.message.is_empty() {
        item.insert("message".to_owned(), string(&fault.message));
    }
    item.insert("since".to_owned(), number(fault.since));
    item.insert("updated".to_owned(), number(fault.updated));
    if fault.triggered {
        item.insert("triggered".to_owned(), string("y"));
    }
    item.insert(
        "escalates".to_owned(),
        AttributeValue::Bool(fault.escalates),
    );
    item.insert("attempts".to_owned(), number(fault.attempts));
    item
}

/// The marker of an agent whose alerts fail: its `AGENT#alerts` fault under
/// agent `_alerts`, name = the agent.
fn marker_item(agent: &str, fault: &Fault) -> Item {
    let mut item = fault_item(ALERTS_AGENT, fault);
    item.insert("name".to_owned(), string(agent));
    item
}

fn heartbeat_item(agent: &str, now: i64) -> Item {
    let mut item = fault_key(HEARTBEAT_AGENT, agent);
    item.insert("updated".to_owned(), number(now));
    item
}

pub(crate) fn squelch_item(squelch: &Squelch) -> Item {
    let mut item = squelch_key(&squelch.regex);
    for (key, value) in [("reason", &squelch.reason), ("user", &squelch.user)] {
        if !value.is_empty() {
            item.insert(key.to_owned(), string(value));
        }
    }
    item.insert("time".to_owned(), number(squelch.time));
    if squelch.permanent {
        item.insert("permanent".to_owned(), string("p"));
    }
    if let Some(expires) = squelch.expires {
        item.insert("expires".to_owned(), number(expires));
    }
    item
}

/// Describes an item for error messages: its key attributes.
fn describe_item(item: &Item) -> String {
    ["agent", "name", "regex"]
        .iter()
        .filter_map(|key| match item.get(*key) {
            Some(AttributeValue::S(value)) => Some(format!("{key}=`{value}`")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn corrupt(item: &Item, detail: &str) -> Error {
    Error::Corrupt(format!("dynamodb item {}: {detail}", describe_item(item)))
}

fn text(item: &Item, key: &str) -> Result<Option<String>, Error> {
    match item.get(key) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(corrupt(item, &format!("`{key}` is not a string"))),
    }
}

fn required_text(item: &Item, key: &str) -> Result<String, Error> {
    text(item, key)?.ok_or_else(|| corrupt(item, &format!("`{key}` is missing")))
}

/// A Number attribute as whole units: zc.cimaa wrote `time.time()` floats,
/// so fractions are truncated.
fn whole_number(item: &Item, key: &str) -> Result<Option<i64>, Error> {
    let bad = || corrupt(item, &format!("`{key}` is not a number"));
    match item.get(key) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => parse_whole(value).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// Parses a DynamoDB Number, truncating any fraction (pure).
pub(crate) fn parse_whole(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(whole) = value.parse::<i64>() {
        return Some(whole);
    }
    let float = value.parse::<f64>().ok()?;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "truncating is the point; the range is checked first"
    )]
    let whole = (float.is_finite() && float.abs() < 9.0e18).then(|| float.trunc() as i64);
    whole
}

/// `escalates`: a BOOL (cimaa), a Number (zc.cimaa: 0 = false) or missing (true).
fn escalates(item: &Item) -> Result<bool, Error> {
    match item.get("escalates") {
        None | Some(AttributeValue::Null(_)) => Ok(true),
        Some(AttributeValue::Bool(value)) => Ok(*value),
        Some(AttributeValue::N(value)) => value
            .trim()
            .parse::<f64>()
            .map(|number| number != 0.0)
            .map_err(|_| corrupt(item, "`escalates` is not a number")),
        Some(_) => Err(corrupt(item, "`escalates` is not a boolean")),
    }
}

/// `triggered`: zc.cimaa's `"y"`; also accepts a BOOL.
fn triggered(item: &Item) -> bool {
    match item.get("triggered") {
        Some(AttributeValue::S(value)) => !value.is_empty(),
        Some(AttributeValue::Bool(value)) => *value,
        _ => false,
    }
}

/// Reads a fault item: its agent and the fault.
pub(crate) fn fault_from_item(item: &Item) -> Result<(String, Fault), Error> {
    let agent = required_text(item, "agent")?;
    let name = required_text(item, "name")?;
    let severity =
        whole_number(item, "severity")?.ok_or_else(|| corrupt(item, "`severity` is missing"))?;
    let updated = whole_number(item, "updated")?;
    // Early zc.cimaa items have no `since`: the fault is as old as its record.
    let since = whole_number(item, "since")?.or(updated).unwrap_or(0);
    let attempts = match whole_number(item, "attempts")? {
        None => 0,
        Some(attempts) => {
            u32::try_from(attempts).map_err(|_| corrupt(item, "`attempts` is out of range"))?
        }
    };
    let fault = Fault {
        name,
        severity: Severity(severity),
        // DynamoDB used to refuse empty strings, so zc.cimaa left it out.
        message: text(item, "message")?.unwrap_or_default(),
        since,
        updated: updated.unwrap_or(since),
        triggered: triggered(item),
        escalates: escalates(item)?,
        attempts,
    };
    Ok((agent, fault))
}

/// Reads an alert marker: the agent and its `AGENT#alerts` fault.
fn marker_from_item(item: &Item) -> Result<AgentFault, Error> {
    let (_, mut fault) = fault_from_item(item)?;
    let agent = fault.name;
    fault.name = format!("{agent}#alerts");
    Ok(AgentFault { agent, fault })
}

fn heartbeat_from_item(item: &Item) -> Result<Heartbeat, Error> {
    Ok(Heartbeat {
        name: required_text(item, "name")?,
        updated: whole_number(item, "updated")?
            .ok_or_else(|| corrupt(item, "`updated` is missing"))?,
    })
}

pub(crate) fn squelch_from_item(item: &Item) -> Result<Squelch, Error> {
    Ok(Squelch {
        regex: required_text(item, "regex")?,
        reason: text(item, "reason")?.unwrap_or_default(),
        user: text(item, "user")?.unwrap_or_default(),
        time: whole_number(item, "time")?.unwrap_or(0),
        // zc.cimaa: `"p"` or empty; Python's `bool()` of the string.
        permanent: match item.get("permanent") {
            Some(AttributeValue::S(value)) => !value.is_empty(),
            Some(AttributeValue::Bool(value)) => *value,
            _ => false,
        },
        expires: whole_number(item, "expires")?,
    })
}

// ---------------------------------------------------------------- write plan (pure)

/// What this process last wrote (or read) for one agent.
#[derive(Clone, Debug, Default, PartialEq)]
struct Written {
    /// The agent's fault items as stored, by name.
    faults: BTreeMap<String, Fault>,
    /// The stored alert marker (the `AGENT#alerts` fault), if any.
    marker: Option<Fault>,
}

/// The writes that turn `before` into `after` plus a heartbeat at `now`:
/// the heartbeat first, then changed faults, removed faults and the marker
/// when the agent's `AGENT#alerts` fault differs from it.
fn plan_writes(agent: &str, before: &Written, after: &[Fault], now: i64) -> Vec<Write> {
    let mut writes = vec![Write::Put(heartbeat_item(agent, now))];
    writes.extend(
        after
            .iter()
            .filter(|fault| before.faults.get(&fault.name) != Some(*fault))
            .map(|fault| Write::Put(fault_item(agent, fault))),
    );
    let kept: HashSet<&str> = after.iter().map(|fault| fault.name.as_str()).collect();
    writes.extend(
        before
            .faults
            .keys()
            .filter(|name| !kept.contains(name.as_str()))
            .map(|name| Write::Delete(fault_key(agent, name))),
    );
    let alerts = format!("{agent}#alerts");
    let marker = after.iter().find(|fault| fault.name == alerts);
    if marker != before.marker.as_ref() {
        writes.push(match marker {
            Some(fault) => Write::Put(marker_item(agent, fault)),
            None => Write::Delete(fault_key(ALERTS_AGENT, agent)),
        });
    }
    writes
}

// ---------------------------------------------------------------- the backend

/// A handle on the two DynamoDB tables of one prefix.
pub struct DynamoDb {
    api: Box<dyn Api>,
    faults_table: String,
    squelches_table: String,
    /// Per agent, what this process last wrote; see the module doc.
    written: Mutex<HashMap<String, Written>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for DynamoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDb")
            .field("faults_table", &self.faults_table)
            .field("squelches_table", &self.squelches_table)
            .finish_non_exhaustive()
    }
}

/// The SDK client settings every handle uses: this module retries, so the
/// SDK does not (attempts would multiply); connection and request timeouts.
fn client_config(builder: sdk::config::Builder, endpoint_url: Option<&str>) -> sdk::Config {
    let timeouts = sdk::config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();
    let mut builder = builder
        .retry_config(sdk::config::retry::RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

impl DynamoDb {
    /// A handle whose credentials and region come from the standard AWS
    /// chain (environment, profile, instance role); `region` overrides the
    /// chain's region. Sends no request.
    ///
    /// # Errors
    /// `Error::NoRegion` when neither the configuration nor the chain names a region.
    pub async fn open(config: &DynamoDbConfig) -> Result<DynamoDb, Error> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            return Err(Error::NoRegion);
        }
        let sdk_config = client_config(
            sdk::config::Builder::from(&shared),
            config.endpoint_url.as_deref(),
        );
        Ok(DynamoDb::with_client(
            config,
            sdk::Client::from_conf(sdk_config),
        ))
    }

    /// A handle with fixed credentials that reads nothing from the
    /// environment: for tests and benchmarks against a local server.
    ///
    /// # Errors
    /// `Error::NoRegion` when the configuration has no `region`.
    pub fn with_static_credentials(
        config: &DynamoDbConfig,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<DynamoDb, Error> {
        let region = config.region.clone().ok_or(Error::NoRegion)?;
        let builder = sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "cimaa-static",
            ));
        let sdk_config = client_config(builder, config.endpoint_url.as_deref());
        Ok(DynamoDb::with_client(
            config,
            sdk::Client::from_conf(sdk_config),
        ))
    }

    fn with_client(config: &DynamoDbConfig, client: sdk::Client) -> DynamoDb {
        let counters = Arc::new(Counters::default());
        let api = SdkApi {
            client,
            counters: Arc::clone(&counters),
        };
        DynamoDb::with_api(config, Box::new(api), counters)
    }

    fn with_api(config: &DynamoDbConfig, api: Box<dyn Api>, counters: Arc<Counters>) -> DynamoDb {
        DynamoDb {
            api,
            faults_table: config.table("faults"),
            squelches_table: config.table("squelches"),
            written: Mutex::new(HashMap::new()),
            counters,
        }
    }

    /// Requests sent so far (every attempt counted), for benchmarks and tests.
    #[must_use]
    pub fn stats(&self) -> RequestStats {
        self.counters.snapshot()
    }

    /// The record of what this process wrote. Every change under the lock is
    /// one map operation, so a poisoned lock is taken over.
    fn written(&self) -> MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call` again after retryable failures, with backoff, until it
    /// succeeds, fails for good, runs out of attempts or would pass `deadline`.
    async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        table: &str,
        deadline: Instant,
        mut call: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut retry = RETRIES.start(Some(deadline));
        loop {
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let attempt = retry.attempt();
            if error.failure.retryable()
                && let Some(delay) = retry.next_delay()
            {
                debug!(operation, table, attempt, error = %error.detail, "dynamodb request failed; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(match error.failure {
                Failure::TableMissing => Error::TableMissing {
                    table: table.to_owned(),
                },
                Failure::Throttled => Error::Throttled {
                    operation,
                    table: table.to_owned(),
                    attempts: attempt,
                },
                _ => Error::DynamoDb {
                    operation,
                    table: table.to_owned(),
                    attempts: attempt,
                    detail: error.detail,
                },
            });
        }
    }

    /// Every item of one Query, page after page.
    async fn query_all(&self, query: Query<'_>, deadline: Instant) -> Result<Vec<Item>, Error> {
        let table = self.faults_table.as_str();
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .retrying("Query", table, deadline, || {
                    self.api.query(table, query, start.clone())
                })
                .await?;
            items.extend(page.items);
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Every item of a table, page after page.
    async fn scan_all(&self, table: &str, deadline: Instant) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .retrying("Scan", table, deadline, || {
                    self.api.scan(table, start.clone())
                })
                .await?;
            items.extend(page.items);
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Writes in BatchWriteItem calls of at most 25, resending unprocessed
    /// items with backoff.
    async fn write_all(&self, writes: Vec<Write>, deadline: Instant) -> Result<(), Error> {
        let table = self.faults_table.as_str();
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            let mut pending: Vec<Write> = writes.by_ref().take(BATCH_LIMIT).collect();
            let mut rounds = RETRIES.start(Some(deadline));
            loop {
                let unprocessed = self
                    .retrying("BatchWriteItem", table, deadline, || {
                        self.api.batch_write(table, pending.clone())
                    })
                    .await?;
                if unprocessed.is_empty() {
                    break;
                }
                let round = rounds.attempt();
                let Some(delay) = rounds.next_delay() else {
                    return Err(Error::Unprocessed {
                        table: table.to_owned(),
                        items: unprocessed.len(),
                        attempts: round,
                    });
                };
                debug!(
                    table,
                    unprocessed = unprocessed.len(),
                    "dynamodb left items unprocessed; resending"
                );
                tokio::time::sleep(delay).await;
                pending = unprocessed;
            }
        }
        Ok(())
    }

    /// The stored faults and alert marker of one agent.
    async fn read_agent(&self, agent: &str, deadline: Instant) -> Result<Written, Error> {
        let faults = self
            .query_all(Query::Agent(agent), deadline)
            .await?
            .iter()
            .map(|item| fault_from_item(item).map(|(_, fault)| (fault.name.clone(), fault)))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let table = self.faults_table.as_str();
        let marker = self
            .retrying("GetItem", table, deadline, || {
                self.api.get(table, fault_key(ALERTS_AGENT, agent))
            })
            .await?
            .map(|item| marker_from_item(&item).map(|marker| marker.fault))
            .transpose()?;
        Ok(Written { faults, marker })
    }

    /// Runs one `Db` call within `budget`.
    async fn bounded<T>(
        operation: &'static str,
        budget: Duration,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(budget, call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    operation,
                    seconds: budget.as_secs(),
                })
            })
    }

    /// Creates a missing table (a racing creator is fine) or checks the
    /// keys and indexes of an existing one; false while it is not ACTIVE.
    async fn ensure_table(
        &self,
        table: &str,
        kind: TableKind,
        capacity: Option<Capacity>,
        deadline: Instant,
    ) -> Result<bool, Error> {
        let state = self
            .retrying("DescribeTable", table, deadline, || {
                self.api.describe(table)
            })
            .await?;
        match state {
            TableState::Missing => {
                self.retrying("CreateTable", table, deadline, || async move {
                    match self.api.create(table, kind, capacity).await {
                        // Another `setup-db` is creating it right now.
                        Err(error) if error.failure == Failure::TableExists => Ok(()),
                        created => created,
                    }
                })
                .await?;
                Ok(false)
            }
            TableState::Busy(why) => {
                debug!(table, state = %why, "waiting for the table");
                Ok(false)
            }
            TableState::Active { keys, indexes } => {
                let (want_keys, want_index): (&[&str], Option<&str>) = match kind {
                    TableKind::Faults => (&["agent", "name"], Some(UPDATED_INDEX)),
                    TableKind::Squelches => (&["regex"], None),
                };
                if keys != want_keys {
                    return Err(Error::TableMismatch {
                        table: table.to_owned(),
                        detail: format!(
                            "its keys are `{}`, expected `{}`",
                            keys.join(", "),
                            want_keys.join(", ")
                        ),
                    });
                }
                if let Some(index) = want_index
                    && !indexes.iter().any(|name| name == index)
                {
                    return Err(Error::TableMismatch {
                        table: table.to_owned(),
                        detail: format!("it has no global secondary index `{index}`"),
                    });
                }
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl Db for DynamoDb {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, Error> {
        DynamoDb::bounded("get_faults", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let stored = self.read_agent(agent, deadline).await?;
            let faults = stored.faults.values().cloned().collect();
            // The agent reads its faults at startup: its first `set_faults`
            // then needs no second read.
            self.written().insert(agent.to_owned(), stored);
            Ok(faults)
        })
        .await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), Error> {
        // Taken out for the whole call: a failure (or a timeout dropping this
        // future) leaves no record, so the next call reads what is stored.
        let cached = self.written().remove(agent);
        DynamoDb::bounded("set_faults", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let before = match cached {
                Some(written) => written,
                None => self.read_agent(agent, deadline).await?,
            };
            let stored: Vec<Fault> = before.faults.values().cloned().collect();
            let merged = merge_with_stored(&stored, faults);
            let writes = plan_writes(agent, &before, &merged, now);
            debug!(agent, writes = writes.len(), "writing faults");
            self.write_all(writes, deadline).await?;
            let alerts = format!("{agent}#alerts");
            let after = Written {
                marker: merged.iter().find(|fault| fault.name == alerts).cloned(),
                faults: merged
                    .into_iter()
                    .map(|fault| (fault.name.clone(), fault))
                    .collect(),
            };
            self.written().insert(agent.to_owned(), after);
            Ok(())
        })
        .await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), Error> {
        DynamoDb::bounded("heartbeat", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let table = self.faults_table.as_str();
            self.retrying("PutItem", table, deadline, || {
                self.api.put(table, heartbeat_item(agent, now))
            })
            .await
        })
        .await
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, Error> {
        DynamoDb::bounded("list_faults", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let items = match agent {
                Some(agent) => self.query_all(Query::Agent(agent), deadline).await?,
                None => self.scan_all(&self.faults_table, deadline).await?,
            };
            let mut faults = Vec::with_capacity(items.len());
            for item in &items {
                // Heartbeats and markers share the table; they are no faults.
                if is_reserved_agent(&required_text(item, "agent")?) {
                    continue;
                }
                let (agent, fault) = fault_from_item(item)?;
                faults.push(AgentFault { agent, fault });
            }
            faults.sort_by(|a, b| (&a.agent, &a.fault.name).cmp(&(&b.agent, &b.fault.name)));
            Ok(faults)
        })
        .await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, Error> {
        DynamoDb::bounded("agents", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let mut agents = self
                .query_all(Query::Agent(HEARTBEAT_AGENT), deadline)
                .await?
                .iter()
                .map(heartbeat_from_item)
                .collect::<Result<Vec<_>, _>>()?;
            agents.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(agents)
        })
        .await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, Error> {
        DynamoDb::bounded("old_agents", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let before = now.saturating_sub(age);
            let mut agents = self
                .query_all(Query::StaleHeartbeats { before }, deadline)
                .await?
                .iter()
                .map(heartbeat_from_item)
                .collect::<Result<Vec<_>, _>>()?;
            agents.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(agents)
        })
        .await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, Error> {
        DynamoDb::bounded("get_squelch_details", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let mut squelches = self
                .scan_all(&self.squelches_table, deadline)
                .await?
                .iter()
                .map(squelch_from_item)
                .collect::<Result<Vec<_>, _>>()?;
            squelches.sort_by(|a, b| a.regex.cmp(&b.regex));
            Ok(squelches)
        })
        .await
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), Error> {
        DynamoDb::bounded("squelch", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let table = self.squelches_table.as_str();
            self.retrying("PutItem", table, deadline, || {
                self.api.put(table, squelch_item(squelch))
            })
            .await
        })
        .await
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, Error> {
        DynamoDb::bounded("unsquelch", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let table = self.squelches_table.as_str();
            self.retrying("DeleteItem", table, deadline, || {
                self.api.delete(table, squelch_key(regex))
            })
            .await
        })
        .await
    }

    async fn alert_failures(&self) -> Result<Vec<AgentFault>, Error> {
        DynamoDb::bounded("alert_failures", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let mut failures = self
                .query_all(Query::Agent(ALERTS_AGENT), deadline)
                .await?
                .iter()
                .map(marker_from_item)
                .collect::<Result<Vec<_>, _>>()?;
            failures.sort_by(|a, b| a.agent.cmp(&b.agent));
            Ok(failures)
        })
        .await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), Error> {
        self.written().remove(agent);
        DynamoDb::bounded("remove_agent", CALL_BUDGET, async {
            let deadline = Instant::now() + CALL_BUDGET;
            let mut writes = vec![
                Write::Delete(fault_key(HEARTBEAT_AGENT, agent)),
                Write::Delete(fault_key(ALERTS_AGENT, agent)),
            ];
            for item in self.query_all(Query::Agent(agent), deadline).await? {
                let name = required_text(&item, "name")?;
                writes.push(Write::Delete(fault_key(agent, &name)));
            }
            self.write_all(writes, deadline).await
        })
        .await
    }

    async fn setup(&self, capacity: Option<Capacity>) -> Result<(), Error> {
        DynamoDb::bounded("setup", SETUP_BUDGET, async {
            let deadline = Instant::now() + SETUP_BUDGET;
            let tables = [
                (self.faults_table.as_str(), TableKind::Faults),
                (self.squelches_table.as_str(), TableKind::Squelches),
            ];
            loop {
                let mut ready = true;
                for (table, kind) in tables {
                    ready &= self.ensure_table(table, kind, capacity, deadline).await?;
                }
                if ready {
                    return Ok(());
                }
                if Instant::now() + SETUP_POLL >= deadline {
                    warn!("dynamodb tables are still not ACTIVE");
                }
                tokio::time::sleep(SETUP_POLL).await;
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// An in-memory stand-in for DynamoDB behind the seam, recording calls
    /// and failing on demand.
    #[derive(Default)]
    struct Fake {
        state: Mutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        /// Table → key values (`[agent, name]` or `[regex]`) → item.
        tables: HashMap<String, BTreeMap<Vec<String>, Item>>,
        /// Operation names, in call order.
        calls: Vec<&'static str>,
        /// Sizes of the BatchWriteItem calls.
        batches: Vec<usize>,
        /// The next calls fail like this, one failure per call.
        failures: VecDeque<Failure>,
        /// The next BatchWriteItem leaves this many of its writes unprocessed.
        unprocessed: usize,
        /// The BatchWriteItem that finds this many batches done is rejected.
        fail_batch: Option<usize>,
    }

    fn item_key(item: &Item) -> Vec<String> {
        let names: &[&str] = if item.contains_key("regex") {
            &["regex"]
        } else {
            &["agent", "name"]
        };
        names
            .iter()
            .map(|name| match item.get(*name) {
                Some(AttributeValue::S(value)) => value.clone(),
                other => panic!("bad key attribute {name}: {other:?}"),
            })
            .collect()
    }

    fn text_of(item: &Item, key: &str) -> Option<String> {
        match item.get(key) {
            Some(AttributeValue::S(value)) => Some(value.clone()),
            _ => None,
        }
    }

    impl Fake {
        fn state(&self) -> MutexGuard<'_, FakeState> {
            self.state.lock().unwrap()
        }

        /// Records the call and returns the failure queued for it, if any.
        fn call(&self, operation: &'static str) -> Result<(), ApiError> {
            let mut state = self.state();
            state.calls.push(operation);
            match state.failures.pop_front() {
                Some(failure) => Err(ApiError {
                    failure,
                    detail: format!("{failure:?}"),
                }),
                None => Ok(()),
            }
        }

        fn items(&self, table: &str) -> Vec<Item> {
            self.state()
                .tables
                .get(table)
                .map(|items| items.values().cloned().collect())
                .unwrap_or_default()
        }

        fn calls(&self) -> Vec<&'static str> {
            std::mem::take(&mut self.state().calls)
        }
    }

    #[async_trait]
    impl Api for Arc<Fake> {
        async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, ApiError> {
            self.call("GetItem")?;
            Ok(self
                .state()
                .tables
                .get(table)
                .and_then(|items| items.get(&item_key(&key)).cloned()))
        }

        async fn put(&self, table: &str, item: Item) -> Result<(), ApiError> {
            self.call("PutItem")?;
            self.state()
                .tables
                .entry(table.to_owned())
                .or_default()
                .insert(item_key(&item), item);
            Ok(())
        }

        async fn delete(&self, table: &str, key: Item) -> Result<bool, ApiError> {
            self.call("DeleteItem")?;
            Ok(self
                .state()
                .tables
                .entry(table.to_owned())
                .or_default()
                .remove(&item_key(&key))
                .is_some())
        }

        async fn query(
            &self,
            table: &str,
            query: Query<'_>,
            start: Option<Item>,
        ) -> Result<Page, ApiError> {
            self.call("Query")?;
            assert!(start.is_none(), "the fake answers in one page");
            let items = self.items(table).into_iter().filter(|item| match query {
                Query::Agent(agent) => text_of(item, "agent").as_deref() == Some(agent),
                Query::StaleHeartbeats { before } => {
                    text_of(item, "agent").as_deref() == Some(HEARTBEAT_AGENT)
                        && whole_number(item, "updated").unwrap().unwrap() < before
                }
            });
            Ok(Page {
                items: items.collect(),
                next: None,
            })
        }

        async fn scan(&self, table: &str, start: Option<Item>) -> Result<Page, ApiError> {
            self.call("Scan")?;
            assert!(start.is_none(), "the fake answers in one page");
            Ok(Page {
                items: self.items(table),
                next: None,
            })
        }

        async fn batch_write(
            &self,
            table: &str,
            writes: Vec<Write>,
        ) -> Result<Vec<Write>, ApiError> {
            self.call("BatchWriteItem")?;
            assert!(writes.len() <= BATCH_LIMIT, "{} writes", writes.len());
            let mut state = self.state();
            if state.fail_batch == Some(state.batches.len()) {
                state.fail_batch = None;
                return Err(ApiError {
                    failure: Failure::Rejected,
                    detail: "rejected".into(),
                });
            }
            state.batches.push(writes.len());
            let keep = writes.len().saturating_sub(state.unprocessed);
            state.unprocessed = 0;
            let mut writes = writes;
            let unprocessed = writes.split_off(keep);
            let items = state.tables.entry(table.to_owned()).or_default();
            for write in writes {
                match write {
                    Write::Put(item) => items.insert(item_key(&item), item),
                    Write::Delete(key) => items.remove(&item_key(&key)),
                };
            }
            Ok(unprocessed)
        }

        async fn describe(&self, table: &str) -> Result<TableState, ApiError> {
            self.call("DescribeTable")?;
            let state = self.state();
            Ok(match state.tables.get(table) {
                None => TableState::Missing,
                Some(_) if table.ends_with("faults") => TableState::Active {
                    keys: vec!["agent".into(), "name".into()],
                    indexes: vec![UPDATED_INDEX.into()],
                },
                Some(_) => TableState::Active {
                    keys: vec!["regex".into()],
                    indexes: vec![],
                },
            })
        }

        async fn create(
            &self,
            table: &str,
            _kind: TableKind,
            _capacity: Option<Capacity>,
        ) -> Result<(), ApiError> {
            self.call("CreateTable")?;
            self.state().tables.entry(table.to_owned()).or_default();
            Ok(())
        }
    }

    fn config() -> DynamoDbConfig {
        DynamoDbConfig {
            region: Some("us-east-1".into()),
            prefix: "cimaa".into(),
            endpoint_url: None,
        }
    }

    fn fake_db() -> (DynamoDb, Arc<Fake>) {
        let fake = Arc::new(Fake::default());
        let db = DynamoDb::with_api(
            &config(),
            Box::new(Arc::clone(&fake)),
            Arc::new(Counters::default()),
        );
        (db, fake)
    }

    fn fault(name: &str) -> Fault {
        Fault {
            name: name.to_owned(),
            severity: Severity::ERROR,
            message: format!("{name} is failing"),
            since: 100,
            updated: 100,
            triggered: false,
            escalates: true,
            attempts: 1,
        }
    }

    fn faults(count: usize) -> Vec<Fault> {
        (0..count).map(|i| fault(&format!("check{i:03}"))).collect()
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect()
    }

    fn n(value: &str) -> AttributeValue {
        AttributeValue::N(value.to_owned())
    }

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    #[tokio::test]
    async fn the_first_call_reads_the_stored_state_then_writes_every_item() {
        let (db, fake) = fake_db();

        db.set_faults("web1", &faults(3), 100).await.unwrap();

        assert_eq!(fake.calls(), ["Query", "GetItem", "BatchWriteItem"]);
        assert_eq!(fake.state().batches, [4]);
    }

    #[tokio::test]
    async fn an_unchanged_fault_set_costs_one_write_of_the_heartbeat() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &faults(100), 100).await.unwrap();
        fake.calls();
        fake.state().batches.clear();

        // Seen again by later check runs: same record, later times.
        let again: Vec<Fault> = faults(100)
            .into_iter()
            .map(|f| Fault {
                since: 160,
                updated: 160,
                ..f
            })
            .collect();
        db.set_faults("web1", &again, 160).await.unwrap();

        assert_eq!(fake.calls(), ["BatchWriteItem"]);
        assert_eq!(fake.state().batches, [1]);
        let heartbeat = fake
            .items("cimaa.faults")
            .into_iter()
            .find(|item| text_of(item, "agent").as_deref() == Some(HEARTBEAT_AGENT))
            .unwrap();
        assert_eq!(heartbeat.get("updated"), Some(&n("160")));
    }

    #[tokio::test]
    async fn get_faults_at_startup_spares_the_first_set_faults_its_read() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &faults(2), 100).await.unwrap();
        let restarted = DynamoDb::with_api(
            &config(),
            Box::new(Arc::clone(&fake)),
            Arc::new(Counters::default()),
        );
        fake.calls();

        let stored = restarted.get_faults("web1").await.unwrap();
        restarted.set_faults("web1", &stored, 160).await.unwrap();

        assert_eq!(fake.calls(), ["Query", "GetItem", "BatchWriteItem"]);
        assert_eq!(fake.state().batches.last(), Some(&1));
    }

    #[tokio::test]
    async fn only_changed_and_removed_faults_are_written() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &faults(3), 100).await.unwrap();
        fake.state().batches.clear();
        let mut next = faults(2);
        next[1].message = "worse".into();

        db.set_faults("web1", &next, 160).await.unwrap();

        // Heartbeat, the changed fault, the removed fault.
        assert_eq!(fake.state().batches, [3]);
        let mut stored = db.get_faults("web1").await.unwrap();
        stored.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            stored
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>(),
            ["check000 is failing", "worse"]
        );
        assert_eq!(stored[1].updated, 100, "`updated` is the caller's");
        assert_eq!(stored[1].since, 100, "`since` is kept");
    }

    #[tokio::test]
    async fn writes_go_in_batches_of_at_most_25() {
        let (db, fake) = fake_db();

        db.set_faults("web1", &faults(60), 100).await.unwrap();

        assert_eq!(fake.state().batches, [25, 25, 11]);
        assert_eq!(fake.items("cimaa.faults").len(), 61);
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_items_are_resent() {
        let (db, fake) = fake_db();
        fake.state().unprocessed = 3;

        db.set_faults("web1", &faults(10), 100).await.unwrap();

        assert_eq!(fake.state().batches, [11, 3]);
        assert_eq!(fake.items("cimaa.faults").len(), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_and_unavailability_are_retried() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &faults(1), 100).await.unwrap();
        fake.calls();
        fake.state().failures =
            VecDeque::from([Failure::Throttled, Failure::Unavailable, Failure::Throttled]);

        db.set_faults("web1", &faults(1), 160).await.unwrap();

        assert_eq!(fake.calls(), ["BatchWriteItem"; 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn lasting_throttling_fails_after_bounded_attempts_and_forgets_the_cache() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &faults(2), 100).await.unwrap();
        fake.calls();
        fake.state().failures = VecDeque::from([Failure::Throttled; 10]);

        let error = db.set_faults("web1", &faults(3), 160).await.unwrap_err();

        assert!(
            matches!(error, Error::Throttled { attempts: 5, .. }),
            "{error:?}"
        );
        assert_eq!(fake.calls(), ["BatchWriteItem"; 5]);

        // Recovered: the next call reads what is stored and writes what is missing.
        fake.state().failures.clear();
        fake.state().batches.clear();
        db.set_faults("web1", &faults(3), 220).await.unwrap();
        assert_eq!(fake.calls(), ["Query", "GetItem", "BatchWriteItem"]);
        assert_eq!(fake.state().batches, [2]);
        assert_eq!(db.get_faults("web1").await.unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_in_the_middle_of_the_batches_rewrites_the_rest_next_time() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &[], 100).await.unwrap();
        fake.state().batches.clear();
        fake.state().fail_batch = Some(1);

        db.set_faults("web1", &faults(40), 160).await.unwrap_err();
        assert_eq!(
            fake.items("cimaa.faults").len(),
            25,
            "only the first batch landed"
        );

        db.set_faults("web1", &faults(40), 220).await.unwrap();
        assert_eq!(fake.items("cimaa.faults").len(), 41);
        // Heartbeat + 40 faults failed at the second batch of 16; then the
        // heartbeat + the 16 faults still missing.
        assert_eq!(fake.state().batches, [25, 17]);
    }

    #[tokio::test]
    async fn a_rejected_request_is_not_retried() {
        let (db, fake) = fake_db();
        fake.state().failures = VecDeque::from([Failure::Rejected]);

        let error = db.heartbeat("web1", 100).await.unwrap_err();

        assert!(
            matches!(error, Error::DynamoDb { attempts: 1, .. }),
            "{error:?}"
        );
        assert_eq!(fake.calls(), ["PutItem"]);
    }

    #[tokio::test]
    async fn a_missing_table_says_to_run_setup_db() {
        let (db, fake) = fake_db();
        fake.state().failures = VecDeque::from([Failure::TableMissing]);

        let error = db.agents().await.unwrap_err();

        assert_eq!(
            error.to_string(),
            "dynamodb table `cimaa.faults` does not exist (create it with `cimaa setup-db`)"
        );
    }

    #[tokio::test]
    async fn the_alert_marker_follows_the_agents_alerts_fault() {
        let (db, fake) = fake_db();
        let alerts = Fault {
            severity: Severity::CRITICAL,
            message: "Failed to send alert information (1/1)".into(),
            escalates: false,
            attempts: 0,
            ..fault("web1#alerts")
        };

        db.set_faults("web1", &[fault("disk"), alerts.clone()], 100)
            .await
            .unwrap();
        assert_eq!(
            db.alert_failures().await.unwrap(),
            vec![AgentFault {
                agent: "web1".into(),
                fault: alerts.clone(),
            }]
        );
        fake.state().batches.clear();

        // Unchanged: no marker write.
        db.set_faults("web1", &[fault("disk"), alerts], 160)
            .await
            .unwrap();
        assert_eq!(fake.state().batches, [1]);

        // Gone: the fault and the marker are deleted.
        db.set_faults("web1", &[fault("disk")], 220).await.unwrap();
        assert_eq!(fake.state().batches, [1, 3]);
        assert_eq!(db.alert_failures().await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn remove_agent_deletes_faults_heartbeat_and_marker() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &[fault("disk"), fault("web1#alerts")], 100)
            .await
            .unwrap();
        db.set_faults("web2", &[fault("disk")], 100).await.unwrap();

        db.remove_agent("web1").await.unwrap();

        let left: Vec<Vec<String>> = fake.items("cimaa.faults").iter().map(item_key).collect();
        assert_eq!(
            left,
            [
                vec!["_".to_owned(), "web2".to_owned()],
                vec!["web2".to_owned(), "disk".to_owned()],
            ]
        );
        // And a later set_faults of that agent starts from the stored state.
        fake.calls();
        db.set_faults("web1", &[], 160).await.unwrap();
        assert_eq!(fake.calls(), ["Query", "GetItem", "BatchWriteItem"]);
    }

    #[tokio::test]
    async fn setup_creates_missing_tables_and_is_idempotent() {
        let (db, fake) = fake_db();

        db.setup(None).await.unwrap();
        let first = fake.calls();
        db.setup(None).await.unwrap();

        assert_eq!(
            first.iter().filter(|call| **call == "CreateTable").count(),
            2
        );
        assert_eq!(fake.calls(), ["DescribeTable", "DescribeTable"]);
    }

    #[test]
    fn fault_items_have_the_zc_cimaa_layout() {
        let written = fault_item(
            "web1",
            &Fault {
                triggered: true,
                escalates: false,
                attempts: 3,
                severity: Severity::CRITICAL,
                ..fault("disk")
            },
        );
        assert_eq!(
            written,
            item(&[
                ("agent", s("web1")),
                ("name", s("disk")),
                ("severity", n("50")),
                ("message", s("disk is failing")),
                ("since", n("100")),
                ("updated", n("100")),
                ("triggered", s("y")),
                ("escalates", AttributeValue::Bool(false)),
                ("attempts", n("3")),
            ])
        );
        let quiet = fault_item(
            "web1",
            &Fault {
                message: String::new(),
                ..fault("disk")
            },
        );
        assert!(!quiet.contains_key("message"));
        assert!(!quiet.contains_key("triggered"));
    }

    #[test]
    fn items_zc_cimaa_wrote_are_read() {
        let python = item(&[
            ("agent", s("web1")),
            ("name", s("//web1/app/down")),
            ("severity", n("50")),
            ("since", n("1417000000.25")),
            ("updated", n("1417000060.9")),
            ("triggered", s("y")),
            ("escalates", n("0")),
        ]);
        let (agent, read) = fault_from_item(&python).unwrap();
        assert_eq!(agent, "web1");
        assert_eq!(
            read,
            Fault {
                name: "//web1/app/down".into(),
                severity: Severity::CRITICAL,
                message: String::new(),
                since: 1_417_000_000,
                updated: 1_417_000_060,
                triggered: true,
                escalates: false,
                attempts: 0,
            }
        );
        let oldest = item(&[
            ("agent", s("web1")),
            ("name", s("x")),
            ("severity", n("40")),
            ("updated", n("5.5")),
        ]);
        let (_, read) = fault_from_item(&oldest).unwrap();
        assert_eq!((read.since, read.updated, read.escalates), (5, 5, true));
    }

    #[test]
    fn escalates_is_read_from_a_bool_or_a_number() {
        let cases = [
            (None, true),
            (Some(AttributeValue::Bool(true)), true),
            (Some(AttributeValue::Bool(false)), false),
            (Some(n("0")), false),
            (Some(n("1")), true),
            (Some(n("0.0")), false),
        ];
        for (value, want) in cases {
            let mut stored = fault_item("web1", &fault("x"));
            stored.remove("escalates");
            if let Some(value) = value.clone() {
                stored.insert("escalates".into(), value);
            }
            assert_eq!(escalates(&stored).unwrap(), want, "{value:?}");
        }
    }

    #[test]
    fn squelch_items_round_trip_and_read_zc_cimaa_ones() {
        let squelch = Squelch {
            regex: "web1".into(),
            reason: "deploy".into(),
            user: "alice".into(),
            time: 100,
            permanent: true,
            expires: Some(200),
        };
        let written = squelch_item(&squelch);
        assert_eq!(written.get("permanent"), Some(&s("p")));
        assert_eq!(squelch_from_item(&written).unwrap(), squelch);

        let python = item(&[
            ("regex", s("db")),
            ("reason", s("r")),
            ("user", s("bob")),
            ("time", n("1417000000.5")),
            ("permanent", s("")),
        ]);
        let read = squelch_from_item(&python).unwrap();
        assert_eq!(
            (read.time, read.permanent, read.expires),
            (1_417_000_000, false, None)
        );
    }

    #[test]
    fn numbers_are_truncated_to_whole_units() {
        let cases = [
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("1417000000.999", Some(1_417_000_000)),
            ("-1.5", Some(-1)),
            ("1e3", Some(1000)),
            ("abc", None),
            ("1e300", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_whole(text), want, "{text}");
        }
    }

    #[test]
    fn failures_are_classified_for_retrying() {
        let cases = [
            (
                Some("ProvisionedThroughputExceededException"),
                400,
                Failure::Throttled,
            ),
            (Some("ThrottlingException"), 400, Failure::Throttled),
            (Some("RequestLimitExceeded"), 400, Failure::Throttled),
            (
                Some("ResourceNotFoundException"),
                400,
                Failure::TableMissing,
            ),
            (Some("ResourceInUseException"), 400, Failure::TableExists),
            (Some("InternalServerError"), 500, Failure::Unavailable),
            (None, 503, Failure::Unavailable),
            (Some("ValidationException"), 400, Failure::Rejected),
            (Some("AccessDeniedException"), 400, Failure::Rejected),
        ];
        for (code, status, want) in cases {
            assert_eq!(Failure::of(code, status), want, "{code:?} {status}");
        }
    }

    #[test]
    fn table_names_follow_zc_cimaa() {
        let mut config = config();
        assert_eq!(config.table("faults"), "cimaa.faults");
        config.prefix = "prod.".into();
        assert_eq!(config.table("squelches"), "prod.squelches");
        config.prefix = "bad prefix".into();
        assert_eq!(
            config.problems(),
            ["database.prefix: `bad prefix` must be letters, digits, `_`, `-` or `.`"]
        );
    }

    /// The real SDK client against canned answers (aws-smithy-mocks): its
    /// errors are classified and its unprocessed items come back.
    mod sdk_client {
        use aws_sdk_dynamodb::Client;
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_sdk_dynamodb::operation::batch_write_item::{
            BatchWriteItemError, BatchWriteItemOutput,
        };
        use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
        use aws_smithy_mocks::{Rule, RuleMode, mock};

        use super::*;

        fn api(rules: &[&Rule]) -> SdkApi {
            let mut interceptor =
                aws_smithy_mocks::MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
            for rule in rules {
                interceptor = interceptor.with_rule(rule);
            }
            let builder = sdk::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("a", "b", None, None, "test"))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor);
            SdkApi {
                client: Client::from_conf(client_config(builder, None)),
                counters: Arc::new(Counters::default()),
            }
        }

        fn put(name: &str) -> Write {
            Write::Put(fault_item("web1", &fault(name)))
        }

        #[tokio::test]
        async fn throttling_is_classified_as_throttled() {
            let throttled = mock!(Client::batch_write_item).then_error(|| {
                BatchWriteItemError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        .meta(
                            ErrorMetadata::builder()
                                .code("ProvisionedThroughputExceededException")
                                .message("slow down")
                                .build(),
                        )
                        .build(),
                )
            });
            let api = api(&[&throttled]);

            let error = api
                .batch_write("cimaa.faults", vec![put("a")])
                .await
                .unwrap_err();

            assert_eq!(error.failure, Failure::Throttled);
            assert!(error.detail.contains("slow down"), "{}", error.detail);
        }

        #[tokio::test]
        async fn a_5xx_answer_is_classified_as_unavailable() {
            let unavailable = mock!(Client::batch_write_item)
                .sequence()
                .http_status(503, None)
                .build();
            let api = api(&[&unavailable]);

            let error = api
                .batch_write("cimaa.faults", vec![put("a")])
                .await
                .unwrap_err();

            assert_eq!(error.failure, Failure::Unavailable);
        }

        #[tokio::test]
        async fn unprocessed_items_come_back_as_writes() {
            let partial = mock!(Client::batch_write_item).then_output(|| {
                BatchWriteItemOutput::builder()
                    .unprocessed_items("cimaa.faults", vec![write_request(put("b")).unwrap()])
                    .build()
            });
            let api = api(&[&partial]);

            let unprocessed = api
                .batch_write("cimaa.faults", vec![put("a"), put("b")])
                .await
                .unwrap();

            assert_eq!(unprocessed, vec![put("b")]);
            assert_eq!(api.counters.snapshot().items_written, 2);
        }
    }
}
