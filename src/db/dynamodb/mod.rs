//! The `dynamodb` backend: one shared database for a whole fleet (SPEC §6).
//!
//! Owns the `Db` calls on the two tables, their retries and time bounds, and
//! `setup-db`'s tables. The `since`/`updated` rules come from
//! `merge_with_stored`, shared with the other backends. Its parts:
//! - `config`: the `database:` options and the table names they give;
//! - `api`: the narrow seam over the SDK client and the request counts;
//! - `item`: the table layout (compatible with zc.cimaa, so a fleet can
//!   migrate host by host) and the conversion of items to and from records;
//! - `read`: paged Query and Scan, BatchGetItem, and the reads that skip
//!   (and record) a malformed item;
//! - `write_plan`: what `set_faults` writes, which in steady state is one
//!   write request (the heartbeat) per tick;
//! - `tables`: `setup-db` creating or checking the tables, and the health
//!   check that finds them ACTIVE.
//!
//! # Failures and time bounds
//! Every request goes through `Api`, a narrow seam over the SDK client that
//! tests replace with an in-memory fake. The SDK's own retries are off; this
//! module retries throttling, 5xx answers and transport failures with the
//! crate's one backoff (`retry`: capped, jittered, exponential) and a bounded
//! number of attempts, resends `UnprocessedItems`, and bounds every `Db` call by
//! `CALL_BUDGET`, so a database outage costs a tick seconds, not minutes.

mod api;
mod config;
mod history;
mod item;
mod read;
mod stats;
mod tables;
mod write_plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{self, AtomicBool, AtomicU64};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb as sdk;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use tokio::time::Instant;
use tracing::{debug, warn};

use self::api::{
    Api, ApiError, ApiFailure, Expect, Query, SdkApi, TableKind, VERSION_LIMIT, Write,
    client_config,
};
pub use self::config::DynamoDbConfig;
pub(crate) use self::item::is_reserved_agent;
use self::item::{
    ALERTS_AGENT, HEARTBEAT_AGENT, NOTICES_AGENT, STOPPED_AGENT, agent_fault_from_item,
    describe_item, fault_key, heartbeat_from_item, heartbeat_item, marker_from_item,
    notice_from_item, notice_item, open_alert_from_item, open_alert_item, open_alerts_agent,
    required_text, squelch_from_item, squelch_item, squelch_key, stopped_from_item, stopped_item,
};
use self::read::Read;
use self::stats::Counters;
pub(crate) use self::stats::RequestStats;
use self::write_plan::{WriteCache, Written, plan_writes};
use super::{
    AgentFacts, AgentFault, Capacity, Db, Error, FactsLog, Fault, Heartbeat, Notice, OpenAlert,
    SkipLog, SkippedRow, Squelch, StoppedAgent, merge_with_stored,
};
use crate::retry::Backoff;

/// Time for one `Db` call, retries and pages included. The agent awaits its
/// database calls inside a tick, so this is what an outage can cost a tick.
const CALL_BUDGET: Duration = Duration::from_secs(10);
/// `CALL_BUDGET` in ms.
#[expect(clippy::cast_possible_truncation, reason = "10 s in ms fits")]
const CALL_BUDGET_MS: u64 = CALL_BUDGET.as_millis() as u64;
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

/// A handle on the two DynamoDB tables of one prefix.
pub struct DynamoDb {
    api: Box<dyn Api>,
    faults_table: String,
    squelches_table: String,
    /// `PREFIX.history` (SPEC §12); an agent runs on without it.
    history_table: String,
    /// The history's retention: each record's TTL.
    history: super::HistoryConfig,
    /// Per agent, what this process last wrote; see `write_plan`.
    written: WriteCache,
    counters: Arc<Counters>,
    /// What the latest reads skipped as malformed.
    skipped: SkipLog,
    /// What each agent declared its heartbeats record.
    facts: FactsLog,
    /// The longest one call may take, in ms (`CALL_BUDGET` or less).
    budget_ms: AtomicU64,
}

impl std::fmt::Debug for DynamoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDb")
            .field("faults_table", &self.faults_table)
            .field("squelches_table", &self.squelches_table)
            .finish_non_exhaustive()
    }
}

/// The `SkipLog` entry of the reads of one agent's faults.
fn own_faults_read(agent: &str) -> String {
    format!("faults of {agent}")
}

/// Runs one `Db` call within `budget`; `call` gets the deadline, so its
/// retries stop before the call is cut off.
async fn bounded<T, F, Fut>(operation: &'static str, budget: Duration, call: F) -> Result<T, Error>
where
    F: FnOnce(Instant) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let deadline = Instant::now() + budget;
    super::within(operation, budget, call(deadline)).await
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
        let api = SdkApi::new(
            client,
            Arc::clone(&counters),
            config.endpoint_url.as_deref(),
        );
        DynamoDb::with_api(config, Box::new(api), counters)
    }

    fn with_api(config: &DynamoDbConfig, api: Box<dyn Api>, counters: Arc<Counters>) -> DynamoDb {
        DynamoDb {
            api,
            faults_table: config.table("faults"),
            squelches_table: config.table("squelches"),
            history_table: config.table("history"),
            history: config.history,
            written: WriteCache::default(),
            counters,
            skipped: SkipLog::default(),
            facts: FactsLog::default(),
            budget_ms: AtomicU64::new(CALL_BUDGET_MS),
        }
    }

    /// Requests sent so far (every attempt counted), for benchmarks and tests.
    #[must_use]
    pub fn stats(&self) -> RequestStats {
        self.counters.snapshot()
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
                ApiFailure::TableMissing => Error::TableMissing {
                    table: table.to_owned(),
                },
                ApiFailure::Throttled => Error::Throttled {
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

    /// The time one call may take: `CALL_BUDGET`, or less after `limit_waits`.
    fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms.load(atomic::Ordering::Relaxed))
    }
}

#[async_trait]
impl Db for DynamoDb {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, Error> {
        bounded("get_faults", self.budget(), |deadline| async move {
            let stored = self.read_agent(agent, deadline).await?;
            let faults = stored.faults.values().cloned().collect();
            // The agent reads its faults at startup: its first `set_faults`
            // then needs no second read.
            self.written.put(agent, stored);
            Ok(faults)
        })
        .await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), Error> {
        // Taken out for the whole call: a failure (or a timeout dropping this
        // future) leaves no record, so the next call reads what is stored.
        let cached = self.written.take(agent);
        bounded("set_faults", self.budget(), |deadline| async move {
            let before = match cached {
                Some(written) => written,
                None => self.read_agent(agent, deadline).await?,
            };
            let stored: Vec<Fault> = before.faults.values().cloned().collect();
            let merged = merge_with_stored(&stored, faults);
            let facts = self.facts.get(agent);
            let writes = plan_writes(agent, &before, &merged, now, &facts);
            debug!(agent, writes = writes.len(), "writing faults");
            self.write_all(writes, deadline).await?;
            self.written.put(agent, Written::of(agent, merged));
            // Its malformed items, if any, were just replaced.
            self.skipped.record(&own_faults_read(agent), Vec::new());
            Ok(())
        })
        .await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), Error> {
        let table = self.faults_table.as_str();
        let item = heartbeat_item(agent, now, &self.facts.get(agent));
        bounded("heartbeat", self.budget(), |deadline| {
            self.retrying("PutItem", table, deadline, || {
                self.api.put(table, item.clone())
            })
        })
        .await
    }

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.facts.set(agent, facts);
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, Error> {
        let read = match agent {
            Some(agent) => Read::Query(Query::Agent(agent)),
            None => Read::Scan(&self.faults_table),
        };
        let read_key = agent.map_or_else(|| "faults".to_owned(), own_faults_read);
        self.read_sorted(
            "list_faults",
            read,
            &read_key,
            agent_fault_from_item,
            |a, b| (&a.agent, &a.fault.name).cmp(&(&b.agent, &b.fault.name)),
        )
        .await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, Error> {
        let read = Read::Query(Query::Agent(HEARTBEAT_AGENT));
        self.read_sorted(
            "agents",
            read,
            "heartbeats",
            |item| heartbeat_from_item(item).map(Some),
            |a, b| a.name.cmp(&b.name),
        )
        .await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, Error> {
        let before = now.saturating_sub(age);
        let read = Read::Query(Query::StaleHeartbeats { before });
        self.read_sorted(
            "old_agents",
            read,
            "stale heartbeats",
            |item| heartbeat_from_item(item).map(Some),
            |a, b| a.name.cmp(&b.name),
        )
        .await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, Error> {
        let read = Read::Scan(&self.squelches_table);
        self.read_sorted(
            "get_squelch_details",
            read,
            "squelches",
            |item| squelch_from_item(item).map(Some),
            |a, b| a.regex.cmp(&b.regex),
        )
        .await
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), Error> {
        let table = self.squelches_table.as_str();
        bounded("squelch", self.budget(), |deadline| {
            self.retrying("PutItem", table, deadline, || {
                self.api.put(table, squelch_item(squelch))
            })
        })
        .await
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, Error> {
        let table = self.squelches_table.as_str();
        bounded("unsquelch", self.budget(), |deadline| {
            self.retrying("DeleteItem", table, deadline, || {
                self.api.delete(table, squelch_key(regex))
            })
        })
        .await
    }

    async fn remove_expired_squelch(&self, regex: &str, now: i64) -> Result<bool, Error> {
        let table = self.squelches_table.as_str();
        bounded("remove_expired_squelch", self.budget(), |deadline| {
            self.retrying("DeleteItem", table, deadline, || {
                self.api
                    .delete_if(table, squelch_key(regex), Expect::ExpiredBy(now))
            })
        })
        .await
    }

    async fn alert_failures(&self) -> Result<Vec<AgentFault>, Error> {
        let read = Read::Query(Query::Agent(ALERTS_AGENT));
        self.read_sorted(
            "alert_failures",
            read,
            "alert markers",
            |item| marker_from_item(item).map(Some),
            |a, b| a.agent.cmp(&b.agent),
        )
        .await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), Error> {
        self.written.forget(agent);
        bounded("remove_agent", self.budget(), |deadline| async move {
            let mut writes = vec![
                Write::Delete(fault_key(HEARTBEAT_AGENT, agent)),
                Write::Delete(fault_key(ALERTS_AGENT, agent)),
            ];
            let read = Read::Query(Query::Agent(agent));
            for item in self.read_all(read, deadline).await? {
                let name = required_text(&item, "name")?;
                writes.push(Write::Delete(fault_key(agent, &name)));
            }
            self.write_all(writes, deadline).await
        })
        .await
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), Error> {
        self.written.forget(agent);
        bounded("stop_agent", self.budget(), |deadline| async move {
            // One item per name: a batch must not name a key twice.
            let open: BTreeMap<&str, &OpenAlert> = open
                .iter()
                .map(|alert| (alert.fault.name.as_str(), alert))
                .collect();
            let kept_agent = open_alerts_agent(agent);
            let stale: Vec<String> = self
                .item_names(&kept_agent, deadline)
                .await?
                .into_iter()
                .filter(|name| !open.contains_key(name.as_str()))
                .collect();
            let faults = self.item_names(agent, deadline).await?;
            // The kept alerts and their summary first, in writes of their
            // own: a batch is neither atomic nor ordered, so the
            // deregistration starts only once every kept alert is stored. A
            // failure part way leaves the agent registered (and reported if
            // it stays so), never its alerts lost.
            let mut writes: Vec<Write> = open
                .values()
                .map(|alert| Write::Put(open_alert_item(agent, alert)))
                .collect();
            writes.extend(
                stale
                    .iter()
                    .map(|name| Write::Delete(fault_key(&kept_agent, name))),
            );
            writes.push(if open.is_empty() {
                Write::Delete(fault_key(STOPPED_AGENT, agent))
            } else {
                Write::Put(stopped_item(agent, now, open.len()))
            });
            self.write_all(writes, deadline).await?;
            let mut removals = vec![
                Write::Delete(fault_key(HEARTBEAT_AGENT, agent)),
                Write::Delete(fault_key(ALERTS_AGENT, agent)),
            ];
            removals.extend(
                faults
                    .iter()
                    .map(|name| Write::Delete(fault_key(agent, name))),
            );
            self.write_all(removals, deadline).await
        })
        .await
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, Error> {
        let kept_agent = open_alerts_agent(agent);
        self.read_sorted(
            "open_alerts",
            Read::Query(Query::Agent(&kept_agent)),
            &format!("open alerts of {agent}"),
            |item| open_alert_from_item(item).map(Some),
            |a, b| a.fault.name.cmp(&b.fault.name),
        )
        .await
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, Error> {
        let table = self.faults_table.as_str();
        bounded("stopped_agents", self.budget(), |deadline| async move {
            let mut stopped = Vec::new();
            let mut skipped = Vec::new();
            let read = Read::Query(Query::Agent(STOPPED_AGENT));
            for item in self.read_all(read, deadline).await? {
                match stopped_from_item(&item) {
                    Ok(agent) => stopped.push(agent),
                    Err(error) => skipped.push(Self::skip(table, error)?),
                }
            }
            self.skipped.record("stopped agents", skipped);
            // One read per stopped agent (the cost grows with them, not
            // with the fleet): one that started again is not stopped.
            let mut left = Vec::new();
            for agent in stopped {
                let heartbeat = self
                    .retrying("GetItem", table, deadline, || {
                        self.api.get(table, fault_key(HEARTBEAT_AGENT, &agent.name))
                    })
                    .await?;
                if heartbeat.is_none() {
                    left.push(agent);
                }
            }
            left.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(left)
        })
        .await
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), Error> {
        bounded("clear_open_alerts", self.budget(), |deadline| async move {
            let kept_agent = open_alerts_agent(agent);
            let mut writes: Vec<Write> = self
                .item_names(&kept_agent, deadline)
                .await?
                .iter()
                .map(|name| Write::Delete(fault_key(&kept_agent, name)))
                .collect();
            writes.push(Write::Delete(fault_key(STOPPED_AGENT, agent)));
            self.write_all(writes, deadline).await
        })
        .await
    }

    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, Error> {
        // BatchGetItem refuses a key asked twice, and a key no item can
        // have: one that long would fail the read of every other name.
        let names: BTreeSet<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|name| name.len() <= KEY_BYTES)
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let table = self.faults_table.as_str();
        bounded("notices", self.budget(), |deadline| async move {
            let keys = names
                .iter()
                .map(|name| fault_key(NOTICES_AGENT, name))
                .collect();
            let mut notices = Vec::new();
            let mut problems: BTreeMap<String, SkippedRow> = BTreeMap::new();
            for item in self.get_all(keys, deadline).await? {
                match notice_from_item(&item) {
                    Ok((notice, problem)) => {
                        if let Some(problem) = problem {
                            let row = SkippedRow {
                                table: table.to_owned(),
                                key: describe_item(&item),
                                problem,
                            };
                            warn!(row = %row, "read a malformed notice as an empty one; the next write replaces it");
                            problems.insert(notice.name.clone(), row);
                        }
                        notices.push(notice);
                    }
                    // No readable name: not one of the keys asked for.
                    Err(error) => warn!(error = %error, "skipping a malformed notice item"),
                }
            }
            for name in names {
                self.skipped
                    .record(&notice_read(name), problems.remove(name).into_iter().collect());
            }
            notices.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(notices)
        })
        .await
    }

    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, Error> {
        let table = self.faults_table.as_str();
        let key = fault_key(NOTICES_AGENT, &notice.name);
        if notice.name.len() > KEY_BYTES {
            return Err(Error::Corrupt {
                key: describe_item(&key),
                detail: format!(
                    "a fault name of {} bytes is longer than a DynamoDB key may be ({KEY_BYTES})",
                    notice.name.len()
                ),
            });
        }
        let expect = match expected {
            0 => Expect::Absent,
            version => Expect::Version(version),
        };
        let write = if notice.is_empty() {
            None
        } else {
            let version = expected
                .checked_add(1)
                .filter(|version| *version < VERSION_LIMIT)
                .ok_or_else(|| Error::Corrupt {
                    key: describe_item(&key),
                    detail: format!("notice version {expected} cannot grow"),
                })?;
            Some(notice_item(notice, version)?)
        };
        let operation = if write.is_some() {
            "PutItem"
        } else {
            "DeleteItem"
        };
        let (write, key) = (&write, &key);
        let written = bounded("put_notice", self.budget(), |deadline| async move {
            // A request that timed out or failed on the server may still
            // have landed; its retry then finds the version moved on.
            let maybe_landed = AtomicBool::new(false);
            let written = self
                .retrying(operation, table, deadline, || async {
                    let result = match write {
                        Some(item) => self.api.put_if(table, item.clone(), expect).await,
                        None => self.api.delete_if(table, key.clone(), expect).await,
                    };
                    if let Err(error) = &result
                        && error.failure == ApiFailure::Unavailable
                    {
                        maybe_landed.store(true, atomic::Ordering::Relaxed);
                    }
                    result
                })
                .await?;
            if written || !maybe_landed.load(atomic::Ordering::Relaxed) {
                return Ok(written);
            }
            // Read what is stored: exactly our write means it landed.
            let stored = self
                .retrying("GetItem", table, deadline, || {
                    self.api.get(table, key.clone())
                })
                .await?;
            Ok(match (write, stored) {
                (Some(item), Some(stored)) => stored == *item,
                (None, stored) => stored.is_none(),
                (Some(_), None) => false,
            })
        })
        .await?;
        if written {
            // A malformed item it replaced is gone.
            self.skipped.record(&notice_read(&notice.name), Vec::new());
        }
        Ok(written)
    }

    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, Error> {
        let agents: BTreeSet<&str> = agents
            .iter()
            .map(String::as_str)
            .filter(|agent| agent.len() <= KEY_BYTES)
            .collect();
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let table = self.faults_table.as_str();
        bounded("heartbeats_of", self.budget(), |deadline| async move {
            let keys = agents
                .iter()
                .map(|agent| fault_key(HEARTBEAT_AGENT, agent))
                .collect();
            let mut heartbeats = Vec::new();
            let mut skipped = Vec::new();
            for item in self.get_all(keys, deadline).await? {
                match heartbeat_from_item(&item) {
                    Ok(heartbeat) => heartbeats.push(heartbeat),
                    Err(error) => skipped.push(Self::skip(table, error)?),
                }
            }
            self.skipped.record("heartbeats of notice holders", skipped);
            heartbeats.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(heartbeats)
        })
        .await
    }

    fn skipped_rows(&self) -> Vec<SkippedRow> {
        self.skipped.rows()
    }

    fn limit_waits(&self, budget: Duration) {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        self.budget_ms
            .store(ms.clamp(1, CALL_BUDGET_MS), atomic::Ordering::Relaxed);
    }

    async fn append_history(&self, records: &[super::HistoryRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        bounded("append_history", self.budget(), |deadline| {
            self.put_history(records, deadline)
        })
        .await
    }

    async fn history(
        &self,
        query: &super::HistoryQuery,
    ) -> Result<Vec<super::HistoryRecord>, Error> {
        bounded("history", CALL_BUDGET, |deadline| {
            self.read_history(query, deadline)
        })
        .await
    }

    async fn setup(&self, capacity: Option<Capacity>) -> Result<(), Error> {
        bounded("setup", SETUP_BUDGET, |deadline| async move {
            let tables = [
                (self.faults_table.as_str(), TableKind::Faults),
                (self.squelches_table.as_str(), TableKind::Squelches),
                (self.history_table.as_str(), TableKind::History),
            ];
            loop {
                let mut ready = true;
                for (table, kind) in tables {
                    ready &= self.ensure_table(table, kind, capacity, deadline).await?;
                }
                if ready {
                    self.enable_history_ttl().await;
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

    async fn healthcheck(&self) -> Result<(), Error> {
        bounded("healthcheck", CALL_BUDGET, |deadline| async move {
            for table in [&self.faults_table, &self.squelches_table] {
                self.describe_active(table, deadline).await?;
            }
            Ok(())
        })
        .await
    }
}

/// The `SkipLog` entry of the reads of one notice: each name has its own,
/// so a read of other names (or a put that replaced the item) forgets
/// nothing else.
fn notice_read(name: &str) -> String {
    format!("notice {name}")
}

/// The longest range key (`name`) DynamoDB stores, in bytes.
const KEY_BYTES: usize = 1024;
#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Mutex, MutexGuard};

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::api::{Fetched, Page, TableState};
    use super::item::{Item, UPDATED_INDEX, notice_version, whole_number};
    use super::*;
    use crate::severity::Severity;

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
        /// Every write of the BatchWriteItem calls that landed, in order.
        written: Vec<Write>,
        /// The next calls fail like this, one failure per call.
        failures: VecDeque<ApiFailure>,
        /// The next BatchWriteItem leaves this many of its writes unprocessed.
        unprocessed: usize,
        /// The BatchWriteItem that finds this many batches done is rejected.
        fail_batch: Option<usize>,
        /// The next conditional put lands, then reports a timeout.
        land_then_fail: bool,
    }

    /// Whether a conditional write expecting `expect` finds `stored` so,
    /// as the condition expressions of `Expect` decide.
    fn expected(stored: Option<&Item>, expect: Expect) -> bool {
        let read = stored.map(notice_version);
        match (read, expect) {
            (None, Expect::Absent) => true,
            (None, Expect::Version(_)) => false,
            (Some((version, _)), Expect::Absent) => version == 0,
            (Some((version, problem)), Expect::Version(want)) => {
                problem.is_none() && version == want
            }
            (_, Expect::ExpiredBy(now)) => stored
                .and_then(|item| squelch_from_item(item).ok())
                .and_then(|squelch| squelch.expires)
                .is_some_and(|expires| expires <= now),
        }
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

        async fn put_if(&self, table: &str, item: Item, expect: Expect) -> Result<bool, ApiError> {
            self.call("PutItem")?;
            let mut state = self.state();
            let landed_lost = std::mem::take(&mut state.land_then_fail);
            let items = state.tables.entry(table.to_owned()).or_default();
            if !expected(items.get(&item_key(&item)), expect) {
                return Ok(false);
            }
            items.insert(item_key(&item), item);
            if landed_lost {
                return Err(ApiError {
                    failure: ApiFailure::Unavailable,
                    detail: "timed out after the write".into(),
                });
            }
            Ok(true)
        }

        async fn delete_if(
            &self,
            table: &str,
            key: Item,
            expect: Expect,
        ) -> Result<bool, ApiError> {
            self.call("DeleteItem")?;
            let mut state = self.state();
            let items = state.tables.entry(table.to_owned()).or_default();
            if !expected(items.get(&item_key(&key)), expect) {
                return Ok(false);
            }
            items.remove(&item_key(&key));
            Ok(true)
        }

        async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Fetched, ApiError> {
            self.call("BatchGetItem")?;
            assert!(keys.len() <= 100, "{} keys", keys.len());
            let mut state = self.state();
            let keep = keys.len().saturating_sub(state.unprocessed);
            state.unprocessed = 0;
            let mut keys = keys;
            let unprocessed = keys.split_off(keep);
            let items = state.tables.entry(table.to_owned()).or_default();
            Ok(Fetched {
                items: keys
                    .iter()
                    .filter_map(|key| items.get(&item_key(key)).cloned())
                    .collect(),
                unprocessed,
            })
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

        async fn query_history(
            &self,
            table: &str,
            key: super::api::HistoryKey<'_>,
            from: &str,
            limit: usize,
            start: Option<Item>,
        ) -> Result<Page, ApiError> {
            self.call("Query")?;
            assert!(start.is_none(), "the fake answers in one page");
            let (attribute, value) = match key {
                super::api::HistoryKey::Bucket(bucket) => ("bucket", bucket),
                super::api::HistoryKey::Agent(agent) => ("agent", agent),
                super::api::HistoryKey::Name(name) => ("fname", name),
            };
            let mut items: Vec<Item> = self
                .items(table)
                .into_iter()
                .filter(|item| {
                    text_of(item, attribute).as_deref() == Some(value)
                        && text_of(item, "key").is_some_and(|key| key.as_str() >= from)
                })
                .collect();
            items.sort_by_key(|item| std::cmp::Reverse(text_of(item, "key")));
            items.truncate(limit);
            Ok(Page { items, next: None })
        }

        async fn enable_ttl(&self, _table: &str, _attribute: &str) -> Result<bool, ApiError> {
            self.call("UpdateTimeToLive")?;
            Ok(true)
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
            // BatchWriteItem takes at most 25 requests.
            assert!(writes.len() <= 25, "{} writes", writes.len());
            let mut state = self.state();
            if state.fail_batch == Some(state.batches.len()) {
                state.fail_batch = None;
                return Err(ApiError {
                    failure: ApiFailure::Rejected,
                    detail: "rejected".into(),
                });
            }
            state.batches.push(writes.len());
            state.written.extend(writes.iter().cloned());
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
                Some(_) if table.ends_with("history") => TableState::Active {
                    keys: vec!["bucket".into(), "key".into()],
                    indexes: vec![history::AGENT_INDEX.into(), history::NAME_INDEX.into()],
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
            history: crate::history::HistoryConfig::default(),
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

    use super::item::tests::fault;

    fn faults(count: usize) -> Vec<Fault> {
        (0..count).map(|i| fault(&format!("check{i:03}"))).collect()
    }

    fn n(value: &str) -> AttributeValue {
        AttributeValue::N(value.to_owned())
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
        fake.state().failures = VecDeque::from([
            ApiFailure::Throttled,
            ApiFailure::Unavailable,
            ApiFailure::Throttled,
        ]);

        db.set_faults("web1", &faults(1), 160).await.unwrap();

        assert_eq!(fake.calls(), ["BatchWriteItem"; 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn lasting_throttling_fails_after_bounded_attempts_and_forgets_the_cache() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &faults(2), 100).await.unwrap();
        fake.calls();
        fake.state().failures = VecDeque::from([ApiFailure::Throttled; 10]);

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
        fake.state().failures = VecDeque::from([ApiFailure::Rejected]);

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
        fake.state().failures = VecDeque::from([ApiFailure::TableMissing]);

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

    // See: #22
    #[tokio::test]
    async fn stop_agent_writes_the_kept_alerts_before_it_deletes_anything() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &[fault("disk"), fault("web1#alerts")], 100)
            .await
            .unwrap();
        fake.state().written.clear();
        let batches_before = fake.state().batches.len();
        let kept = OpenAlert {
            fault: Fault {
                severity: Severity::CRITICAL,
                triggered: true,
                ..fault("//web1/app/down")
            },
            alerter: Some("ops".into()),
        };

        db.stop_agent("web1", std::slice::from_ref(&kept), 500)
            .await
            .unwrap();

        let written = std::mem::take(&mut fake.state().written);
        let keys: Vec<(bool, Vec<String>)> = written
            .iter()
            .map(|write| match write {
                Write::Put(item) => (true, item_key(item)),
                Write::Delete(key) => (false, item_key(key)),
            })
            .collect();
        let key = |agent: &str, name: &str| vec![agent.to_owned(), name.to_owned()];
        assert_eq!(
            keys,
            [
                (true, key("_open/web1", "//web1/app/down")),
                (true, key("_stopped", "web1")),
                (false, key("_", "web1")),
                (false, key("_alerts", "web1")),
                (false, key("web1", "disk")),
                (false, key("web1", "web1#alerts")),
            ]
        );
        // Two writes: the kept alerts are stored before any removal starts.
        assert_eq!(fake.state().batches[batches_before..], [2, 4]);
        assert_eq!(db.open_alerts("web1").await.unwrap(), [kept]);
    }

    // See: #22 (review). A batch is neither atomic nor ordered: the kept
    // alerts go in a write of their own, and a failure there deletes nothing.
    #[tokio::test]
    async fn a_failed_write_of_the_kept_alerts_deregisters_nothing() {
        let (db, fake) = fake_db();
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        let done = fake.state().batches.len();
        fake.state().fail_batch = Some(done);
        let kept = OpenAlert {
            fault: Fault {
                severity: Severity::CRITICAL,
                triggered: true,
                ..fault("//web1/app/down")
            },
            alerter: None,
        };

        let result = db
            .stop_agent("web1", std::slice::from_ref(&kept), 500)
            .await;

        assert!(result.is_err(), "{result:?}");
        assert_eq!(db.agents().await.unwrap().len(), 1, "still registered");
        assert_eq!(db.get_faults("web1").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn stopped_agents_reads_one_heartbeat_per_stopped_agent_not_the_fleet() {
        let (db, fake) = fake_db();
        for agent in ["web1", "web2", "web3"] {
            db.set_faults(agent, &[], 100).await.unwrap();
        }
        let kept = OpenAlert {
            fault: fault("//web1/app/down"),
            alerter: None,
        };
        db.stop_agent("web1", std::slice::from_ref(&kept), 200)
            .await
            .unwrap();
        db.stop_agent("web2", std::slice::from_ref(&kept), 200)
            .await
            .unwrap();
        db.heartbeat("web2", 300).await.unwrap();
        fake.calls();

        let stopped = db.stopped_agents().await.unwrap();

        assert_eq!(
            stopped,
            [StoppedAgent {
                name: "web1".into(),
                stopped: 200,
                open_alerts: 1,
            }],
            "web2 started again"
        );
        assert_eq!(fake.calls(), ["Query", "GetItem", "GetItem"]);
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
            3
        );
        assert_eq!(
            fake.calls(),
            [
                "DescribeTable",
                "DescribeTable",
                "DescribeTable",
                "UpdateTimeToLive"
            ]
        );
    }

    // See: #18
    #[tokio::test]
    async fn the_healthcheck_describes_both_tables_and_creates_none() {
        let (db, fake) = fake_db();

        let error = db.healthcheck().await.unwrap_err();
        assert!(matches!(error, Error::TableMissing { .. }), "{error:?}");
        assert_eq!(fake.calls(), ["DescribeTable"]);

        db.setup(None).await.unwrap();
        fake.calls();
        db.healthcheck().await.unwrap();
        assert_eq!(fake.calls(), ["DescribeTable", "DescribeTable"]);
    }

    fn notice(name: &str, holders: &[&str]) -> Notice {
        Notice {
            holders: holders.iter().map(|&holder| holder.to_owned()).collect(),
            ..Notice::new(name)
        }
    }

    // See: #11
    #[tokio::test]
    async fn a_notice_write_is_one_conditional_request_and_a_read_one_batch_get() {
        let (db, fake) = fake_db();

        assert!(
            db.put_notice(&notice("//meta", &["web1"]), 0)
                .await
                .unwrap()
        );
        assert!(
            !db.put_notice(&notice("//meta", &["web2"]), 0)
                .await
                .unwrap()
        );
        assert!(db.put_notice(&Notice::new("//meta"), 1).await.unwrap());
        let read = db.notices(&["//meta".to_owned()]).await.unwrap();

        assert_eq!(read, []);
        assert_eq!(
            fake.calls(),
            ["PutItem", "PutItem", "DeleteItem", "BatchGetItem"]
        );
    }

    // See: #11
    #[tokio::test(start_paused = true)]
    async fn notices_are_read_100_keys_at_a_time_and_unprocessed_keys_asked_again() {
        let (db, fake) = fake_db();
        let names: Vec<String> = (0..150).map(|i| format!("//check{i:03}")).collect();
        for name in &names {
            assert!(db.put_notice(&notice(name, &["web1"]), 0).await.unwrap());
        }
        fake.calls();
        fake.state().unprocessed = 30;

        let read = db.notices(&names).await.unwrap();

        assert_eq!(read.len(), 150);
        assert_eq!(
            fake.calls(),
            ["BatchGetItem", "BatchGetItem", "BatchGetItem"]
        );
    }

    // See: #11. The write landed but its answer was lost: the retry finds
    // the version moved on, reads the item back and sees its own write.
    #[tokio::test(start_paused = true)]
    async fn a_put_whose_lost_answer_hid_a_landed_write_counts_as_won() {
        let (db, fake) = fake_db();
        fake.state().land_then_fail = true;

        let won = db
            .put_notice(&notice("//meta", &["web1"]), 0)
            .await
            .unwrap();

        assert!(won);
        assert_eq!(fake.calls(), ["PutItem", "PutItem", "GetItem"]);
        let stored = db.notices(&["//meta".to_owned()]).await.unwrap();
        assert_eq!(stored[0].version, 1);
    }

    // See: #11
    #[tokio::test(start_paused = true)]
    async fn a_put_that_lost_the_race_after_a_retry_still_loses() {
        let (db, fake) = fake_db();
        assert!(
            db.put_notice(&notice("//meta", &["web2"]), 0)
                .await
                .unwrap()
        );
        fake.calls();
        fake.state().failures = VecDeque::from([ApiFailure::Unavailable]);

        let won = db
            .put_notice(&notice("//meta", &["web1"]), 0)
            .await
            .unwrap();

        assert!(!won);
        assert_eq!(fake.calls(), ["PutItem", "PutItem", "GetItem"]);
    }

    // See: #11
    #[tokio::test]
    async fn heartbeats_of_reads_only_the_agents_asked_for() {
        let (db, fake) = fake_db();
        for agent in ["web1", "web2", "web3"] {
            db.heartbeat(agent, 100).await.unwrap();
        }
        fake.calls();

        let found = db
            .heartbeats_of(&["web3".to_owned(), "ghost".to_owned(), "web1".to_owned()])
            .await
            .unwrap();

        let names: Vec<&str> = found.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web1", "web3"]);
        assert_eq!(fake.calls(), ["BatchGetItem"]);
    }

    // See: #11. No item can have a key that long: asking for it would fail
    // the read of every other name.
    #[tokio::test]
    async fn a_name_longer_than_a_key_may_be_is_left_out_of_reads_and_refused_by_writes() {
        let (db, fake) = fake_db();
        assert!(
            db.put_notice(&notice("//meta", &["web1"]), 0)
                .await
                .unwrap()
        );
        fake.calls();
        let long = format!("//{}", "x".repeat(2000));

        let read = db
            .notices(&[long.clone(), "//meta".to_owned()])
            .await
            .unwrap();
        let error = db
            .put_notice(&notice(&long, &["web1"]), 0)
            .await
            .unwrap_err();

        assert_eq!(read.len(), 1);
        assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
        assert_eq!(fake.calls(), ["BatchGetItem"]);
        assert_eq!(db.heartbeats_of(&[long]).await.unwrap(), []);
    }
}
