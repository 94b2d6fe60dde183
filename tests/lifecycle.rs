//! Open alerts outlive a clean stop (SPEC §14, §16): a SIGTERM keeps them,
//! the next start resolves what cleared, `cimaa forget` resolves and removes
//! what a host that will not come back left, and the meta-check reports an
//! agent stopped with open alerts. Against the real binary, a shared SQLite
//! file and file alerters.
//! See: #22

use std::fs;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cimaa::db::{Db, Fault, OpenAlert, SqliteDb};
use cimaa::severity::Severity;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::util::{
    AGENT, Env, assert_success, check_name, event, events, read_json_lines, stderr, stdout,
    wait_for,
};

/// The default alerter writes `alerts.jsonl`; `ops` writes `ops.jsonl`.
const ALERTERS: &str = "alerter:\n  type: file\n  path: alerts.jsonl\nalerters:\n  ops:\n    type: file\n    path: ops.jsonl\n";

/// Half-second ticks, so a daemon triggers within a second; checks and
/// alerts (and `forget`'s resolves) get more than their default shares of
/// such a tick, so a busy test machine does not time them out.
const FAST: &str = "  base_interval: 0.5\n  timeout: 10\n  alert_timeout: 5\n";

fn fast_agent() -> Env {
    Env::with_alerter(ALERTERS, FAST)
}

/// A check that is CRITICAL (`CRITICAL - down`) until the file `fixed`
/// exists beside the configuration.
fn app_check(env: &Env, extra: &str) -> String {
    env.write_check(
        "app.yaml",
        &format!(
            "down:\n  command: test -f ../fixed && echo OK || {{ echo 'CRITICAL - down'; exit 2; }}\n  retry: 0\n{extra}"
        ),
    );
    check_name("app", "down")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn open(env: &Env) -> SqliteDb {
    SqliteDb::open(&env.path("cimaa.db")).await.unwrap()
}

/// A long-running `cimaa agent`.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn start(env: &Env) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .arg("-c")
            .arg(env.config())
            .arg("agent")
            .current_dir(env.path(""))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running { child: Some(child) }
    }

    fn signal(&mut self, signal: Signal) {
        let pid = self.child.as_ref().unwrap().id();
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
    }

    /// Waits (at most 10 s, SPEC §9) for the agent to exit.
    fn wait(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the agent did not exit within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a daemon until it has triggered its first alert (in `file`) and
/// stored it, then stops it with `signal`.
fn trigger_then_stop(env: &Env, file: &str, signal: Signal) -> Output {
    let mut agent = Running::start(env);
    wait_for("the trigger", Duration::from_secs(15), || {
        !read_json_lines(&env.path(file)).is_empty()
    });
    // The database learns of the trigger after the alerter: a SIGKILL
    // before that write would leave nothing triggered behind.
    wait_for(
        "the triggered fault stored",
        Duration::from_secs(15),
        || env.faults().iter().any(|fault| fault["triggered"] == true),
    );
    agent.signal(signal);
    agent.wait()
}

/// SIGTERM after the first trigger; the agent must exit 0.
fn trigger_then_terminate(env: &Env, file: &str) {
    let output = trigger_then_stop(env, file, Signal::SIGTERM);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

fn agent_names(env: &Env) -> Vec<String> {
    let output = env.cimaa(&["agents", "--json"]);
    assert_success(&output);
    let agents: Value = serde_json::from_slice(&output.stdout).unwrap();
    agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `cimaa -c CONFIG ARGS` with a configuration file of the temp dir.
fn cimaa_as(env: &Env, config: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.path(config))
        .args(args)
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A configuration for another agent, `observer`, on the same database.
fn observer(env: &Env) -> &'static str {
    env.write(
        "observer.yaml",
        "agent:\n  name: observer\n  directory: checks.d\n  base_interval: 60\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: observer.jsonl\n",
    );
    "observer.yaml"
}

/// The meta-check's faults as `(name, severity, message)`.
fn meta(env: &Env, config: &str, args: &[&str]) -> Vec<(String, i64, String)> {
    let mut all = vec!["meta-check"];
    all.extend_from_slice(args);
    let output = cimaa_as(env, config, &all);
    crate::util::meta_faults(&output)
}

fn names(faults: &[(String, i64, String)]) -> Vec<&str> {
    faults.iter().map(|(name, _, _)| name.as_str()).collect()
}

fn kept_names(kept: &[OpenAlert]) -> Vec<&str> {
    kept.iter().map(|alert| alert.fault.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_alert_is_resolved_by_the_next_start_after_a_sigterm_once_the_app_is_fixed() {
    let env = fast_agent();
    let name = app_check(&env, "");
    trigger_then_terminate(&env, "alerts.jsonl");
    assert!(agent_names(&env).is_empty(), "the agent deregistered");
    assert!(env.faults().is_empty(), "its faults left the listing");
    let db = open(&env).await;
    assert_eq!(kept_names(&db.open_alerts(AGENT).await.unwrap()), [&name]);

    fs::write(env.path("fixed"), "").unwrap();
    env.once();

    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &name, "CRITICAL - down"),
            event("resolve", &name, "")
        ]
    );
    assert!(env.faults().is_empty());
    assert_eq!(db.open_alerts(AGENT).await.unwrap(), vec![]);
}

// See: #22 (issue item 3): a meta host stopped while it paged a dead peer
// resolves that page at its next start once the peer is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_meta_hosts_page_for_a_peer_is_resolved_by_its_next_start() {
    let env = fast_agent();
    env.write_check(
        "meta.yaml",
        "//meta:\n  meta: {warn: 4, error: 4}\n  retry: 0\n",
    );
    let db = open(&env).await;
    db.heartbeat("web9", now() - 1000).await.unwrap();
    trigger_then_terminate(&env, "alerts.jsonl");
    assert_eq!(
        kept_names(&db.open_alerts(AGENT).await.unwrap()),
        ["//meta#web9"]
    );

    db.heartbeat("web9", now()).await.unwrap();
    env.once();

    let alerts = events(&env.alerts());
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[1], event("resolve", "//meta#web9", ""));
    assert_eq!(db.open_alerts(AGENT).await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_still_critical_alert_is_not_triggered_again_by_the_next_start() {
    let env = fast_agent();
    // An ERROR escalated after one retry: only its kept failure counter
    // keeps it CRITICAL after the restart.
    env.write_check(
        "app.yaml",
        "slow:\n  command: echo 'ERROR - slow'; exit 2\n  retry: 1\n",
    );
    let name = check_name("app", "slow");
    trigger_then_terminate(&env, "alerts.jsonl");

    env.once();
    env.once();

    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &name, "ERROR - slow")]
    );
    let fault = env.fault(&name).unwrap();
    assert_eq!(fault["severity"], 50);
    assert_eq!(fault["triggered"], true);
    let db = open(&env).await;
    assert_eq!(
        db.open_alerts(AGENT).await.unwrap(),
        vec![],
        "the kept alert is a stored fault again"
    );
}

#[test]
fn the_kept_alert_of_a_check_removed_while_stopped_is_resolved_at_start() {
    let env = fast_agent();
    // Only the kept alert knows its route once the check is gone.
    let name = app_check(&env, "  alerter: ops\n");
    trigger_then_terminate(&env, "ops.jsonl");

    fs::remove_file(env.path("checks.d/app.yaml")).unwrap();
    env.once();

    assert_eq!(
        events(&read_json_lines(&env.path("ops.jsonl"))),
        [
            event("trigger", &name, "CRITICAL - down"),
            event("resolve", &name, "")
        ]
    );
    assert!(env.alerts().is_empty(), "nothing through `default`");
    assert!(env.faults().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_resolves_the_kept_alerts_through_their_alerter_and_removes_the_agent() {
    let env = fast_agent();
    let name = app_check(&env, "  alerter: ops\n");
    trigger_then_terminate(&env, "ops.jsonl");

    let output = env.cimaa(&["forget", AGENT]);

    assert_success(&output);
    assert_eq!(
        stdout(&output),
        format!(
            "resolved `{name}` through `ops`\nforgot agent `{AGENT}`: resolved 1 open alert and removed what it left in the database\n"
        )
    );
    assert_eq!(
        events(&read_json_lines(&env.path("ops.jsonl"))),
        [
            event("trigger", &name, "CRITICAL - down"),
            event("resolve", &name, "")
        ]
    );
    assert!(env.alerts().is_empty(), "nothing through `default`");
    let db = open(&env).await;
    assert_eq!(db.open_alerts(AGENT).await.unwrap(), vec![]);
    assert_eq!(db.stopped_agents().await.unwrap(), vec![]);
    assert!(agent_names(&env).is_empty());
}

#[test]
fn forget_resolves_an_alert_of_an_alerter_this_configuration_lacks_through_default() {
    let env = fast_agent();
    let name = app_check(&env, "  alerter: ops\n");
    trigger_then_terminate(&env, "ops.jsonl");

    // The observer has no `ops` alerter.
    let output = cimaa_as(&env, observer(&env), &["forget", AGENT]);

    assert_success(&output);
    assert!(
        stderr(&output).contains(&format!(
            "warning: alerter `ops` of `{name}` is not configured here; resolving it through `default`"
        )),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        events(&read_json_lines(&env.path("observer.jsonl"))),
        [event("resolve", &name, "")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_resolves_a_killed_agents_triggered_faults_and_removes_it() {
    let env = fast_agent();
    // Its route is not stored with the faults: `forget` finds it in this
    // configuration's check directory.
    let name = app_check(&env, "  alerter: ops\n");
    // SIGKILL: no deregistration; the heartbeat and faults stay behind.
    trigger_then_stop(&env, "ops.jsonl", Signal::SIGKILL);
    assert_eq!(agent_names(&env), [AGENT]);
    // A heartbeat older than two base intervals (1 s) is no longer fresh.
    std::thread::sleep(Duration::from_millis(1500));

    let output = env.cimaa(&["forget", AGENT]);

    assert_success(&output);
    assert!(
        stdout(&output).starts_with(&format!("resolved `{name}` through `ops`\n")),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        events(&read_json_lines(&env.path("ops.jsonl"))),
        [
            event("trigger", &name, "CRITICAL - down"),
            event("resolve", &name, "")
        ]
    );
    assert!(agent_names(&env).is_empty(), "gone from `agents`");
    assert!(env.faults().is_empty(), "gone from `faults`");
    let db = open(&env).await;
    assert_eq!(db.open_alerts(AGENT).await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_keeps_what_it_could_not_resolve_and_a_second_forget_retries() {
    let env = fast_agent();
    let name = app_check(&env, "");
    trigger_then_terminate(&env, "alerts.jsonl");
    env.configure("alerter:\n  type: command\n  command: exit 3\n", FAST);

    let output = env.cimaa(&["forget", AGENT]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "could not resolve 1 open alert of agent `{AGENT}`: `{name}` (default: "
        )),
        "{}",
        stderr(&output)
    );
    let db = open(&env).await;
    assert_eq!(kept_names(&db.open_alerts(AGENT).await.unwrap()), [&name]);
    let seen = meta(&env, observer(&env), &["-s", "0"]);
    assert_eq!(
        names(&seen),
        [format!("stopped-with-alerts-{AGENT}")],
        "still reported, for the next `forget`"
    );

    env.configure("alerter:\n  type: file\n  path: alerts.jsonl\n", FAST);
    assert_success(&env.cimaa(&["forget", AGENT]));

    assert_eq!(events(&env.alerts())[1], event("resolve", &name, ""));
    assert_eq!(db.open_alerts(AGENT).await.unwrap(), vec![]);
}

#[test]
fn forget_refuses_an_agent_with_a_fresh_heartbeat_and_changes_nothing() {
    let env = Env::new();
    let name = app_check(&env, "");
    env.once();

    let output = env.cimaa(&["forget", AGENT]);

    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("agent `{AGENT}` wrote its heartbeat "))
            && stderr(&output).contains("so it is running: stop it first"),
        "{}",
        stderr(&output)
    );
    assert_eq!(env.alerts().len(), 1, "no resolve");
    assert!(env.fault(&name).is_some());
    assert_eq!(agent_names(&env), [AGENT]);
}

#[test]
fn forget_of_an_agent_the_database_does_not_know_exits_1_saying_so() {
    let env = Env::new();
    env.once();

    let output = env.cimaa(&["forget", "web9"]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "error: the database knows no agent `web9` (no heartbeat, faults or open alerts); `cimaa agents` lists the known ones"
    );
}

// See: #22 (review). A dead meta host's `//meta#web3` is the fleet's one
// incident while a live peer still sees web3 dead: forgetting the dead host
// must not close it.
#[tokio::test(flavor = "multi_thread")]
async fn forget_leaves_open_a_fleet_fault_that_a_live_peer_still_holds() {
    let env = Env::new();
    env.once();
    let db = open(&env).await;
    let held = kept_alert("//meta#web3").fault;
    db.set_faults("dead-meta-host", std::slice::from_ref(&held), 100)
        .await
        .unwrap();
    db.set_faults("live-meta-host", std::slice::from_ref(&held), now())
        .await
        .unwrap();

    let output = env.cimaa(&["forget", "dead-meta-host"]);

    assert_success(&output);
    assert!(
        stdout(&output).contains("left `//meta#web3` open: a live agent still holds it"),
        "{}",
        stdout(&output)
    );
    assert!(
        env.alerts()
            .iter()
            .all(|alert| alert["action"] != "resolve"),
        "{:?}",
        env.alerts()
    );
    assert!(!agent_names(&env).contains(&"dead-meta-host".to_string()));
}

fn kept_alert(name: &str) -> OpenAlert {
    OpenAlert {
        fault: Fault {
            name: name.to_owned(),
            severity: Severity::CRITICAL,
            message: "CRITICAL - down".to_owned(),
            since: 100,
            updated: 100,
            triggered: true,
            escalates: true,
            attempts: 1,
            monitor_runs: 0,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        },
        alerter: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_meta_check_reports_an_agent_stopped_with_open_alerts_after_s_minutes() {
    let env = Env::new();
    let config = observer(&env);
    let db = open(&env).await;
    let t = now();
    db.stop_agent("web1", &[kept_alert("//web1/app/down")], t - 3601)
        .await
        .unwrap();
    db.stop_agent(
        "web2",
        &[kept_alert("//web2/a"), kept_alert("//web2/b")],
        t - 60,
    )
    .await
    .unwrap();
    db.stop_agent("observer", &[kept_alert("//observer/a")], t - 9999)
        .await
        .unwrap();

    let default_age = meta(&env, config, &[]);
    let at_once = meta(&env, config, &["-s", "0"]);

    assert_eq!(names(&default_age), ["stopped-with-alerts-web1"]);
    let (_, severity, message) = &default_age[0];
    assert_eq!(*severity, 30);
    assert!(
        message.starts_with("Stopped at ")
            && message
                .ends_with(" UTC with 1 open alert; start it again or run `cimaa forget web1`"),
        "{message}"
    );
    assert_eq!(
        names(&at_once),
        ["stopped-with-alerts-web1", "stopped-with-alerts-web2"],
        "`-s 0` reports at once, never the observer itself"
    );
    assert!(
        at_once[1].2.contains(" with 2 open alerts; "),
        "{:?}",
        at_once[1]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_started_again_is_no_longer_reported_as_stopped() {
    let env = fast_agent();
    app_check(&env, "");
    trigger_then_terminate(&env, "alerts.jsonl");
    let config = observer(&env);
    assert_eq!(
        names(&meta(&env, config, &["-s", "0"])),
        [format!("stopped-with-alerts-{AGENT}")]
    );

    env.once();

    assert_eq!(meta(&env, config, &["-s", "0"]), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_agent_says_how_long_it_has_had_no_heartbeat() {
    let env = Env::new();
    let db = open(&env).await;
    let before = now();
    db.heartbeat("web9", before - 192).await.unwrap();

    let faults = meta(&env, "agent.yaml", &[]);

    let age = now() - (before - 192);
    let expected = |age: i64| format!("Inactive agent (no heartbeat for 3m{}s)", age - 180);
    assert_eq!(names(&faults), ["web9"]);
    assert!(
        (192..=age).any(|age| faults[0].2 == expected(age)),
        "{:?}",
        faults[0]
    );
}
