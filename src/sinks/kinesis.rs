//! `kinesis` sink: metrics into an Amazon Kinesis data stream (SPEC §7,
//! PROTOCOLS §5).
//!
//! Each metric becomes one record: its `MetricRecord` JSON, partition key
//! the metric's name (so a metric stays on one shard and in order there)
//! unless `partition_key` is set, and `explicit_hash_key` when configured.
//! `send` packs a batch into PutRecords calls of at most 500 entries and
//! 5 MiB, and reports back to the buffer which entries are in: a call can
//! succeed with `FailedRecordCount > 0`, and only the entries whose result
//! carries an `ErrorCode` are left for the buffer to resend (matched by
//! position, after its jittered backoff; see `sinks` for why the buffer and
//! not this sink loops). A whole call that fails wrote nothing we know of and
//! is resent whole: at-least-once, so a call lost in flight may duplicate one
//! batch.
//!
//! Which whole-call errors are retried: all but the ones that say the request
//! itself is malformed (`InvalidArgumentException`, `ValidationException`,
//! `SerializationException`), whose records could never be written and are
//! dropped and logged. Throttling, 5xx, network errors, and also a missing
//! stream, denied access or expired credentials are retried: an operator can
//! fix those, the metrics wait in the bounded buffer meanwhile, and if it
//! fills, the `AGENT#metrics` fault says so. Records we know Kinesis would
//! refuse are never sent: one over 1 MiB is dropped and logged, a name longer
//! than the 256-character partition key limit is shortened to a stable key.
//!
//! The AWS calls sit behind the narrow `Api` seam (PutRecords and the stream
//! status), so the batching and partial-failure logic is tested with a fake;
//! the SDK side of the seam is tested with `aws-smithy-mocks`. The SDK's own
//! retries are off: the buffer is the one place that retries.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use sha2::{Digest, Sha256};

use super::{BoxError, Error, KinesisConfig, MetricRecord, SendError, Sink};
use crate::aws;

/// PutRecords limits (PROTOCOLS §5).
const MAX_ENTRIES: usize = 500;
const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// Data plus partition key of one entry.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Characters of a long name kept in its shortened partition key; with `#`
/// and 64 hex digits of its SHA-256 the key stays under 256.
const SHORT_KEY_PREFIX_CHARS: usize = 190;
/// Whole-call error codes that say the request can never succeed.
const INVALID_REQUEST_CODES: &[&str] = &[
    "InvalidArgumentException",
    "ValidationException",
    "SerializationException",
];

/// A dead endpoint must not hold the drain task for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One PutRecords entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) data: Vec<u8>,
    pub(crate) partition_key: String,
    pub(crate) explicit_hash_key: Option<String>,
}

impl Entry {
    /// What counts against the 1 MiB and 5 MiB limits.
    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Why Kinesis refused one entry of a call that succeeded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EntryError {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// A whole call that failed.
#[derive(Debug)]
pub(crate) struct CallError {
    /// False when the request is malformed and would fail again.
    pub(crate) retry: bool,
    pub(crate) source: BoxError,
}

/// The AWS calls the sink makes; faked in tests.
#[async_trait]
pub(crate) trait Api: Send + Sync {
    /// One PutRecords call: for each entry, in order, `None` when written or
    /// the error Kinesis gave it.
    async fn put_records(
        &self,
        stream: &str,
        entries: &[Entry],
    ) -> Result<Vec<Option<EntryError>>, CallError>;

    /// The stream's status (`ACTIVE`, `CREATING`, ...).
    async fn stream_status(&self, stream: &str) -> Result<String, BoxError>;
}

/// Whether a whole-call error with this code is worth retrying.
fn retryable(code: Option<&str>) -> bool {
    !code.is_some_and(|code| INVALID_REQUEST_CODES.contains(&code))
}

/// `Api` on the AWS SDK client.
pub(crate) struct SdkApi {
    client: aws_sdk_kinesis::Client,
    /// Where the client sends requests, for error messages.
    target: aws::Target,
}

impl SdkApi {
    /// `client`'s calls; `endpoint_url` is the configured endpoint, if any
    /// (the SDK's configuration does not say).
    pub(crate) fn new(client: aws_sdk_kinesis::Client, endpoint_url: Option<&str>) -> SdkApi {
        let target = aws::Target {
            service: "Kinesis",
            prefix: "kinesis",
            section: "metrics",
            endpoint_url: endpoint_url.map(str::to_string),
            region: client.config().region().map(ToString::to_string),
        };
        SdkApi { client, target }
    }

    /// An SDK error as one sentence with a hint (`aws::describe`), kept as
    /// the cause of the sink's error.
    fn describe<E>(&self, error: &SdkError<E, HttpResponse>) -> BoxError
    where
        E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        aws::describe(error, &self.target).into()
    }
}

#[async_trait]
impl Api for SdkApi {
    async fn put_records(
        &self,
        stream: &str,
        entries: &[Entry],
    ) -> Result<Vec<Option<EntryError>>, CallError> {
        let mut request = self.client.put_records().stream_name(stream);
        for entry in entries {
            let built = PutRecordsRequestEntry::builder()
                .data(Blob::new(entry.data.clone()))
                .partition_key(entry.partition_key.clone())
                .set_explicit_hash_key(entry.explicit_hash_key.clone())
                .build()
                .map_err(|e| CallError {
                    retry: false,
                    source: e.into(),
                })?;
            request = request.records(built);
        }
        match request.send().await {
            Ok(output) => {
                let results = output.records();
                Ok((0..entries.len())
                    .map(|i| match results.get(i) {
                        // A result without an error code is a written record.
                        Some(result) => result.error_code().map(|code| EntryError {
                            code: code.to_string(),
                            message: result.error_message().unwrap_or_default().to_string(),
                        }),
                        None => Some(EntryError {
                            code: "MissingResult".into(),
                            message: format!(
                                "PutRecords answered {} results for {} records",
                                results.len(),
                                entries.len()
                            ),
                        }),
                    })
                    .collect())
            }
            Err(error) => {
                let invalid = matches!(
                    error.as_service_error(),
                    Some(PutRecordsError::InvalidArgumentException(_))
                );
                Err(CallError {
                    retry: !invalid && retryable(error.code()),
                    source: self.describe(&error),
                })
            }
        }
    }

    async fn stream_status(&self, stream: &str) -> Result<String, BoxError> {
        let output = self
            .client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| self.describe(&e))?;
        Ok(output
            .stream_description_summary()
            .map(|summary| summary.stream_status().as_str().to_string())
            .unwrap_or_default())
    }
}

/// Writes metrics into a Kinesis data stream.
pub(crate) struct KinesisSink {
    api: Arc<dyn Api>,
    stream: String,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

impl KinesisSink {
    /// Loads the AWS configuration (credentials from the standard chain) and
    /// makes the client; sends nothing.
    ///
    /// # Errors
    /// When no region is configured or found in the environment.
    pub(crate) async fn build(config: &KinesisConfig) -> Result<KinesisSink, Error> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(CALL_TIMEOUT)
                    .build(),
            );
        // `region(None)` would override the default chain with nothing.
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(Error::KinesisRegion);
        }
        let client = aws_sdk_kinesis::Client::new(&sdk);
        let api = SdkApi::new(client, config.endpoint_url.as_deref());
        Ok(KinesisSink::with_api(Arc::new(api), config))
    }

    /// A sink that makes its calls through `api`.
    pub(crate) fn with_api(api: Arc<dyn Api>, config: &KinesisConfig) -> KinesisSink {
        KinesisSink {
            api,
            stream: config.stream.clone(),
            partition_key: config.partition_key.clone(),
            explicit_hash_key: config.explicit_hash_key.clone(),
        }
    }

    /// The entry for one record.
    fn entry(&self, record: &MetricRecord) -> Result<Entry, serde_json::Error> {
        let partition_key = match &self.partition_key {
            Some(key) => key.clone(),
            None => partition_key(&record.name).into_owned(),
        };
        Ok(Entry {
            data: serde_json::to_vec(record)?,
            partition_key,
            explicit_hash_key: self.explicit_hash_key.clone(),
        })
    }
}

/// A record name as a partition key: itself when it fits in 256 characters,
/// else its first 190 characters, `#` and the SHA-256 of the whole name, so
/// that a long name still maps to one key of its own.
fn partition_key(name: &str) -> Cow<'_, str> {
    if name.is_empty() {
        return Cow::Borrowed("-");
    }
    if name.chars().count() <= MAX_PARTITION_KEY_CHARS {
        return Cow::Borrowed(name);
    }
    let mut key: String = name.chars().take(SHORT_KEY_PREFIX_CHARS).collect();
    key.push('#');
    for byte in Sha256::digest(name.as_bytes()) {
        let _ = write!(key, "{byte:02x}");
    }
    Cow::Owned(key)
}

/// Splits entries of these sizes into consecutive PutRecords calls of at
/// most 500 entries and 5 MiB.
fn calls(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut calls = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_REQUEST_BYTES) {
            calls.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        calls.push(start..sizes.len());
    }
    calls
}

#[async_trait]
impl Sink for KinesisSink {
    async fn send(&self, batch: &[MetricRecord]) -> Result<(), SendError> {
        let mut done = Vec::new();
        let mut positions = Vec::with_capacity(batch.len());
        let mut entries = Vec::with_capacity(batch.len());
        for (position, record) in batch.iter().enumerate() {
            match self.entry(record) {
                Ok(entry) if entry.size() <= MAX_RECORD_BYTES => {
                    positions.push(position);
                    entries.push(entry);
                }
                Ok(entry) => {
                    tracing::error!(metric = %record.name, bytes = entry.size(), "metric record over Kinesis's 1 MiB limit: dropped");
                    done.push(position);
                }
                Err(e) => {
                    tracing::error!(metric = %record.name, error = %e, "cannot encode metric record: dropped");
                    done.push(position);
                }
            }
        }
        let sizes: Vec<usize> = entries.iter().map(Entry::size).collect();
        for call in calls(&sizes) {
            let call_positions = &positions[call.clone()];
            match self.api.put_records(&self.stream, &entries[call]).await {
                Ok(results) => {
                    let mut failed = 0;
                    let mut first: Option<EntryError> = None;
                    for (k, &position) in call_positions.iter().enumerate() {
                        match results.get(k) {
                            Some(None) => done.push(position),
                            Some(Some(error)) => {
                                failed += 1;
                                first.get_or_insert_with(|| error.clone());
                            }
                            None => failed += 1,
                        }
                    }
                    if failed > 0 {
                        let first = first.unwrap_or(EntryError {
                            code: "MissingResult".into(),
                            message: "no result for the record".into(),
                        });
                        return Err(SendError {
                            error: Error::KinesisRefused {
                                stream: self.stream.clone(),
                                failed,
                                total: call_positions.len(),
                                code: first.code,
                                message: first.message,
                            },
                            done,
                        });
                    }
                }
                Err(CallError {
                    retry: false,
                    source,
                }) => {
                    let error = Error::KinesisCall {
                        stream: self.stream.clone(),
                        source,
                    };
                    tracing::error!(error = %crate::error::chain(&error), records = call_positions.len(), "Kinesis refused the request as invalid: its records are dropped");
                    done.extend_from_slice(call_positions);
                }
                Err(CallError {
                    retry: true,
                    source,
                }) => {
                    return Err(SendError {
                        error: Error::KinesisCall {
                            stream: self.stream.clone(),
                            source,
                        },
                        done,
                    });
                }
            }
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        let status = self
            .api
            .stream_status(&self.stream)
            .await
            .map_err(|source| Error::KinesisDescribe {
                stream: self.stream.clone(),
                source,
            })?;
        if status == StreamStatus::Active.as_str() || status == StreamStatus::Updating.as_str() {
            Ok(())
        } else {
            Err(Error::KinesisNotActive {
                stream: self.stream.clone(),
                status,
            })
        }
    }
}

impl KinesisConfig {
    /// Problems of a `kinesis` section, each naming its key. Pure.
    pub(crate) fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let stream = &self.stream;
        if stream.is_empty()
            || stream.len() > 128
            || !stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            problems.push(format!(
            "metrics.stream: `{stream}` is not a Kinesis stream name (1 to 128 of `A-Z a-z 0-9 _ . -`)"
        ));
        }
        if let Some(region) = &self.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            problems.push(format!(
                "metrics.region: `{region}` is not an AWS region (like `us-east-1`)"
            ));
        }
        // `endpoint_url` is checked as the file is read (`http_url`).
        if let Some(key) = &self.partition_key {
            let chars = key.chars().count();
            if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
                problems.push(format!(
                "metrics.partition_key: must be 1 to {MAX_PARTITION_KEY_CHARS} characters, got {chars}"
            ));
            }
        }
        if let Some(key) = &self.explicit_hash_key
            && (key.is_empty()
                || !key.chars().all(|c| c.is_ascii_digit())
                || key.parse::<u128>().is_err())
        {
            problems.push(format!(
                "metrics.explicit_hash_key: `{key}` is not a decimal number from 0 to 2^128 - 1"
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::sinks::MetricBuffer;
    use chrono::DateTime;

    fn config() -> KinesisConfig {
        KinesisConfig {
            stream: "metrics".into(),
            region: Some("us-east-1".into()),
            endpoint_url: None,
            partition_key: None,
            explicit_hash_key: None,
            buffer_size: 100,
        }
    }

    fn record(i: usize) -> MetricRecord {
        MetricRecord {
            timestamp: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            name: format!("//a/b/c#m{i}"),
            value: f64::from(u32::try_from(i).unwrap()),
            units: "s".into(),
        }
    }

    /// What the fake answers to one call.
    enum Answer {
        /// Every entry written.
        Ok,
        /// The entries at these positions refused with this code.
        Refuse(Vec<usize>, &'static str),
        /// The whole call fails.
        Fail { retry: bool },
    }

    /// Records every call; answers from a script, then `Ok`.
    struct FakeApi {
        script: Mutex<VecDeque<Answer>>,
        calls: Mutex<Vec<Vec<Entry>>>,
        /// Data of every entry the fake stream holds.
        stream: Mutex<Vec<Vec<u8>>>,
    }

    impl FakeApi {
        fn new(script: Vec<Answer>) -> Arc<FakeApi> {
            Arc::new(FakeApi {
                script: Mutex::new(script.into()),
                calls: Mutex::new(Vec::new()),
                stream: Mutex::new(Vec::new()),
            })
        }

        fn names_in_stream(&self) -> Vec<String> {
            self.stream
                .lock()
                .unwrap()
                .iter()
                .map(|data| {
                    let value: serde_json::Value = serde_json::from_slice(data).unwrap();
                    value["name"].as_str().unwrap().to_string()
                })
                .collect()
        }
    }

    #[async_trait]
    impl Api for FakeApi {
        async fn put_records(
            &self,
            _stream: &str,
            entries: &[Entry],
        ) -> Result<Vec<Option<EntryError>>, CallError> {
            self.calls.lock().unwrap().push(entries.to_vec());
            let answer = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Ok);
            let refused: Vec<(usize, &str)> = match answer {
                Answer::Ok => Vec::new(),
                Answer::Refuse(positions, code) => {
                    positions.into_iter().map(|p| (p, code)).collect()
                }
                Answer::Fail { retry } => {
                    return Err(CallError {
                        retry,
                        source: "connection refused".into(),
                    });
                }
            };
            let mut stream = self.stream.lock().unwrap();
            Ok(entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    if let Some((_, code)) = refused.iter().find(|(p, _)| *p == i) {
                        Some(EntryError {
                            code: (*code).to_string(),
                            message: "Rate exceeded for shard".into(),
                        })
                    } else {
                        stream.push(entry.data.clone());
                        None
                    }
                })
                .collect())
        }

        async fn stream_status(&self, _stream: &str) -> Result<String, BoxError> {
            Ok("ACTIVE".into())
        }
    }

    fn sink(api: &Arc<FakeApi>, config: &KinesisConfig) -> KinesisSink {
        KinesisSink::with_api(api.clone(), config)
    }

    #[test]
    fn batches_are_split_at_500_entries_and_5_mib() {
        type Case = (Vec<usize>, Vec<(usize, usize)>);
        let mib = 1024 * 1024;
        // (sizes, calls as start..end pairs)
        let cases: Vec<Case> = vec![
            (vec![], vec![]),
            (vec![100; 3], vec![(0, 3)]),
            (vec![100; 500], vec![(0, 500)]),
            (vec![100; 1001], vec![(0, 500), (500, 1000), (1000, 1001)]),
            (vec![mib; 6], vec![(0, 5), (5, 6)]),
            (
                vec![mib, mib, mib, mib, mib - 10, 10, 1],
                vec![(0, 6), (6, 7)],
            ),
            (vec![10, 5 * mib, 10], vec![(0, 1), (1, 2), (2, 3)]),
        ];
        for (sizes, want) in cases {
            let got: Vec<(usize, usize)> = calls(&sizes).iter().map(|r| (r.start, r.end)).collect();
            assert_eq!(got, want, "{sizes:?}");
        }
    }

    #[test]
    fn the_partition_key_is_the_name_shortened_past_256_characters() {
        assert_eq!(
            partition_key("//web1/app/disk#used"),
            "//web1/app/disk#used"
        );
        let long = format!("//web1/app/{}#used", "é".repeat(300));
        let key = partition_key(&long);
        assert!(key.chars().count() <= 256, "{key}");
        assert!(key.starts_with("//web1/app/é"));
        assert_eq!(key, partition_key(&long), "stable");
        let other = format!("//web1/app/{}#free", "é".repeat(300));
        assert_ne!(key, partition_key(&other));
        assert_eq!(partition_key(""), "-");
    }

    #[test]
    fn entries_carry_the_record_json_and_the_configured_keys() {
        let api = FakeApi::new(vec![]);
        let default = sink(&api, &config()).entry(&record(1)).unwrap();
        assert_eq!(default.partition_key, "//a/b/c#m1");
        assert_eq!(default.explicit_hash_key, None);
        assert_eq!(
            String::from_utf8(default.data).unwrap(),
            r#"{"timestamp":"2023-11-14T22:13:20Z","name":"//a/b/c#m1","value":1.0,"units":"s"}"#
        );
        let fixed = KinesisConfig {
            partition_key: Some("web1".into()),
            explicit_hash_key: Some("0".into()),
            ..config()
        };
        let entry = sink(&api, &fixed).entry(&record(1)).unwrap();
        assert_eq!(entry.partition_key, "web1");
        assert_eq!(entry.explicit_hash_key.as_deref(), Some("0"));
    }

    #[tokio::test]
    async fn a_partial_failure_reports_only_the_written_entries_as_done() {
        let api = FakeApi::new(vec![Answer::Refuse(
            vec![1, 3],
            "ProvisionedThroughputExceededException",
        )]);
        let batch: Vec<MetricRecord> = (0..5).map(record).collect();
        let Err(failure) = sink(&api, &config()).send(&batch).await else {
            panic!("a partial failure must be an error");
        };
        assert_eq!(failure.done, [0, 2, 4]);
        assert_eq!(
            failure.error.to_string(),
            "Kinesis stream `metrics` refused 2 of 5 records (first: `ProvisionedThroughputExceededException`: Rate exceeded for shard)"
        );
    }

    #[tokio::test]
    async fn a_failed_call_is_resent_whole_and_an_invalid_one_is_dropped() {
        let api = FakeApi::new(vec![Answer::Fail { retry: true }]);
        let batch: Vec<MetricRecord> = (0..3).map(record).collect();
        let failure = sink(&api, &config()).send(&batch).await.unwrap_err();
        assert!(failure.done.is_empty());
        assert!(matches!(failure.error, Error::KinesisCall { .. }));

        let api = FakeApi::new(vec![Answer::Fail { retry: false }]);
        assert!(sink(&api, &config()).send(&batch).await.is_ok());
        assert!(api.names_in_stream().is_empty());
    }

    #[tokio::test]
    async fn a_record_over_one_mib_is_dropped_and_the_others_sent() {
        let api = FakeApi::new(vec![]);
        let mut huge = record(1);
        huge.units = "x".repeat(MAX_RECORD_BYTES);
        let batch = vec![record(0), huge, record(2)];
        assert!(sink(&api, &config()).send(&batch).await.is_ok());
        assert_eq!(api.names_in_stream(), ["//a/b/c#m0", "//a/b/c#m2"]);
    }

    #[tokio::test]
    async fn a_large_batch_goes_out_in_several_calls_and_stops_at_the_first_failure() {
        let api = FakeApi::new(vec![Answer::Ok, Answer::Fail { retry: true }]);
        let batch: Vec<MetricRecord> = (0..1200).map(record).collect();
        let failure = sink(&api, &config()).send(&batch).await.unwrap_err();
        assert_eq!(failure.done, (0..500).collect::<Vec<_>>());
        let sizes: Vec<usize> = api.calls.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [500, 500]);
    }

    /// Through the real buffer: throttled entries are resent, after a
    /// backoff, and every record lands exactly once.
    #[tokio::test(start_paused = true)]
    async fn through_the_buffer_every_record_lands_once_despite_throttling() {
        let api = FakeApi::new(vec![
            Answer::Refuse(vec![0, 2, 4], "ProvisionedThroughputExceededException"),
            Answer::Fail { retry: true },
            Answer::Refuse(vec![1], "InternalFailure"),
        ]);
        let sink = Arc::new(sink(&api, &config()));
        let (buffer, task) = MetricBuffer::spawn(sink, 100);
        buffer.push((0..6).map(record));
        assert!(buffer.flush(Duration::from_mins(2)).await);
        let mut names = api.names_in_stream();
        names.sort();
        let mut want: Vec<String> = (0..6).map(|i| record(i).name).collect();
        want.sort();
        assert_eq!(names, want);
        let calls: Vec<Vec<String>> = api
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|call| call.iter().map(|e| e.partition_key.clone()).collect())
            .collect();
        let names =
            |ids: &[usize]| -> Vec<String> { ids.iter().map(|&i| record(i).name).collect() };
        assert_eq!(
            calls,
            [
                names(&[0, 1, 2, 3, 4, 5]),
                names(&[0, 2, 4]),
                names(&[0, 2, 4]),
                names(&[2]),
            ]
        );
        task.abort();
    }

    #[tokio::test]
    async fn the_healthcheck_wants_an_active_stream() {
        struct Status(&'static str);
        #[async_trait]
        impl Api for Status {
            async fn put_records(
                &self,
                _: &str,
                _: &[Entry],
            ) -> Result<Vec<Option<EntryError>>, CallError> {
                Ok(Vec::new())
            }
            async fn stream_status(&self, _: &str) -> Result<String, BoxError> {
                Ok(self.0.to_string())
            }
        }
        let active = KinesisSink::with_api(Arc::new(Status("ACTIVE")), &config());
        assert!(active.healthcheck().await.is_ok());
        let deleting = KinesisSink::with_api(Arc::new(Status("DELETING")), &config());
        assert_eq!(
            deleting.healthcheck().await.unwrap_err().to_string(),
            "Kinesis stream `metrics` is `DELETING`, not `ACTIVE` or `UPDATING`"
        );
    }

    #[test]
    fn kinesis_sections_are_validated() {
        let ok = config();
        assert!(ok.validate().is_empty());
        let cases: Vec<(KinesisConfig, &str)> = vec![
            (
                KinesisConfig {
                    stream: "my stream".into(),
                    ..config()
                },
                "metrics.stream: `my stream` is not a Kinesis stream name",
            ),
            (
                KinesisConfig {
                    region: Some("US East".into()),
                    ..config()
                },
                "metrics.region: `US East` is not an AWS region",
            ),
            (
                KinesisConfig {
                    partition_key: Some(String::new()),
                    ..config()
                },
                "metrics.partition_key: must be 1 to 256 characters, got 0",
            ),
            (
                KinesisConfig {
                    explicit_hash_key: Some("340282366920938463463374607431768211456".into()),
                    ..config()
                },
                "metrics.explicit_hash_key: `340282366920938463463374607431768211456` is not a decimal number",
            ),
            (
                KinesisConfig {
                    explicit_hash_key: Some("-1".into()),
                    ..config()
                },
                "metrics.explicit_hash_key: `-1` is not",
            ),
        ];
        for (config, want) in cases {
            let problems = config.validate();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with(want), "{}", problems[0]);
        }
        let largest = KinesisConfig {
            explicit_hash_key: Some(u128::MAX.to_string()),
            endpoint_url: Some("http://127.0.0.1:4567".into()),
            ..config()
        };
        assert!(largest.validate().is_empty());
    }

    #[test]
    fn only_malformed_requests_are_not_retried() {
        let cases = [
            (Some("InvalidArgumentException"), false),
            (Some("ValidationException"), false),
            (Some("SerializationException"), false),
            (Some("ProvisionedThroughputExceededException"), true),
            (Some("ResourceNotFoundException"), true),
            (Some("AccessDeniedException"), true),
            (Some("InternalFailure"), true),
            (None, true),
        ];
        for (code, want) in cases {
            assert_eq!(retryable(code), want, "{code:?}");
        }
    }

    /// The SDK side of the seam, against mocked AWS responses.
    mod sdk {
        use aws_sdk_kinesis::Client;
        use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
        use aws_sdk_kinesis::types::PutRecordsResultEntry;
        use aws_sdk_kinesis::types::error::{
            InvalidArgumentException, ProvisionedThroughputExceededException,
        };
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        use super::*;

        fn entries(n: usize) -> Vec<Entry> {
            (0..n)
                .map(|i| Entry {
                    data: format!("{{\"i\":{i}}}").into_bytes(),
                    partition_key: format!("key{i}"),
                    explicit_hash_key: None,
                })
                .collect()
        }

        fn written() -> PutRecordsResultEntry {
            PutRecordsResultEntry::builder()
                .sequence_number("1")
                .shard_id("shardId-000000000000")
                .build()
        }

        #[tokio::test]
        async fn failed_record_count_and_error_codes_map_to_entries() {
            let rule = mock!(Client::put_records)
                .match_requests(|request| {
                    request.stream_name() == Some("metrics")
                        && request.records().len() == 3
                        && request.records()[1].partition_key() == Some("key1")
                })
                .then_output(|| {
                    PutRecordsOutput::builder()
                        .failed_record_count(1)
                        .records(written())
                        .records(
                            PutRecordsResultEntry::builder()
                                .error_code("ProvisionedThroughputExceededException")
                                .error_message("Rate exceeded")
                                .build(),
                        )
                        .records(written())
                        .build()
                        .unwrap()
                });
            let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&rule]);
            let results = Api::put_records(&SdkApi::new(client, None), "metrics", &entries(3))
                .await
                .unwrap();
            assert_eq!(
                results,
                [
                    None,
                    Some(EntryError {
                        code: "ProvisionedThroughputExceededException".into(),
                        message: "Rate exceeded".into(),
                    }),
                    None,
                ]
            );
        }

        #[tokio::test]
        async fn too_few_results_count_as_failures() {
            let rule = mock!(Client::put_records).then_output(|| {
                PutRecordsOutput::builder()
                    .records(written())
                    .build()
                    .unwrap()
            });
            let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&rule]);
            let results = Api::put_records(&SdkApi::new(client, None), "metrics", &entries(2))
                .await
                .unwrap();
            assert_eq!(results[0], None);
            assert_eq!(results[1].as_ref().unwrap().code, "MissingResult");
        }

        #[tokio::test]
        async fn whole_call_errors_are_retried_unless_the_request_is_invalid() {
            let rule = mock!(Client::put_records)
                .sequence()
                .error(|| {
                    PutRecordsError::ProvisionedThroughputExceededException(
                        ProvisionedThroughputExceededException::builder()
                            .message("slow down")
                            .build(),
                    )
                })
                .error(|| {
                    PutRecordsError::InvalidArgumentException(
                        InvalidArgumentException::builder().message("bad").build(),
                    )
                })
                .http_status(503, None)
                .build();
            let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&rule], |config| {
                config.retry_config(RetryConfig::disabled())
            });
            let api = SdkApi::new(client, None);
            let first = Api::put_records(&api, "metrics", &entries(1)).await;
            assert!(first.unwrap_err().retry);
            let second = Api::put_records(&api, "metrics", &entries(1)).await;
            assert!(!second.unwrap_err().retry);
            let third = Api::put_records(&api, "metrics", &entries(1)).await;
            assert!(third.unwrap_err().retry);
        }
    }
}
