//! Scenarios that drive the real binary (`cimaa agent --once`): what needs a
//! process: command plugins (exit codes, stderr, perfdata, timeouts that kill
//! the process group, `CIMAA_CONFIG`) and check files read from disk with
//! real modification times. Scheduling, retries, escalation, squelches and
//! alert failures run in process on a paused clock (`agent_in_process`).

use std::fs;
use std::time::{Duration, Instant};

use crate::util::{AGENT, Env, check_name, read_json_lines};

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
    // Gone (the agent reaps it, #18), or a zombie waiting for an init that
    // does not reap: not running.
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
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
            "error loading check {} [bad]: bad: unknown field `retries`, expected one of `command`, `http`, `tcp`, `socket`, `meta`, `interval`, `retry`, `retry_interval`, `timeout`, `nagios_performance`, `thresholds`, `alerter`, `monitor_retry`, `notify`, `flap`, `depends_on` at line 5 column 3",
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
