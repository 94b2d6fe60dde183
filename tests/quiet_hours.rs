//! Quiet hours per alerter (issue #21, SPEC §11), against the real binary,
//! a SQLite file and file alerters: every delivery is counted exactly.
//!
//! Windows are built from the current UTC time so that they hold at any
//! hour: `Mon-Sun` is always quiet, the five days other than today and
//! tomorrow are never quiet during a test, and a window that ends during
//! the test is written as the `DAY HH:MM-HH:MM` of its start, which may
//! cross midnight.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{Datelike, Timelike, Utc};

use crate::util::{AGENT, Env, check_name, event, events, read_json_lines, stderr};

/// A check `app/web` that is CRITICAL while the file `down` exists.
fn flagged_check(env: &Env) {
    env.write_check(
        "app.yaml",
        "web:\n  command: \"if test -e ../down; then echo 'CRITICAL - web down'; exit 2; fi; echo OK\"\n  retry: 0\n",
    );
}

fn web() -> String {
    check_name("app", "web")
}

fn web_down() -> (String, String, String) {
    event("trigger", &web(), "CRITICAL - web down")
}

/// The file alerter with these quiet hours (a YAML flow mapping).
fn quiet_alerter(quiet_hours: &str) -> String {
    format!("alerter:\n  type: file\n  path: alerts.jsonl\n  quiet_hours: {quiet_hours}\n")
}

/// The five days that are neither today nor tomorrow (UTC): a window of
/// them excludes now for the whole test, even across midnight.
fn other_days() -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let today = Utc::now().weekday().num_days_from_monday() as usize;
    (0..7)
        .filter(|d| *d != today && *d != (today + 1) % 7)
        .map(|d| DAYS[d])
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn a_window_around_now_holds_the_trigger() {
    let env = Env::with_alerter(&quiet_alerter("{windows: [Mon-Sun]}"), "");
    flagged_check(&env);
    env.write("down", "");
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), []);
    let fault = env.fault(&web()).unwrap();
    assert_eq!(fault["held"], true, "{fault}");
    assert_eq!(fault["triggered"], false, "{fault}");
}

#[test]
fn a_window_excluding_now_delivers() {
    let quiet = format!("{{timezone: UTC, windows: [\"{}\"]}}", other_days());
    let env = Env::with_alerter(&quiet_alerter(&quiet), "");
    flagged_check(&env);
    env.write("down", "");
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), [web_down()]);
    let fault = env.fault(&web()).unwrap();
    assert_eq!(fault["held"], false, "{fault}");
    assert_eq!(fault["triggered"], true, "{fault}");
}

#[test]
fn a_window_ending_during_the_test_releases_exactly_one_trigger() {
    // From the minute before now to the next minute boundary at least 5
    // seconds away, written on the day it starts.
    let now = Utc::now();
    let start = now - chrono::Duration::seconds(i64::from(now.second()) + 60);
    let mut end = now + chrono::Duration::seconds(60 - i64::from(now.second()));
    if end - now < chrono::Duration::seconds(5) {
        end += chrono::Duration::seconds(60);
    }
    let window = format!(
        "{} {}-{}",
        start.format("%a"),
        start.format("%H:%M"),
        end.format("%H:%M")
    );
    let env = Env::with_alerter(&quiet_alerter(&format!("{{windows: [\"{window}\"]}}")), "");
    flagged_check(&env);
    env.write("down", "");
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), [], "{window}");
    assert_eq!(env.fault(&web()).unwrap()["held"], true, "{window}");
    let wait = (end - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
    std::thread::sleep(wait);
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), [web_down()], "{window}");
    let fault = env.fault(&web()).unwrap();
    assert_eq!(fault["held"], false, "{fault}");
    assert_eq!(fault["triggered"], true, "{fault}");
}

#[test]
fn a_held_fault_that_clears_inside_the_window_sends_nothing_at_all() {
    let env = Env::with_alerter(&quiet_alerter("{windows: [Mon-Sun]}"), "");
    flagged_check(&env);
    env.write("down", "");
    env.once();
    std::fs::remove_file(env.path("down")).unwrap();
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), []);
    assert!(env.fault(&web()).is_none());
}

#[test]
fn an_alert_sent_before_the_window_is_resolved_inside_it() {
    let env = Env::new();
    flagged_check(&env);
    env.write("down", "");
    env.once();
    env.configure(&quiet_alerter("{windows: [Mon-Sun]}"), "");
    std::fs::remove_file(env.path("down")).unwrap();
    env.once();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [web_down(), event("resolve", &web(), "")]
    );
}

#[test]
fn a_fallback_is_not_used_during_quiet_hours() {
    let alerter = "alerter:\n  type: file\n  path: alerts.jsonl\n  fallback: backup\n  \
                   quiet_hours: {windows: [Mon-Sun]}\nalerters:\n  backup:\n    type: file\n    \
                   path: backup.jsonl\n";
    let env = Env::with_alerter(alerter, "");
    flagged_check(&env);
    env.write("down", "");
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), []);
    assert_eq!(events(&read_json_lines(&env.path("backup.jsonl"))), []);
    assert_eq!(env.fault(&web()).unwrap()["held"], true);
}

// See: #21, SPEC §11. A fallback is for failures only: standing in for a
// failing alerter it delivers at once, also inside its own quiet hours
// (those hold only the alerts of checks routed to it first).
#[test]
fn a_fallback_standing_in_for_a_failing_alerter_delivers_inside_its_own_quiet_hours() {
    let alerter = "alerter:\n  type: command\n  command: exit 3\n  fallback: backup\nalerters:\n  \
                   backup:\n    type: file\n    path: alerts.jsonl\n    \
                   quiet_hours: {windows: [Mon-Sun]}\n";
    let env = Env::with_alerter(alerter, "");
    flagged_check(&env);
    env.write("down", "");
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), [web_down()]);
    assert_eq!(env.fault(&web()).unwrap()["held"], false);
}

#[test]
fn held_faults_released_together_are_one_storm() {
    let env = Env::with_alerter(&quiet_alerter("{windows: [Mon-Sun]}"), "");
    let mut text = String::new();
    for i in 1..=12 {
        let _ = write!(
            text,
            "c{i:02}:\n  command: \"if test -e ../down; then echo 'CRITICAL - c{i:02} down'; exit 2; fi; echo OK\"\n  retry: 0\n"
        );
    }
    env.write_check("app.yaml", &text);
    env.write("down", "");
    env.once();
    assert_eq!(events(&env.alerts()), []);
    // The window is over (its hours no longer include now).
    let quiet = format!("{{windows: [\"{}\"]}}", other_days());
    env.configure(&quiet_alerter(&quiet), "");
    env.once();
    env.once();
    let names: Vec<String> = (1..=10)
        .map(|i| check_name("app", &format!("c{i:02}")))
        .collect();
    assert_eq!(
        events(&env.alerts()),
        [event(
            "trigger",
            &format!("{AGENT}#storm"),
            &format!("12 new critical faults: {} and 2 more", names.join(", "))
        )]
    );
}

#[test]
fn validate_names_the_file_key_and_line_of_a_bad_window_or_zone() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n  quiet_hours:\n    windows: [\"Mon-Fri 22:00-07:00\", \"Sat-Sunday\"]\n",
        "",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("agent.yaml: alerter.quiet_hours.windows[1]: window `Sat-Sunday`: `Sunday` is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun) at line 12 column 38"),
        "{err}"
    );
    env.configure(
        "alerter:\n  type: file\n  path: alerts.jsonl\nalerters:\n  pager:\n    type: file\n    path: p.jsonl\n    quiet_hours: {timezone: Europe/Berln, windows: [Sat]}\n",
        "",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("agent.yaml: alerters.pager.quiet_hours.timezone: `Europe/Berln` is not a time zone of the IANA database (e.g. `Europe/Berlin`, `UTC`) at line 15"),
        "{err}"
    );
}

/// Runs `cimaa -c CONFIG agent --once` in the test's folder.
fn once_with(env: &Env, config: &str) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.path(config))
        .args(["agent", "--once"])
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    crate::util::assert_success(&output);
}

#[test]
fn a_held_fleet_fault_is_not_claimed_and_another_agent_notifies_it() {
    // Two agents share the SQLite file and the check `//web`; the first's
    // alerter is quiet, the second's (`other`, alerts in other.jsonl) is not.
    let env = Env::with_alerter(&quiet_alerter("{windows: [Mon-Sun]}"), "");
    env.write_check(
        "web.yaml",
        "//web:\n  command: \"if test -e ../down; then echo 'CRITICAL - web down'; exit 2; fi; echo OK\"\n  retry: 0\n",
    );
    env.write(
        "other.yaml",
        "agent:\n  name: other\n  directory: checks.d\n  base_interval: 60\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: other.jsonl\n",
    );
    env.write("down", "");
    env.once();
    assert_eq!(env.fault("//web").unwrap()["held"], true);
    once_with(&env, "other.yaml");
    let trigger = event("trigger", "//web", "CRITICAL - web down");
    assert_eq!(
        events(&read_json_lines(&env.path("other.jsonl"))),
        std::slice::from_ref(&trigger)
    );
    // The window ends: the first agent joins and sends nothing, since the
    // incident was notified.
    let quiet = format!("{{windows: [\"{}\"]}}", other_days());
    env.configure(&quiet_alerter(&quiet), "");
    env.once();
    env.once();
    assert_eq!(events(&env.alerts()), []);
    assert_eq!(
        events(&read_json_lines(&env.path("other.jsonl"))),
        [trigger]
    );
}
