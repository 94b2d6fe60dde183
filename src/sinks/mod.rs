//! Metric sinks and the bounded buffer in front of them (SPEC §7).
//!
//! Owns the metric record, the `Sink` trait, the `metrics:` configuration enum
//! with its pure `validate()` and async `build()`, and `MetricBuffer`: checks
//! push records without ever waiting; a background task drains the buffer
//! into the sink in order, retrying with capped, jittered exponential backoff
//! while the sink fails. Only when the buffer is full are the oldest records
//! dropped; the drops are counted (`MetricBuffer::dropped`, which the agent
//! turns into the `AGENT#metrics` fault) and logged.
//!
//! A sink may write part of a batch (Kinesis PutRecords does): `send` then
//! says which records are done, the buffer removes exactly those and resends
//! only the others, after its backoff. So the buffer is the one place that
//! retries and backs off, a flush at exit can cut a backoff short, and a
//! record the sink reported written is never sent again. The rejected
//! alternative, a sink that loops inside `send` until its whole batch is in,
//! hides its retries from the buffer and stays inside `send` for as long as
//! the stream is down.

pub(crate) mod kinesis;
pub(crate) mod log;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::Notify;

use crate::retry::Backoff;

pub(crate) use kinesis::KinesisSink;
pub(crate) use log::LogSink;

/// One metric sample, as sinks receive and write it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricRecord {
    /// When the value was measured (ISO 8601 UTC on the wire).
    #[serde(serialize_with = "iso8601")]
    pub timestamp: DateTime<Utc>,
    /// Check name + `#` + metric name.
    pub name: String,
    pub value: f64,
    pub units: String,
}

fn iso8601<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// An error from inside the AWS SDK, kept whole for the `Caused by` chain.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why records were not written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write metrics to `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A whole PutRecords call failed: nothing of it was written.
    #[error("cannot put records into Kinesis stream `{stream}`")]
    KinesisCall {
        stream: String,
        #[source]
        source: BoxError,
    },
    /// PutRecords succeeded but refused some entries (FailedRecordCount > 0).
    #[error(
        "Kinesis stream `{stream}` refused {failed} of {total} records (first: `{code}`: {message})"
    )]
    KinesisRefused {
        stream: String,
        failed: usize,
        total: usize,
        code: String,
        message: String,
    },
    /// The healthcheck could not describe the stream.
    #[error("cannot reach Kinesis stream `{stream}`")]
    KinesisDescribe {
        stream: String,
        #[source]
        source: BoxError,
    },
    /// The stream exists but cannot take records now.
    #[error("Kinesis stream `{stream}` is `{status}`, not `ACTIVE` or `UPDATING`")]
    KinesisNotActive { stream: String, status: String },
    #[error(
        "no AWS region for the Kinesis sink: set `metrics.region` or the `AWS_REGION` environment variable"
    )]
    KinesisRegion,
}

/// A batch that was not (entirely) written.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong (for the first records that failed).
    pub error: Error,
    /// Positions in the batch of the records that must not be sent again:
    /// written, or refused for good (the sink logged those).
    pub done: Vec<usize>,
}

impl From<Error> for SendError {
    /// Nothing of the batch was written.
    fn from(error: Error) -> Self {
        SendError {
            error,
            done: Vec::new(),
        }
    }
}

/// Writes batches of metrics somewhere.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Writes the batch.
    ///
    /// # Errors
    /// When some records were not written: `SendError::done` lists the ones
    /// that were (or that must be given up), the buffer resends the others.
    async fn send(&self, batch: &[MetricRecord]) -> Result<(), SendError>;

    /// Checks that the destination exists and answers (`cimaa validate
    /// --healthchecks`, and a warning at agent start).
    ///
    /// # Errors
    /// When it cannot be reached or cannot take records.
    async fn healthcheck(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// `metrics:` section.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkConfig {
    Log(LogConfig),
    Kinesis(KinesisConfig),
}

impl SinkConfig {
    /// The `type:` values the configuration accepts.
    pub const TYPES: &'static [&'static str] = &["log", "kinesis"];

    /// How many records may wait for the sink.
    #[must_use]
    pub fn buffer_size(&self) -> usize {
        match self {
            SinkConfig::Log(log) => log.buffer_size,
            SinkConfig::Kinesis(kinesis) => kinesis.buffer_size,
        }
    }

    /// Every problem of the section, each naming its key (`metrics.stream:
    /// ...`). Pure: reaches nothing.
    #[must_use]
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.buffer_size() == 0 {
            problems.push("metrics.buffer_size: must be at least 1".to_string());
        }
        if let SinkConfig::Kinesis(kinesis) = self {
            problems.extend(kinesis.validate());
        }
        problems
    }
}

/// `metrics: {type: log}`: JSON lines to the log (target `metrics`) or a file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Append JSON lines here instead of logging them.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Records that may wait while the sink is slow or failing.
    #[serde(default = "default_buffer_size")]
    pub buffer_size: usize,
}

/// `metrics: {type: kinesis}`: one record per metric (the JSON of
/// `MetricRecord`) into a Kinesis data stream, with PutRecords.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    /// Name of the stream (it must exist; cimaa does not create it).
    pub stream: String,
    /// AWS region of the stream (default: the standard AWS chain, e.g. `AWS_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    /// Send requests here instead of the region's Kinesis endpoint (a VPC
    /// endpoint, a local Kinesis for tests). An absolute http(s) URL,
    /// checked as the file is read (`http_url`).
    #[serde(default, deserialize_with = "crate::http_url::deserialize_option")]
    pub endpoint_url: Option<String>,
    /// Partition key of every record (default: the record's `name`, so each
    /// metric stays on one shard, in order).
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Decimal 128-bit hash key that picks the shard instead of the MD5 of
    /// the partition key.
    #[serde(default)]
    pub explicit_hash_key: Option<String>,
    /// Records that may wait while the stream is slow or down; beyond it the
    /// oldest are dropped.
    #[serde(default = "default_buffer_size")]
    pub buffer_size: usize,
}

fn default_buffer_size() -> usize {
    100_000
}

/// Builds the configured sink (for Kinesis: the AWS configuration and client;
/// nothing is sent yet).
///
/// # Errors
/// When the Kinesis sink has no region.
pub async fn build(config: &SinkConfig) -> Result<Arc<dyn Sink>, Error> {
    Ok(match config {
        SinkConfig::Log(log) => Arc::new(LogSink::new(log)),
        SinkConfig::Kinesis(kinesis) => Arc::new(KinesisSink::build(kinesis).await?),
    })
}

/// Most records handed to a sink in one call (PutRecords takes at most 500).
const BATCH: usize = 500;
/// Pauses while the sink fails, retried for as long as it takes. The cap
/// keeps the delay after an outage short; one failing request every few
/// seconds costs nothing.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(200),
    cap: Duration::from_secs(10),
    attempts: u32::MAX,
};

/// A queued record and its place in the order of pushes.
struct Queued {
    seq: u64,
    record: MetricRecord,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Queued>,
    next_seq: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    dropped: AtomicU64,
    /// Records the sink took.
    sent: AtomicU64,
    /// Records were pushed (or a flush waits).
    wake: Notify,
    /// A flush is waiting: retry at once instead of sleeping a long backoff.
    flushing: AtomicBool,
    hurry: Notify,
}

/// A bounded queue in front of a sink, drained by its own task.
///
/// Cloning shares the queue. The drain task runs until its handle is aborted.
#[derive(Clone)]
pub struct MetricBuffer {
    shared: Arc<Shared>,
}

impl MetricBuffer {
    /// Creates the buffer and spawns the task that feeds `sink`.
    #[must_use]
    pub fn spawn(
        sink: Arc<dyn Sink>,
        capacity: usize,
    ) -> (MetricBuffer, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            wake: Notify::new(),
            flushing: AtomicBool::new(false),
            hurry: Notify::new(),
        });
        let buffer = MetricBuffer { shared };
        let task = tokio::spawn(supervise(buffer.clone(), sink));
        (buffer, task)
    }

    /// Queues records without waiting; drops the oldest when full.
    pub fn push(&self, records: impl IntoIterator<Item = MetricRecord>) {
        let mut dropped = 0u64;
        {
            let mut queue = lock(&self.shared.queue);
            for record in records {
                if queue.items.len() >= self.shared.capacity {
                    queue.items.pop_front();
                    dropped += 1;
                }
                let seq = queue.next_seq;
                queue.next_seq += 1;
                queue.items.push_back(Queued { seq, record });
            }
        }
        if dropped > 0 {
            let total = self.shared.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            tracing::warn!(
                dropped,
                total,
                capacity = self.shared.capacity,
                "metric buffer full: dropped the oldest metrics"
            );
        }
        self.shared.wake.notify_one();
    }

    /// Records dropped so far because the buffer was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Records the sink took so far.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Records waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.shared.queue).items.len()
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits (at most `deadline`) until the queue is empty; meanwhile a
    /// failing sink is retried without the long backoff. Returns whether
    /// everything went out.
    pub async fn flush(&self, deadline: Duration) -> bool {
        self.shared.flushing.store(true, Ordering::Relaxed);
        self.shared.hurry.notify_one();
        let wait = async {
            while !self.is_empty() {
                self.shared.wake.notify_one();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let flushed = tokio::time::timeout(deadline, wait).await.is_ok();
        self.shared.flushing.store(false, Ordering::Relaxed);
        flushed
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a queue of plain records, which
    // stays valid, so keep using it rather than propagating the poison.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the records whose `seq` is in `sent` (ascending). They were taken
/// from the front; since then pushes only appended and drops only popped the
/// front, so what is left of them is still a prefix of the queue.
fn remove_sent(queue: &mut VecDeque<Queued>, sent: &[u64]) {
    let Some(&last) = sent.last() else {
        return;
    };
    let mut kept = Vec::new();
    let mut sent = sent.iter().peekable();
    while queue.front().is_some_and(|item| item.seq <= last) {
        let Some(item) = queue.pop_front() else {
            break;
        };
        while sent.next_if(|&&seq| seq < item.seq).is_some() {}
        if sent.next_if(|&&seq| seq == item.seq).is_none() {
            kept.push(item);
        }
    }
    for item in kept.into_iter().rev() {
        queue.push_front(item);
    }
}

/// Pause before a drain task that panicked starts again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Runs the drain task and starts it again after a panic: a bug in a sink
/// must not stop metrics for the rest of the agent's life, and no task may
/// die silently. The batch in flight is still queued (records leave the
/// queue only once written), so it is sent again. Aborting this task aborts
/// the drain task with it.
async fn supervise(buffer: MetricBuffer, sink: Arc<dyn Sink>) {
    loop {
        let mut task = AbortOnDrop(tokio::spawn(drain(buffer.clone(), Arc::clone(&sink))));
        match (&mut task.0).await {
            Err(error) if error.is_panic() => {
                tracing::error!(error = %error, restart_in = ?RESTART_PAUSE, "metric sink task panicked; starting it again");
                tokio::time::sleep(RESTART_PAUSE).await;
            }
            Ok(()) | Err(_) => return,
        }
    }
}

/// A task handle that aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn drain(buffer: MetricBuffer, sink: Arc<dyn Sink>) {
    let shared = &buffer.shared;
    if let Err(e) = sink.healthcheck().await {
        tracing::warn!(error = %crate::error::chain(&e), "metric sink healthcheck failed; metrics wait in the buffer until the sink works");
    }
    let mut retry = BACKOFF.start(None);
    let mut failing = false;
    loop {
        let (seqs, batch): (Vec<u64>, Vec<MetricRecord>) = {
            let queue = lock(&shared.queue);
            queue
                .items
                .iter()
                .take(BATCH)
                .map(|item| (item.seq, item.record.clone()))
                .unzip()
        };
        if batch.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        match sink.send(&batch).await {
            Ok(()) => {
                remove_sent(&mut lock(&shared.queue).items, &seqs);
                shared.sent.fetch_add(seqs.len() as u64, Ordering::Relaxed);
                if failing {
                    tracing::info!("metric sink works again");
                }
                failing = false;
                retry.reset();
            }
            Err(SendError { error, mut done }) => {
                done.sort_unstable();
                done.dedup();
                let sent: Vec<u64> = done.iter().filter_map(|&i| seqs.get(i).copied()).collect();
                let resend = batch.len() - sent.len();
                shared.sent.fetch_add(sent.len() as u64, Ordering::Relaxed);
                let waiting = {
                    let mut queue = lock(&shared.queue);
                    remove_sent(&mut queue.items, &sent);
                    queue.items.len()
                };
                let flushing = shared.flushing.load(Ordering::Relaxed);
                let backoff = retry.next_delay().unwrap_or(BACKOFF.cap);
                let pause = if flushing { BACKOFF.first } else { backoff };
                let error = crate::error::chain(&error);
                // The first failure of a run goes to Sentry; repeats only to
                // the log, and the quick retries of a flush at exit to debug.
                if failing && flushing {
                    tracing::debug!(error = %error, resend, waiting, retry_in = ?pause, "metric sink still failing");
                } else if failing {
                    tracing::warn!(error = %error, resend, waiting, retry_in = ?pause, "metric sink still failing");
                } else {
                    tracing::error!(error = %error, resend, waiting, retry_in = ?pause, "metric sink failed");
                }
                failing = true;
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shared.hurry.notified() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recording(Mutex<Vec<MetricRecord>>);

    #[async_trait]
    impl Sink for Recording {
        async fn send(&self, batch: &[MetricRecord]) -> Result<(), SendError> {
            lock(&self.0).extend_from_slice(batch);
            Ok(())
        }
    }

    pub(crate) fn record(i: usize) -> MetricRecord {
        MetricRecord {
            timestamp: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            name: format!("//a/b/c#m{i}"),
            value: 1.0,
            units: String::new(),
        }
    }

    #[tokio::test]
    async fn a_full_buffer_drops_the_oldest_records_and_counts_them() {
        struct Stuck;
        #[async_trait]
        impl Sink for Stuck {
            async fn send(&self, _: &[MetricRecord]) -> Result<(), SendError> {
                std::future::pending().await
            }
        }
        let (buffer, task) = MetricBuffer::spawn(Arc::new(Stuck), 3);
        buffer.push((0..5).map(record));
        assert_eq!(buffer.dropped(), 2);
        assert_eq!(buffer.len(), 3);
        task.abort();
    }

    #[tokio::test]
    async fn records_reach_the_sink_in_order() {
        let sink = Arc::new(Recording(Mutex::new(Vec::new())));
        let (buffer, task) = MetricBuffer::spawn(sink.clone(), 100);
        buffer.push((0..10).map(record));
        assert!(buffer.flush(Duration::from_secs(5)).await);
        let got = lock(&sink.0).clone();
        assert_eq!(got, (0..10).map(record).collect::<Vec<_>>());
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_that_panics_is_started_again_and_loses_nothing() {
        struct PanicsOnce {
            calls: AtomicU64,
            written: Mutex<Vec<MetricRecord>>,
        }
        #[async_trait]
        impl Sink for PanicsOnce {
            async fn send(&self, batch: &[MetricRecord]) -> Result<(), SendError> {
                assert!(
                    self.calls.fetch_add(1, Ordering::Relaxed) > 0,
                    "a bug in the sink"
                );
                lock(&self.written).extend_from_slice(batch);
                Ok(())
            }
        }
        let sink = Arc::new(PanicsOnce {
            calls: AtomicU64::new(0),
            written: Mutex::new(Vec::new()),
        });
        let (buffer, task) = MetricBuffer::spawn(sink.clone(), 100);
        buffer.push((0..4).map(record));
        assert!(buffer.flush(Duration::from_mins(1)).await);
        assert_eq!(*lock(&sink.written), (0..4).map(record).collect::<Vec<_>>());
        task.abort();
    }

    /// Writes the records whose number is even on the first call, then all.
    struct HalfThenAll {
        calls: Mutex<Vec<Vec<MetricRecord>>>,
    }

    #[async_trait]
    impl Sink for HalfThenAll {
        async fn send(&self, batch: &[MetricRecord]) -> Result<(), SendError> {
            let mut calls = lock(&self.calls);
            calls.push(batch.to_vec());
            if calls.len() > 1 {
                return Ok(());
            }
            Err(SendError {
                error: Error::KinesisRefused {
                    stream: "s".into(),
                    failed: batch.len() / 2,
                    total: batch.len(),
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "slow down".into(),
                },
                done: (0..batch.len()).step_by(2).collect(),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_records_a_sink_did_not_write_are_resent() {
        let sink = Arc::new(HalfThenAll {
            calls: Mutex::new(Vec::new()),
        });
        let (buffer, task) = MetricBuffer::spawn(sink.clone(), 100);
        buffer.push((0..6).map(record));
        assert!(buffer.flush(Duration::from_mins(1)).await);
        let calls = lock(&sink.calls).clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0], (0..6).map(record).collect::<Vec<_>>());
        assert_eq!(calls[1], [1, 3, 5].map(record));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn sent_counts_each_record_the_sink_took_once() {
        let sink = Arc::new(HalfThenAll {
            calls: Mutex::new(Vec::new()),
        });
        let (buffer, task) = MetricBuffer::spawn(sink.clone(), 100);
        buffer.push((0..6).map(record));
        assert!(buffer.flush(Duration::from_mins(1)).await);
        // Three in the half-written batch, the other three on the retry.
        assert_eq!(buffer.sent(), 6);
        assert_eq!(buffer.dropped(), 0);
        task.abort();
    }

    #[test]
    fn removing_sent_records_keeps_the_others_in_order() {
        let queued = |seqs: &[u64]| -> VecDeque<Queued> {
            seqs.iter()
                .map(|&seq| Queued {
                    seq,
                    record: record(0),
                })
                .collect()
        };
        let seqs = |queue: &VecDeque<Queued>| queue.iter().map(|q| q.seq).collect::<Vec<_>>();
        // (queue, sent, left)
        let cases: &[(&[u64], &[u64], &[u64])] = &[
            (&[0, 1, 2, 3], &[0, 1], &[2, 3]),
            (&[0, 1, 2, 3], &[1, 3], &[0, 2]),
            (&[0, 1, 2, 3], &[], &[0, 1, 2, 3]),
            // 0 and 1 were dropped for room while the batch was out.
            (&[2, 3, 4], &[0, 1, 2], &[3, 4]),
            (&[5, 6], &[0, 2, 4], &[5, 6]),
        ];
        for (queue, sent, left) in cases {
            let mut queue = queued(queue);
            remove_sent(&mut queue, sent);
            assert_eq!(seqs(&queue), *left, "sent {sent:?}");
        }
    }

    #[test]
    fn records_serialize_with_iso8601_utc_timestamps() {
        let json = serde_json::to_string(&record(1)).unwrap();
        assert_eq!(
            json,
            r#"{"timestamp":"2023-11-14T22:13:20Z","name":"//a/b/c#m1","value":1.0,"units":""}"#
        );
    }
}
