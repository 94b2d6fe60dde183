//! Benchmark driver for `bench/kinesis.sh`: how many metrics per second the
//! `kinesis` sink sustains through the agent's own `MetricBuffer` into one
//! local Kinesis (kinesalite).
//!
//! ```sh
//! cargo run --release --example kinesis_sink_bench -- ENDPOINT [METRICS] [SHARDS]
//! ```
//!
//! Creates a fresh stream, pushes METRICS records (default 100,000; names as
//! an agent makes them, 500 per check) into a buffer that holds them all,
//! times until the buffer is empty, then reads the stream back and checks
//! that every record is there. Prints one line of `key=value` pairs. Uses
//! static dummy credentials: nothing leaves the given endpoint.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::ShardIteratorType;
use cimaa::sinks::{self, KinesisConfig, MetricBuffer, MetricRecord, SinkConfig};

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .ok_or("usage: kinesis_sink_bench ENDPOINT [METRICS] [SHARDS]")?;
    let metrics: usize = args.next().map_or(Ok(100_000), |n| n.parse())?;
    let shards: i32 = args.next().map_or(Ok(4), |n| n.parse())?;

    let client = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
            .build(),
    );
    let stream = format!(
        "cimaa-bench-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    client
        .create_stream()
        .stream_name(&stream)
        .shard_count(shards)
        .send()
        .await?;

    // The sink as the agent builds it; its AWS chain reads AWS_* from the environment.
    let config = SinkConfig::Kinesis(KinesisConfig {
        stream: stream.clone(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.clone()),
        partition_key: None,
        explicit_hash_key: None,
        buffer_size: metrics,
    });
    let sink = sinks::build(&config).await?;
    let now = chrono::Utc::now();
    let records: Vec<MetricRecord> = (0..metrics)
        .map(|i| MetricRecord {
            timestamp: now,
            name: format!(
                "//bench-agent/bench/c{:02}#metric_{:03}",
                i / 500 % 100,
                i % 500
            ),
            #[expect(clippy::cast_precision_loss, reason = "benchmark values")]
            value: i as f64,
            units: "ms".into(),
        })
        .collect();

    let (buffer, drain) = MetricBuffer::spawn(sink, metrics);
    let start = Instant::now();
    buffer.push(records);
    let flushed = buffer.flush(Duration::from_hours(1)).await;
    let seconds = start.elapsed().as_secs_f64();
    drain.abort();
    if !flushed || buffer.dropped() > 0 {
        return Err(format!(
            "not flushed: {} waiting, {} dropped",
            buffer.len(),
            buffer.dropped()
        )
        .into());
    }

    let read = count_records(&client, &stream).await?;
    client.delete_stream().stream_name(&stream).send().await?;
    #[expect(clippy::cast_precision_loss, reason = "benchmark figures")]
    let rate = metrics as f64 / seconds;
    let line = format!(
        "metrics={metrics} shards={shards} seconds={seconds:.3} rate={rate:.0} read_back={read}"
    );
    std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes())?;
    if read < metrics {
        return Err(format!("only {read} of {metrics} records read back").into());
    }
    Ok(())
}

/// Records in the stream, over all shards.
async fn count_records(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<usize, Failure> {
    let mut read = 0usize;
    for shard in client
        .list_shards()
        .stream_name(stream)
        .send()
        .await?
        .shards()
    {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator;
        while let Some(current) = iterator {
            let output = client
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await?;
            if output.records().is_empty() {
                break;
            }
            read += output.records().len();
            iterator = output.next_shard_iterator;
        }
    }
    Ok(read)
}
