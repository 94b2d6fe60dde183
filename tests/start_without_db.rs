//! An agent whose database is unreachable at start (SPEC §14): it runs its
//! checks and pages from an empty state, then loads, reconciles and writes
//! its state once the database answers; a SIGTERM before that still exits
//! in time. Against dynalite (skipped without it, except under CI).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dynamodb::{
    Dynalite, cimaa, command, dynamodb_agent, endpoint, eventually, unique_prefix,
};
use crate::util::{AGENT, assert_success, check_name, event, events};

/// A dynalite with the tables created, then stopped: the database of an
/// agent is down when it starts. `None` skips.
fn stopped_dynalite(data: &std::path::Path) -> Option<(Dynalite, crate::util::Env)> {
    endpoint()?;
    let program = Dynalite::program()?;
    let mut server = Dynalite::start(program, data.to_owned());
    let env = dynamodb_agent(&server.endpoint(), &unique_prefix(), 1.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    server.stop();
    Some((server, env))
}

fn faults(env: &crate::util::Env) -> Option<Vec<Value>> {
    let output = cimaa(env, &["faults", "--json"]);
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice::<Vec<Value>>(&output.stdout).ok()
}

fn terminate(agent: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = agent.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    agent.wait().unwrap()
}

// See: #16
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_started_while_dynamodb_is_down_pages_then_writes_its_state_without_a_duplicate() {
    let data = tempfile::tempdir().unwrap();
    let Some((mut server, env)) = stopped_dynalite(data.path()) else {
        return;
    };
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n",
    );
    let down = check_name("app", "down");
    let log = std::fs::File::create(env.path("agent.log")).unwrap();
    let mut agent = command(&env)
        .arg("agent")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    eventually(
        "the page without a database",
        Duration::from_secs(20),
        async || !env.alerts().is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.try_wait().unwrap().is_none(), "the agent exited");
    assert!(faults(&env).is_none(), "the database is down");

    server.restart();
    eventually("the state written", Duration::from_secs(30), async || {
        faults(&env).is_some_and(|faults| {
            faults.len() == 1
                && faults[0]["agent"] == AGENT
                && faults[0]["name"] == down.as_str()
                && faults[0]["triggered"] == true
        })
    })
    .await;
    // A few more ticks with the state loaded: still the one page.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &down, "CRITICAL - down")]
    );
    let status = terminate(&mut agent);
    let log = std::fs::read_to_string(env.path("agent.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("cannot reach the database at startup"),
        "the outage at start was not reported:\n{log}"
    );
    assert!(
        log.contains("loaded the previous state"),
        "no reconciliation:\n{log}"
    );
}

// See: #16
#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_before_the_database_ever_answered_exits_cleanly_in_time() {
    let data = tempfile::tempdir().unwrap();
    let Some((_server, env)) = stopped_dynalite(data.path()) else {
        return;
    };
    env.write_check("app.yaml", "ok:\n  command: echo OK\n");
    let log = std::fs::File::create(env.path("agent.log")).unwrap();
    let mut agent = command(&env)
        .arg("agent")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(env.path("agent.log")).unwrap();
    eventually("a tick", Duration::from_secs(20), async || {
        log_text().contains("tick done")
    })
    .await;
    let stopping = Instant::now();
    let status = terminate(&mut agent);
    assert!(status.success(), "{}", log_text());
    assert!(stopping.elapsed() < Duration::from_secs(10));
    assert!(
        log_text().contains("without having reached the database"),
        "{}",
        log_text()
    );
}

// See: #16
#[tokio::test(flavor = "multi_thread")]
async fn a_fault_paged_before_a_start_without_dynamodb_is_not_paged_again_once_it_answers() {
    if endpoint().is_none() {
        return;
    }
    let Some(program) = Dynalite::program() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut server = Dynalite::start(program, data.path().to_owned());
    let env = dynamodb_agent(&server.endpoint(), &unique_prefix(), 2.0);
    assert_success(&cimaa(&env, &["setup-db"]));
    // UNKNOWN is an escalating ERROR: critical (and paged) on the third run.
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'UNKNOWN down'; exit 3\n  retry: 2\n",
    );
    let down = check_name("app", "down");
    assert_success(&cimaa(&env, &["agent", "--count", "3"]));
    let paged = [event("trigger", &down, "UNKNOWN down")];
    assert_eq!(events(&env.alerts()), paged);

    server.stop();
    let log = std::fs::File::create(env.path("agent.log")).unwrap();
    let mut agent = command(&env)
        .arg("agent")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(env.path("agent.log")).unwrap();
    eventually(
        "the start without a database",
        Duration::from_secs(20),
        async || log_text().contains("cannot reach the database at startup"),
    )
    .await;
    server.restart();
    eventually("the reconciliation", Duration::from_secs(30), async || {
        log_text().contains("loaded the previous state")
    })
    .await;
    // Past the run where this start's own counting alone would page again.
    eventually(
        "the fault critical again",
        Duration::from_secs(30),
        async || {
            faults(&env).is_some_and(|faults| {
                faults.len() == 1
                    && faults[0]["severity"].as_i64() >= Some(50)
                    && faults[0]["triggered"] == true
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(events(&env.alerts()), paged, "{}", log_text());
    let status = terminate(&mut agent);
    assert!(status.success(), "{}", log_text());
}
