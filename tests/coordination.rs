//! Coordination without a mothership: squelches, meta-checks, graceful
//! deregistration and live check reload (issue #4), against the real binary
//! and a shared SQLite file.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cimaa::db::{Db, Fault, Heartbeat, SqliteDb, Squelch};
use cimaa::severity::Severity;
use serde_json::Value;

use crate::util::{AGENT, Env, check_name, event, events, stderr, stdout, wait_for};

fn failing_check(env: &Env) -> String {
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n",
    );
    check_name("app", "down")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn open(env: &Env) -> SqliteDb {
    SqliteDb::open(&env.path("cimaa.db")).await.unwrap()
}

#[test]
fn a_squelched_fault_is_stored_but_not_alerted_until_unsquelched() {
    let env = Env::new();
    let name = failing_check(&env);
    crate::util::assert_success(&env.cimaa(&["squelch", "app/do+wn", "deploying the app"]));
    env.once();
    env.once();
    assert!(env.alerts().is_empty());
    assert_eq!(env.fault(&name).unwrap()["triggered"], false);
    crate::util::assert_success(&env.cimaa(&["unsquelch", "app/do+wn"]));
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &name, "CRITICAL - down")]
    );
}

#[test]
fn a_triggered_alert_that_becomes_squelched_is_resolved() {
    let env = Env::new();
    let name = failing_check(&env);
    env.once();
    crate::util::assert_success(&env.cimaa(&["squelch", "down", "known outage"]));
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &name, "CRITICAL - down"),
            event("resolve", &name, "")
        ]
    );
}

#[tokio::test]
async fn an_expired_squelch_stops_matching() {
    let env = Env::new();
    let name = failing_check(&env);
    let db = open(&env).await;
    let mut squelch = Squelch {
        regex: "down".into(),
        reason: "short".into(),
        user: "ann".into(),
        time: now(),
        permanent: false,
        expires: Some(now() + 3600),
    };
    db.squelch(&squelch).await.unwrap();
    env.once();
    assert!(env.alerts().is_empty());
    squelch.expires = Some(now() - 1);
    db.squelch(&squelch).await.unwrap();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &name, "CRITICAL - down")]
    );
    let list: Value = serde_json::from_slice(&env.cimaa(&["squelches", "--json"]).stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn squelch_requires_a_reason() {
    let env = Env::new();
    let missing = env.cimaa(&["squelch", "web"]);
    assert_eq!(missing.status.code(), Some(2));
    let empty = env.cimaa(&["squelch", "web", " "]);
    assert_eq!(empty.status.code(), Some(2));
    assert!(
        stderr(&empty).contains("a squelch needs a reason"),
        "{}",
        stderr(&empty)
    );
    let list: Value = serde_json::from_slice(&env.cimaa(&["squelches", "--json"]).stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn squelch_refuses_an_invalid_regex() {
    let env = Env::new();
    let output = env.cimaa(&["squelch", "web[", "maintenance"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid squelch regex `web[`"),
        "{}",
        stderr(&output)
    );
    let list: Value = serde_json::from_slice(&env.cimaa(&["squelches", "--json"]).stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn squelch_records_user_reason_permanence_and_expiry() {
    let env = Env::new();
    let before = now();
    let squelch = env.cimaa_with_env(
        &["squelch", "^//web", "kernel upgrade", "--permanent"],
        &[("SUDO_USER", "ann"), ("USER", "bob")],
    );
    crate::util::assert_success(&squelch);
    crate::util::assert_success(&env.cimaa(&["squelch", "db", "migration", "--expires", "2h"]));
    let list: Value = serde_json::from_slice(&env.cimaa(&["squelches", "--json"]).stdout).unwrap();
    let is_root = cimaa::host::is_root();
    let web = &list[0];
    assert_eq!(web["regex"], "^//web");
    assert_eq!(web["reason"], "kernel upgrade");
    let expected = if is_root {
        "ann".to_string()
    } else {
        login_name()
    };
    assert_eq!(web["user"], expected.as_str());
    assert_eq!(web["permanent"], true);
    assert_eq!(web["expires"], Value::Null);
    let time = web["time"].as_i64().unwrap();
    assert!(time >= before && time <= now());
    let db = &list[1];
    assert_eq!(db["permanent"], false);
    let expires = db["expires"].as_i64().unwrap() - db["time"].as_i64().unwrap();
    assert_eq!(expires, 7200);
    let mut keys: Vec<_> = web.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "expires",
            "matches",
            "permanent",
            "reason",
            "regex",
            "time",
            "user"
        ]
    );
}

/// The effective user's name in the password database, as `id -un` says.
fn login_name() -> String {
    let output = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

// See: #19. A systemd unit or cron job sets neither `USER` nor `LOGNAME`.
#[test]
fn squelch_without_user_variables_records_the_login_name_of_the_effective_uid() {
    let env = Env::new();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .args(["-c"])
        .arg(env.config())
        .args(["squelch", "^//web", "reboot"])
        .env_remove("SUDO_USER")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    crate::util::assert_success(&output);
    let list: Value = serde_json::from_slice(&env.cimaa(&["squelches", "--json"]).stdout).unwrap();
    let user = list[0]["user"].as_str().unwrap();
    assert_ne!(user, "unknown");
    assert_eq!(user, login_name());
}

#[test]
fn unsquelch_of_an_unknown_regex_fails_clearly() {
    let env = Env::new();
    let output = env.cimaa(&["unsquelch", "nothing"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no squelch `nothing`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn squelch_rejects_a_bad_duration() {
    let env = Env::new();
    let output = env.cimaa(&["squelch", "x", "why", "--expires", "5 fortnights"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid duration `5 fortnights`"),
        "{}",
        stderr(&output)
    );
}

fn meta(env: &Env, args: &[&str]) -> Vec<(String, i64, String)> {
    let mut all = vec!["meta-check"];
    all.extend_from_slice(args);
    let output = env.cimaa(&all);
    crate::util::meta_faults(&output)
}

fn inactive(name: &str, severity: i64) -> (String, i64, String) {
    (name.into(), severity, "Inactive agent".into())
}

/// The meta-check's faults with the age cut from `Inactive agent (no
/// heartbeat for 3m12s)` (tests/lifecycle.rs checks the age).
fn without_age(faults: Vec<(String, i64, String)>) -> Vec<(String, i64, String)> {
    faults
        .into_iter()
        .map(|(name, severity, message)| {
            let message = message
                .split(" (no heartbeat for ")
                .next()
                .unwrap_or_default()
                .to_owned();
            (name, severity, message)
        })
        .collect()
}

#[tokio::test]
async fn meta_check_reports_inactive_agents_sharing_one_database() {
    let env = Env::new();
    let db = open(&env).await;
    let t = now();
    // base_interval is 60: warn past 120 s, error past 300 s.
    db.heartbeat("fresh", t - 30).await.unwrap();
    db.heartbeat("late", t - 200).await.unwrap();
    db.heartbeat("dead", t - 1000).await.unwrap();
    db.heartbeat(AGENT, t - 5000).await.unwrap();
    assert_eq!(
        without_age(meta(&env, &[])),
        [inactive("dead", 40), inactive("late", 30)]
    );
    assert_eq!(
        without_age(meta(&env, &["-w", "0", "-e", "1"])),
        [
            inactive("dead", 40),
            inactive("fresh", 30),
            inactive("late", 40)
        ]
    );
    assert_eq!(
        without_age(meta(&env, &["-w", "5", "-e", "20"])),
        [inactive("dead", 30)]
    );
}

#[tokio::test]
async fn meta_check_reports_old_non_permanent_squelches() {
    let env = Env::new();
    let db = open(&env).await;
    let t = now();
    let squelch = |regex: &str, age: i64, permanent: bool| Squelch {
        regex: regex.into(),
        reason: "maintenance".into(),
        user: "ann".into(),
        time: t - age,
        permanent,
        expires: None,
    };
    db.squelch(&squelch("^//web 1", 7200, false)).await.unwrap();
    db.squelch(&squelch("perm", 99_999, true)).await.unwrap();
    db.squelch(&squelch("young", 60, false)).await.unwrap();
    assert_eq!(
        meta(&env, &[]),
        [(
            "squelch-%5E//web%201".into(),
            40,
            "Alerts squelched 120 minutes ago by ann because maintenance".into()
        )]
    );
    let all = meta(&env, &["-s", "0"]);
    let names: Vec<&str> = all.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["squelch-%5E//web%201", "squelch-young"]);
}

#[tokio::test]
async fn meta_check_reports_peers_whose_alerts_fail() {
    let env = Env::new();
    let db = open(&env).await;
    let t = now();
    let alerts = |agent: &str| Fault {
        name: format!("{agent}#alerts"),
        severity: Severity::CRITICAL,
        message: "Failed to send alert information (1/2)".into(),
        since: t,
        updated: t,
        triggered: false,
        escalates: false,
        attempts: 0,
        monitor_runs: 0,
        storm: false,
        suppressed_by: None,
        held: false,
        flapping: false,
    };
    db.set_faults("web2", &[alerts("web2")], t).await.unwrap();
    db.set_faults(AGENT, &[alerts(AGENT)], t).await.unwrap();
    assert_eq!(
        meta(&env, &[]),
        [(
            "web2#alerts".into(),
            40,
            "Failed to send alert information (1/2)".into()
        )]
    );
}

/// A long-running agent process.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn start(env: &Env) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", &env.config().display().to_string(), "agent"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running { child: Some(child) }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().unwrap()
    }

    fn signal(&mut self, name: &str) {
        let pid = self.child().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(mut self, limit: Duration) -> std::process::Output {
        let started = Instant::now();
        while self.child().try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < limit,
                "agent did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.take().unwrap().wait_with_output().unwrap()
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

fn fast_agent() -> Env {
    Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  base_interval: 0.5\n",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_removes_exactly_this_agent_from_the_database() {
    let env = fast_agent();
    failing_check(&env);
    let db = open(&env).await;
    let t = now();
    let other = Fault {
        name: "//peer/app/x".into(),
        severity: Severity::ERROR,
        message: "m".into(),
        since: t,
        updated: t,
        triggered: false,
        escalates: true,
        attempts: 1,
        monitor_runs: 0,
        storm: false,
        suppressed_by: None,
        held: false,
        flapping: false,
    };
    db.set_faults("peer", &[other], t).await.unwrap();
    let mut agent = Running::start(&env);
    wait_for("this agent's faults", Duration::from_secs(15), || {
        !env.alerts().is_empty()
    });
    agent.signal("TERM");
    let output = agent.wait(Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let agents: Vec<Heartbeat> = db.agents().await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["peer"]
    );
    assert!(db.get_faults(AGENT).await.unwrap().is_empty());
    assert_eq!(db.get_faults("peer").await.unwrap().len(), 1);
}

#[test]
fn sigterm_kills_a_running_plugin_group() {
    let env = fast_agent();
    let pidfile = env.path("child.pid");
    env.write_check(
        "app.yaml",
        &format!(
            "slow:\n  command: sleep 60 & echo $! > '{}'; wait\n  timeout: 100\n",
            pidfile.display()
        ),
    );
    let mut agent = Running::start(&env);
    wait_for("the plugin to start", Duration::from_secs(15), || {
        fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty())
    });
    agent.signal("INT");
    let output = agent.wait(Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty()
            || state
                .rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('Z'),
        "plugin survived: {state}"
    );
}

#[test]
fn a_check_file_dropped_in_alerts_and_its_removal_resolves() {
    let env = fast_agent();
    let agent = Running::start(&env);
    wait_for("the first heartbeat", Duration::from_secs(15), || {
        env.path("cimaa.db").exists()
    });
    let name = failing_check(&env);
    wait_for("the trigger", Duration::from_secs(5), || {
        !env.alerts().is_empty()
    });
    fs::remove_file(env.path("checks.d/app.yaml")).unwrap();
    wait_for("the resolve", Duration::from_secs(5), || {
        env.alerts().len() >= 2
    });
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &name, "CRITICAL - down"),
            event("resolve", &name, "")
        ]
    );
    drop(agent);
}

#[test]
fn sighup_applies_a_removed_check_at_once() {
    // Ticks are a minute apart: only the rescan on SIGHUP can resolve in time.
    let env = Env::new();
    let name = failing_check(&env);
    env.once();
    let mut agent = Running::start(&env);
    // Give the agent time to start and load its state.
    wait_for("startup", Duration::from_secs(15), || {
        let out = env.cimaa(&["agents", "--json"]);
        stdout(&out).contains(AGENT)
    });
    std::thread::sleep(Duration::from_millis(500));
    fs::remove_file(env.path("checks.d/app.yaml")).unwrap();
    agent.signal("HUP");
    wait_for("the resolve", Duration::from_secs(5), || {
        env.alerts().len() >= 2
    });
    assert_eq!(events(&env.alerts())[1], event("resolve", &name, ""));
    // The state is written off the tick's path, after its alerts.
    wait_for("the faults written", Duration::from_secs(5), || {
        env.faults().is_empty()
    });
}
