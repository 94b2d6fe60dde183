//! Benchmark driver for `bench/kinesis.sh`: how many metrics per second the
//! `kinesis` sink sustains through the agent's own `MetricBuffer` into one
//! local Kinesis (kinesalite). Built as an example with an explicit path
//! (Cargo.toml): `cargo build --release --example kinesis_sink_bench`.
//!
//! ```sh
//! kinesis_sink_bench throughput ENDPOINT [METRICS] [SHARDS] [SERVER_PID]
//! kinesis_sink_bench create ENDPOINT STREAM SHARDS
//! kinesis_sink_bench count ENDPOINT STREAM
//! ```
//!
//! `throughput` creates a fresh stream, pushes METRICS records (default
//! 100,000; names as an agent makes them, 500 per check) into a buffer that
//! holds them all, times until the buffer is empty, then reads the stream
//! back and checks that every record is there. It prints one line of
//! `key=value` pairs, with the CPU seconds this process (the agent's side)
//! and SERVER_PID (kinesalite) used while sending. `create` and `count` serve
//! the agent runs of the script. Static dummy credentials: nothing leaves the
//! given endpoint.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::ShardIteratorType;
use cimaa::sinks::{self, KinesisConfig, MetricBuffer, MetricRecord, SinkConfig};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: kinesis_sink_bench throughput ENDPOINT [METRICS] [SHARDS] [SERVER_PID] | create ENDPOINT STREAM SHARDS | count ENDPOINT STREAM";

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let endpoint = arg(1).ok_or(USAGE)?;
    let client = client(endpoint);
    let line = match arg(0) {
        Some("throughput") => {
            let metrics = arg(2).map_or(Ok(100_000), str::parse)?;
            let shards = arg(3).map_or(Ok(4), str::parse)?;
            throughput(&client, endpoint, metrics, shards, arg(4)).await?
        }
        Some("create") => {
            let stream = arg(2).ok_or(USAGE)?;
            create(&client, stream, arg(3).ok_or(USAGE)?.parse()?).await?;
            format!("created={stream}")
        }
        Some("count") => {
            let stream = arg(2).ok_or(USAGE)?;
            format!("records={}", count_records(&client, stream).await?)
        }
        _ => return Err(USAGE.into()),
    };
    std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes())?;
    Ok(())
}

fn client(endpoint: &str) -> Client {
    Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
            .build(),
    )
}

async fn create(client: &Client, stream: &str, shards: i32) -> Result<(), Failure> {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await?;
    Ok(())
}

/// User + system CPU seconds of a process so far (`/proc/PID/stat`, whose
/// ticks are USER_HZ = 100 on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

async fn throughput(
    client: &Client,
    endpoint: &str,
    metrics: usize,
    shards: i32,
    server_pid: Option<&str>,
) -> Result<String, Failure> {
    let stream = format!(
        "cimaa-bench-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    create(client, &stream, shards).await?;
    // The sink as the agent builds it; its AWS chain reads AWS_* from the environment.
    let config = SinkConfig::Kinesis(KinesisConfig {
        stream: stream.clone(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.to_string()),
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
    let (client_cpu, server_cpu) = (cpu_seconds("self"), server_pid.map(cpu_seconds));
    let start = Instant::now();
    buffer.push(records);
    let flushed = buffer.flush(Duration::from_hours(1)).await;
    let seconds = start.elapsed().as_secs_f64();
    let client_cpu = cpu_seconds("self") - client_cpu;
    let server_cpu = server_pid
        .zip(server_cpu)
        .map(|(pid, before)| cpu_seconds(pid) - before);
    drain.abort();
    if !flushed || buffer.dropped() > 0 {
        return Err(format!(
            "not flushed: {} waiting, {} dropped",
            buffer.len(),
            buffer.dropped()
        )
        .into());
    }
    let read = count_records(client, &stream).await?;
    client.delete_stream().stream_name(&stream).send().await?;
    if read < metrics {
        return Err(format!("only {read} of {metrics} records read back").into());
    }
    #[expect(clippy::cast_precision_loss, reason = "benchmark figures")]
    let rate = metrics as f64 / seconds;
    Ok(format!(
        "metrics={metrics} shards={shards} seconds={seconds:.3} rate={rate:.0} read_back={read} client_cpu_s={client_cpu:.2} server_cpu_s={}",
        server_cpu.map_or("-".to_string(), |s| format!("{s:.2}"))
    ))
}

/// Records in the stream, over all shards.
async fn count_records(client: &Client, stream: &str) -> Result<usize, Failure> {
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
