//! Hostile inputs to the CLI and the squelch path, and `validate
//! --healthchecks` against broken backends (issue #18), driving the real
//! binary over a SQLite file that a peer (or an attacker) wrote.

use std::process::Output;

use cimaa::db::{Db, Fault, SqliteDb, Squelch};
use cimaa::severity::Severity;
use serde_json::Value;

use crate::fake_http::{FakeHttp, Reply};
use crate::util::{AGENT, Env, assert_success, stderr, stdout};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn open(env: &Env) -> SqliteDb {
    SqliteDb::open(&env.path("cimaa.db")).await.unwrap()
}

/// A squelch written straight into the database, past the CLI's checks.
async fn store_squelch(env: &Env, regex: &str) {
    open(env)
        .await
        .squelch(&Squelch {
            regex: regex.into(),
            reason: "written by a peer".into(),
            user: "mallory".into(),
            time: now(),
            permanent: true,
            expires: None,
        })
        .await
        .unwrap();
}

fn json(output: &Output) -> Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every line of a table output is at most `max` characters.
fn assert_table_lines_within(output: &Output, max: usize) {
    assert_success(output);
    let text = stdout(output);
    for line in text.lines() {
        assert!(line.chars().count() <= max, "line too long: {line:.200}");
    }
}

// See: #18
#[tokio::test]
async fn squelches_lists_a_100_kb_regex_cut_in_the_table_and_whole_in_json() {
    let env = Env::new();
    let regex = format!("web{}", "x".repeat(100_000));
    store_squelch(&env, &regex).await;
    let table = env.cimaa(&["squelches"]);
    assert_table_lines_within(&table, 300);
    assert!(stdout(&table).contains("webxxx"), "{:.300}", stdout(&table));
    assert!(stdout(&table).contains('…'));
    let list = json(&env.cimaa(&["squelches", "--json"]));
    assert_eq!(list[0]["regex"], regex.as_str());
}

// See: #18
#[tokio::test]
async fn agents_lists_a_70000_character_agent_name() {
    let env = Env::new();
    let name = "a".repeat(70_000);
    open(&env).await.heartbeat(&name, now()).await.unwrap();
    assert_table_lines_within(&env.cimaa(&["agents"]), 200);
    let list = json(&env.cimaa(&["agents", "--json"]));
    assert_eq!(list[0]["name"], name.as_str());
}

// See: #18
#[tokio::test]
async fn faults_lists_a_70000_character_fault_name() {
    let env = Env::new();
    let name = format!("//{AGENT}/app/{}", "f".repeat(70_000));
    let fault = Fault {
        name: name.clone(),
        severity: Severity::CRITICAL,
        message: "m".repeat(70_000),
        since: now(),
        updated: now(),
        triggered: false,
        escalates: true,
        attempts: 1,
        monitor_runs: 0,
        storm: false,
        suppressed_by: None,
        held: false,
        flapping: false,
    };
    open(&env)
        .await
        .set_faults(AGENT, &[fault], now())
        .await
        .unwrap();
    assert_table_lines_within(&env.cimaa(&["faults"]), 400);
    let list = json(&env.cimaa(&["faults", "--json"]));
    assert_eq!(list[0]["name"], name.as_str());
}

/// `cimaa squelch ARGS` must exit 2 with `needle` in its message and store nothing.
fn assert_squelch_refused(env: &Env, args: &[&str], needle: &str) {
    let mut all = vec!["squelch"];
    all.extend_from_slice(args);
    let output = env.cimaa(&all);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains(needle), "{}", stderr(&output));
    let list = json(&env.cimaa(&["squelches", "--json"]));
    assert_eq!(list, serde_json::json!([]));
}

// See: #18
#[test]
fn squelch_refuses_a_regex_over_the_length_limit() {
    let env = Env::new();
    let long = "x".repeat(5000);
    assert_squelch_refused(&env, &[&long, "reason"], "the limit is 1024");
}

// See: #18
#[test]
fn squelch_refuses_an_empty_regex_that_would_silence_everything() {
    let env = Env::new();
    assert_squelch_refused(&env, &["", "reason"], "would silence every alert");
    assert_squelch_refused(&env, &[".*", "reason"], "matches every fault name");
}

// See: #18
#[test]
fn squelch_refuses_permanent_with_expires() {
    let env = Env::new();
    assert_squelch_refused(
        &env,
        &["web", "reason", "--permanent", "--expires", "1h"],
        "`--permanent` and `--expires`",
    );
}

// See: #18
#[tokio::test]
async fn an_oversized_stored_squelch_is_a_warning_logged_once_and_the_others_still_work() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  base_interval: 1\n  logging: warn\n",
    );
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n",
    );
    store_squelch(&env, &format!("({})", "x|".repeat(500_000))).await;
    store_squelch(&env, "app/down").await;
    let output = env.cimaa(&["agent", "--count", "3"]);
    assert_success(&output);
    let log = stderr(&output);
    assert_eq!(
        log.matches("ignoring a stored squelch").count(),
        1,
        "{log:.2000}"
    );
    assert!(log.len() < 20_000, "the regex is not logged whole");
    let fault = env
        .fault(&format!("{AGENT}#squelches"))
        .expect("AGENT#squelches");
    assert_eq!(fault["severity"], Severity::WARNING.0);
    let message = fault["message"].as_str().unwrap();
    assert!(message.contains("the limit is 1024"), "{message}");
    assert!(message.len() < 400, "{message}");
    assert!(env.alerts().is_empty(), "the valid squelch still silences");
}

// See: #18
#[tokio::test]
async fn the_squelches_warning_clears_when_the_bad_regex_is_removed() {
    let env = Env::new();
    store_squelch(&env, "web(").await;
    env.once();
    let name = format!("{AGENT}#squelches");
    let message = env.fault(&name).expect("AGENT#squelches")["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("invalid squelch regex `web(`"),
        "{message}"
    );
    assert!(open(&env).await.unsquelch("web(").await.unwrap());
    env.once();
    assert!(env.fault(&name).is_none());
}

// See: #18
#[test]
fn the_file_alerter_creates_its_folder() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: logs/new/alerts.jsonl\n",
        "",
    );
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n",
    );
    env.once();
    let alerts = crate::util::read_json_lines(&env.path("logs/new/alerts.jsonl"));
    assert_eq!(alerts.len(), 1);
    assert_eq!(env.fault(&format!("{AGENT}#alerts")), None);
}

/// `validate --healthchecks`, which must fail with exit 1.
fn failing_healthchecks(env: &Env) -> String {
    let output = env.cimaa(&["validate", "--healthchecks"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    stderr(&output)
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// See: #18
#[test]
fn healthchecks_name_each_unreachable_alerter() {
    let env = Env::new();
    let plain_http = FakeHttp::start(Reply::new(200, "{}"));
    let port = closed_port();
    let file = env.path("plain-file");
    std::fs::write(&file, "").unwrap();
    env.configure(
        &format!(
            "alerter:\n  type: pagerduty\n  routing_key: k\n  url: http://127.0.0.1:{port}/v2/enqueue\n\
             alerters:\n  \
               tls:\n    type: pagerduty\n    routing_key: k\n    url: https://127.0.0.1:{}/v2/enqueue\n  \
               pager:\n    type: command\n    command: no-such-notifier --now\n  \
               log:\n    type: file\n    path: {}/alerts.jsonl\n",
            plain_http.port,
            file.display()
        ),
        "",
    );
    let err = failing_healthchecks(&env);
    assert!(
        err.contains(&format!(
            "alerter `default` (pagerduty): cannot connect to `127.0.0.1:{port}`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "alerter `tls` (pagerduty): TLS handshake with `127.0.0.1:{}` failed",
            plain_http.port
        )),
        "{err}"
    );
    assert!(
        err.contains("alerter `pager` (command): program `no-such-notifier` not found in PATH"),
        "{err}"
    );
    assert!(
        err.contains("alerter `log` (file): cannot create") && err.contains("is not a folder"),
        "{err}"
    );
    assert!(err.contains("4 healthcheck(s) failed"), "{err}");
    let posts = plain_http
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST");
    assert_eq!(posts.count(), 0, "no event was sent");
}

// See: #18
#[test]
fn healthchecks_ask_slack_whether_the_token_works() {
    let env = Env::new();
    let slack = FakeHttp::start(Reply::new(200, r#"{"ok":false,"error":"invalid_auth"}"#));
    env.configure(
        &format!(
            "alerter:\n  type: slack\n  token: xoxb-bad\n  url: {}\n",
            slack.url("/api/chat.postMessage")
        ),
        "",
    );
    let err = failing_healthchecks(&env);
    assert!(
        err.contains("alerter `default` (slack): token refused by auth.test: Slack: invalid_auth"),
        "{err}"
    );
    let requests = slack.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/api/auth.test");
    assert_eq!(requests[0].header("authorization"), Some("Bearer xoxb-bad"));
}

// See: #18
#[test]
fn healthchecks_print_one_ok_line_per_working_part() {
    let env = Env::new();
    let slack = FakeHttp::start(Reply::new(200, r#"{"ok":true,"team":"T"}"#));
    env.configure(
        &format!(
            "alerter:\n  type: file\n  path: alerts.jsonl\n\
             alerters:\n  \
               chat:\n    type: slack\n    token: xoxb-good\n    url: {}\n  \
               pager:\n    type: command\n    command: sh -c 'exit 0'\n",
            slack.url("/api/chat.postMessage")
        ),
        "",
    );
    let output = env.cimaa(&["validate", "--healthchecks"]);
    assert_success(&output);
    let text = stdout(&output);
    let dir = env.path("");
    let dir = dir.display().to_string();
    let dir = dir.trim_end_matches('/');
    for line in [
        "ok: 0 check(s) in".to_string(),
        format!("ok: database (sqlite `{dir}/cimaa.db`): writable"),
        format!("ok: alerter `default` (file): `{dir}/alerts.jsonl` can be created in `{dir}`"),
        "ok: alerter `chat` (slack): reached `127.0.0.1:".to_string(),
        "token accepted by auth.test".to_string(),
        "ok: alerter `pager` (command): `sh` can run".to_string(),
    ] {
        assert!(text.contains(&line), "{line}\n{text}");
    }
    assert!(!env.path("alerts.jsonl").exists(), "nothing written");
}

// See: #18
#[tokio::test]
async fn healthchecks_fail_when_the_database_cannot_be_written() {
    let env = Env::new();
    drop(open(&env).await);
    // Another process holds the write lock past the busy timeout; as root a
    // read-only file would still be writable, so a held lock stands in.
    let holder = rusqlite::Connection::open(env.path("cimaa.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = failing_healthchecks(&env);
    let want = format!(
        "database (sqlite `{}`): sqlite request failed: database is locked",
        env.path("cimaa.db").display()
    );
    assert!(err.contains(&want), "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
}
