//! Structured logs and Sentry reports (issue #7): a fake Sentry on
//! 127.0.0.1 receives envelopes from the real binary.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_http::{FakeHttp, Reply};
use crate::util::{AGENT, Env, check_name, stderr};

/// The JSON items of every envelope the fake Sentry received.
fn sentry_items(sentry: &FakeHttp) -> Vec<Value> {
    sentry
        .requests()
        .iter()
        .filter(|r| r.path == "/api/42/envelope/")
        .flat_map(|r| {
            r.body
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn wait_for_event(sentry: &FakeHttp, what: &dyn Fn(&Value) -> bool) -> Option<Value> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Some(event) = sentry_items(sentry).into_iter().find(|item| what(item)) {
            return Some(event);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn sentry_env(sentry: &FakeHttp) -> Env {
    Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &format!("  sentry_dsn: http://public@127.0.0.1:{}/42\n", sentry.port),
    )
}

#[test]
fn a_check_that_panics_becomes_a_checker_fault_and_a_sentry_event_tagged_with_agent_and_check() {
    let sentry = FakeHttp::start(Reply::new(200, "{}"));
    let env = sentry_env(&sentry);
    env.write_check("app.yaml", "boom:\n  command: echo OK\n");
    let name = check_name("app", "boom");
    let output = env.cimaa_with_env(&["agent", "--once"], &[("CIMAA_PANIC_CHECK", &name)]);
    crate::util::assert_success(&output);
    let fault = env.fault(&format!("{name}#checker")).unwrap();
    assert_eq!(fault["severity"], 40);
    assert!(
        fault["message"].as_str().unwrap().starts_with("panic: "),
        "{fault}"
    );
    let event = wait_for_event(&sentry, &|item| item["tags"]["check"] == name.as_str())
        .unwrap_or_else(|| panic!("no event with the check tag: {:?}", sentry_items(&sentry)));
    assert_eq!(event["tags"]["agent"], AGENT);
    assert_eq!(event["level"], "fatal", "a panic is reported as fatal");
}

#[test]
fn a_startup_configuration_error_is_reported_before_exit() {
    let sentry = FakeHttp::start(Reply::new(200, "{}"));
    let env = sentry_env(&sentry);
    let config = std::fs::read_to_string(env.config())
        .unwrap()
        .replace("alerter:\n", "alerter:\n  pth: x\n");
    env.write("agent.yaml", &config);
    let output = env.cimaa(&["agent", "--once"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let event = wait_for_event(&sentry, &|item| {
        item["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field `pth`"))
            || item["logentry"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown field `pth`"))
    });
    assert!(
        event.is_some(),
        "no startup event: {:?}",
        sentry_items(&sentry)
    );
}

#[test]
fn an_invalid_dsn_is_a_configuration_error() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: a.jsonl\n",
        "  sentry_dsn: not-a-dsn\n",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("agent.sentry_dsn: invalid DSN `not-a-dsn`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn json_logs_carry_the_check_name_as_a_field() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: a.jsonl\n",
        "  log_format: json\n",
    );
    env.write_check("app.yaml", "x:\n  command: echo 'bad'; exit 2\n");
    let output = env.once();
    let lines: Vec<Value> = stderr(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let fault_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "check fault")
        .unwrap_or_else(|| panic!("no check fault line: {lines:?}"));
    assert_eq!(fault_line["fields"]["check"], check_name("app", "x"));
    assert_eq!(fault_line["level"], "INFO");
}

#[test]
fn rust_log_overrides_the_configured_level() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: a.jsonl\n",
        "  logging: error\n",
    );
    let quiet = env.once();
    assert!(!stderr(&quiet).contains("tick done"));
    let loud = env.cimaa_with_env(&["agent", "--once"], &[("RUST_LOG", "debug")]);
    assert!(stderr(&loud).contains("tick done"), "{}", stderr(&loud));
}

// See: #18
#[test]
fn plugin_output_cannot_forge_text_log_lines_or_pass_terminal_escapes() {
    let env = Env::with_alerter("alerter:\n  type: file\n  path: a.jsonl\n", "");
    env.write_check(
        "app.yaml",
        "x:\n  command: \"printf 'bad\\\\n2026-01-01T00:00:00.000000Z  INFO forged: yes\\\\n\\\\033[31mred'; exit 2\"\n",
    );
    let output = env.once();
    let log = stderr(&output);
    assert!(log.contains("check fault"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "a forged line: {log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw escape: {log:?}");
    assert!(
        log.contains(r"bad\n2026-01-01T00:00:00.000000Z  INFO forged: yes\n\u{1b}[31mred"),
        "{log}"
    );
}
