//! Metric sinks end to end: the real `cimaa` binary writing into a local
//! Kinesis (kinesalite, started by scripts/test.sh and named by
//! `CIMAA_TEST_KINESIS_ENDPOINT`), records read back with GetShardIterator /
//! GetRecords; a stream that goes away and comes back; a full buffer and its
//! `AGENT#metrics` fault. Without the endpoint the Kinesis tests are skipped,
//! except under `CI`, where they fail: CI must run them.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::ShardIteratorType;
use serde_json::Value;

use crate::util::{AGENT, Env, assert_success, check_name, stderr};

/// Keeps every AWS call on 127.0.0.1: dummy static credentials, a fixed
/// region, no instance metadata.
const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "cimaa-test"),
    ("AWS_SECRET_ACCESS_KEY", "cimaa-test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The local Kinesis, or `None` (the test is skipped) outside CI.
fn kinesis_endpoint() -> Option<String> {
    match std::env::var(cimaa::env::TEST_KINESIS_ENDPOINT) {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {} is not: run the tests with scripts/test.sh, which starts kinesalite",
                cimaa::env::TEST_KINESIS_ENDPOINT
            );
            eprintln!(
                "skipped: {} is not set (scripts/test.sh sets it)",
                cimaa::env::TEST_KINESIS_ENDPOINT
            );
            None
        }
    }
}

/// `cimaa -c agent.yaml ARGS` with the AWS environment of `AWS_ENV`.
fn cimaa(env: &Env, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cimaa"));
    command
        .arg("-c")
        .arg(env.config())
        .args(args)
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .envs(AWS_ENV);
    command
}

fn run(env: &Env, args: &[&str]) -> Output {
    cimaa(env, args).output().unwrap()
}

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "cimaa-test",
            "cimaa-test",
            None,
            None,
            "tests",
        ))
        .build();
    Client::from_conf(config)
}

/// A stream name no other test (or earlier run against the same server) uses.
fn unique_stream(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cimaa-{tag}-{}-{nanos}", std::process::id())
}

async fn create_stream(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    // kinesalite runs with createStreamMs 0, but wait for ACTIVE all the same.
    for _ in 0..100 {
        let summary = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .unwrap();
        if summary
            .stream_description_summary()
            .is_some_and(|s| s.stream_status().as_str() == "ACTIVE")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {stream} never became ACTIVE");
}

/// One record read back: its partition key and its data as JSON.
struct Read {
    partition_key: String,
    data: Value,
}

/// Every record in the stream, shard by shard, from the start.
async fn read_stream(client: &Client, stream: &str) -> Vec<Read> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(current) = iterator {
            let output = client
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await
                .unwrap();
            if output.records().is_empty() {
                break;
            }
            for record in output.records() {
                let data: Value = serde_json::from_slice(record.data().as_ref())
                    .unwrap_or_else(|e| panic!("record is not JSON: {e}: {:?}", record.data()));
                records.push(Read {
                    partition_key: record.partition_key().unwrap_or_default().to_string(),
                    data,
                });
            }
            iterator = output.next_shard_iterator;
        }
    }
    records
}

fn kinesis_section(stream: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "alerter:\n  type: file\n  path: alerts.jsonl\nmetrics:\n  type: kinesis\n  stream: {stream}\n  region: us-east-1\n  endpoint_url: {endpoint}\n{extra}"
    )
}

#[tokio::test]
async fn metrics_arrive_in_kinesis_complete_and_parseable() {
    let Some(endpoint) = kinesis_endpoint() else {
        return;
    };
    let kinesis = client(&endpoint);
    let stream = unique_stream("complete");
    create_stream(&kinesis, &stream, 2).await;
    let env = Env::with_alerter(&kinesis_section(&stream, &endpoint, ""), "");
    let plugin = env.script(
        "disk.sh",
        "echo \"DISK OK | /=2643MB;5948;5958;0;5968 'var log'=-1.5 load=0.25;;;; users=3\"",
    );
    env.write_check(
        "host.yaml",
        &format!("disk:\n  command: {}\n", plugin.display()),
    );
    let output = run(&env, &["agent", "--once"]);
    assert_success(&output);

    let check = check_name("host", "disk");
    let mut got: Vec<(String, f64, String)> = read_stream(&kinesis, &stream)
        .await
        .into_iter()
        .map(|read| {
            let Value::Object(fields) = &read.data else {
                panic!("record is not a JSON object: {}", read.data);
            };
            let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["name", "timestamp", "units", "value"]);
            let name = read.data["name"].as_str().unwrap().to_string();
            assert_eq!(read.partition_key, name, "the partition key is the name");
            let timestamp = read.data["timestamp"].as_str().unwrap();
            assert!(
                timestamp.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
                "{timestamp}"
            );
            (
                name,
                read.data["value"].as_f64().unwrap(),
                read.data["units"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let want = [
        (format!("{check}#/"), 2643.0, "MB"),
        (format!("{check}#load"), 0.25, ""),
        (format!("{check}#users"), 3.0, ""),
        (format!("{check}#var log"), -1.5, ""),
    ]
    .map(|(name, value, units)| (name, value, units.to_string()));
    assert_eq!(got, want);
}

#[tokio::test]
async fn validate_healthchecks_reaches_the_stream() {
    let Some(endpoint) = kinesis_endpoint() else {
        return;
    };
    let kinesis = client(&endpoint);
    let stream = unique_stream("health");
    create_stream(&kinesis, &stream, 1).await;
    let env = Env::with_alerter(&kinesis_section(&stream, &endpoint, ""), "");
    assert_success(&run(&env, &["validate", "--healthchecks"]));

    env.configure(&kinesis_section("cimaa-no-such-stream", &endpoint, ""), "");
    let output = run(&env, &["validate", "--healthchecks"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("metric sink: cannot reach Kinesis stream `cimaa-no-such-stream`"),
        "{}",
        stderr(&output)
    );
}

/// A kinesalite of the test's own, which it can stop and restart.
struct Kinesalite {
    child: Child,
    port: u16,
}

impl Kinesalite {
    /// Starts it on `port` (0: any free one), keeping its data in `path`.
    fn start(port: u16, path: &Path) -> Kinesalite {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/kinesalite.js");
        let mut child = Command::new("node")
            .arg(script)
            .args(["--port", &port.to_string(), "--path"])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs tests/services/kinesalite.js");
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line).unwrap();
        }
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("kinesalite did not start: {line:?}")
            });
        Kinesalite { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills it the hard way, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `cimaa agent` that runs until the test stops it.
struct RunningAgent(Child);

impl RunningAgent {
    /// SIGTERM, then wait (at most 15 s) for it to exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        send_signal(self.0.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `signal` with the `kill` command (the crate denies `unsafe`).
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn counter(env: &Env) -> u64 {
    std::fs::read_to_string(env.path("counter"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// How often each (metric, run number) was read back.
async fn runs_in_stream(kinesis: &Client, stream: &str) -> BTreeMap<(String, u64), usize> {
    let mut seen = BTreeMap::new();
    for read in read_stream(kinesis, stream).await {
        let name = read.data["name"].as_str().unwrap().to_string();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "run numbers are small whole numbers"
        )]
        let run = read.data["value"].as_f64().unwrap() as u64;
        *seen.entry((name, run)).or_insert(0) += 1;
    }
    seen
}

const METRICS_PER_RUN: u64 = 10;

/// True when every metric of runs 1..=last was read back.
fn complete(seen: &BTreeMap<(String, u64), usize>, check: &str, last: u64) -> bool {
    (1..=last)
        .all(|run| (0..METRICS_PER_RUN).all(|i| seen.contains_key(&(format!("{check}#m{i}"), run))))
}

async fn wait_until_complete(kinesis: &Client, stream: &str, check: &str, last: u64) {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let seen = runs_in_stream(kinesis, stream).await;
        if complete(&seen, check, last) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "runs 1..={last} never all arrived; got {} records",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The stream goes away while the agent keeps ticking and comes back: every
/// metric of the outage arrives afterwards, and only the one PutRecords call
/// in flight when it went away may be written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_produced_while_kinesis_is_down_arrive_once_it_is_back() {
    if kinesis_endpoint().is_none() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut server = Kinesalite::start(0, data.path());
    let endpoint = server.endpoint();
    let kinesis = client(&endpoint);
    let stream = unique_stream("outage");
    create_stream(&kinesis, &stream, 2).await;

    let env = Env::with_alerter(
        &kinesis_section(&stream, &endpoint, ""),
        "  base_interval: 0.5\n  timeout: 5\n",
    );
    // Each run counts up and reports ten metrics whose value is its run number.
    let plugin = env.script(
        "count.sh",
        &format!(
            "n=$(cat counter 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > counter.new && mv counter.new counter\nprintf 'OK |'\nfor i in $(seq 0 {}); do printf ' m%s=%s' $i $n; done\necho",
            METRICS_PER_RUN - 1
        ),
    );
    // Plugins run in their check file's folder; keep the counter beside agent.yaml.
    env.write_check(
        "app.yaml",
        &format!("count:\n  command: cd .. && {}\n", plugin.display()),
    );
    let check = check_name("app", "count");
    let log = std::fs::File::create(env.path("agent.log")).unwrap();
    let mut agent = RunningAgent(
        cimaa(&env, &["agent"])
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );

    // Running normally.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(&env) < 3 {
        assert!(Instant::now() < deadline, "the check never ran three times");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until_complete(&kinesis, &stream, &check, 2).await;

    // Down for a few seconds while the agent keeps ticking.
    server.kill();
    let at_kill = counter(&env);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before_restart = counter(&env);
    assert!(
        before_restart >= at_kill + 3,
        "the agent must keep running checks while the stream is down ({at_kill} → {before_restart})"
    );
    let port = server.port;
    drop(server);
    let _server = Kinesalite::start(port, data.path());

    wait_until_complete(&kinesis, &stream, &check, before_restart).await;
    let status = agent.stop();
    assert!(status.success(), "agent exited with {status}");

    let seen = runs_in_stream(&kinesis, &stream).await;
    let log = std::fs::read_to_string(env.path("agent.log")).unwrap_or_default();
    assert!(
        complete(&seen, &check, before_restart),
        "missing metrics\n{log}"
    );
    eprintln!(
        "outage: runs {at_kill}..{before_restart} produced while down; {} distinct records read back",
        seen.len()
    );
    let duplicated: Vec<&(String, u64)> = seen
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(key, _)| key)
        .collect();
    // Only a call in flight when the server died can have been written and
    // then resent whole; it holds records produced before the kill.
    assert!(
        duplicated.iter().all(|(_, run)| *run <= at_kill + 1) && duplicated.len() <= 500,
        "records duplicated beyond the call in flight at the outage: {duplicated:?}"
    );
    assert!(
        log.contains("metric sink failed") && log.contains("metric sink works again"),
        "the outage and the recovery are logged:\n{log}"
    );
}

/// A port nothing listens on: a stream that is down.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs without a Kinesis server: a stream that is down and a buffer of three.
#[test]
fn a_full_buffer_drops_the_oldest_metrics_and_reports_agent_metrics() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let env = Env::with_alerter(
        &kinesis_section("metrics", &endpoint, "  buffer_size: 3\n"),
        "",
    );
    // Ten metrics on the first run, none after.
    let plugin = env.script(
        "once.sh",
        &format!(
            "if [ -e '{done}' ]; then echo OK; exit 0; fi\ntouch '{done}'\necho 'OK | a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 j=10'",
            done = env.path("done").display()
        ),
    );
    env.write_check(
        "app.yaml",
        &format!("burst:\n  command: {}\n", plugin.display()),
    );
    let output = run(&env, &["agent", "--once"]);
    assert_success(&output);
    assert!(
        stderr(&output).contains("metric buffer full: dropped the oldest metrics"),
        "{}",
        stderr(&output)
    );
    let name = format!("{AGENT}#metrics");
    let fault = env.fault(&name).expect("AGENT#metrics is stored");
    assert_eq!(fault["severity"], 30);
    assert_eq!(
        fault["message"],
        "Dropped 7 metrics because the buffer was full"
    );
    assert_eq!(fault["escalates"], false);
    assert_eq!(fault["triggered"], false);
    assert!(env.alerts().is_empty(), "never alerted by its own agent");

    // A tick without drops clears it.
    assert_success(&run(&env, &["agent", "--once"]));
    assert!(env.fault(&name).is_none(), "{:?}", env.faults());
}

#[test]
fn kinesis_sections_are_validated_with_file_key_and_line() {
    let env = Env::new();
    env.configure(
        "alerter:\n  type: file\n  path: alerts.jsonl\nmetrics:\n  type: kinesis\n  stream: web metrics\n  explicit_hash_key: x\n",
        "",
    );
    let output = run(&env, &["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    let path = env.config().display().to_string();
    assert!(
        err.contains(&format!(
            "{path}: metrics.stream: `web metrics` is not a Kinesis stream name"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{path}: metrics.explicit_hash_key: `x` is not a decimal number"
        )),
        "{err}"
    );

    env.configure(
        "alerter:\n  type: file\n  path: alerts.jsonl\nmetrics:\n  type: kinesis\n  strem: metrics\n",
        "",
    );
    let output = run(&env, &["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "{path}: metrics: unknown field `strem`, expected one of `stream`"
        )) && err.contains(" at line "),
        "{err}"
    );
}
