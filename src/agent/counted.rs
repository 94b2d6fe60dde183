//! The database as the agent's `/metrics` sees it (SPEC §13): `Counted`
//! wraps the agent's `Db` and counts every request, its failures and its
//! latency by operation (`cimaa_db_*`), whatever the backend, so that no
//! backend carries metrics code.
//!
//! It wraps the `Bounded` database, so a call that runs out of the tick's
//! budget counts as a failed request that took the budget. The operation
//! label is the `Db` method's name; `OPERATIONS` lists them all, so that
//! each starts at zero in the exposition.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::metrics::Metrics;
use crate::db::{
    AgentFacts, AgentFault, Db, Error as DbError, Fault, Heartbeat, HistoryQuery, HistoryRecord,
    Notice, OpenAlert, SkippedRow, Squelch, StoppedAgent, TickWriteError,
};

/// Every `operation` label value: the `Db` methods that make requests.
pub(super) const OPERATIONS: &[&str] = &[
    "get_faults",
    "set_faults",
    "heartbeat",
    "list_faults",
    "agents",
    "old_agents",
    "get_squelches",
    "get_squelch_details",
    "squelch",
    "unsquelch",
    "remove_expired_squelch",
    "alert_failures",
    "remove_agent",
    "stop_agent",
    "open_alerts",
    "stopped_agents",
    "clear_open_alerts",
    "notices",
    "put_notice",
    "heartbeats_of",
    "append_history",
    "write_tick",
    "history",
];

/// A database whose every request is counted in `metrics`.
pub(super) struct Counted {
    pub(super) inner: Arc<dyn Db>,
    pub(super) metrics: Arc<Metrics>,
}

impl Counted {
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        let started = tokio::time::Instant::now();
        let outcome = call.await;
        self.metrics
            .db_request(operation, started.elapsed(), outcome.is_err());
        outcome
    }
}

#[async_trait]
impl Db for Counted {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, DbError> {
        self.call("get_faults", self.inner.get_faults(agent)).await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), DbError> {
        self.call("set_faults", self.inner.set_faults(agent, faults, now))
            .await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), DbError> {
        self.call("heartbeat", self.inner.heartbeat(agent, now))
            .await
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, DbError> {
        self.call("list_faults", self.inner.list_faults(agent))
            .await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, DbError> {
        self.call("agents", self.inner.agents()).await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
        self.call("old_agents", self.inner.old_agents(age, now))
            .await
    }

    async fn get_squelches(&self, now: i64) -> Result<Vec<String>, DbError> {
        self.call("get_squelches", self.inner.get_squelches(now))
            .await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, DbError> {
        self.call("get_squelch_details", self.inner.get_squelch_details())
            .await
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), DbError> {
        self.call("squelch", self.inner.squelch(squelch)).await
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, DbError> {
        self.call("unsquelch", self.inner.unsquelch(regex)).await
    }

    async fn remove_expired_squelch(&self, regex: &str, now: i64) -> Result<bool, DbError> {
        self.call(
            "remove_expired_squelch",
            self.inner.remove_expired_squelch(regex, now),
        )
        .await
    }

    async fn alert_failures(&self) -> Result<Vec<AgentFault>, DbError> {
        self.call("alert_failures", self.inner.alert_failures())
            .await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), DbError> {
        self.call("remove_agent", self.inner.remove_agent(agent))
            .await
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), DbError> {
        self.call("stop_agent", self.inner.stop_agent(agent, open, now))
            .await
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, DbError> {
        self.call("open_alerts", self.inner.open_alerts(agent))
            .await
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, DbError> {
        self.call("stopped_agents", self.inner.stopped_agents())
            .await
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), DbError> {
        self.call("clear_open_alerts", self.inner.clear_open_alerts(agent))
            .await
    }

    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, DbError> {
        self.call("notices", self.inner.notices(names)).await
    }

    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, DbError> {
        self.call("put_notice", self.inner.put_notice(notice, expected))
            .await
    }

    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, DbError> {
        self.call("heartbeats_of", self.inner.heartbeats_of(agents))
            .await
    }

    async fn append_history(&self, records: &[HistoryRecord]) -> Result<(), DbError> {
        self.call("append_history", self.inner.append_history(records))
            .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>, DbError> {
        self.call("history", self.inner.history(query)).await
    }

    // Delegated, not left to the trait's default: a backend's own write
    // (one transaction on PostgreSQL) must still be the one that runs.
    async fn write_tick(
        &self,
        agent: &str,
        faults: &[Fault],
        now: i64,
        history: &[HistoryRecord],
    ) -> Result<(), TickWriteError> {
        let started = tokio::time::Instant::now();
        let outcome = self.inner.write_tick(agent, faults, now, history).await;
        self.metrics
            .db_request("write_tick", started.elapsed(), outcome.is_err());
        outcome
    }

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.inner.set_facts(agent, facts);
    }

    fn skipped_rows(&self) -> Vec<SkippedRow> {
        self.inner.skipped_rows()
    }

    fn limit_waits(&self, budget: Duration) {
        self.inner.limit_waits(budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::MemoryDb;

    fn counted() -> (Counted, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new(std::iter::empty(), OPERATIONS).unwrap());
        let db = Counted {
            inner: Arc::new(MemoryDb::default()),
            metrics: Arc::clone(&metrics),
        };
        (db, metrics)
    }

    #[tokio::test]
    async fn each_request_is_counted_under_its_operation() {
        let (db, metrics) = counted();
        db.heartbeat("a", 1).await.unwrap();
        db.heartbeat("a", 2).await.unwrap();
        db.get_faults("a").await.unwrap();
        let text = metrics.render();
        assert!(
            text.contains("cimaa_db_requests_total{operation=\"heartbeat\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_db_requests_total{operation=\"get_faults\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_db_requests_total{operation=\"history\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_db_errors_total{operation=\"heartbeat\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_db_request_duration_seconds_count{operation=\"heartbeat\"} 2\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_request_counts_as_a_request_and_an_error() {
        let (db, metrics) = counted();
        let failed: Result<(), DbError> = db
            .call("squelch", async { Err(DbError::Task("down".into())) })
            .await;
        assert!(failed.is_err());
        let text = metrics.render();
        assert!(
            text.contains("cimaa_db_requests_total{operation=\"squelch\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_db_errors_total{operation=\"squelch\"} 1\n"),
            "{text}"
        );
    }
}
