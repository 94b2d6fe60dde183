//! `cimaa test-alert [NAME]` through the real binary, against the fake
//! PagerDuty and Slack servers and the file and command alerters: each
//! alerter gets a trigger then its resolve, on its own, and a refusal exits
//! 1 naming the alerter and the receiver's reason. See: #22

use serde_json::json;

use crate::fake_http::{FakeHttp, Reply, Request};
use crate::util::{AGENT, Env, assert_success, read_json_lines, stderr, stdout};

const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000000";
const TOKEN: &str = "xoxb-secret-token";

/// `alerter:` on the fake PagerDuty and `alerters: {chat: ...}` on the fake
/// Slack, with `extra` lines appended.
fn pagerduty_and_slack(pd: &FakeHttp, slack: &FakeHttp, extra: &str) -> String {
    format!(
        "alerter:\n  type: pagerduty\n  routing_key: {ROUTING_KEY}\n  url: {}\n\
         alerters:\n  chat:\n    type: slack\n    token: {TOKEN}\n    channel: '#ops'\n    url: {}\n{extra}",
        pd.url("/v2/enqueue"),
        slack.url("/api/chat.postMessage")
    )
}

/// The test alert's fault name through alerter `name`.
fn test_name(name: &str) -> String {
    format!("//{AGENT}/cimaa/test-alert#{name}")
}

#[test]
fn pagerduty_and_slack_each_get_a_trigger_then_its_resolve() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let slack = FakeHttp::start(Reply::slack_ok());
    let env = Env::with_alerter(&pagerduty_and_slack(&pd, &slack, ""), "");

    let output = env.cimaa(&["test-alert"]);

    assert_success(&output);
    assert_eq!(
        stdout(&output),
        "ok: default (pagerduty): trigger and resolve delivered\n\
         ok: chat (slack): trigger and resolve delivered\n"
    );
    let events = pd.requests();
    let sent: Vec<_> = events.iter().map(Request::json).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["event_action"], json!("trigger"));
    assert_eq!(sent[0]["routing_key"], json!(ROUTING_KEY));
    assert_eq!(sent[0]["dedup_key"], json!(test_name("default")));
    let summary = sent[0]["payload"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!(
            "{AGENT} cimaa test-alert#default: Test alert from `cimaa test-alert` by "
        )),
        "{summary}"
    );
    assert!(
        summary.ends_with(&format!(" on {AGENT}; the resolve follows")),
        "{summary}"
    );
    assert_eq!(sent[1]["event_action"], json!("resolve"));
    assert_eq!(sent[1]["dedup_key"], json!(test_name("default")));
    let posts: Vec<_> = slack.requests().iter().map(Request::json).collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    let text = posts[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "Alert: *{AGENT} cimaa test-alert#chat*: Test alert from `cimaa test-alert`"
        )),
        "{text}"
    );
    assert_eq!(
        posts[1]["text"],
        json!(format!("Clear: *{AGENT} cimaa test-alert#chat*"))
    );
}

#[test]
fn a_refused_routing_key_exits_1_with_pagerduty_s_reason_and_sends_no_resolve() {
    let pd = FakeHttp::start(Reply::new(
        400,
        r#"{"status":"invalid event","message":"Event object is invalid","errors":["Invalid routing key"]}"#,
    ));
    let slack = FakeHttp::start(Reply::slack_ok());
    let env = Env::with_alerter(&pagerduty_and_slack(&pd, &slack, ""), "");

    let output = env.cimaa(&["test-alert"]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "ok: chat (slack): trigger and resolve delivered\n"
    );
    assert_eq!(
        stderr(&output),
        "default (pagerduty): trigger failed: alert refused as invalid: PagerDuty: HTTP 400: \
         Event object is invalid: Invalid routing key\n\
         test alert failed through 1 of 2 alerter(s): `default`\n"
    );
    assert_eq!(pd.requests().len(), 1, "no resolve after a refused trigger");
}

#[test]
fn slack_ok_false_exits_1_with_slack_s_error_code() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let slack = FakeHttp::start(Reply::new(200, r#"{"ok":false,"error":"invalid_auth"}"#));
    let env = Env::with_alerter(&pagerduty_and_slack(&pd, &slack, ""), "");

    let output = env.cimaa(&["test-alert", "chat"]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.starts_with(
            "chat (slack): trigger failed: alert delivery failed: Slack: invalid_auth (check `token`"
        ),
        "{err}"
    );
    assert!(
        err.ends_with("test alert failed through 1 of 1 alerter(s): `chat`\n"),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "the token stays secret: {err}");
    assert!(pd.requests().is_empty(), "only the named alerter is tested");
}

#[test]
fn an_alerter_is_tested_without_its_fallback() {
    let pd = FakeHttp::start(Reply::new(503, "down for maintenance"));
    let slack = FakeHttp::start(Reply::slack_ok());
    let env = Env::with_alerter(
        &pagerduty_and_slack(&pd, &slack, "").replacen("  url: ", "  fallback: chat\n  url: ", 1),
        "",
    );

    let output = env.cimaa(&["test-alert", "default"]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "default (pagerduty): trigger failed: alert delivery failed: PagerDuty: HTTP 503: \
         down for maintenance (its fallback `chat` is not tried here: test it with \
         `cimaa test-alert chat`)\n\
         test alert failed through 1 of 1 alerter(s): `default`\n"
    );
    assert!(slack.requests().is_empty(), "the fallback was not used");
}

#[test]
fn an_unknown_name_exits_2_listing_the_configured_ones() {
    let pd = FakeHttp::start(Reply::pagerduty_accepted());
    let slack = FakeHttp::start(Reply::slack_ok());
    let env = Env::with_alerter(&pagerduty_and_slack(&pd, &slack, ""), "");

    let output = env.cimaa(&["test-alert", "nosuch"]);

    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.starts_with("error: no alerter named `nosuch` in `"),
        "{err}"
    );
    assert!(
        err.contains("configured: `default`, `chat` (`default` is the `alerter` section)"),
        "{err}"
    );
    assert!(pd.requests().is_empty() && slack.requests().is_empty());
}

#[test]
fn a_file_alerter_to_stdout_prints_its_two_lines() {
    let env = Env::with_alerter("alerter:\n  type: file\n  path: '-'\n", "");

    let output = env.cimaa(&["test-alert"]);

    assert_success(&output);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let trigger: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let resolve: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(trigger["action"], json!("trigger"));
    assert_eq!(trigger["name"], json!(test_name("default")));
    assert_eq!(resolve["action"], json!("resolve"));
    assert_eq!(resolve["name"], json!(test_name("default")));
    assert_eq!(
        lines[2],
        "ok: default (file): trigger and resolve delivered"
    );
}

#[test]
fn a_command_alerter_runs_for_the_trigger_and_the_resolve() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    let notify = env.script(
        "notify",
        &format!(
            "printf '{{\"action\":\"%s\",\"name\":\"%s\"}}\\n' \"$CIMAA_ACTION\" \"$CIMAA_NAME\" >> '{}'",
            log.display()
        ),
    );
    env.configure(
        &format!(
            "alerter:\n  type: file\n  path: alerts.jsonl\nalerters:\n  script:\n    type: command\n    command: {}\n",
            notify.display()
        ),
        "",
    );

    let output = env.cimaa(&["test-alert", "script"]);

    assert_success(&output);
    assert_eq!(
        stdout(&output),
        "ok: script (command): trigger and resolve delivered\n"
    );
    assert_eq!(
        read_json_lines(&log),
        [
            json!({"action": "trigger", "name": test_name("script")}),
            json!({"action": "resolve", "name": test_name("script")}),
        ]
    );
    assert!(env.alerts().is_empty(), "only the named alerter is tested");
}

#[test]
fn a_failing_command_alerter_exits_1_with_its_status_and_stderr() {
    let env = Env::with_alerter(
        "alerter:\n  type: command\n  command: echo 'no route to pager' >&2; exit 3\n",
        "",
    );

    let output = env.cimaa(&["test-alert"]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.starts_with("default (command): trigger failed: alert command "),
        "{err}"
    );
    assert!(err.contains("no route to pager"), "{err}");
    assert!(
        err.ends_with("test alert failed through 1 of 1 alerter(s): `default`\n"),
        "{err}"
    );
}
