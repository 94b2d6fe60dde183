//! PagerDuty and Slack alerters against fake servers on 127.0.0.1, driven
//! through the real binary: payloads field by field, failures, timeouts,
//! fallbacks and per-check routing (issue #6).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake_http::{FakeHttp, Reply};
use crate::util::{AGENT, Env, check_name, stderr};

const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000000";
const TOKEN: &str = "xoxb-secret-token";

fn pagerduty_section(pd: &FakeHttp, extra: &str) -> String {
    format!(
        "alerter:\n  type: pagerduty\n  routing_key: {ROUTING_KEY}\n  url: {}\n{extra}",
        pd.url("/v2/enqueue")
    )
}

/// A Slack section's lines, each indented by `indent`.
fn slack_lines(slack: &FakeHttp, indent: &str) -> String {
    let lines = [
        "type: slack".to_string(),
        format!("token: {TOKEN}"),
        "channel: '#ops'".to_string(),
        "target: '<!channel>'".to_string(),
        format!("url: {}", slack.url("/api/chat.postMessage")),
    ];
    let mut text = String::new();
    for line in lines {
        text.push_str(indent);
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// A check that is CRITICAL while `state` holds `fail`.
fn toggled_check(env: &Env, extra: &str) -> String {
    let state = env.path("state");
    std::fs::write(&state, "fail").unwrap();
    env.write_check(
        "app.yaml",
        &format!(
            "disk:\n  command: if grep -q fail '{}'; then echo 'CRITICAL - disk full'; exit 2; fi; echo OK\n  retry: 0\n{extra}",
            state.display()
        ),
    );
    check_name("app", "disk")
}

fn clear(env: &Env) {
    std::fs::write(env.path("state"), "ok").unwrap();
}

#[test]
fn pagerduty_trigger_and_resolve_match_the_events_api() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let env = Env::with_alerter(&pagerduty_section(&pd, ""), "");
    let name = toggled_check(&env, "");
    env.once();
    clear(&env);
    env.once();
    let requests = pd.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v2/enqueue");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(
        requests[0].json(),
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": name,
            "payload": {
                "summary": format!("{AGENT} app disk: CRITICAL - disk full"),
                "source": AGENT,
                "severity": "critical",
                "custom_details": {"name": name, "agent": AGENT, "message": "CRITICAL - disk full"}
            }
        })
    );
    assert_eq!(
        requests[1].json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": name})
    );
}

#[test]
fn pagerduty_summaries_of_long_messages_keep_start_and_end() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let env = Env::with_alerter(&pagerduty_section(&pd, ""), "");
    let long = format!("BEGIN{}FINISH", "x".repeat(2000));
    env.write_check(
        "app.yaml",
        &format!("big:\n  command: \"echo '{{\\\"faults\\\": [{{\\\"severity\\\": 50, \\\"message\\\": \\\"{long}\\\"}}]}}'\"\n"),
    );
    env.once();
    let body = pd.requests()[0].json();
    let summary = body["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(
        summary.starts_with(&format!("{AGENT} app big: BEGIN")),
        "{summary}"
    );
    assert!(summary.ends_with("FINISH"), "{summary}");
    assert_eq!(body["payload"]["custom_details"]["message"], long);
}

#[test]
fn pagerduty_429_fails_this_tick_and_succeeds_on_the_next() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    pd.script([Reply::new(429, r#"{"status":"throttle event"}"#)]);
    let env = Env::with_alerter(&pagerduty_section(&pd, ""), "");
    let name = toggled_check(&env, "");
    env.once();
    assert_eq!(
        env.fault(&format!("{AGENT}#alerts")).unwrap()["message"],
        "Failed to send alert information (1/1)"
    );
    assert_eq!(env.fault(&name).unwrap()["triggered"], false);
    env.once();
    assert!(env.fault(&format!("{AGENT}#alerts")).is_none());
    assert_eq!(env.fault(&name).unwrap()["triggered"], true);
    let actions: Vec<_> = pd
        .requests()
        .iter()
        .map(|r| r.json()["event_action"].clone())
        .collect();
    assert_eq!(actions, [json!("trigger"), json!("trigger")]);
}

#[test]
fn pagerduty_400_is_not_resent_until_the_message_changes() {
    let pd = FakeHttp::start(Reply::new(
        400,
        r#"{"status":"invalid event","message":"Event object is invalid","errors":["'payload.summary' is missing"]}"#,
    ));
    let env = Env::with_alerter(&pagerduty_section(&pd, ""), "");
    toggled_check(&env, "");
    let first = env.once();
    assert!(
        stderr(&first).contains("Event object is invalid: 'payload.summary' is missing"),
        "{}",
        stderr(&first)
    );
    assert!(
        env.fault(&format!("{AGENT}#alerts")).is_some(),
        "a refusal counts as a failure"
    );
    env.once();
    assert_eq!(
        pd.requests().len(),
        1,
        "the same refused event is not resent"
    );
}

#[test]
fn a_slow_pagerduty_is_cut_off_by_alert_timeout() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted().delayed(Duration::from_secs(20)));
    let env = Env::with_alerter(&pagerduty_section(&pd, ""), "  alert_timeout: 1\n");
    toggled_check(&env, "");
    let started = Instant::now();
    env.once();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        env.fault(&format!("{AGENT}#alerts")).unwrap()["message"],
        "Failed to send alert information (1/1)"
    );
}

#[test]
fn slack_messages_match_chat_post_message() {
    let slack = FakeHttp::start(Reply::slack_ok());
    let env = Env::with_alerter(&format!("alerter:\n{}", slack_lines(&slack, "  ")), "");
    toggled_check(&env, "");
    env.once();
    clear(&env);
    env.once();
    let requests = slack.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/api/chat.postMessage");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        requests[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        requests[0].json(),
        json!({"channel": "#ops", "text": format!("<!channel> Alert: *{AGENT} app disk*: CRITICAL - disk full"), "username": "cimaa"})
    );
    assert_eq!(
        requests[1].json()["text"],
        format!("<!channel> Clear: *{AGENT} app disk*")
    );
}

#[test]
fn slack_ok_false_is_a_failure() {
    let slack = FakeHttp::start(Reply::new(
        200,
        r#"{"ok":false,"error":"channel_not_found"}"#,
    ));
    let env = Env::with_alerter(&format!("alerter:\n{}", slack_lines(&slack, "  ")), "");
    toggled_check(&env, "");
    let output = env.once();
    assert!(
        stderr(&output).contains("Slack: channel_not_found"),
        "{}",
        stderr(&output)
    );
    assert!(env.fault(&format!("{AGENT}#alerts")).is_some());
}

#[test]
fn slack_429_is_retried_after_retry_after_within_the_alert_timeout() {
    let slack = FakeHttp::start(Reply::slack_ok());
    slack.script([Reply::new(429, "").header("Retry-After", "1")]);
    let env = Env::with_alerter(
        &format!("alerter:\n{}", slack_lines(&slack, "  ")),
        "  alert_timeout: 5\n",
    );
    toggled_check(&env, "");
    env.once();
    assert_eq!(slack.requests().len(), 2);
    assert!(env.fault(&format!("{AGENT}#alerts")).is_none());
}

#[test]
fn slack_webhooks_post_text_and_never_leak_their_url() {
    let hook = FakeHttp::start(Reply::new(404, "no_service"));
    let secret_path = "/services/T000/B000/SECRETSECRET";
    let env = Env::with_alerter(
        &format!(
            "alerter:\n  type: slack\n  webhook_url: {}\n",
            hook.url(secret_path)
        ),
        "",
    );
    toggled_check(&env, "");
    let output = env.once();
    let request = &hook.requests()[0];
    assert_eq!(request.path, secret_path);
    assert_eq!(
        request.json(),
        json!({"text": format!("Alert: *{AGENT} app disk*: CRITICAL - disk full")})
    );
    let log = stderr(&output);
    assert!(log.contains("Slack: HTTP 404: no_service"), "{log}");
    assert!(
        !log.contains("SECRETSECRET"),
        "the webhook URL leaked: {log}"
    );
    let faults = env.cimaa(&["faults", "--json"]);
    assert!(!String::from_utf8_lossy(&faults.stdout).contains("SECRETSECRET"));
}

#[test]
fn secrets_never_appear_in_logs() {
    let pd = FakeHttp::start(Reply::new(500, "boom"));
    let env = Env::with_alerter(&pagerduty_section(&pd, ""), "  logging: debug\n");
    toggled_check(&env, "");
    let log = stderr(&env.once());
    assert!(log.contains("PagerDuty: HTTP 500: boom"), "{log}");
    assert!(!log.contains(ROUTING_KEY), "{log}");
}

#[test]
fn a_fallback_delivers_when_pagerduty_fails() {
    let pd = FakeHttp::start(Reply::new(503, "down"));
    let slack = FakeHttp::start(Reply::slack_ok());
    let env = Env::with_alerter(
        &pagerduty_section(
            &pd,
            &format!(
                "  fallback: chat\nalerters:\n  chat:\n{}",
                slack_lines(&slack, "    ")
            ),
        ),
        "",
    );
    let name = toggled_check(&env, "");
    env.once();
    assert_eq!(pd.requests().len(), 1);
    assert_eq!(slack.requests().len(), 1);
    assert!(
        env.fault(&format!("{AGENT}#alerts")).is_none(),
        "the chain delivered"
    );
    assert_eq!(env.fault(&name).unwrap()["triggered"], true);
}

#[test]
fn a_check_routes_its_alerts_to_a_named_alerter() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let slack = FakeHttp::start(Reply::slack_ok());
    let env = Env::with_alerter(
        &pagerduty_section(
            &pd,
            &format!("alerters:\n  chat:\n{}", slack_lines(&slack, "    ")),
        ),
        "",
    );
    toggled_check(&env, "  alerter: chat\n");
    env.write_check(
        "other.yaml",
        "x:\n  command: echo 'bad'; exit 2\n  retry: 0\n",
    );
    env.once();
    let pd_names: Vec<_> = pd
        .requests()
        .iter()
        .map(|r| r.json()["dedup_key"].clone())
        .collect();
    assert_eq!(pd_names, [json!(check_name("other", "x"))]);
    assert_eq!(slack.requests().len(), 1);
    assert!(
        slack.requests()[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("app disk")
    );
}

#[test]
fn an_unknown_alerter_name_is_a_configuration_error_of_that_check() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let env = Env::with_alerter(&pagerduty_section(&pd, ""), "");
    env.write_check("app.yaml", "x:\n  command: echo OK\n  alerter: nobody\n");
    env.once();
    let fault = env.fault(&check_name("app", "x")).unwrap();
    assert!(
        fault["message"]
            .as_str()
            .unwrap()
            .ends_with("[x]: no alerter named `nobody` (known: `default`)"),
        "{}",
        fault["message"]
    );
}

#[test]
fn a_fallback_cycle_is_a_configuration_error() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: a.jsonl\n  fallback: b\nalerters:\n  b:\n    type: file\n    path: b.jsonl\n    fallback: default\n",
        "",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("alerter.fallback: `default` leads back to `default` (a cycle)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_meta_fault_from_two_agents_has_one_dedup_key() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let mut bodies = Vec::new();
    for agent in ["meta1", "meta2"] {
        let env = Env::with_alerter(&pagerduty_section(&pd, ""), "");
        let config = std::fs::read_to_string(env.config())
            .unwrap()
            .replace(&format!("name: {AGENT}"), &format!("name: {agent}"));
        env.write("agent.yaml", &config);
        env.write_check(
            "meta.yaml",
            "//meta:\n  command: |\n    echo '{\"faults\": [{\"name\": \"web9\", \"severity\": 40, \"message\": \"Inactive agent\"}]}'\n  retry: 0\n",
        );
        env.once();
        bodies.push(pd.requests().last().unwrap().json());
    }
    assert_eq!(bodies[0]["dedup_key"], "//meta#web9");
    assert_eq!(bodies[1]["dedup_key"], "//meta#web9");
    assert_eq!(bodies[0]["payload"]["source"], "meta1");
    assert_eq!(bodies[1]["payload"]["source"], "meta2");
}

/// Whether `pid` is running (not gone, not a zombie init has yet to reap);
/// a running one is killed, so that a failing test leaks nothing.
fn still_running(pid: i32) -> bool {
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    });
    if alive {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    alive
}

// See: #18
#[test]
fn a_command_alerter_past_alert_timeout_leaves_no_process_even_ignoring_term() {
    let env = Env::with_alerter(
        "alerter:\n  type: command\n  command: \"trap '' TERM; (setsid sleep 307.1806 >/dev/null 2>&1 & echo $! > pid2); sleep 307.1805 & echo $! > pid; wait\"\n",
        "  alert_timeout: 1\n",
    );
    env.write_check(
        "app.yaml",
        "x:\n  command: echo 'bad'; exit 2\n  retry: 0\n",
    );
    let output = env.cimaa(&["agent", "--once"]);
    let pid = |name: &str| -> i32 {
        std::fs::read_to_string(env.path(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let in_group = still_running(pid("pid"));
    let in_new_session = still_running(pid("pid2"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!in_group, "the alerter's `sleep` outlived its timeout");
    assert!(
        !in_new_session,
        "the alerter's `setsid sleep` outlived its timeout"
    );
}
