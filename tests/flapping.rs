//! Flap detection and message churn (issue #21, SPEC §11), against the real
//! binary, a SQLite file and a file alerter.
//!
//! Each `cimaa agent --once` is a separate process that loads the previous
//! state (the database, and the flap state file under `agent.state_dir`),
//! so a run of them is a long-running agent's ticks, each after a restart.

use std::time::Duration;

use crate::util::{Env, check_name, event, events, stderr, stdout};

/// A check that is CRITICAL while the file `down` exists in the agent's
/// folder (commands run in the check file's folder, `checks.d`).
fn flagged_check(env: &Env, extra: &str) {
    env.write_check(
        "app.yaml",
        &format!(
            "x:\n  command: \"if test -e ../down; then echo 'CRITICAL - down'; exit 2; fi; echo OK\"\n  retry: 0\n{extra}"
        ),
    );
}

/// One run with the check down (`true`) or up.
fn run(env: &Env, down: bool) {
    if down {
        env.write("down", "");
    } else {
        let _ = std::fs::remove_file(env.path("down"));
    }
    env.once();
}

fn flapping(changes: u32) -> String {
    format!("flapping: {changes} state changes in the last 21 runs")
}

/// The per-change alerts of `pairs` runs down then up.
fn per_change(name: &str, pairs: usize) -> Vec<(String, String, String)> {
    (0..pairs)
        .flat_map(|_| {
            [
                event("trigger", name, "CRITICAL - down"),
                event("resolve", name, ""),
            ]
        })
        .collect()
}

#[test]
fn a_flapping_check_sends_one_flapping_alert_then_one_resolve() {
    let env = Env::new();
    flagged_check(&env, "");
    let x = check_name("app", "x");
    // Down and up in turn: each change alerts until the 9th change makes
    // 50.2% (SPEC §11's weighting, the missing runs counting as clean).
    for i in 0..8 {
        run(&env, i % 2 == 0);
    }
    assert_eq!(events(&env.alerts()), per_change(&x, 4));
    run(&env, true);
    let mut want = per_change(&x, 4);
    want.push(event("trigger", &x, &flapping(9)));
    assert_eq!(events(&env.alerts()), want);
    let output = env.cimaa(&["check"]);
    assert!(
        stdout(&output).contains("flapping: yes"),
        "{}",
        stdout(&output)
    );
    // It goes on flapping: no trigger or resolve for its changes, and the
    // changes it counts do not re-send the alert.
    for i in 0..6 {
        run(&env, i % 2 == 1);
    }
    assert_eq!(events(&env.alerts()), want, "nothing while flapping");
    // Up for good: one resolve once it is below 25%, and nothing after.
    let mut clean_runs = 0;
    while env.alerts().len() == want.len() {
        clean_runs += 1;
        assert!(clean_runs <= 21, "never resolved");
        run(&env, false);
    }
    want.push(event("resolve", &x, ""));
    for _ in 0..3 {
        run(&env, false);
    }
    assert_eq!(events(&env.alerts()), want);
    assert!(clean_runs > 1, "resolved at once: {clean_runs}");
    let output = env.cimaa(&["check"]);
    assert!(
        stdout(&output).contains("flapping: no"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_check_that_stops_flapping_while_critical_is_triggered_with_its_message() {
    let env = Env::new();
    flagged_check(&env, "");
    let x = check_name("app", "x");
    for i in 0..9 {
        run(&env, i % 2 == 0);
    }
    let mut want = per_change(&x, 4);
    want.push(event("trigger", &x, &flapping(9)));
    assert_eq!(events(&env.alerts()), want);
    // Down for good: once no longer flapping, its first (critical) run
    // re-triggers the alert with the check's own message.
    let mut runs = 0;
    while env.alerts().len() == want.len() {
        runs += 1;
        assert!(runs <= 21, "never handed back");
        run(&env, true);
    }
    want.push(event("trigger", &x, "CRITICAL - down"));
    run(&env, true);
    assert_eq!(events(&env.alerts()), want);
}

#[test]
fn flap_false_keeps_an_alert_per_change() {
    let env = Env::new();
    flagged_check(&env, "  flap: false\n");
    let x = check_name("app", "x");
    for i in 0..16 {
        run(&env, i % 2 == 0);
    }
    assert_eq!(events(&env.alerts()), per_change(&x, 8));
    let output = env.cimaa(&["check"]);
    assert!(
        stdout(&output).contains("flapping: off (flap: false)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn the_agent_flap_levels_apply_to_its_checks() {
    // `high: 20`: the 4th change (the newest four weigh 4.67 of 20: 23%)
    // starts flapping.
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  flap: {high: 20, low: 10}\n",
    );
    flagged_check(&env, "");
    let x = check_name("app", "x");
    for i in 0..3 {
        run(&env, i % 2 == 0);
    }
    let mut want = per_change(&x, 1);
    want.push(event("trigger", &x, "CRITICAL - down"));
    assert_eq!(events(&env.alerts()), want);
    // The 4th change, to clean: the open alert now says it flaps.
    run(&env, false);
    want.push(event("trigger", &x, &flapping(4)));
    assert_eq!(events(&env.alerts()), want);
}

#[test]
fn a_restart_keeps_the_flap_history_in_the_state_dir() {
    let env = Env::new();
    flagged_check(&env, "");
    for i in 0..6 {
        run(&env, i % 2 == 0);
    }
    let file = env.path("cimaa-state/flap-test-agent.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"results\":\"F.F.F.\""), "{text}");
    // Without the file the history starts over: three more changes then
    // do not make it flap, while with it they do (see the test above).
    std::fs::remove_file(&file).unwrap();
    for i in 0..3 {
        run(&env, i % 2 == 0);
    }
    let x = check_name("app", "x");
    let alerts = events(&env.alerts());
    assert!(
        alerts
            .iter()
            .all(|(_, _, message)| !message.starts_with("flapping")),
        "{alerts:?}"
    );
    assert_eq!(
        alerts.last(),
        Some(&event("trigger", &x, "CRITICAL - down"))
    );
}

/// A check whose metric `value` is read from the file `value`; ERROR over
/// 1000, CRITICAL over 2000, paging at once.
fn drifting_check(env: &Env) {
    env.write_check(
        "app.yaml",
        "m:\n  command: \"echo \\\"OK | value=$(cat ../value)\\\"\"\n  retry: 0\n  thresholds: value error > 1000 critical > 2000\n",
    );
}

fn run_value(env: &Env, value: u32) {
    env.write("value", &value.to_string());
    env.once();
}

#[test]
fn a_drifting_message_is_re_sent_once_per_renotify_and_a_severity_change_at_once() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n  renotify: 5s\n",
        "",
    );
    drifting_check(&env);
    let m = format!("{}#value", check_name("app", "m"));
    run_value(&env, 1200);
    run_value(&env, 1300);
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &m, "1200 > 1000")],
        "a drift inside the window waits"
    );
    // The reported severity goes from ERROR (escalated) to CRITICAL.
    run_value(&env, 2500);
    run_value(&env, 2600);
    let mut want = vec![
        event("trigger", &m, "1200 > 1000"),
        event("trigger", &m, "2500 > 2000"),
    ];
    assert_eq!(events(&env.alerts()), want);
    std::thread::sleep(Duration::from_millis(5500));
    run_value(&env, 2600);
    run_value(&env, 2600);
    want.push(event("trigger", &m, "2600 > 2000"));
    assert_eq!(events(&env.alerts()), want, "the latest message, once");
}

#[test]
fn renotify_defaults_to_every_change_for_a_file_alerter() {
    let env = Env::new();
    drifting_check(&env);
    let m = format!("{}#value", check_name("app", "m"));
    for value in [1200, 1300, 1400] {
        run_value(&env, value);
    }
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &m, "1200 > 1000"),
            event("trigger", &m, "1300 > 1000"),
            event("trigger", &m, "1400 > 1000"),
        ]
    );
}

#[test]
fn validate_names_bad_flap_and_renotify_values_with_key_and_line() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  flap: {high: 20, low: 30}\n",
    );
    let output = env.cimaa(&["validate"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`low` (30) must be below `high` (20)") && text.contains("line 5"),
        "{text}"
    );

    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n  renotify: soon\n",
        "",
    );
    let output = env.cimaa(&["validate"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`soon` is not a duration") && text.contains("line 11"),
        "{text}"
    );

    let env = Env::new();
    env.write_check(
        "app.yaml",
        "x:\n  command: echo\n  flap: {high: 120, low: 10}\n",
    );
    let output = env.cimaa(&["validate"]);
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("app.yaml")
            && text.contains("`high`: `120` is not a percent state change from 0 to 100")
            && text.contains("line 3"),
        "{text}"
    );
}

/// Runs the flagged check down and up in turn until it flaps: its flapping
/// alert is the last event.
fn flap_until_the_flapping_alert(env: &Env, x: &str) -> Vec<(String, String, String)> {
    for i in 0..9 {
        run(env, i % 2 == 0);
    }
    let mut want = per_change(x, 4);
    want.push(event("trigger", x, &flapping(9)));
    assert_eq!(events(&env.alerts()), want);
    want
}

// See: #21. Like any removed check's alert, a flapping one is resolved.
#[test]
fn a_removed_flapping_check_resolves_its_flapping_alert() {
    let env = Env::new();
    flagged_check(&env, "");
    let x = check_name("app", "x");
    let mut want = flap_until_the_flapping_alert(&env, &x);
    std::fs::remove_file(env.path("checks.d/app.yaml")).unwrap();
    run(&env, true);
    want.push(event("resolve", &x, ""));
    run(&env, true);
    assert_eq!(events(&env.alerts()), want);
}

// See: #21. Like any open alert that becomes squelched (SPEC §5), a
// flapping one is resolved, and not sent again while squelched.
#[test]
fn a_flapping_alert_that_becomes_squelched_is_resolved() {
    let env = Env::new();
    flagged_check(&env, "");
    let x = check_name("app", "x");
    let mut want = flap_until_the_flapping_alert(&env, &x);
    let output = env.cimaa(&["squelch", "app", "deploying", "--permanent"]);
    assert!(output.status.success(), "{}", stderr(&output));
    run(&env, false);
    want.push(event("resolve", &x, ""));
    for i in 0..4 {
        run(&env, i % 2 == 0);
    }
    assert_eq!(events(&env.alerts()), want);
}

// See: #21. While its dependency fails, a check's faults are not triggered
// (SPEC §11), and neither is its flapping alert.
#[test]
fn a_check_flapping_under_a_failing_dependency_sends_no_flapping_alert() {
    let env = Env::new();
    env.write_check(
        "net.yaml",
        "gw:\n  command: \"if test -e ../gw-down; then echo 'CRITICAL - gw'; exit 2; fi; echo OK\"\n  retry: 0\n",
    );
    flagged_check(&env, "  depends_on: [net/gw]\n");
    let gw = check_name("net", "gw");
    env.write("gw-down", "");
    for i in 0..12 {
        run(&env, i % 2 == 0);
    }
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &gw, "CRITICAL - gw")]
    );
    let output = env.cimaa(&["check"]);
    assert!(
        stdout(&output).contains("flapping: yes"),
        "{}",
        stdout(&output)
    );
}

/// The `flapping` field `faults --json` (and `/api/faults`, built by the
/// same function) shows for fault `name`.
fn flapping_field(env: &Env, name: &str) -> serde_json::Value {
    let fault = env
        .fault(name)
        .unwrap_or_else(|| panic!("no fault {name}: {:?}", env.faults()));
    fault["flapping"].clone()
}

// See: #17, #21. A flapping check's fault keeps its name; `faults --json`
// marks it `flapping` while its flapping alert speaks for it, and no
// longer once the check is handed back.
#[test]
fn faults_json_marks_a_flapping_checks_fault_until_it_stops() {
    let env = Env::new();
    flagged_check(&env, "");
    let x = check_name("app", "x");
    for i in 0..8 {
        run(&env, i % 2 == 0);
        if i % 2 == 0 {
            assert_eq!(flapping_field(&env, &x), false, "run {i}: not yet");
        }
    }
    run(&env, true);
    let mut want = per_change(&x, 4);
    want.push(event("trigger", &x, &flapping(9)));
    assert_eq!(events(&env.alerts()), want);
    assert_eq!(flapping_field(&env, &x), true);
    let table = stdout(&env.cimaa(&["faults"]));
    let header = table.lines().next().unwrap_or_default();
    let row = table.lines().find(|l| l.contains(&x)).unwrap_or_default();
    // The header's `SUPPRESSED BY` is two words, a row's `-` one.
    let column = |line: &str| line.split_whitespace().nth(5).map(str::to_owned);
    assert_eq!(
        header.split_whitespace().nth(6),
        Some("FLAPPING"),
        "{table}"
    );
    assert_eq!(column(row).as_deref(), Some("yes"), "{table}");
    // Down for good: flapping on every run until the check is handed back
    // (its own message triggered over the flapping alert), then not.
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 21, "never handed back");
        run(&env, true);
        if env.alerts().len() > want.len() {
            break;
        }
        assert_eq!(flapping_field(&env, &x), true, "run {runs} still flaps");
    }
    want.push(event("trigger", &x, "CRITICAL - down"));
    assert_eq!(events(&env.alerts()), want);
    assert_eq!(flapping_field(&env, &x), false);
    let table = stdout(&env.cimaa(&["faults"]));
    let row = table.lines().find(|l| l.contains(&x)).unwrap_or_default();
    assert_eq!(column(row).as_deref(), Some("no"), "{table}");
}
