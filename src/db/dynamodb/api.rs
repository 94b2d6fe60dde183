//! The narrow seam between the backend and DynamoDB: the requests it makes
//! (`Api`), how a failed request is classified for retrying (`ApiFailure`),
//! the request counters, and `Api` on the AWS SDK client. Tests replace the
//! SDK client with an in-memory fake behind the same trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb as sdk;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType,
    ProvisionedThroughput, PutRequest, ReturnConsumedCapacity, ReturnValue, ScalarAttributeType,
    TableStatus, TimeToLiveSpecification, TimeToLiveStatus, WriteRequest,
};

use super::history::{AGENT_INDEX as HISTORY_AGENT_INDEX, NAME_INDEX as HISTORY_NAME_INDEX};
use super::item::{HEARTBEAT_AGENT, Item, UPDATED_INDEX, UPDATED_INDEX_INCLUDES, number, string};
use super::stats::Counters;
use crate::aws;
use crate::db::Capacity;

/// Time to open a TCP/TLS connection before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one request, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// One request of a BatchWriteItem.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Write {
    /// Puts the whole item.
    Put(Item),
    /// Deletes the item with this key.
    Delete(Item),
}

/// What a conditional write expects of the stored item: a notice's
/// `version` (SPEC §10), or a squelch expired (SPEC §12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// No readable version: no item, or one whose `version` is missing, not
    /// a Number, below 1 or from 2^63 up (see `item::notice_version`).
    Absent,
    /// A readable version: a Number whose whole part is this.
    Version(u64),
    /// A squelch whose `expires` is a Number at or before this time.
    ExpiredBy(i64),
}

/// Versions from here up are unreadable (they would not fit an `i64`).
pub(super) const VERSION_LIMIT: u64 = 1 << 63;

impl Expect {
    /// The attribute names the condition uses (`#name`, `#version`,
    /// `#expires`): DynamoDB refuses a request naming one it does not use.
    fn names(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Expect::Absent => &[("#name", "name"), ("#version", "version")],
            Expect::Version(_) => &[("#version", "version")],
            Expect::ExpiredBy(_) => &[("#expires", "expires")],
        }
    }

    /// The condition expression and its values (names: see `names`).
    fn condition(self) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
        match self {
            Expect::ExpiredBy(now) => (
                "attribute_type(#expires, :number) AND #expires <= :now",
                vec![(":number", string("N")), (":now", number(now))],
            ),
            Expect::Absent => (
                "attribute_not_exists(#name) OR NOT attribute_type(#version, :number) \
                 OR #version < :one OR #version >= :limit",
                vec![
                    (":number", string("N")),
                    (":one", number(1)),
                    (":limit", number(VERSION_LIMIT)),
                ],
            ),
            // A range rather than `=`: a fractional version (written by
            // another tool) reads as its whole part and is matched so.
            Expect::Version(version) => (
                "#version >= :version AND #version < :next",
                vec![
                    (":version", number(version)),
                    (":next", number(u128::from(version) + 1)),
                ],
            ),
        }
    }
}

/// The queries this backend makes, all on the faults table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Query<'a> {
    /// Every item of one `agent` key, strongly consistent.
    Agent(&'a str),
    /// Heartbeats older than `before`, through the `updated` index.
    StaleHeartbeats { before: i64 },
}

/// The key of a history Query (see `history`): newest first, range key
/// from a lower bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HistoryKey<'a> {
    /// One day's shard, `DAY#SHARD`, on the table.
    Bucket(&'a str),
    /// One agent, on the agent index.
    Agent(&'a str),
    /// One (cut) fault name, on the name index.
    Name(&'a str),
}

/// What one BatchGetItem answered.
#[derive(Debug, Default)]
pub(super) struct Fetched {
    pub items: Vec<Item>,
    /// Keys to ask for again.
    pub unprocessed: Vec<Item>,
}

/// One page of a Query or Scan.
#[derive(Debug, Default)]
pub(super) struct Page {
    pub items: Vec<Item>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Item>,
}

/// The two tables `setup-db` creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TableKind {
    Faults,
    Squelches,
    /// `PREFIX.history` (SPEC §12).
    History,
}

/// What DescribeTable says about a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TableState {
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
pub(super) enum ApiFailure {
    /// Throttling: ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded.
    Throttled,
    /// 5xx answers, timeouts, connection failures.
    Unavailable,
    /// ResourceNotFoundException: the table does not exist.
    TableMissing,
    /// ResourceInUseException: the table exists (or is being created).
    TableExists,
    /// ConditionalCheckFailedException: a conditional write found the item
    /// other than it expected, and wrote nothing.
    ConditionFailed,
    /// Anything else (validation, access denied, ...): retrying won't help.
    Rejected,
}

impl ApiFailure {
    /// Whether the same request may succeed later.
    pub(super) fn retryable(self) -> bool {
        matches!(self, ApiFailure::Throttled | ApiFailure::Unavailable)
    }

    /// Classifies a service error by its code and HTTP status (pure).
    fn of(code: Option<&str>, status: u16) -> ApiFailure {
        match code {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "Throttling"
                | "RequestLimitExceeded",
            ) => ApiFailure::Throttled,
            Some("ResourceNotFoundException") => ApiFailure::TableMissing,
            Some("ResourceInUseException") => ApiFailure::TableExists,
            Some("ConditionalCheckFailedException") => ApiFailure::ConditionFailed,
            _ if status >= 500 => ApiFailure::Unavailable,
            _ => ApiFailure::Rejected,
        }
    }
}

/// A failed request: its class and the full error text.
#[derive(Debug)]
pub(super) struct ApiError {
    pub failure: ApiFailure,
    pub detail: String,
}

/// The DynamoDB requests this backend makes; the seam tests replace.
#[async_trait]
pub(super) trait Api: Send + Sync {
    /// GetItem (strongly consistent).
    async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, ApiError>;
    /// PutItem.
    async fn put(&self, table: &str, item: Item) -> Result<(), ApiError>;
    /// DeleteItem; true when an item was there.
    async fn delete(&self, table: &str, key: Item) -> Result<bool, ApiError>;
    /// PutItem if the stored item's `version` is as `expect`ed; false
    /// (nothing written) when it is not.
    async fn put_if(&self, table: &str, item: Item, expect: Expect) -> Result<bool, ApiError>;
    /// DeleteItem if the stored item's `version` is as `expect`ed; false
    /// (nothing deleted) when it is not. True when there was nothing to
    /// delete and `expect` is `Absent`.
    async fn delete_if(&self, table: &str, key: Item, expect: Expect) -> Result<bool, ApiError>;
    /// One (strongly consistent) BatchGetItem of at most 100 distinct keys:
    /// the items found, and the keys left unprocessed.
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Fetched, ApiError>;
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
    /// One page of a history Query: the items of `key` whose range key is
    /// at least `from`, newest first, at most `limit`.
    async fn query_history(
        &self,
        table: &str,
        key: HistoryKey<'_>,
        from: &str,
        limit: usize,
        start: Option<Item>,
    ) -> Result<Page, ApiError>;
    /// DescribeTimeToLive, then UpdateTimeToLive when it is off: true when
    /// this call enabled it.
    async fn enable_ttl(&self, table: &str, attribute: &str) -> Result<bool, ApiError>;
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

/// The SDK client settings every handle uses: this module retries, so the
/// SDK does not (attempts would multiply); connection and request timeouts.
pub(super) fn client_config(
    builder: sdk::config::Builder,
    endpoint_url: Option<&str>,
) -> sdk::Config {
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

/// `Api` on the AWS SDK client.
pub(super) struct SdkApi {
    client: sdk::Client,
    counters: Arc<Counters>,
    /// Where the client sends requests, for error messages.
    target: aws::Target,
}

impl SdkApi {
    /// `client`'s requests, counted in `counters`; `endpoint_url` is the
    /// configured endpoint, if any (the SDK's configuration does not say).
    pub(super) fn new(
        client: sdk::Client,
        counters: Arc<Counters>,
        endpoint_url: Option<&str>,
    ) -> SdkApi {
        let target = aws::Target {
            service: "DynamoDB",
            prefix: "dynamodb",
            section: "database",
            endpoint_url: endpoint_url.map(str::to_owned),
            region: client.config().region().map(ToString::to_string),
        };
        SdkApi {
            client,
            counters,
            target,
        }
    }

    /// Classifies an SDK error for retrying, described as one sentence
    /// with a hint (`aws::describe`: missing credentials, an unreachable
    /// endpoint, the service's code and message).
    fn classify<E>(&self, error: &SdkError<E, sdk::config::http::HttpResponse>) -> ApiError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let failure = match error {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ApiFailure::Unavailable,
            // Connection failures and timeouts; not a missing credential, which
            // the next attempt would not find either.
            SdkError::DispatchFailure(dispatch) if dispatch.is_io() || dispatch.is_timeout() => {
                ApiFailure::Unavailable
            }
            SdkError::ServiceError(service) => {
                ApiFailure::of(error.code(), service.raw().status().as_u16())
            }
            _ => ApiFailure::Rejected,
        };
        ApiError {
            failure,
            detail: aws::describe(error, &self.target),
        }
    }
}

fn invalid_request(error: &sdk::error::BuildError) -> ApiError {
    ApiError {
        failure: ApiFailure::Rejected,
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
            .map_err(|e| self.classify(&e))?;
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
            .map_err(|e| self.classify(&e))?;
        self.counters.consumed(output.consumed_capacity());
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
            .map_err(|e| self.classify(&e))?;
        self.counters.consumed(output.consumed_capacity());
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn put_if(&self, table: &str, item: Item, expect: Expect) -> Result<bool, ApiError> {
        self.counters.write(1);
        let (condition, values) = expect.condition();
        let mut request = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (placeholder, name) in expect.names() {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(output) => {
                self.counters.consumed(output.consumed_capacity());
                Ok(true)
            }
            Err(error) => match self.classify(&error) {
                failed if failed.failure == ApiFailure::ConditionFailed => Ok(false),
                failed => Err(failed),
            },
        }
    }

    async fn delete_if(&self, table: &str, key: Item, expect: Expect) -> Result<bool, ApiError> {
        self.counters.write(1);
        let (condition, values) = expect.condition();
        let mut request = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .condition_expression(condition)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (placeholder, name) in expect.names() {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(output) => {
                self.counters.consumed(output.consumed_capacity());
                Ok(true)
            }
            Err(error) => match self.classify(&error) {
                failed if failed.failure == ApiFailure::ConditionFailed => Ok(false),
                failed => Err(failed),
            },
        }
    }

    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Fetched, ApiError> {
        self.counters.read();
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| invalid_request(&e))?;
        let output = self
            .client
            .batch_get_item()
            .request_items(table, keys)
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        Ok(Fetched {
            items: output
                .responses
                .and_then(|mut tables| tables.remove(table))
                .unwrap_or_default(),
            unprocessed: output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(table))
                .map(|keys| keys.keys)
                .unwrap_or_default(),
        })
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
        let output = request.send().await.map_err(|e| self.classify(&e))?;
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
            .map_err(|e| self.classify(&e))?;
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
            .map_err(|e| self.classify(&e))?;
        for consumed in output.consumed_capacity() {
            self.counters.consumed(Some(consumed));
        }
        Ok(output
            .unprocessed_items
            .and_then(|mut tables| tables.remove(table))
            .unwrap_or_default()
            .iter()
            .filter_map(write_of)
            .collect())
    }

    async fn query_history(
        &self,
        table: &str,
        key: HistoryKey<'_>,
        from: &str,
        limit: usize,
        start: Option<Item>,
    ) -> Result<Page, ApiError> {
        self.counters.read();
        let (index, attribute, value) = match key {
            HistoryKey::Bucket(bucket) => (None, "bucket", bucket),
            HistoryKey::Agent(agent) => (Some(HISTORY_AGENT_INDEX), "agent", agent),
            HistoryKey::Name(name) => (Some(HISTORY_NAME_INDEX), "fname", name),
        };
        // `key` is a DynamoDB reserved word: names go through `#`.
        let output = self
            .client
            .query()
            .table_name(table)
            .set_index_name(index.map(str::to_owned))
            .set_exclusive_start_key(start)
            .key_condition_expression("#hash = :hash AND #key >= :from")
            .expression_attribute_names("#hash", attribute)
            .expression_attribute_names("#key", "key")
            .expression_attribute_values(":hash", string(value))
            .expression_attribute_values(":from", string(from))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        Ok(Page {
            items: output.items.unwrap_or_default(),
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
        })
    }

    async fn enable_ttl(&self, table: &str, attribute: &str) -> Result<bool, ApiError> {
        self.counters.read();
        let described = self
            .client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let status = described
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status());
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(false);
        }
        self.counters.write(0);
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|e| invalid_request(&e))?;
        self.client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        Ok(true)
    }

    async fn describe(&self, table: &str) -> Result<TableState, ApiError> {
        self.counters.read();
        let output = match self.client.describe_table().table_name(table).send().await {
            Ok(output) => output,
            Err(error) => {
                let error = self.classify(&error);
                return match error.failure {
                    ApiFailure::TableMissing => Ok(TableState::Missing),
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
            TableKind::History => {
                let mut request = request
                    .attribute_definitions(attribute("bucket", ScalarAttributeType::S)?)
                    .attribute_definitions(attribute("key", ScalarAttributeType::S)?)
                    .attribute_definitions(attribute("agent", ScalarAttributeType::S)?)
                    .attribute_definitions(attribute("fname", ScalarAttributeType::S)?)
                    .key_schema(key_element("bucket", KeyType::Hash)?)
                    .key_schema(key_element("key", KeyType::Range)?);
                for (name, hash) in [
                    (HISTORY_AGENT_INDEX, "agent"),
                    (HISTORY_NAME_INDEX, "fname"),
                ] {
                    let mut index = GlobalSecondaryIndex::builder()
                        .index_name(name)
                        .key_schema(key_element(hash, KeyType::Hash)?)
                        .key_schema(key_element("key", KeyType::Range)?)
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        );
                    if let Some(capacity) = capacity {
                        index = index.provisioned_throughput(throughput(capacity)?);
                    }
                    request = request
                        .global_secondary_indexes(index.build().map_err(|e| invalid_request(&e))?);
                }
                request
            }
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
        request.send().await.map_err(|e| self.classify(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_for_retrying() {
        let cases = [
            (
                Some("ProvisionedThroughputExceededException"),
                400,
                ApiFailure::Throttled,
            ),
            (Some("ThrottlingException"), 400, ApiFailure::Throttled),
            (Some("RequestLimitExceeded"), 400, ApiFailure::Throttled),
            (
                Some("ResourceNotFoundException"),
                400,
                ApiFailure::TableMissing,
            ),
            (Some("ResourceInUseException"), 400, ApiFailure::TableExists),
            (
                Some("ConditionalCheckFailedException"),
                400,
                ApiFailure::ConditionFailed,
            ),
            (Some("InternalServerError"), 500, ApiFailure::Unavailable),
            (None, 503, ApiFailure::Unavailable),
            (Some("ValidationException"), 400, ApiFailure::Rejected),
            (Some("AccessDeniedException"), 400, ApiFailure::Rejected),
        ];
        for (code, status, want) in cases {
            assert_eq!(ApiFailure::of(code, status), want, "{code:?} {status}");
        }
    }

    /// The real SDK client against canned answers (aws-smithy-mocks): its
    /// errors are classified and its unprocessed items come back.
    mod sdk_client {
        use aws_sdk_dynamodb::Client;
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
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
            SdkApi::new(
                Client::from_conf(client_config(builder, None)),
                Arc::new(Counters::default()),
                None,
            )
        }

        /// Credentials that never load, as the default chain on a host
        /// without any.
        #[derive(Debug)]
        struct NoCredentials;

        impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
            fn provide_credentials<'a>(
                &'a self,
            ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::not_loaded(
                        "no credentials found in chain. Attempted:\n  Environment: not set",
                    ),
                ))
            }
        }

        /// A real client (real HTTP) for `endpoint`, with these credentials.
        fn real_api(
            endpoint: &str,
            credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
        ) -> SdkApi {
            let builder = sdk::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials);
            SdkApi::new(
                Client::from_conf(client_config(builder, Some(endpoint))),
                Arc::new(Counters::default()),
                Some(endpoint),
            )
        }

        // See: #22
        #[tokio::test]
        async fn missing_credentials_are_one_sentence_with_the_lookup_order() {
            let api = real_api("http://127.0.0.1:9", NoCredentials);

            let error = api.describe("cimaa.faults").await.unwrap_err();

            assert_eq!(error.failure, ApiFailure::Rejected);
            assert!(
                error.detail.starts_with("no AWS credentials found; "),
                "{}",
                error.detail
            );
            assert!(error.detail.contains("AWS_PROFILE"), "{}", error.detail);
            assert!(!error.detail.contains('\n'), "{}", error.detail);
        }

        // See: #22
        #[tokio::test]
        async fn a_refused_connection_names_the_endpoint() {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let endpoint = format!("http://{}", closed.local_addr().unwrap());
            drop(closed);
            let api = real_api(&endpoint, Credentials::new("a", "b", None, None, "test"));

            let error = api.describe("cimaa.faults").await.unwrap_err();

            assert_eq!(error.failure, ApiFailure::Unavailable);
            assert_eq!(
                error.detail,
                format!(
                    "cannot connect to DynamoDB at `{endpoint}`: connection refused; check `database.endpoint_url`"
                )
            );
        }

        fn put(name: &str) -> Write {
            Write::Put(Item::from([
                ("agent".to_owned(), string("web1")),
                ("name".to_owned(), string(name)),
            ]))
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

            assert_eq!(error.failure, ApiFailure::Throttled);
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

            assert_eq!(error.failure, ApiFailure::Unavailable);
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
