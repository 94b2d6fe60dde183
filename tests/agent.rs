//! Scenarios that drive the real binary: `cimaa agent --once` run
//! repeatedly as separate processes must behave like one long-running agent.

use std::fs;
use std::time::{Duration, Instant};

use crate::util::{AGENT, Env, check_name, event, events, read_json_lines, stderr};

/// A check whose plugin passes while `marker` exists, else fails with exit 2.
fn file_check(env: &Env, retry: u32) -> String {
    let marker = env.path("marker");
    let plugin = env.script(
        "filecheck.sh",
        &format!("if [ -e '{}' ]; then echo 'OK - present'; exit 0; fi\necho \"CRITICAL - marker missing\"; exit 2", marker.display()),
    );
    env.write_check(
        "app.yaml",
        &format!(
            "marker:\n  command: {}\n  retry: {retry}\n",
            plugin.display()
        ),
    );
    check_name("app", "marker")
}

#[test]
fn a_failing_plugin_retries_then_alerts_once_and_resolves_when_it_passes() {
    let env = Env::new();
    let name = file_check(&env, 3);
    for n in 1..=3 {
        env.once();
        let fault = env.fault(&name).unwrap();
        assert_eq!(fault["severity"], 40);
        assert_eq!(
            fault["message"],
            format!("CRITICAL - marker missing ({n} of 4)")
        );
        assert!(env.alerts().is_empty(), "soft errors must not page");
    }
    env.once();
    env.once();
    assert_eq!(env.fault(&name).unwrap()["severity"], 50);
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &name, "CRITICAL - marker missing")]
    );
    fs::write(env.path("marker"), "").unwrap();
    env.once();
    assert!(env.fault(&name).is_none());
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &name, "CRITICAL - marker missing"),
            event("resolve", &name, "")
        ]
    );
}

#[test]
fn a_restarted_agent_keeps_the_failure_counter_and_since() {
    let env = Env::new();
    let name = file_check(&env, 3);
    env.once();
    let first = env.fault(&name).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    env.once();
    let second = env.fault(&name).unwrap();
    assert_eq!(second["attempts"], 2);
    assert_eq!(second["since"], first["since"]);
    assert!(second["message"].as_str().unwrap().ends_with("(2 of 4)"));
}

#[test]
fn retry_zero_alerts_on_the_first_failure() {
    let env = Env::new();
    let name = file_check(&env, 0);
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &name, "CRITICAL - marker missing")]
    );
}

fn single_check(env: &Env, body: &str) -> String {
    let plugin = env.script("plugin.sh", body);
    env.write_check(
        "app.yaml",
        &format!("probe:\n  command: {}\n", plugin.display()),
    );
    check_name("app", "probe")
}

#[test]
fn stderr_output_is_a_non_escalating_monitor_error() {
    let env = Env::new();
    let name = single_check(&env, "echo 'OK'; echo 'permission denied' >&2; exit 0");
    for _ in 0..5 {
        env.once();
    }
    let fault = env.fault(&format!("{name}#monitor-stderr")).unwrap();
    assert_eq!(fault["severity"], 40);
    assert_eq!(fault["message"], "permission denied");
    assert_eq!(fault["escalates"], false);
    assert!(env.alerts().is_empty());
}

#[test]
fn no_output_is_a_monitor_no_out_error() {
    let env = Env::new();
    let name = single_check(&env, "exit 0");
    env.once();
    let fault = env.fault(&format!("{name}#monitor-no-out")).unwrap();
    assert_eq!(
        (fault["severity"].as_i64(), fault["escalates"].as_bool()),
        (Some(40), Some(false))
    );
}

#[test]
fn an_exit_status_outside_nagios_codes_is_a_monitor_status_error() {
    let env = Env::new();
    let name = single_check(&env, "echo 'odd'; exit 42");
    env.once();
    let fault = env.fault(&format!("{name}#monitor-status")).unwrap();
    assert_eq!(fault["message"], "exit status 42: odd");
    assert_eq!(fault["escalates"], false);
}

#[test]
fn a_warning_exit_is_stored_but_never_pages() {
    let env = Env::new();
    let name = single_check(&env, "echo 'WARNING - slow'; exit 1");
    for _ in 0..5 {
        env.once();
    }
    let fault = env.fault(&name).unwrap();
    assert_eq!(
        (fault["severity"].as_i64(), fault["message"].as_str()),
        (Some(30), Some("WARNING - slow"))
    );
    assert!(env.alerts().is_empty());
}

#[test]
fn a_plugin_past_its_timeout_is_killed_with_its_grandchildren() {
    let env = Env::new();
    let pidfile = env.path("grandchild.pid");
    let plugin = env.script(
        "slow.sh",
        &format!("sleep 60 &\necho $! > '{}'\nwait", pidfile.display()),
    );
    env.write_check(
        "app.yaml",
        &format!("slow:\n  command: {}\n  timeout: 1\n", plugin.display()),
    );
    let started = Instant::now();
    env.once();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the tick waited for the plugin"
    );
    let fault = env
        .fault(&format!("{}#monitor-timeout", check_name("app", "slow")))
        .unwrap();
    assert_eq!(fault["message"], "plugin timed out after 1 s");
    assert_eq!(fault["escalates"], false);
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    // Gone, or a zombie waiting for an init that does not reap: not running.
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = state
        .rsplit(')')
        .next()
        .is_some_and(|rest| !rest.trim_start().starts_with('Z'));
    assert!(!running, "grandchild {pid} survived: {state}");
}

#[test]
fn invalid_plugin_json_is_a_json_error_that_escalates() {
    let env = Env::new();
    let name = single_check(
        &env,
        r#"echo '{"faults": [{"severity": "bad", "message": "x"}]}'"#,
    );
    env.write_check(
        "app.yaml",
        &format!(
            "probe:\n  command: {}/plugin.sh\n  retry: 1\n",
            env.path("").display()
        ),
    );
    env.once();
    let fault = env.fault(&format!("{name}#json-error")).unwrap();
    assert_eq!(
        fault["message"],
        "faults[0]: unknown severity `bad` (use info, warning, error or critical) (1 of 2)"
    );
    env.once();
    assert_eq!(
        env.fault(&format!("{name}#json-error")).unwrap()["severity"],
        50
    );
    assert_eq!(env.alerts().len(), 1);
}

#[test]
fn a_critical_json_fault_pages_at_once_under_its_name() {
    let env = Env::new();
    let name = single_check(
        &env,
        r#"echo '{"faults": [{"name": "db", "severity": "critical", "message": "db down"}]}'"#,
    );
    env.once();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &format!("{name}#db"), "db down")]
    );
}

#[test]
fn a_changed_message_of_a_critical_fault_pages_again() {
    let env = Env::new();
    let plugin = env.script(
        "plugin.sh",
        &format!("cat '{}'", env.path("json").display()),
    );
    env.write_check(
        "app.yaml",
        &format!("probe:\n  command: {}\n", plugin.display()),
    );
    let name = format!("{}#db", check_name("app", "probe"));
    for message in ["first", "first", "second"] {
        env.write(
            "json",
            &format!(r#"{{"faults": [{{"name": "db", "severity": 50, "message": "{message}"}}]}}"#),
        );
        env.once();
    }
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &name, "first"),
            event("trigger", &name, "second")
        ]
    );
}

/// A command alerter that fails its first `failures` calls.
fn flaky_alerter(failures: u32) -> Env {
    let env = Env::new();
    let calls = env.path("calls");
    let sent = env.path("sent");
    let alerter = format!(
        "alerter:\n  type: command\n  command: 'n=$(cat {calls} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {calls}; [ $n -gt {failures} ] && echo \"$CIMAA_ACTION $CIMAA_NAME $CIMAA_MESSAGE\" >> {sent}'\n",
        calls = calls.display(),
        sent = sent.display(),
    );
    env.configure(&alerter, "");
    env
}

#[test]
fn a_failing_alerter_is_reported_and_retried_until_it_delivers() {
    let env = flaky_alerter(2);
    let name = file_check(&env, 0);
    let alerts_fault = format!("{AGENT}#alerts");
    for _ in 0..2 {
        env.once();
        let fault = env.fault(&alerts_fault).unwrap();
        assert_eq!(fault["severity"], 50);
        assert_eq!(fault["message"], "Failed to send alert information (1/1)");
        assert!(!env.path("sent").exists());
    }
    env.once();
    assert!(
        env.fault(&alerts_fault).is_none(),
        "AGENT#alerts clears once alerts get through"
    );
    assert_eq!(
        fs::read_to_string(env.path("sent")).unwrap(),
        format!("trigger {name} CRITICAL - marker missing\n")
    );
    assert_eq!(env.fault(&name).unwrap()["triggered"], true);
}

#[test]
fn the_agent_never_pages_about_its_own_alert_failures() {
    let env = flaky_alerter(100);
    file_check(&env, 0);
    for _ in 0..3 {
        env.once();
    }
    // Only the check's trigger was attempted, never one for AGENT#alerts.
    assert_eq!(fs::read_to_string(env.path("calls")).unwrap().trim(), "3");
}

#[test]
fn a_slow_alerter_is_cut_off_by_alert_timeout() {
    let env = Env::with_alerter(
        "alerter:\n  type: command\n  command: sleep 30\n",
        "  alert_timeout: 0.5\n",
    );
    file_check(&env, 0);
    let started = Instant::now();
    env.once();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        env.fault(&format!("{AGENT}#alerts")).unwrap()["message"],
        "Failed to send alert information (1/1)"
    );
}

#[test]
fn a_check_file_that_does_not_parse_becomes_a_critical_fault() {
    let env = Env::new();
    env.write_check("broken.yaml", "disk:\n  command: [unclosed\n");
    env.write_check("good.yaml", "ok:\n  command: echo OK\n");
    env.once();
    let name = format!("//{AGENT}/broken/");
    let fault = env.fault(&name).unwrap();
    assert_eq!(fault["severity"], 50);
    let message = fault["message"].as_str().unwrap();
    let path = env.path("checks.d/broken.yaml");
    assert!(
        message.starts_with(&format!("error parsing {}: ", path.display())),
        "{message}"
    );
    assert!(message.contains("line 2"), "{message}");
    assert_eq!(env.alerts().len(), 1);
    assert_eq!(env.faults().len(), 1, "the good file still runs cleanly");
}

#[test]
fn an_invalid_check_entry_becomes_a_critical_fault_of_that_check() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "good:\n  command: echo OK\nbad:\n  command: echo OK\n  retries: 2\n",
    );
    env.once();
    let fault = env.fault(&check_name("app", "bad")).unwrap();
    let path = env.path("checks.d/app.yaml");
    assert_eq!(
        fault["message"],
        format!(
            "error loading check {} [bad]: bad: unknown field `retries`, expected one of `command`, `http`, `tcp`, `socket`, `interval`, `retry`, `retry_interval`, `timeout`, `nagios_performance`, `thresholds`, `alerter` at line 5 column 3",
            path.display()
        )
    );
    assert!(env.fault(&check_name("app", "good")).is_none());
}

#[test]
fn a_check_file_being_written_is_held_back_until_it_settles() {
    let env = Env::new();
    env.write("checks.d/fresh.yaml", "disk:\n  command: [unclosed\n");
    env.once();
    assert!(
        env.faults().is_empty(),
        "a file changed just now must not page"
    );
    crate::util::age(&env.path("checks.d/fresh.yaml"));
    env.once();
    assert!(env.fault(&format!("//{AGENT}/fresh/")).is_some());
}

#[test]
fn thresholds_turn_metrics_into_faults_and_clear_is_sticky() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\nmetrics:\n  type: log\n  path: metrics.jsonl\n",
        "",
    );
    let plugin = env.script(
        "speed.sh",
        &format!(
            "echo \"OK - speed $(cat '{}') | speed=$(cat '{}')rpm\"",
            env.path("speed").display(),
            env.path("speed").display()
        ),
    );
    env.write_check(
        "app.yaml",
        &format!(
            "fan:\n  command: {}\n  retry: 5\n  thresholds: |\n    speed warning > 50 error > 70 critical > 110 clear < 60\n    temp ? warning > 1\n",
            plugin.display()
        ),
    );
    let speed = format!("{}#speed", check_name("app", "fan"));
    let cases = [
        ("55", Some((30, "55 > 50"))),
        ("99", Some((40, "99 > 70 (1 of 6)"))),
        ("65", Some((40, "65 not clear < 60 (2 of 6)"))),
        ("120", Some((50, "120 > 110"))),
        ("59", Some((30, "59 > 50"))),
        ("40", None),
    ];
    for (value, want) in cases {
        env.write("speed", value);
        env.once();
        let got = env.fault(&speed).map(|f| {
            (
                f["severity"].as_i64().unwrap(),
                f["message"].as_str().unwrap().to_string(),
            )
        });
        assert_eq!(got, want.map(|(s, m)| (s, m.to_string())), "speed {value}");
        assert!(
            env.fault(&format!("{}#temp", check_name("app", "fan")))
                .is_none(),
            "temp is optional"
        );
    }
    let metrics = read_json_lines(&env.path("metrics.jsonl"));
    assert_eq!(metrics.len(), 6);
    assert_eq!(metrics[1]["name"], speed);
    assert_eq!(metrics[1]["value"], 99.0);
    assert_eq!(metrics[1]["units"], "rpm");
    assert!(metrics[1]["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn multi_line_perfdata_becomes_metrics() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\nmetrics:\n  type: log\n  path: metrics.jsonl\n",
        "",
    );
    single_check(
        &env,
        "echo 'DISK OK - free space | /=2643MB;5948;5958;0;5968'\necho '/ 15272 MB (77%);'\necho '/boot 68 MB (69%);'\necho \"/home 69357 MB (27%); | /boot=68MB;88;93;0;98\"\necho \"/home=69357MB;253404;253409;0;253414 'var log'=-1.5\"",
    );
    env.once();
    let metrics = read_json_lines(&env.path("metrics.jsonl"));
    let got: Vec<(String, f64, String)> = metrics
        .iter()
        .map(|m| {
            (
                m["name"]
                    .as_str()
                    .unwrap()
                    .rsplit('#')
                    .next()
                    .unwrap()
                    .to_string(),
                m["value"].as_f64().unwrap(),
                m["units"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/".to_string(), 2643.0, "MB".to_string()),
            ("/boot".to_string(), 68.0, "MB".to_string()),
            ("/home".to_string(), 69357.0, "MB".to_string()),
            ("var log".to_string(), -1.5, String::new()),
        ]
    );
}

#[test]
fn count_runs_aligned_ticks_and_an_interval_five_check_twice_in_ten() {
    let env = Env::bare();
    std::fs::create_dir_all(env.path("checks.d")).unwrap();
    env.write(
        "agent.yaml",
        &format!("agent:\n  name: {AGENT}\n  directory: checks.d\n  base_interval: 0.3\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: alerts.jsonl\n"),
    );
    let runs = env.path("runs");
    env.write_check(
        "app.yaml",
        &format!(
            "every5:\n  command: echo run >> '{}'; echo OK\n  interval: 5\n",
            runs.display()
        ),
    );
    let output = env.cimaa(&["agent", "--count", "10"]);
    crate::util::assert_success(&output);
    let log = stderr(&output);
    // The tick numbers that ran, from the `tick done tick=N` log lines.
    let ticks: Vec<i64> = log
        .lines()
        .filter(|line| line.contains("tick done"))
        .filter_map(|line| {
            line.split("tick=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(ticks.len(), 10, "{log}");
    let due = ticks.iter().filter(|tick| *tick % 5 == 0).count();
    let count = fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(count, due, "runs on ticks divisible by 5: {log}");
    // Ten consecutive ticks hold exactly two multiples of five; a tick that
    // overran on a loaded machine skips ahead (and is logged), so only then
    // may the span be longer.
    if ticks.last().unwrap() - ticks.first().unwrap() == 9 {
        assert_eq!(count, 2);
    } else {
        assert!(log.contains("tick overran"), "{log}");
    }
}

#[test]
fn removing_a_check_resolves_its_alert_and_drops_its_faults() {
    let env = Env::new();
    let name = file_check(&env, 0);
    env.once();
    fs::remove_file(env.path("checks.d/app.yaml")).unwrap();
    env.once();
    assert!(env.faults().is_empty());
    assert_eq!(
        events(&env.alerts()),
        [
            event("trigger", &name, "CRITICAL - marker missing"),
            event("resolve", &name, "")
        ]
    );
}

#[test]
fn plugins_get_the_agent_config_path() {
    let env = Env::new();
    let name = single_check(&env, "echo \"CONFIG $CIMAA_CONFIG\"; exit 1");
    env.once();
    assert_eq!(
        env.fault(&name).unwrap()["message"],
        format!("CONFIG {}", env.config().display())
    );
}

#[test]
fn a_missing_required_metric_is_a_non_escalating_error() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "fan:\n  command: echo 'OK | speed=1'\n  retry: 0\n  thresholds: load error > 1\n",
    );
    env.once();
    env.once();
    let fault = env
        .fault(&format!("{}#load", check_name("app", "fan")))
        .unwrap();
    assert_eq!(
        (
            fault["severity"].as_i64(),
            fault["message"].as_str(),
            fault["escalates"].as_bool()
        ),
        (Some(40), Some("Missing metric"), Some(false))
    );
    assert!(env.alerts().is_empty());
}
