//! The `dynamodb` backend against a local DynamoDB-compatible server
//! (dynalite, started by scripts/test.sh): sharing tables with zc.cimaa,
//! `setup-db`, an outage under a running agent, and the cost of a tick.
//! See: #5
//!
//! Every test uses tables of its own prefix. Without
//! `CIMAA_TEST_DYNAMODB_ENDPOINT` the tests skip, except under `CI`, where
//! they fail. Requests carry static dummy credentials and never leave
//! 127.0.0.1.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, ConsumedCapacity, KeySchemaElement, KeyType, ProjectionType,
    PutRequest, ReturnConsumedCapacity, WriteRequest,
};
use cimaa::db::{Db, DynamoDb, DynamoDbConfig, Fault, Notice};
use cimaa::env;
use cimaa::severity::Severity;
use serde_json::Value;

use crate::util::{AGENT, Env, assert_success, check_name, event, events, stderr};

/// Dummy credentials: dynalite checks that requests are signed, not by whom.
const ACCESS_KEY_ID: &str = "cimaa-test";
const SECRET_ACCESS_KEY: &str = "cimaa-test";
const REGION: &str = "us-east-1";

/// The environment of every `cimaa` run here: static credentials, a region
/// and no instance metadata, so the AWS chain looks nowhere else.
const AWS_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    ("AWS_REGION", REGION),
    ("AWS_DEFAULT_REGION", REGION),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// True under CI (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var(env::CI).is_ok_and(|ci| !matches!(ci.trim(), "" | "0" | "false"))
}

/// The endpoint of the test server; `None` skips, but under `CI` a missing
/// endpoint fails the test.
pub(crate) fn endpoint() -> Option<String> {
    match std::env::var(env::TEST_DYNAMODB_ENDPOINT) {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if in_ci() => panic!(
            "`{}` is not set, but `CI` is: the dynamodb tests must run in CI; \
             run them through scripts/test.sh, which starts dynalite",
            env::TEST_DYNAMODB_ENDPOINT
        ),
        _ => {
            eprintln!(
                "skipped: set `{}` (scripts/test.sh starts dynalite) to run the dynamodb tests",
                env::TEST_DYNAMODB_ENDPOINT
            );
            None
        }
    }
}

/// A table prefix no other test (or earlier run on the same server) uses.
pub(crate) fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn config(endpoint: &str, prefix: &str) -> DynamoDbConfig {
    DynamoDbConfig {
        region: Some(REGION.to_owned()),
        prefix: prefix.to_owned(),
        endpoint_url: Some(endpoint.to_owned()),
        history: cimaa::history::HistoryConfig::default(),
    }
}

fn open(endpoint: &str, prefix: &str) -> DynamoDb {
    DynamoDb::with_static_credentials(&config(endpoint, prefix), ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        .unwrap()
}

/// A handle on fresh, empty tables (created here), or `None` to skip.
pub(crate) async fn test_db() -> Option<DynamoDb> {
    let endpoint = endpoint()?;
    let db = open(&endpoint, &unique_prefix());
    db.setup(None).await.expect("create the test tables");
    Some(db)
}

/// Two handles (two SDK clients, as two agents) on the same fresh tables,
/// or `None` to skip.
pub(crate) async fn test_db_pair() -> Option<(DynamoDb, DynamoDb)> {
    let endpoint = endpoint()?;
    let prefix = unique_prefix();
    let one = open(&endpoint, &prefix);
    one.setup(None).await.expect("create the test tables");
    Some((one, open(&endpoint, &prefix)))
}

/// A plain SDK client on the test server, to write and read items exactly.
fn raw_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: &str) -> AttributeValue {
    AttributeValue::N(value.to_owned())
}

type Item = HashMap<String, AttributeValue>;

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

async fn put(client: &Client, table: &str, item: Item) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// Every item of a table, keyed by `agent`/`name` (or `regex`).
async fn scan(client: &Client, table: &str) -> BTreeMap<String, Item> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let key = ["agent", "name", "regex"]
                .iter()
                .filter_map(|k| match item.get(*k) {
                    Some(AttributeValue::S(v)) => Some(v.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ");
            items.insert(key, item.clone());
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return items,
        }
    }
}

/// An agent directory whose config uses these dynamodb tables.
pub(crate) fn dynamodb_agent(endpoint: &str, prefix: &str, base_interval: f64) -> Env {
    let env = Env::bare();
    std::fs::create_dir_all(env.path("checks.d")).unwrap();
    env.write(
        "agent.yaml",
        &format!(
            "agent:\n  name: {AGENT}\n  directory: checks.d\n  state_dir: state\n  base_interval: {base_interval}\n\
             database:\n  type: dynamodb\n  region: {REGION}\n  prefix: {prefix}\n  endpoint_url: {endpoint}\n\
             alerter:\n  type: file\n  path: alerts.jsonl\n"
        ),
    );
    env
}

/// `cimaa -c agent.yaml ARGS` with the test AWS environment.
pub(crate) fn cimaa(env: &Env, args: &[&str]) -> Output {
    command(env).args(args).output().unwrap()
}

pub(crate) fn command(env: &Env) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cimaa"));
    command
        .arg("-c")
        .arg(env.config())
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .envs(AWS_ENV);
    command
}

fn json(output: &Output) -> Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).unwrap()
}

// ---------------------------------------------------------------- zc.cimaa

/// This host's last state as zc.cimaa left it (`down` paged already), a peer
/// still on zc.cimaa (a quiet non-escalating fault, a dead heartbeat) and
/// squelches, one permanent.
async fn seed_zc_cimaa_items(client: &Client, prefix: &str, down: &str) {
    put(
        client,
        &format!("{prefix}.faults"),
        item(&[
            ("agent", s(AGENT)),
            ("name", s(down)),
            ("severity", n("50")),
            ("message", s("CRITICAL - down")),
            ("since", n("1417000000.25")),
            ("updated", n("1417000060.75")),
            ("triggered", s("y")),
        ]),
    )
    .await;
    put(
        client,
        &format!("{prefix}.faults"),
        item(&[
            ("agent", s("_")),
            ("name", s(AGENT)),
            ("updated", n("1417000060.75")),
        ]),
    )
    .await;
    // A peer still on zc.cimaa: a quiet, non-escalating fault; a dead heartbeat.
    put(
        client,
        &format!("{prefix}.faults"),
        item(&[
            ("agent", s("py-host")),
            ("name", s("//py-host/db/replication")),
            ("severity", n("40")),
            ("since", n("1417000000.5")),
            ("updated", n("1417000000.5")),
            ("escalates", n("0")),
        ]),
    )
    .await;
    put(
        client,
        &format!("{prefix}.faults"),
        item(&[
            ("agent", s("_")),
            ("name", s("py-host")),
            ("updated", n("1417000000.5")),
        ]),
    )
    .await;
    for (regex, permanent) in [("py-host", "p"), ("old-work", "")] {
        put(
            client,
            &format!("{prefix}.squelches"),
            item(&[
                ("regex", s(regex)),
                ("reason", s("migrating")),
                ("user", s("bob")),
                ("time", n("1417000000.5")),
                ("permanent", s(permanent)),
            ]),
        )
        .await;
    }
}

/// What cimaa writes keeps zc.cimaa's layout, plus attributes it ignores.
async fn assert_cimaa_items_keep_the_layout(env: &Env, client: &Client, prefix: &str, down: &str) {
    let faults = format!("{prefix}.faults");
    let squelches = format!("{prefix}.squelches");
    assert_success(&cimaa(env, &["squelch", "web", "deploying", "--permanent"]));
    let items = scan(client, &faults).await;
    let slow = &items[&format!("{AGENT} {}", check_name("app", "slow"))];
    let mut keys: Vec<&str> = slow.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "agent",
            "attempts",
            "escalates",
            "message",
            "name",
            "severity",
            "since",
            "updated"
        ]
    );
    assert_eq!(slow["severity"], n("30"));
    assert_eq!(slow["message"], s("WARNING - slow"));
    assert_eq!(slow["escalates"], AttributeValue::Bool(true));
    for time in ["since", "updated"] {
        let AttributeValue::N(value) = &slow[time] else {
            panic!("{time} is not a Number")
        };
        assert!(value.parse::<i64>().is_ok(), "{time} = {value}");
    }
    let heartbeat = &items[&format!("_ {AGENT}")];
    let AttributeValue::N(updated) = &heartbeat["updated"] else {
        panic!("heartbeat without a Number `updated`")
    };
    assert!(updated.parse::<i64>().unwrap() > 1_700_000_000);
    let down_item = &items[&format!("{AGENT} {down}")];
    assert_eq!(down_item["triggered"], s("y"));
    assert_eq!(down_item["severity"], n("50"));
    let squelch = &scan(client, &squelches).await["web"];
    assert_eq!(squelch["permanent"], s("p"));
    let AttributeValue::N(time) = &squelch["time"] else {
        panic!("squelch `time` is not a Number")
    };
    assert!(time.parse::<i64>().is_ok(), "time = {time}");
}

/// Items exactly as zc.cimaa's `dynamodb.py` wrote them: boto's Numbers from
/// `time.time()` floats, `triggered` `"y"`, `escalates` as a Number, no
/// `message` when empty, squelch `permanent` `"p"` or empty.
#[tokio::test(flavor = "multi_thread")]
async fn cimaa_shares_tables_with_zc_cimaa() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 60.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    let client = raw_client(&endpoint);
    let faults = format!("{prefix}.faults");
    let down = check_name("app", "down");
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n\
         slow:\n  command: echo 'WARNING - slow'; exit 1\n",
    );

    seed_zc_cimaa_items(&client, &prefix, &down).await;

    let run = cimaa(&env, &["agent", "--once"]);
    assert_success(&run);

    // The triggered critical fault is not paged again; the new one does not page.
    assert_eq!(events(&env.alerts()), [], "{}", stderr(&run));
    let stored = json(&cimaa(&env, &["faults", "--json"]));
    let by_name = |name: &str| {
        stored
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no fault {name} in {stored:#}"))
    };
    let kept = by_name(&down);
    assert_eq!(kept["triggered"], true);
    assert_eq!(kept["since"], 1_417_000_000, "`since` kept, truncated");
    let peer = by_name("//py-host/db/replication");
    assert_eq!(
        (&peer["message"], &peer["escalates"], &peer["since"]),
        (
            &Value::from(""),
            &Value::from(false),
            &Value::from(1_417_000_000)
        )
    );

    // A permanent squelch is permanent: never reported as forgotten.
    let meta = json(&cimaa(&env, &["meta-check", "-s", "0"]));
    let names: Vec<&str> = meta["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["py-host", "squelch-old-work"], "{meta:#}");
    let listed = json(&cimaa(&env, &["squelches", "--json"]));
    assert_eq!(listed[0]["regex"], "old-work");
    assert_eq!(listed[0]["permanent"], false);
    assert_eq!(listed[1]["regex"], "py-host");
    assert_eq!(listed[1]["permanent"], true);
    assert_eq!(listed[1]["time"], 1_417_000_000);

    assert_cimaa_items_keep_the_layout(&env, &client, &prefix, &down).await;

    // A new critical fault pages and is stored as zc.cimaa's triggered `"y"`.
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n\
         other:\n  command: echo 'CRITICAL - other'; exit 2\n  retry: 0\n",
    );
    assert_success(&cimaa(&env, &["agent", "--once"]));
    let other = check_name("app", "other");
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &other, "CRITICAL - other")]
    );
    let items = scan(&client, &faults).await;
    assert_eq!(items[&format!("{AGENT} {other}")]["triggered"], s("y"));
    assert!(
        !items.contains_key(&format!("{AGENT} {}", check_name("app", "slow"))),
        "a cleared fault is deleted"
    );
}

// ---------------------------------------------------------- heartbeat facts

/// The heartbeat item keeps zc.cimaa's layout (agent `_`, name = the agent,
/// `updated`) plus `version` and `checks`, which zc.cimaa ignores; the
/// count leaves out the placeholder of a broken file. See: #16
#[tokio::test(flavor = "multi_thread")]
async fn the_heartbeat_item_carries_the_version_and_the_number_of_checks() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 60.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    env.write_check(
        "app.yaml",
        "up:\n  command: echo OK\nload:\n  command: echo OK\n",
    );
    env.write_check("broken.yaml", "up: [\n");

    assert_success(&cimaa(&env, &["agent", "--once"]));

    let items = scan(&raw_client(&endpoint), &format!("{prefix}.faults")).await;
    let heartbeat = &items[&format!("_ {AGENT}")];
    let mut keys: Vec<&str> = heartbeat.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["agent", "checks", "name", "updated", "version"]);
    assert_eq!(heartbeat["version"], s(env!("CARGO_PKG_VERSION")));
    assert_eq!(heartbeat["checks"], n("2"));
    let listed = json(&cimaa(&env, &["agents", "--json"]));
    assert_eq!(listed[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(listed[0]["checks"], 2);
}

/// zc.cimaa's heartbeat has neither attribute, and one written by another
/// tool may hold them with other types: both read as not recorded, and the
/// heartbeat still counts. See: #16
#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_without_facts_or_with_odd_ones_reads_without_them() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 60.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    let client = raw_client(&endpoint);
    let faults = format!("{prefix}.faults");
    put(
        &client,
        &faults,
        item(&[
            ("agent", s("_")),
            ("name", s("py-host")),
            ("updated", n("1417000000.5")),
        ]),
    )
    .await;
    put(
        &client,
        &faults,
        item(&[
            ("agent", s("_")),
            ("name", s("odd-host")),
            ("updated", n("1417000000")),
            ("version", n("2")),
            ("checks", s("twelve")),
        ]),
    )
    .await;

    let output = cimaa(&env, &["agents", "--json"]);

    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
    let listed = json(&output);
    assert_eq!(
        listed,
        serde_json::json!([
            {"name": "odd-host", "updated": 1_417_000_000},
            {"name": "py-host", "updated": 1_417_000_000},
        ])
    );
}

// ---------------------------------------------------------------- setup-db

#[tokio::test(flavor = "multi_thread")]
async fn setup_db_creates_both_tables_once_and_waits_until_they_are_active() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 60.0);

    assert_success(&cimaa(&env, &["setup-db"]));
    assert_success(&cimaa(&env, &["faults", "--json"]));
    assert_success(&cimaa(&env, &["setup-db"]));

    let client = raw_client(&endpoint);
    let faults = client
        .describe_table()
        .table_name(format!("{prefix}.faults"))
        .send()
        .await
        .unwrap();
    let table = faults.table().unwrap();
    assert_eq!(table.table_status().unwrap().as_str(), "ACTIVE");
    let keys: Vec<(&str, &KeyType)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(keys, [("agent", &KeyType::Hash), ("name", &KeyType::Range)]);
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let index = &table.global_secondary_indexes()[0];
    assert_eq!(index.index_name(), Some("updated"));
    let index_keys: Vec<&str> = index
        .key_schema()
        .iter()
        .map(KeySchemaElement::attribute_name)
        .collect();
    assert_eq!(index_keys, ["agent", "updated"]);
    let projection = index.projection().unwrap();
    assert_eq!(projection.projection_type(), Some(&ProjectionType::Include));
    let mut included = projection.non_key_attributes().to_vec();
    included.sort();
    assert_eq!(included, ["name", "since", "updated"]);
    let updated_type = table
        .attribute_definitions()
        .iter()
        .find(|a| a.attribute_name() == "updated")
        .map(|a| a.attribute_type().as_str().to_owned());
    assert_eq!(updated_type.as_deref(), Some("N"));

    let squelches = client
        .describe_table()
        .table_name(format!("{prefix}.squelches"))
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = squelches
        .table()
        .unwrap()
        .key_schema()
        .iter()
        .map(KeySchemaElement::attribute_name)
        .collect();
    assert_eq!(keys, ["regex"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_db_with_capacities_provisions_throughput() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 60.0);

    assert_success(&cimaa(
        &env,
        &["setup-db", "--read-capacity", "3", "--write-capacity", "4"],
    ));

    let described = raw_client(&endpoint)
        .describe_table()
        .table_name(format!("{prefix}.faults"))
        .send()
        .await
        .unwrap();
    let table = described.table().unwrap();
    let throughput = table.provisioned_throughput().unwrap();
    assert_eq!(
        (
            throughput.read_capacity_units(),
            throughput.write_capacity_units()
        ),
        (Some(3), Some(4))
    );
    let index = table.global_secondary_indexes()[0]
        .provisioned_throughput()
        .unwrap();
    assert_eq!(index.write_capacity_units(), Some(4));
}

#[test]
fn setup_db_needs_both_capacities_or_neither() {
    let env = Env::new();
    let output = env.cimaa(&["setup-db", "--read-capacity", "3"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--write-capacity"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn setup_db_of_sqlite_creates_the_file_and_exits_0() {
    let env = Env::new();
    assert_success(&env.cimaa(&["setup-db"]));
    assert!(env.path("cimaa.db").is_file());
}

#[test]
fn a_dynamodb_section_with_a_bad_prefix_names_it() {
    let env = Env::new();
    env.write(
        "agent.yaml",
        "agent:\n  name: a\ndatabase:\n  type: dynamodb\n  region: us-east-1\n  prefix: my tables\nalerter:\n  type: file\n  path: x\n",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("database.prefix: `my tables` must be letters, digits, `_`, `-` or `.`"),
        "{}",
        stderr(&output)
    );
    env.write(
        "agent.yaml",
        "agent:\n  name: a\ndatabase:\n  type: dynamodb\n  regin: us-east-1\nalerter:\n  type: file\n  path: x\n",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("database: unknown field `regin`")
            && stderr(&output).contains("line 4"),
        "{}",
        stderr(&output)
    );
}

// ---------------------------------------------------------------- outage

/// A dynalite of the test's own, on a fixed port and with its data on disk,
/// so it can be stopped and started again under a running agent.
pub(crate) struct Dynalite {
    program: PathBuf,
    port: u16,
    data: PathBuf,
    child: Option<Child>,
}

impl Dynalite {
    /// `None` (skip) when the npm package is not installed, except under CI.
    pub(crate) fn program() -> Option<PathBuf> {
        let program =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/node_modules/.bin/dynalite");
        if program.is_file() {
            return Some(program);
        }
        assert!(
            !in_ci(),
            "{} is missing, but `CI` is set: scripts/test.sh installs it with `npm ci`",
            program.display()
        );
        eprintln!("skipped: dynalite is not installed (scripts/test.sh installs it)");
        None
    }

    pub(crate) fn start(program: PathBuf, data: PathBuf) -> Dynalite {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Dynalite {
            program,
            port,
            data,
            child: None,
        };
        server.restart();
        server
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn restart(&mut self) {
        let child = Command::new(&self.program)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ])
            .arg("--path")
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "dynalite did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) async fn eventually(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The real agent keeps checking and alerting while DynamoDB is down, and
/// writes its full state once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_rides_out_a_dynamodb_outage() {
    if endpoint().is_none() {
        return;
    }
    let Some(program) = Dynalite::program() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut server = Dynalite::start(program, data.path().to_owned());
    let prefix = unique_prefix();
    let env = dynamodb_agent(&server.endpoint(), &prefix, 1.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    let flag = |name: &str| env.path(name).display().to_string();
    env.write_check(
        "app.yaml",
        &format!(
            "a:\n  command: \"if [ -e {a} ]; then echo 'CRITICAL - a'; exit 2; fi; echo OK\"\n  retry: 0\n\
             b:\n  command: \"if [ -e {b} ]; then echo 'CRITICAL - b'; exit 2; fi; echo OK\"\n  retry: 0\n",
            a = flag("a-down"),
            b = flag("b-down"),
        ),
    );
    env.write("a-down", "");
    let (a, b) = (check_name("app", "a"), check_name("app", "b"));
    let log = std::fs::File::create(env.path("agent.log")).unwrap();
    let mut agent = command(&env)
        .arg("agent")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let db = open(&server.endpoint(), &prefix);
    let names = async |db: &DynamoDb| -> Option<Vec<(String, bool)>> {
        let faults = db.get_faults(AGENT).await.ok()?;
        Some(faults.into_iter().map(|f| (f.name, f.triggered)).collect())
    };
    eventually(
        "fault `a` stored as triggered",
        Duration::from_secs(20),
        async || names(&db).await == Some(vec![(a.clone(), true)]),
    )
    .await;

    server.stop();
    std::fs::remove_file(env.path("a-down")).unwrap();
    env.write("b-down", "");
    // Checks and alerts go on without the database.
    let mut expected = vec![
        event("resolve", &a, ""),
        event("trigger", &a, "CRITICAL - a"),
        event("trigger", &b, "CRITICAL - b"),
    ];
    expected.sort();
    eventually(
        "alerts during the outage",
        Duration::from_secs(30),
        async || {
            let mut sent = events(&env.alerts());
            sent.sort();
            sent == expected
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.try_wait().unwrap().is_none(), "the agent died");

    let back = now();
    server.restart();
    eventually(
        "the full state written after the outage",
        Duration::from_secs(30),
        async || {
            let heartbeat_fresh = db
                .agents()
                .await
                .is_ok_and(|agents| agents.iter().any(|h| h.name == AGENT && h.updated >= back));
            heartbeat_fresh && names(&db).await == Some(vec![(b.clone(), true)])
        },
    )
    .await;

    let pid = agent.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = agent.wait().unwrap();
    let log = std::fs::read_to_string(env.path("agent.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("cannot write faults to the database"),
        "the outage was not reported:\n{log}"
    );
    assert!(
        db.get_faults(AGENT).await.unwrap().is_empty(),
        "deregistered"
    );
}

// ---------------------------------------------------------------- clean stop

/// A SIGTERM keeps the open alert under the reserved keys `_open/AGENT` and
/// `_stopped` (nothing else of the agent stays), `faults` and `agents` do
/// not show them, and the next start resolves the alert and removes them.
/// See: #22
#[tokio::test(flavor = "multi_thread")]
async fn a_clean_stop_keeps_open_alerts_under_reserved_keys_until_the_next_start() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 1.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    env.write_check(
        "app.yaml",
        "down:\n  command: test -f ../fixed && echo OK || { echo 'CRITICAL - down'; exit 2; }\n  retry: 0\n",
    );
    let down = check_name("app", "down");
    let mut agent = command(&env)
        .arg("agent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the trigger", Duration::from_secs(20), async || {
        !env.alerts().is_empty()
    })
    .await;
    let pid = agent.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(agent.wait().unwrap().success());

    let client = raw_client(&endpoint);
    let faults = format!("{prefix}.faults");
    let keys: Vec<String> = scan(&client, &faults).await.into_keys().collect();
    assert_eq!(
        keys,
        [format!("_open/{AGENT} {down}"), format!("_stopped {AGENT}")]
    );
    assert_eq!(
        json(&cimaa(&env, &["faults", "--json"])),
        Value::Array(vec![])
    );
    assert_eq!(
        json(&cimaa(&env, &["agents", "--json"])),
        Value::Array(vec![])
    );

    env.write("fixed", "");
    assert_success(&cimaa(&env, &["agent", "--once"]));

    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &down, "CRITICAL - down"),
            event("resolve", &down, "")
        ]
    );
    let keys: Vec<String> = scan(&client, &faults).await.into_keys().collect();
    assert_eq!(keys, [format!("_ {AGENT}")], "only the heartbeat is left");
}

// ---------------------------------------------------------------- cost of a tick

/// Requests and write units per tick in steady state, for 0, 10 and 100
/// persistent faults, against zc.cimaa's rewrite of every fault each tick.
/// Prints the table recorded in BENCHMARKS.md (section "Issue 5")
/// (`cargo test dynamodb::steady_state -- --nocapture`).
#[tokio::test(flavor = "multi_thread")]
async fn steady_state_costs_one_write_per_tick() {
    const TICKS: u32 = 10;
    let Some(endpoint) = endpoint() else { return };
    let client = raw_client(&endpoint);
    let mut report = String::from(
        "| faults | cimaa requests/tick (read + write) | cimaa items written/tick | cimaa WCU/tick | zc.cimaa write requests/tick | zc.cimaa items written/tick | zc.cimaa WCU/tick |\n|---|---|---|---|---|---|---|\n",
    );
    for count in [0usize, 10, 100] {
        let prefix = unique_prefix();
        let db = open(&endpoint, &prefix);
        db.setup(None).await.unwrap();
        let faults: Vec<Fault> = (0..count)
            .map(|i| Fault {
                name: format!("//{AGENT}/app/check{i:03}"),
                severity: Severity::ERROR,
                message: "CRITICAL - disk 97% full".to_owned(),
                since: 1_700_000_000,
                updated: 1_700_000_000,
                triggered: false,
                escalates: true,
                attempts: 4,
                monitor_runs: 0,
                storm: false,
                suppressed_by: None,
                held: false,
                flapping: false,
            })
            .collect();
        // Startup as the agent does it: read the stored state, write the first tick.
        db.get_faults(AGENT).await.unwrap();
        db.set_faults(AGENT, &faults, 1_700_000_000).await.unwrap();
        let before = db.stats();
        for tick in 1..=TICKS {
            let now = 1_700_000_000 + i64::from(tick) * 60;
            db.get_squelches(now).await.unwrap();
            db.set_faults(AGENT, &faults, now).await.unwrap();
        }
        let after = db.stats();
        let reads = (after.read_requests - before.read_requests) / u64::from(TICKS);
        let writes = (after.write_requests - before.write_requests) / u64::from(TICKS);
        let items = (after.items_written - before.items_written) / u64::from(TICKS);
        let units = (after.write_units - before.write_units) / f64::from(TICKS);
        assert_eq!(writes, 1, "{count} faults: one write request per tick");
        assert_eq!(items, 1, "{count} faults: only the heartbeat is written");

        // zc.cimaa: every tick, one BatchWriteItem stream of heartbeat + all faults.
        let table = format!("{prefix}.faults");
        let (mut old_requests, mut old_items, mut old_units) = (0u64, 0u64, 0f64);
        for tick in 1..=TICKS {
            let now = (1_700_000_000 + i64::from(tick) * 60).to_string();
            let mut requests = vec![item(&[
                ("agent", s("_")),
                ("name", s(AGENT)),
                ("updated", n(&now)),
            ])];
            requests.extend(faults.iter().map(|f| {
                item(&[
                    ("agent", s(AGENT)),
                    ("name", s(&f.name)),
                    ("severity", n(&f.severity.0.to_string())),
                    ("message", s(&f.message)),
                    ("since", n(&f.since.to_string())),
                    ("updated", n(&now)),
                ])
            }));
            for chunk in requests.chunks(25) {
                let writes = chunk
                    .iter()
                    .map(|i| {
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder()
                                    .set_item(Some(i.clone()))
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                    })
                    .collect();
                let output = client
                    .batch_write_item()
                    .request_items(&table, writes)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .unwrap();
                old_requests += 1;
                old_items += chunk.len() as u64;
                old_units += output
                    .consumed_capacity()
                    .iter()
                    .filter_map(ConsumedCapacity::capacity_units)
                    .sum::<f64>();
            }
        }
        let _ = writeln!(
            report,
            "| {count} | {reads} + {writes} | {items} | {units:.1} | {} | {} | {:.1} |",
            old_requests / u64::from(TICKS),
            old_items / u64::from(TICKS),
            old_units / f64::from(TICKS),
        );
    }
    eprintln!("\n{report}");
}

/// A fault item of `agent` with one attribute replaced.
fn fault_with(agent: &str, name: &str, key: &str, value: AttributeValue) -> Item {
    let mut fault = item(&[
        ("agent", s(agent)),
        ("name", s(name)),
        ("severity", n("40")),
        ("message", s("m")),
        ("since", n("100")),
        ("updated", n("100")),
    ]);
    fault.insert(key.to_owned(), value);
    fault
}

// See: #18
#[tokio::test(flavor = "multi_thread")]
async fn malformed_items_are_skipped_and_named_and_the_agents_own_are_replaced() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let db = open(&endpoint, &prefix);
    db.setup(None).await.unwrap();
    let client = raw_client(&endpoint);
    let faults = format!("{prefix}.faults");
    let squelches = format!("{prefix}.squelches");
    let good = Fault {
        name: "disk".to_owned(),
        severity: Severity::ERROR,
        message: "full".to_owned(),
        since: 100,
        updated: 100,
        triggered: false,
        escalates: true,
        attempts: 0,
        monitor_runs: 0,
        storm: false,
        suppressed_by: None,
        held: false,
        flapping: false,
    };
    db.set_faults("web1", std::slice::from_ref(&good), 100)
        .await
        .unwrap();
    put(
        &client,
        &faults,
        fault_with("web2", "load", "severity", s("high")),
    )
    .await;
    put(
        &client,
        &faults,
        fault_with("web2", "net", "attempts", n("9223372036854775807")),
    )
    .await;
    put(
        &client,
        &faults,
        fault_with("web1", "mem", "since", s("noon")),
    )
    .await;
    put(
        &client,
        &squelches,
        item(&[("regex", s("web1")), ("time", n("100"))]),
    )
    .await;
    put(
        &client,
        &squelches,
        item(&[("regex", s("web2")), ("time", s("noon"))]),
    )
    .await;

    let listed = db.list_faults(None).await.unwrap();
    let regexes = db.get_squelches(200).await.unwrap();

    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|f| (f.agent.as_str(), f.fault.name.as_str()))
        .collect();
    assert_eq!(names, [("web1", "disk")]);
    assert_eq!(regexes, ["web1"]);
    let keys: Vec<(String, String)> = db
        .skipped_rows()
        .into_iter()
        .map(|row| (row.table, row.key))
        .collect();
    assert_eq!(
        keys,
        [
            (faults.clone(), "web1/mem".to_owned()),
            (faults.clone(), "web2/load".to_owned()),
            (faults.clone(), "web2/net".to_owned()),
            (squelches, "web2".to_owned()),
        ]
    );

    // The agent's own malformed item goes with its next write.
    let own = open(&endpoint, &prefix);
    assert_eq!(
        own.get_faults("web1").await.unwrap(),
        std::slice::from_ref(&good)
    );
    assert_eq!(own.skipped_rows().len(), 1);
    own.set_faults("web1", std::slice::from_ref(&good), 160)
        .await
        .unwrap();
    assert_eq!(own.skipped_rows(), []);
    assert!(!scan(&client, &faults).await.contains_key("web1 mem"));
}

// See: #18
#[test]
fn faults_and_squelches_commands_print_the_good_items_and_warn_about_malformed_ones() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 60.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = raw_client(&endpoint);
    runtime.block_on(async {
        let faults = format!("{prefix}.faults");
        put(
            &client,
            &faults,
            fault_with("web2", "disk", "message", s("full")),
        )
        .await;
        put(
            &client,
            &faults,
            fault_with("web2", "load", "severity", s("high")),
        )
        .await;
    });

    let output = cimaa(&env, &["faults", "--json"]);

    assert_success(&output);
    let names: Vec<String> = json(&output)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["disk"]);
    assert!(
        stderr(&output).contains(&format!("table `{prefix}.faults` key `web2/load`")),
        "{}",
        stderr(&output)
    );
}

/// A notice item as a broken or newer agent could leave it.
fn notice_item(
    name: &str,
    version: Option<AttributeValue>,
    record: Option<AttributeValue>,
) -> Item {
    let mut notice = item(&[("agent", s("_notices")), ("name", s(name))]);
    if let Some(version) = version {
        notice.insert("version".to_owned(), version);
    }
    if let Some(record) = record {
        notice.insert("record".to_owned(), record);
    }
    notice
}

/// A well-formed record held by `holder`.
fn held_by(holder: &str) -> AttributeValue {
    s(&format!(
        r#"{{"holders":["{holder}"],"delivered":[],"claim":null}}"#
    ))
}

// See: #11. Notice items written by a broken or newer agent read as empty
// notices at their stored version (0 when that is unreadable), are named,
// and the next put over that version replaces them.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_notice_items_read_as_empty_and_the_next_put_replaces_them() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let db = open(&endpoint, &prefix);
    db.setup(None).await.unwrap();
    let client = raw_client(&endpoint);
    let faults = format!("{prefix}.faults");
    let cases = [
        // (name, version, record, version read)
        (
            "//missing",
            Some(n("3")),
            Some(s(r#"{"holders":["web1"]}"#)),
            3,
        ),
        ("//types", Some(n("4")), Some(n("12")), 4),
        ("//norecord", Some(n("5")), None, 5),
        ("//text", Some(s("seven")), Some(held_by("web1")), 0),
        ("//noversion", None, Some(held_by("web1")), 0),
        ("//negative", Some(n("-2")), Some(held_by("web1")), 0),
        ("//huge", Some(n("1e30")), Some(held_by("web1")), 0),
    ];
    for (name, version, record, _) in &cases {
        put(
            &client,
            &faults,
            notice_item(name, version.clone(), record.clone()),
        )
        .await;
    }
    // A fractional version (another tool's) is read as its whole part, and
    // the record is good.
    put(
        &client,
        &faults,
        notice_item("//fraction", Some(n("2.5")), Some(held_by("web1"))),
    )
    .await;
    let mut names: Vec<String> = cases.iter().map(|case| case.0.to_owned()).collect();
    names.push("//fraction".to_owned());

    let read = db.notices(&names).await.unwrap();

    let mut want: Vec<Notice> = cases
        .iter()
        .map(|(name, _, _, version)| Notice {
            version: *version,
            ..Notice::new(name)
        })
        .collect();
    want.push(Notice {
        holders: ["web1".to_owned()].into(),
        version: 2,
        ..Notice::new("//fraction")
    });
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(read, want);
    let skipped: Vec<String> = db.skipped_rows().into_iter().map(|row| row.key).collect();
    let mut malformed: Vec<String> = cases
        .iter()
        .map(|case| format!("_notices/{}", case.0))
        .collect();
    malformed.sort();
    assert_eq!(skipped, malformed);

    // A put over another version still fails; over the version read, it
    // replaces the item.
    let joined = |name: &str| Notice {
        holders: ["web2".to_owned()].into(),
        ..Notice::new(name)
    };
    assert!(!db.put_notice(&joined("//missing"), 0).await.unwrap());
    assert!(!db.put_notice(&joined("//text"), 1).await.unwrap());
    for notice in &read {
        assert!(
            db.put_notice(&joined(&notice.name), notice.version)
                .await
                .unwrap(),
            "{}",
            notice.name
        );
    }
    let replaced = db.notices(&names).await.unwrap();
    assert!(
        replaced
            .iter()
            .zip(&read)
            .all(|(new, old)| new.holders == joined("").holders && new.version == old.version + 1),
        "{replaced:?}"
    );
    assert_eq!(db.skipped_rows(), []);
}

// See: #11. Notices live under a reserved agent key of the faults table:
// the CLI lists none of them, and warns about none.
#[test]
fn the_faults_and_agents_commands_never_show_notices() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique_prefix();
    let env = dynamodb_agent(&endpoint, &prefix, 60.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = open(&endpoint, &prefix);
        let down = Fault {
            name: "disk".to_owned(),
            severity: Severity::CRITICAL,
            message: "full".to_owned(),
            since: 100,
            updated: 100,
            triggered: true,
            escalates: true,
            attempts: 0,
            monitor_runs: 0,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        };
        db.set_faults("web2", &[down], 100).await.unwrap();
        let notice = Notice {
            holders: ["web2".to_owned()].into(),
            delivered: vec!["full".to_owned()],
            ..Notice::new("//web2/disk")
        };
        assert!(db.put_notice(&notice, 0).await.unwrap());
    });

    let faults = cimaa(&env, &["faults", "--json"]);
    let agents = cimaa(&env, &["agents", "--json"]);

    let names: Vec<(String, String)> = json(&faults)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["agent"].as_str().unwrap().to_owned(),
                f["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(names, [("web2".to_owned(), "disk".to_owned())]);
    assert_eq!(stderr(&faults), "");
    let agents: Vec<String> = json(&agents)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(agents, ["web2"]);
}
