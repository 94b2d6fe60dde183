//! Alert storms and the meta-check's fold (issue #11, SPEC §10), against the
//! real binary, a SQLite file and a file alerter.
//!
//! Each `cimaa agent --once` is a separate process that loads the previous
//! state from the database, so a run of them is a long-running agent's ticks.

use std::fmt::Write as _;

use cimaa::db::{Db, SqliteDb};

use crate::util::{AGENT, Env, check_name, event, events};

/// Storm fault of the default alerter.
fn storm() -> String {
    format!("{AGENT}#storm")
}

/// Writes `count` checks `c01`... in `app.yaml`, each CRITICAL while the
/// file `down` exists in the agent's folder (commands run in the check
/// file's folder, `checks.d`).
fn flagged_checks(env: &Env, count: usize) {
    let mut text = String::new();
    for i in 1..=count {
        let _ = write!(
            text,
            "c{i:02}:\n  command: \"if test -e ../down; then echo 'CRITICAL - c{i:02} down'; exit 2; fi; echo OK\"\n  retry: 0\n"
        );
    }
    env.write_check("app.yaml", &text);
}

fn storm_message(count: usize, listed: usize) -> String {
    let names: Vec<String> = (1..=listed)
        .map(|i| check_name("app", &format!("c{i:02}")))
        .collect();
    let more = count - listed;
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{count} new critical faults: {}{tail}", names.join(", "))
}

#[test]
fn fifteen_faults_in_one_tick_are_one_storm_trigger_and_one_resolve() {
    let env = Env::new();
    flagged_checks(&env, 15);
    env.write("down", "");
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &storm(), &storm_message(15, 10))]
    );
    let member = env.fault(&check_name("app", "c07")).unwrap();
    assert_eq!(member["triggered"], false, "{member}");
    assert_eq!(member["storm"], true, "{member}");
    assert_eq!(env.fault(&storm()).unwrap()["triggered"], true);
    // Still failing: nothing more.
    env.once();
    assert_eq!(env.alerts().len(), 1, "{:?}", events(&env.alerts()));
    std::fs::remove_file(env.path("down")).unwrap();
    env.once();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &storm(), &storm_message(15, 10)),
            event("resolve", &storm(), "")
        ]
    );
    assert!(env.fault(&storm()).is_none());
}

#[test]
fn storm_threshold_zero_sends_every_trigger() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\nalerting:\n  storm_threshold: 0\n",
        "",
    );
    flagged_checks(&env, 15);
    env.write("down", "");
    env.once();
    let mut got = events(&env.alerts());
    got.sort();
    let want: Vec<_> = (1..=15)
        .map(|i| {
            event(
                "trigger",
                &check_name("app", &format!("c{i:02}")),
                &format!("CRITICAL - c{i:02} down"),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn ten_faults_at_the_default_threshold_go_out_on_their_own() {
    let env = Env::new();
    flagged_checks(&env, 10);
    env.write("down", "");
    env.once();
    let alerts = events(&env.alerts());
    assert_eq!(alerts.len(), 10, "{alerts:?}");
    assert!(
        alerts.iter().all(|(_, name, _)| name != &storm()),
        "{alerts:?}"
    );
}

#[test]
fn a_fault_that_goes_critical_while_the_storm_is_open_joins_it_silently() {
    let env = Env::new();
    flagged_checks(&env, 15);
    env.write_check(
        "late.yaml",
        "x:\n  command: \"if test -e ../late; then echo 'CRITICAL - late'; exit 2; fi; echo OK\"\n  retry: 0\n",
    );
    env.write("down", "");
    env.once();
    env.write("late", "");
    env.once();
    env.once();
    // The count changed, but the storm is not re-sent within 10 base intervals.
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &storm(), &storm_message(15, 10))]
    );
    let late = env.fault(&check_name("late", "x")).unwrap();
    assert_eq!(late["triggered"], false, "{late}");
    assert_eq!(late["storm"], true, "{late}");
    // The storm lasts while the late fault is critical, and resolves once
    // when it clears too.
    std::fs::remove_file(env.path("down")).unwrap();
    env.once();
    assert_eq!(env.alerts().len(), 1, "{:?}", events(&env.alerts()));
    std::fs::remove_file(env.path("late")).unwrap();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &storm(), &storm_message(15, 10)),
            event("resolve", &storm(), "")
        ]
    );
}

#[test]
fn a_named_alerters_storm_is_its_own() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\nalerters:\n  ops:\n    type: file\n    path: ops.jsonl\n",
        "",
    );
    let mut text = String::new();
    for i in 1..=12 {
        let _ = write!(
            text,
            "c{i:02}:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n  alerter: ops\n"
        );
    }
    env.write_check("app.yaml", &text);
    env.write_check(
        "one.yaml",
        "x:\n  command: echo 'CRITICAL - one'; exit 2\n  retry: 0\n",
    );
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &check_name("one", "x"), "CRITICAL - one")]
    );
    let ops = events(&crate::util::read_json_lines(&env.path("ops.jsonl")));
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].1, format!("{AGENT}#storm-ops"));
    assert!(ops[0].2.starts_with("12 new critical faults: "), "{ops:?}");
}

async fn open(env: &Env) -> SqliteDb {
    SqliteDb::open(&env.path("cimaa.db")).await.unwrap()
}

#[tokio::test]
async fn meta_check_folds_more_inactive_agents_than_m_into_one_fault() {
    let env = Env::new();
    let db = open(&env).await;
    let t = chrono::Utc::now().timestamp();
    for name in ["d1", "d2", "d3", "d4", "d5", "d6", "d7"] {
        // base_interval is 60: inactive past 120 s.
        db.heartbeat(name, t - 400).await.unwrap();
    }
    db.heartbeat("alive", t - 10).await.unwrap();
    let folded = crate::util::meta_faults(&env.cimaa(&["meta-check", "-m", "5"]));
    assert_eq!(
        folded,
        [(
            "inactive-agents".to_owned(),
            40,
            "7 agents inactive: d1, d2, d3, d4, d5, d6, d7".to_owned()
        )]
    );
    // The default `-m` is 5 as well; `-m 7` reports them one by one.
    assert_eq!(
        crate::util::meta_faults(&env.cimaa(&["meta-check"])),
        folded
    );
    let one_by_one = crate::util::meta_faults(&env.cimaa(&["meta-check", "-m", "7"]));
    let names: Vec<&str> = one_by_one.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["d1", "d2", "d3", "d4", "d5", "d6", "d7"]);
}

#[tokio::test]
async fn the_meta_check_kind_folds_with_its_fold_option() {
    let env = Env::new();
    let db = open(&env).await;
    let t = chrono::Utc::now().timestamp();
    for name in ["d1", "d2", "d3"] {
        db.heartbeat(name, t - 400).await.unwrap();
    }
    env.write_check("meta.yaml", "//meta:\n  meta: {fold: 2}\n  retry: 0\n");
    env.once();
    let fault = env.fault("//meta#inactive-agents").unwrap();
    // `retry: 0`: the ERROR escalates to CRITICAL at once.
    assert_eq!(fault["severity"], 50, "{fault}");
    assert_eq!(fault["message"], "3 agents inactive: d1, d2, d3");
    assert!(env.fault("//meta#d1").is_none());
}

/// Half-second ticks (10 base intervals are 5 s); checks and alerts get more
/// than their default shares of such a tick, for a busy test machine.
const FAST: &str = "  base_interval: 0.5\n  timeout: 10\n  alert_timeout: 5\n";

fn fast_agent() -> Env {
    Env::with_alerter("alerter:\n  type: file\n  path: alerts.jsonl\n", FAST)
}

#[test]
fn a_changed_count_is_re_sent_after_ten_base_intervals() {
    let env = fast_agent();
    flagged_checks(&env, 15);
    env.write_check(
        "late.yaml",
        "x:\n  command: \"if test -e ../late; then echo 'CRITICAL - late'; exit 2; fi; echo OK\"\n  retry: 0\n",
    );
    env.write("down", "");
    env.once();
    env.write("late", "");
    env.once();
    assert_eq!(env.alerts().len(), 1, "{:?}", events(&env.alerts()));
    std::thread::sleep(std::time::Duration::from_secs(6));
    env.once();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &storm(), &storm_message(15, 10)),
            event("trigger", &storm(), &storm_message(16, 10))
        ]
    );
}

/// A long-running `cimaa agent`, killed if the test fails before it exits.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_storm_kept_at_a_clean_stop_stays_open_and_resolves_once_after_the_restart() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::time::{Duration, Instant};

    let env = fast_agent();
    flagged_checks(&env, 15);
    env.write("down", "");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.config())
        .arg("agent")
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(Some(child));
    crate::util::wait_for("the storm stored as sent", Duration::from_secs(20), || {
        env.fault(&storm()).is_some_and(|f| f["triggered"] == true)
    });
    let pid = running.0.as_ref().unwrap().id();
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGTERM).unwrap();
    let mut child = running.0.take().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // Restarted, the faults still critical: they join the kept storm.
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &storm(), &storm_message(15, 10))]
    );
    std::fs::remove_file(env.path("down")).unwrap();
    env.once();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &storm(), &storm_message(15, 10)),
            event("resolve", &storm(), "")
        ]
    );
}

#[test]
fn fleet_faults_never_join_a_storm() {
    let env = Env::new();
    let mut text = String::new();
    for i in 1..=12 {
        let _ = write!(
            text,
            "//shared/c{i:02}:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n"
        );
    }
    env.write_check("fleet.yaml", &text);
    env.once();
    let alerts = events(&env.alerts());
    assert_eq!(alerts.len(), 12, "{alerts:?}");
    assert!(
        alerts
            .iter()
            .all(|(_, name, _)| name.starts_with("//shared/c")),
        "{alerts:?}"
    );
}

#[test]
fn a_new_message_of_an_open_alert_is_sent_on_its_own_during_a_storm() {
    let env = Env::new();
    env.write_check(
        "solo.yaml",
        "x:\n  command: \"echo CRITICAL - $(cat ../solo-message); exit 2\"\n  retry: 0\n",
    );
    env.write("solo-message", "first\n");
    flagged_checks(&env, 15);
    env.once();
    let solo = check_name("solo", "x");
    env.write("solo-message", "second\n");
    env.write("down", "");
    env.once();
    let mut alerts = events(&env.alerts());
    assert_eq!(alerts[0], event("trigger", &solo, "CRITICAL - first"));
    // The second tick's two alerts go out concurrently, in either order.
    alerts[1..].sort();
    assert_eq!(
        alerts[1..],
        [
            event("trigger", &solo, "CRITICAL - second"),
            event("trigger", &storm(), &storm_message(15, 10)),
        ]
    );
}

#[test]
fn a_squelched_storm_sends_nothing_until_it_is_unsquelched() {
    let env = Env::new();
    flagged_checks(&env, 15);
    env.write("down", "");
    crate::util::assert_success(&env.cimaa(&["squelch", "#storm$", "known outage"]));
    env.once();
    env.once();
    assert!(env.alerts().is_empty(), "{:?}", events(&env.alerts()));
    assert_eq!(env.fault(&storm()).unwrap()["triggered"], false);
    crate::util::assert_success(&env.cimaa(&["unsquelch", "#storm$"]));
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &storm(), &storm_message(15, 10))]
    );
}
