//! Metric sinks and the bounded buffer in front of them (SPEC §7).
//!
//! Owns the metric record, the `Sink` trait, the `metrics:` configuration enum
//! and `build()`, and `MetricBuffer`: checks push records without ever
//! waiting; a background task drains the buffer into the sink in order,
//! retrying with backoff while the sink fails. Only when the buffer is full
//! are the oldest records dropped, and the drops are counted and logged.

pub(crate) mod log;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::Notify;

pub use log::LogSink;

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

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write metrics to `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes batches of metrics somewhere.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Writes the whole batch, or fails and writes none that must be retried.
    async fn send(&self, batch: &[MetricRecord]) -> Result<(), Error>;
}

/// `metrics:` section.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkConfig {
    Log(LogConfig),
}

impl SinkConfig {
    /// The `type:` values the configuration accepts.
    pub const TYPES: &'static [&'static str] = &["log"];

    /// How many records may wait for the sink.
    #[must_use]
    pub fn buffer_size(&self) -> usize {
        match self {
            SinkConfig::Log(log) => log.buffer_size,
        }
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

fn default_buffer_size() -> usize {
    100_000
}

/// Builds the configured sink.
#[must_use]
pub fn build(config: &SinkConfig) -> Arc<dyn Sink> {
    match config {
        SinkConfig::Log(log) => Arc::new(LogSink::new(log)),
    }
}

/// Most records handed to a sink in one call.
const BATCH: usize = 500;
/// Backoff bounds while the sink fails.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

struct Shared {
    queue: Mutex<VecDeque<MetricRecord>>,
    capacity: usize,
    dropped: AtomicU64,
    wake: Notify,
}

/// A bounded queue in front of a sink, drained by its own task.
///
/// Cloning shares the queue. The drain task stops when `close` is called.
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
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            wake: Notify::new(),
        });
        let buffer = MetricBuffer { shared };
        let task = tokio::spawn(drain(buffer.clone(), sink));
        (buffer, task)
    }

    /// Queues records without waiting; drops the oldest when full.
    pub fn push(&self, records: impl IntoIterator<Item = MetricRecord>) {
        let mut dropped = 0u64;
        {
            let mut queue = lock(&self.shared.queue);
            for record in records {
                if queue.len() >= self.shared.capacity {
                    queue.pop_front();
                    dropped += 1;
                }
                queue.push_back(record);
            }
        }
        if dropped > 0 {
            let total = self.shared.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            tracing::warn!(
                dropped,
                total,
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

    /// Records waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits (at most `deadline`) until the queue is empty.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let wait = async {
            while !self.is_empty() {
                self.shared.wake.notify_one();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a queue of plain records, which
    // stays valid, so keep using it rather than propagating the poison.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn drain(buffer: MetricBuffer, sink: Arc<dyn Sink>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let batch: Vec<MetricRecord> = {
            let queue = lock(&buffer.shared.queue);
            queue.iter().take(BATCH).cloned().collect()
        };
        if batch.is_empty() {
            buffer.shared.wake.notified().await;
            continue;
        }
        match sink.send(&batch).await {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                let mut queue = lock(&buffer.shared.queue);
                // Records dropped for room while we were sending may have
                // shifted the queue; remove the sent ones by identity of order.
                let sent = batch.len().min(queue.len());
                let still_front = queue
                    .iter()
                    .take(sent)
                    .zip(&batch)
                    .all(|(queued, sent)| queued == sent);
                if still_front {
                    queue.drain(..sent);
                } else {
                    queue.retain(|record| !batch.contains(record));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, retry_in = ?backoff, "metric sink failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
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
        async fn send(&self, batch: &[MetricRecord]) -> Result<(), Error> {
            lock(&self.0).extend_from_slice(batch);
            Ok(())
        }
    }

    fn record(i: usize) -> MetricRecord {
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
            async fn send(&self, _: &[MetricRecord]) -> Result<(), Error> {
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

    #[test]
    fn records_serialize_with_iso8601_utc_timestamps() {
        let json = serde_json::to_string(&record(1)).unwrap();
        assert_eq!(
            json,
            r#"{"timestamp":"2023-11-14T22:13:20Z","name":"//a/b/c#m1","value":1.0,"units":""}"#
        );
    }
}
