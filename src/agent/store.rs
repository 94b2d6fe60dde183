//! Where the agent's state goes: the `Writer` that writes each tick's
//! fault set off the tick's critical path, the `Bounded` database whose
//! every call gives up after the tick's budget (SPEC §6), and the
//! deregistration at a clean stop that keeps the open alerts (SPEC §9, §14).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use crate::db::{
    AgentFacts, AgentFault, Db, Error as DbError, Fault, Heartbeat, HistoryQuery, HistoryRecord,
    Notice, OpenAlert, SkippedRow, Squelch, StoppedAgent, TickWriteError,
};

/// Pause between two attempts to deregister.
const DEREGISTER_PAUSE: Duration = Duration::from_millis(200);
/// The most a database call may take, whatever the base interval.
const DB_CALL_MAX: Duration = Duration::from_secs(10);

/// How long one database call may take: half a base interval, so that the
/// squelch read and the alerts after it stay within the tick (SPEC §6).
pub(super) fn db_budget(base_interval: f64) -> Duration {
    Duration::try_from_secs_f64(base_interval / 2.0)
        .unwrap_or(DB_CALL_MAX)
        .min(DB_CALL_MAX)
}

/// Removes the agent from the database, keeping its `open` alerts (SPEC
/// §14), trying again (a lock held by another process, a blip) until
/// `within` runs out; then appends `history` (its last records, ending with
/// `deregistered`) in what is left of `within`.
pub(super) async fn deregister(
    db: &dyn Db,
    name: &str,
    open: &[OpenAlert],
    now: i64,
    within: Duration,
    history: &[HistoryRecord],
) {
    let deadline = tokio::time::Instant::now() + within;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match tokio::time::timeout_at(deadline, db.stop_agent(name, open, now)).await {
            Ok(Ok(())) => {
                match tokio::time::timeout_at(deadline, db.append_history(history)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(error = %e, records = history.len(), "cannot write the last history records");
                    }
                    Err(_) => {
                        warn!(
                            records = history.len(),
                            "the last history records did not fit in the stop's time"
                        );
                    }
                }
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if tokio::time::Instant::now() + DEREGISTER_PAUSE >= deadline {
            error!(error = %error, attempts, "cannot remove this agent from the database");
            return;
        }
        debug!(error = %error, attempts, "cannot remove this agent from the database yet; trying again");
        tokio::time::sleep(DEREGISTER_PAUSE).await;
    }
}

/// The fault set and time of one write.
type Snapshot = (Vec<Fault>, i64);

/// History records the writer holds at most while the database is down:
/// the oldest are dropped (and counted) beyond it.
pub(super) const HISTORY_BUFFER: usize = 10_000;

/// History records one write carries at most: a backlog left by an outage
/// drains chunk by chunk (each stored once, by its identity, whatever
/// happened to an earlier attempt), never in one write too big for the
/// write's time.
const HISTORY_CHUNK: usize = 500;

/// History records waiting for a write that succeeds (SPEC §12), each with
/// its sequence number, so that a success removes exactly what it wrote
/// even when the bound dropped some meanwhile.
#[derive(Debug, Default)]
struct HistoryQueue {
    records: VecDeque<(u64, HistoryRecord)>,
    next: u64,
    /// Records dropped so far: buffer full, or nowhere to store them.
    dropped: u64,
    /// Why the database cannot store history (e.g. a DynamoDB fleet of
    /// zc.cimaa days without the history table), until a write succeeds.
    unavailable: Option<String>,
}

impl HistoryQueue {
    fn push(&mut self, records: Vec<HistoryRecord>) {
        for mut record in records {
            // Its identity from now on: a retried write stores it once.
            record.id.get_or_insert_with(next_record_id);
            self.records.push_back((self.next, record));
            self.next += 1;
        }
        while self.records.len() > HISTORY_BUFFER {
            self.records.pop_front();
            self.dropped += 1;
        }
    }

    /// Removes the records up to sequence `last`, written or dropped.
    fn remove_through(&mut self, last: u64) {
        while self.records.front().is_some_and(|(seq, _)| *seq <= last) {
            self.records.pop_front();
        }
    }
}

/// A new history record identity, unique to this process and, since it
/// starts at the process's start time in nanoseconds, to its agent's later
/// runs.
fn next_record_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(1));
        let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What the agent reports about its history records (`AGENT#history`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct HistoryStatus {
    /// Records dropped since the start.
    pub(super) dropped: u64,
    /// Why the database does not take history records, while it does not.
    pub(super) unavailable: Option<String>,
}

/// Shared between the agent and its writer task.
type SharedHistory = Arc<Mutex<HistoryQueue>>;

fn lock(history: &SharedHistory) -> std::sync::MutexGuard<'_, HistoryQueue> {
    // Every change under the lock is a few queue operations: take it over.
    history.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The oldest records of the queue, at most `HISTORY_CHUNK`, and the
/// sequence number of the last of them (`None`: the queue is empty).
fn next_chunk(history: &SharedHistory) -> (Vec<HistoryRecord>, Option<u64>) {
    let queue = lock(history);
    let chunk: Vec<&(u64, HistoryRecord)> = queue.records.iter().take(HISTORY_CHUNK).collect();
    (
        chunk.iter().map(|(_, record)| record.clone()).collect(),
        chunk.last().map(|(seq, _)| *seq),
    )
}

/// Settles the queue after a write of its records up to `last`: written
/// ones leave it; they stay for the next write when the database failed,
/// and are dropped (counted) when it has nowhere to store them. Returns
/// whether the queue moved on.
fn settle(
    history: &SharedHistory,
    last: u64,
    written: Result<(), DbError>,
    records: usize,
) -> bool {
    match written {
        Ok(()) => {
            let mut queue = lock(history);
            queue.remove_through(last);
            queue.unavailable = None;
            true
        }
        Err(e @ (DbError::TableMissing { .. } | DbError::TableMismatch { .. })) => {
            let mut queue = lock(history);
            if queue.unavailable.is_none() {
                warn!(error = %e, "cannot store history records; the agent runs on without them");
            }
            let before = queue.records.len();
            queue.remove_through(last);
            queue.dropped += u64::try_from(before - queue.records.len()).unwrap_or(u64::MAX);
            queue.unavailable = Some(e.to_string());
            true
        }
        Err(e) => {
            warn!(error = %e, records, "cannot write history records; they go with the next write");
            false
        }
    }
}

/// Writes the agent's faults with the oldest records `history` holds
/// (`Db::write_tick`: in one transaction where the backend has them), and
/// settles the queue. Returns whether the faults were written.
async fn write_state(
    db: &dyn Db,
    agent: &str,
    (faults, now): &Snapshot,
    history: &SharedHistory,
) -> bool {
    let (records, last) = next_chunk(history);
    let written = match db.write_tick(agent, faults, *now, &records).await {
        Ok(()) => Ok(()),
        Err(TickWriteError::Faults(e)) => {
            error!(error = %e, "cannot write faults to the database; the next tick writes the full state again");
            return false;
        }
        Err(TickWriteError::History(e)) => Err(e),
    };
    if let Some(last) = last {
        settle(history, last, written, records.len());
    }
    true
}

/// Writes what is left of a backlog of records, a chunk at a time, until
/// the queue is empty, a write fails, or a newer state waits.
async fn drain_history(
    db: &dyn Db,
    history: &SharedHistory,
    newer: &watch::Receiver<Option<Snapshot>>,
) {
    // A closed channel (the agent's last write) drains the backlog whole.
    while !matches!(newer.has_changed(), Ok(true)) {
        let (records, last) = next_chunk(history);
        let Some(last) = last else {
            return;
        };
        let written = db.append_history(&records).await;
        if !settle(history, last, written, records.len()) {
            return;
        }
    }
}

/// Writes each tick's fault set off the tick's critical path.
///
/// The tick hands over its newest state and goes on. A write still in flight
/// when the next tick hands over is not doubled: the task writes once more,
/// with the newest state, when it is done (a `watch` keeps only that).
///
/// After a start that restored kept open alerts (SPEC §14), the first write
/// that succeeds is followed by removing the kept record: from then on the
/// alerts are in the stored faults. Until that removal succeeds it is tried
/// again after every write; a start in between restores them once more,
/// which at worst repeats a resolve.
pub(super) struct Writer {
    db: Arc<dyn Db>,
    agent: String,
    state: watch::Sender<Option<Snapshot>>,
    task: JoinHandle<()>,
    /// The kept open alerts are still to be removed.
    clear_kept: Arc<AtomicBool>,
    /// History records waiting for the next write.
    history: SharedHistory,
}

impl Writer {
    pub(super) fn spawn(db: Arc<dyn Db>, agent: &str, clear_kept: bool) -> Writer {
        let clear_kept = Arc::new(AtomicBool::new(clear_kept));
        let history = SharedHistory::default();
        let (state, task) = Writer::start(
            Arc::clone(&db),
            agent.to_owned(),
            Arc::clone(&clear_kept),
            Arc::clone(&history),
        );
        Writer {
            db,
            agent: agent.to_owned(),
            state,
            task,
            clear_kept,
            history,
        }
    }

    fn start(
        db: Arc<dyn Db>,
        agent: String,
        clear_kept: Arc<AtomicBool>,
        history: SharedHistory,
    ) -> (watch::Sender<Option<Snapshot>>, JoinHandle<()>) {
        let (state, mut receiver) = watch::channel(None::<Snapshot>);
        let task = tokio::spawn(async move {
            // Ends when the sender is gone and the last state is written.
            while receiver.changed().await.is_ok() {
                let Some(snapshot) = receiver.borrow_and_update().clone() else {
                    continue;
                };
                // History records only when there are some: none in steady state.
                if !write_state(db.as_ref(), &agent, &snapshot, &history).await {
                    continue;
                }
                drain_history(db.as_ref(), &history, &receiver).await;
                if clear_kept.load(Ordering::SeqCst) {
                    match db.clear_open_alerts(&agent).await {
                        Ok(()) => clear_kept.store(false, Ordering::SeqCst),
                        Err(e) => {
                            warn!(error = %e, "cannot remove the open alerts kept at the last stop; trying again after the next write");
                        }
                    }
                }
            }
        });
        (state, task)
    }

    /// Hands the newest state over, with the history records since the
    /// last write; starts the task again if it died.
    pub(super) fn write(&mut self, faults: Vec<Fault>, now: i64, history: Vec<HistoryRecord>) {
        if self.task.is_finished() {
            error!("the database writer stopped; starting it again");
            (self.state, self.task) = Writer::start(
                Arc::clone(&self.db),
                self.agent.clone(),
                Arc::clone(&self.clear_kept),
                Arc::clone(&self.history),
            );
        }
        self.queue(history);
        self.state.send_replace(Some((faults, now)));
    }

    /// Keeps history records for the next write (bounded).
    pub(super) fn queue(&self, history: Vec<HistoryRecord>) {
        if !history.is_empty() {
            lock(&self.history).push(history);
        }
    }

    /// How the history records fare: for `AGENT#history`.
    pub(super) fn history_status(&self) -> HistoryStatus {
        let queue = lock(&self.history);
        HistoryStatus {
            dropped: queue.dropped,
            unavailable: queue.unavailable.clone(),
        }
    }

    /// Waits up to `wait` for the last state to be written.
    pub(super) async fn finish(self, wait: Duration) {
        let Writer { state, task, .. } = self;
        drop(state);
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "the database writer failed"),
            Err(_) => error!("the last database write did not finish in time"),
        }
    }

    /// Removes the kept open alerts after the next write that succeeds
    /// (they were loaded late, see `Agent::reconcile`).
    pub(super) fn clear_kept(&self) {
        self.clear_kept.store(true, Ordering::SeqCst);
    }

    /// Cancels the write in flight, if any; returns the history records
    /// not written yet, for the deregistration to write.
    pub(super) fn cancel(self) -> Vec<HistoryRecord> {
        self.task.abort();
        lock(&self.history)
            .records
            .drain(..)
            .map(|(_, record)| record)
            .collect()
    }
}

/// A `Db` whose every call gives up after `budget`: a stuck database costs
/// the tick that much, never more (SPEC §6).
pub(super) struct Bounded {
    pub(super) inner: Arc<dyn Db>,
    pub(super) budget: Duration,
}

impl Bounded {
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        crate::db::within(operation, self.budget, call).await
    }
}

#[async_trait]
impl Db for Bounded {
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

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.inner.set_facts(agent, facts);
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

    async fn write_tick(
        &self,
        agent: &str,
        faults: &[Fault],
        now: i64,
        history: &[HistoryRecord],
    ) -> Result<(), TickWriteError> {
        let write = async { Ok(self.inner.write_tick(agent, faults, now, history).await) };
        // Given up: the next write carries the full state and the records.
        self.call("write_tick", write)
            .await
            .map_err(TickWriteError::Faults)?
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>, DbError> {
        self.call("history", self.inner.history(query)).await
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
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;
    use crate::db::MemoryDb;

    /// A memory database whose writes wait for `gate` and record their `now`.
    #[derive(Default)]
    struct GatedDb {
        inner: MemoryDb,
        gate: Notify,
        writes: Mutex<Vec<i64>>,
        /// The next history append stores its records, then fails (its
        /// answer lost on the way back).
        lose_history_answer: std::sync::atomic::AtomicBool,
        /// How many records each history append carried.
        appends: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Db for GatedDb {
        async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, DbError> {
            self.inner.get_faults(agent).await
        }

        async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), DbError> {
            self.writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(now);
            self.gate.notified().await;
            self.inner.set_faults(agent, faults, now).await
        }

        async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), DbError> {
            self.inner.heartbeat(agent, now).await
        }

        fn set_facts(&self, agent: &str, facts: AgentFacts) {
            self.inner.set_facts(agent, facts);
        }

        async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, DbError> {
            self.inner.list_faults(agent).await
        }

        async fn agents(&self) -> Result<Vec<Heartbeat>, DbError> {
            self.inner.agents().await
        }

        async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
            self.inner.old_agents(age, now).await
        }

        async fn get_squelch_details(&self) -> Result<Vec<Squelch>, DbError> {
            self.inner.get_squelch_details().await
        }

        async fn squelch(&self, squelch: &Squelch) -> Result<(), DbError> {
            self.inner.squelch(squelch).await
        }

        async fn unsquelch(&self, regex: &str) -> Result<bool, DbError> {
            self.inner.unsquelch(regex).await
        }

        async fn remove_agent(&self, agent: &str) -> Result<(), DbError> {
            self.inner.remove_agent(agent).await
        }

        async fn stop_agent(
            &self,
            agent: &str,
            open: &[OpenAlert],
            now: i64,
        ) -> Result<(), DbError> {
            self.inner.stop_agent(agent, open, now).await
        }

        async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, DbError> {
            self.inner.open_alerts(agent).await
        }

        async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, DbError> {
            self.inner.stopped_agents().await
        }

        async fn clear_open_alerts(&self, agent: &str) -> Result<(), DbError> {
            self.inner.clear_open_alerts(agent).await
        }

        async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, DbError> {
            self.inner.notices(names).await
        }

        async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, DbError> {
            self.inner.put_notice(notice, expected).await
        }

        async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, DbError> {
            self.inner.heartbeats_of(agents).await
        }

        async fn append_history(&self, records: &[HistoryRecord]) -> Result<(), DbError> {
            self.appends
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(records.len());
            self.inner.append_history(records).await?;
            if self.lose_history_answer.swap(false, Ordering::SeqCst) {
                return Err(DbError::Task("the answer was lost".into()));
            }
            Ok(())
        }

        async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>, DbError> {
            self.inner.history(query).await
        }
    }

    // See: #12. A history write whose records were stored but whose answer
    // was lost is retried with the next write: each record is stored once.
    #[tokio::test]
    async fn history_retried_after_a_lost_answer_is_stored_once() {
        use crate::history::{Event, Query, Record};
        let db = Arc::new(GatedDb::default());
        db.lose_history_answer.store(true, Ordering::SeqCst);
        let mut writer = Writer::spawn(db.clone(), "web1", false);
        let record = |time, event| Record::new(time, "web1", "//web1/app/disk", event);

        writer.write(
            Vec::new(),
            60,
            vec![record(60, Event::Triggered), record(60, Event::Delivered)],
        );
        db.gate.notify_one();
        tokio::task::yield_now().await;
        writer.write(Vec::new(), 120, vec![record(120, Event::Resolved)]);
        db.gate.notify_one();
        writer.finish(Duration::from_secs(5)).await;

        let stored = db.inner.history(&Query::recent(0, 200, 10)).await.unwrap();
        assert_eq!(
            stored,
            [
                record(120, Event::Resolved),
                record(60, Event::Delivered),
                record(60, Event::Triggered),
            ]
        );
    }

    // See: #12. A backlog (an outage's records) goes out in chunks, each a
    // write of its own, right after the state: none too big for its time.
    #[tokio::test]
    async fn a_history_backlog_drains_in_chunks_after_the_state() {
        use crate::history::{Event, Query, Record};
        let db = Arc::new(GatedDb::default());
        let mut writer = Writer::spawn(db.clone(), "web1", false);
        let backlog: Vec<Record> = (0..1_200)
            .map(|i| Record::new(i, "web1", "//web1/app/disk", Event::Triggered))
            .collect();

        writer.write(Vec::new(), 60, backlog);
        db.gate.notify_one();
        writer.finish(Duration::from_secs(5)).await;

        assert_eq!(*db.appends.lock().unwrap(), [500, 500, 200]);
        let stored = db
            .inner
            .history(&Query::recent(0, 2_000, 2_000))
            .await
            .unwrap();
        assert_eq!(stored.len(), 1_200);
    }

    // See: #18
    #[tokio::test]
    async fn a_write_in_flight_is_not_doubled_and_the_next_carries_the_newest_state() {
        let db = Arc::new(GatedDb::default());
        let mut writer = Writer::spawn(db.clone(), "web1", false);

        writer.write(Vec::new(), 60, Vec::new());
        tokio::task::yield_now().await;
        writer.write(Vec::new(), 120, Vec::new());
        writer.write(Vec::new(), 180, Vec::new());
        db.gate.notify_one();
        tokio::task::yield_now().await;
        db.gate.notify_one();
        writer.finish(Duration::from_secs(5)).await;

        assert_eq!(*db.writes.lock().unwrap(), [60, 180]);
        assert_eq!(db.inner.agents().await.unwrap()[0].updated, 180);
    }
}
