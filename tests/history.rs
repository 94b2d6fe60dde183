//! The history (SPEC §12) against the real binary and a SQLite file: a
//! fault's whole life in `history --json`, nothing added by steady ticks, a
//! failing alerter's error, agent started and deregistered, the filters.
//! See: #12

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::util::{AGENT, Env, assert_success, check_name, stderr, stdout, wait_for};

/// A check that is CRITICAL until the file `fixed` exists beside the
/// configuration.
fn down_check(env: &Env) -> String {
    env.write_check(
        "app.yaml",
        "down:\n  command: test -f ../fixed && echo OK || { echo 'CRITICAL - down'; exit 2; }\n  retry: 0\n",
    );
    check_name("app", "down")
}

/// `cimaa history --json ARGS`, oldest first (the command prints newest
/// first), as (event, name, alerter, detail).
fn history(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["history", "--json"];
    all.extend_from_slice(args);
    let output = env.cimaa(&all);
    assert_success(&output);
    let Value::Array(mut records) = serde_json::from_slice(&output.stdout).unwrap() else {
        panic!("history --json is not an array: {}", stdout(&output));
    };
    records.reverse();
    records
}

fn events(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(event: &str, name: &str) -> (String, String) {
    (event.to_owned(), name.to_owned())
}

#[test]
fn a_faults_whole_life_appears_in_order() {
    let env = Env::new();
    let name = down_check(&env);

    env.once();
    env.once();
    env.write("fixed", "");
    env.once();

    let records = history(&env, &[]);
    assert_eq!(
        events(&records),
        [
            pair("started", AGENT),
            pair("triggered", &name),
            pair("delivered", &name),
            pair("started", AGENT),
            pair("started", AGENT),
            pair("resolved", &name),
            pair("delivered", &name),
        ]
    );
    let triggered = &records[1];
    assert_eq!(triggered["agent"], AGENT);
    assert_eq!(triggered["severity"], 50);
    assert_eq!(triggered["message"], "CRITICAL - down");
    assert_eq!(triggered["alerter"], Value::Null);
    assert_eq!(triggered["user"], Value::Null);
    let delivered = &records[2];
    assert_eq!(delivered["alerter"], "default");
    assert_eq!(delivered["detail"], "trigger");
    assert_eq!(records[6]["detail"], "resolve");
    // Every record has the nine fields.
    for record in &records {
        let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 9, "{record}");
    }
}

/// Fast ticks, so that ten take two seconds.
const FAST: &str = "  base_interval: 0.2\n  timeout: 5\n  alert_timeout: 2\n  splay: 0\n";

#[test]
fn ten_steady_ticks_add_nothing() {
    let env = Env::with_alerter("alerter:\n  type: file\n  path: alerts.jsonl\n", FAST);
    down_check(&env);
    env.once();
    let before = history(&env, &[]).len();

    let output = env.cimaa(&["agent", "--count", "10"]);
    assert_success(&output);

    let after = history(&env, &[]);
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(after.last().unwrap()["event"], "started");
}

#[test]
fn a_failing_command_alerters_error_appears_once() {
    let env = Env::with_alerter(
        "alerter:\n  type: command\n  command: echo 'no route to pager' >&2; exit 3\n",
        FAST,
    );
    let name = down_check(&env);

    // One process retrying the trigger on every tick.
    assert_success(&env.cimaa(&["agent", "--count", "4"]));

    let failed: Vec<Value> = history(&env, &["--name", "down"])
        .into_iter()
        .filter(|r| r["event"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["name"], name.as_str());
    assert_eq!(failed[0]["alerter"], "default");
    let detail = failed[0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("trigger: "), "{detail}");
    assert!(detail.contains("3"), "{detail}");
}

#[test]
fn a_clean_stop_records_deregistered_after_started() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  base_interval: 0.5\n",
    );
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.config())
        .arg("agent")
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first write", Duration::from_secs(15), || {
        !history(&env, &[]).is_empty()
    });

    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "no exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    assert_eq!(
        events(&history(&env, &["--agent", AGENT])),
        [pair("started", AGENT), pair("deregistered", AGENT)]
    );
}

#[test]
fn filters_and_the_table() {
    let env = Env::new();
    let name = down_check(&env);
    env.once();

    assert!(history(&env, &["--agent", "nobody"]).is_empty());
    assert_eq!(history(&env, &["--name", "^nothing$"]), Vec::<Value>::new());
    assert_eq!(history(&env, &["--limit", "1"]).len(), 1);
    assert_eq!(
        events(&history(&env, &["--name", "app"])),
        [pair("triggered", &name), pair("delivered", &name)]
    );
    let output = env.cimaa(&["history"]);
    assert_success(&output);
    let table = stdout(&output);
    assert!(table.contains("TIME"), "{table}");
    assert!(table.contains("delivered"), "{table}");
    assert!(table.contains("default trigger"), "{table}");

    let bad = env.cimaa(&["history", "--name", "("]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let bad = env.cimaa(&["history", "--since", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn an_error_escalated_by_the_failure_counter_is_recorded_once() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "flaky:\n  command: echo 'CRITICAL - flaky'; exit 2\n  retry: 1\n",
    );
    let name = check_name("app", "flaky");

    env.once();
    env.once();
    env.once();

    let records = events(&history(&env, &["--name", "flaky"]));
    assert_eq!(
        records,
        [
            pair("escalated", &name),
            pair("triggered", &name),
            pair("delivered", &name),
        ]
    );
}

#[test]
fn a_critical_fault_that_a_squelch_silences_is_recorded_squelched_once() {
    let env = Env::new();
    let name = down_check(&env);
    assert_success(&env.cimaa(&["squelch", "app", "deploying app"]));

    env.once();
    env.once();

    let squelched: Vec<Value> = history(&env, &["--name", "app"])
        .into_iter()
        .filter(|r| r["event"] == "squelched")
        .collect();
    // Once per process: the second `--once` is a new agent process.
    assert_eq!(squelched.len(), 2, "{squelched:?}");
    assert_eq!(squelched[0]["name"], name.as_str());
    assert_eq!(squelched[0]["severity"], 50);
}
