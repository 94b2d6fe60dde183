//! What the heartbeat says about the agent (SPEC §14): its version and the
//! number of checks it runs, shown by `cimaa agents` and `--json`, absent
//! for an agent that does not record them. The real binary on `SQLite`; the
//! DynamoDB item layout is checked in `tests/dynamodb.rs`.
//! See: #16

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cimaa::db::{Db, SqliteDb};
use serde_json::Value;

use crate::util::{AGENT, Env, assert_success, stdout};

/// What `cimaa --version` prints after the name.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Two checks, an entry that does not validate and a file that does not
/// parse: the agent runs two checks, whatever placeholders it reports.
fn two_checks_and_two_broken(env: &Env) {
    env.write_check(
        "app.yaml",
        "up:\n  command: echo OK\n\
         load:\n  command: echo OK\n\
         bad:\n  interval: 5\n",
    );
    env.write_check("broken.yaml", "up: [\n");
}

fn agents_json(env: &Env) -> Value {
    let output = env.cimaa(&["agents", "--json"]);
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The keys of a JSON object, sorted.
fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// A forever-running agent, killed (by its own pid) when dropped.
struct Running(Child);

impl Running {
    fn start(env: &Env) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .arg("-c")
            .arg(env.config())
            .arg("agent")
            .current_dir(env.path(""))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agents_json_shows_the_version_and_checks_of_a_running_agent() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  base_interval: 1\n",
    );
    two_checks_and_two_broken(&env);
    let _agent = Running::start(&env);

    let started = Instant::now();
    let agent = loop {
        let agents = agents_json(&env);
        if agents[0]["checks"].is_u64() {
            break agents[0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no heartbeat with checks within 20 s: {agents:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    assert_eq!(agent["name"], AGENT);
    assert_eq!(agent["version"], VERSION);
    assert_eq!(
        agent["checks"], 2,
        "placeholders are not counted: {agent:#}"
    );
    assert_eq!(keys(&agent), ["checks", "name", "updated", "version"]);
}

#[test]
fn the_agents_table_shows_version_and_checks() {
    let env = Env::new();
    two_checks_and_two_broken(&env);
    env.once();

    let output = env.cimaa(&["agents"]);

    assert_success(&output);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["AGENT", "HEARTBEAT", "VERSION", "CHECKS"],
        "{text}"
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells[0], AGENT, "{text}");
    assert_eq!(&cells[2..], ["ago", VERSION, "2"], "{text}");
}

#[test]
fn a_changed_check_directory_changes_the_count_at_the_next_tick() {
    let env = Env::new();
    two_checks_and_two_broken(&env);
    env.once();
    env.write_check("more.yaml", "disk:\n  command: echo OK\n");

    env.once();

    assert_eq!(agents_json(&env)[0]["checks"], 3);
}

/// A heartbeat written without facts, as zc.cimaa and older cimaa agents
/// write theirs (on DynamoDB see `tests/dynamodb.rs`).
async fn heartbeat_without_facts(env: &Env, name: &str) {
    let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
    db.heartbeat(name, chrono::Utc::now().timestamp())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_agent_that_records_no_facts_has_no_version_or_checks() {
    let env = Env::new();
    heartbeat_without_facts(&env, "old-host").await;

    let agents = agents_json(&env);
    let output: Output = env.cimaa(&["agents"]);

    assert_eq!(agents[0]["name"], "old-host");
    assert_eq!(keys(&agents[0]), ["name", "updated"], "{agents:#}");
    assert_success(&output);
    let text = stdout(&output);
    let cells: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(cells.len(), 3, "blank VERSION and CHECKS: {text}");
}
