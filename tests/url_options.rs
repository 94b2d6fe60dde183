//! Every `url`, `webhook_url` and `endpoint_url` of the agent configuration
//! must be an absolute http(s) URL (SPEC §16): anything else is refused by
//! `validate` and by `agent` at start (exit 2), naming the file, the key
//! path and the line. See: #22

use crate::util::{Env, stderr, stdout};

/// An agent configuration with these sections after `agent:`.
fn config(sections: &str) -> String {
    format!("agent:\n  name: a\n  directory: checks.d\n{sections}")
}

const SQLITE: &str = "database:\n  type: sqlite\n  path: cimaa.db\n";
const FILE_ALERTER: &str = "alerter:\n  type: file\n  path: alerts.jsonl\n";

/// Runs `cimaa ARGS` on this configuration: exit code, stdout, stderr
/// (the temp dir shown as `DIR/`).
fn run(text: &str, args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let env = Env::new();
    env.write("agent.yaml", text);
    let output = env.cimaa_with_env(args, vars);
    let dir = env.path("").display().to_string();
    (
        output.status.code().unwrap_or(-1),
        stdout(&output).replace(&dir, "DIR/"),
        stderr(&output).replace(&dir, "DIR/"),
    )
}

#[test]
fn a_slack_webhook_url_that_is_not_a_url_is_refused_without_quoting_it() {
    let text = config(&format!(
        "{SQLITE}alerter:\n  type: slack\n  webhook_url: ${{SLACK_WEBHOOK_URL}}\n"
    ));

    let (code, _, err) = run(&text, &["validate"], &[("SLACK_WEBHOOK_URL", "z")]);

    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: alerter.webhook_url: the value (not shown: a webhook URL is a secret) \
         is not an absolute URL: it must start with `https://` (or `http://`) at line 9 column 16"
    );
}

#[test]
fn a_url_without_a_scheme_is_refused_naming_its_key_and_line() {
    let text = config(&format!(
        "{SQLITE}{FILE_ALERTER}alerters:\n  ops:\n    type: slack\n    token: xoxb-1\n    url: slack.com/x\n"
    ));

    let (code, _, err) = run(&text, &["validate"], &[]);

    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: alerters.ops.url: `slack.com/x` is not an absolute URL: \
         it must start with `https://` (or `http://`) at line 14 column 10"
    );
}

#[test]
fn the_agent_refuses_to_start_with_a_bad_pagerduty_url() {
    let text = config(&format!(
        "{SQLITE}alerter:\n  type: pagerduty\n  routing_key: x\n  url: ftp://events.example.com/\n"
    ));

    let (code, _, err) = run(&text, &["agent", "--once"], &[]);

    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "alerter.url: `ftp://events.example.com/` is not an http(s) URL (its scheme is `ftp`)"
        ),
        "{err}"
    );
}

#[test]
fn a_database_endpoint_url_without_a_scheme_is_refused() {
    let text = config(&format!(
        "database:\n  type: dynamodb\n  region: us-east-1\n  endpoint_url: localhost:8000\n{FILE_ALERTER}"
    ));

    let (code, _, err) = run(&text, &["validate"], &[]);

    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: database.endpoint_url: `localhost:8000` is not an absolute URL: \
         it must start with `https://` (or `http://`) at line 7 column 17"
    );
}

#[test]
fn a_metrics_endpoint_url_without_a_host_is_refused() {
    let text = config(&format!(
        "{SQLITE}{FILE_ALERTER}metrics:\n  type: kinesis\n  stream: metrics\n  endpoint_url: 'http://'\n"
    ));

    let (code, _, err) = run(&text, &["validate"], &[]);

    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("metrics.endpoint_url: `http://` is not a valid URL: empty host"),
        "{err}"
    );
}

#[test]
fn absolute_http_and_https_urls_are_accepted() {
    let text = config(&format!(
        "{SQLITE}alerter:\n  type: pagerduty\n  routing_key: x\n  url: https://events.eu.pagerduty.com/v2/enqueue\n\
         alerters:\n  chat:\n    type: slack\n    webhook_url: ${{SLACK_WEBHOOK_URL}}\n"
    ));

    let (code, out, err) = run(
        &text,
        &["validate"],
        &[("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/T0/B0/x")],
    );

    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: "), "{out}");
}
