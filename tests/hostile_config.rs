//! Hostile agent configurations (#18): values that used to spin the agent,
//! inject keys through `${VAR}`, or come back as unreadable messages. Each
//! test drives the real binary with one scenario.

use crate::util::{Env, assert_success, stderr, stdout};

/// `cimaa validate` on this agent configuration: exit code, stdout and
/// stderr (the temp dir shown as `DIR/`).
fn validate(text: &str, vars: &[(&str, &str)]) -> (i32, String, String) {
    let env = Env::new();
    env.write("agent.yaml", text);
    let output = env.cimaa_with_env(&["validate"], vars);
    let dir = env.path("").display().to_string();
    (
        output.status.code().unwrap_or(-1),
        stdout(&output).replace(&dir, "DIR/"),
        stderr(&output).replace(&dir, "DIR/"),
    )
}

/// An agent configuration with these `agent:` lines after the name.
fn with_agent(lines: &str) -> String {
    format!(
        "agent:\n  name: a\n  directory: checks.d\n{lines}database:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: alerts.jsonl\n"
    )
}

// See: #18
#[test]
fn a_tiny_base_interval_is_refused() {
    let (code, _, err) = validate(&with_agent("  base_interval: 1e-300\n"), &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: agent.base_interval: must be between 0.1 and 86400 seconds (a day), got `1e-300`"
    );
}

// See: #18
#[test]
fn a_base_interval_over_a_day_is_refused() {
    let (code, _, err) = validate(&with_agent("  base_interval: 86401\n"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "agent.base_interval: must be between 0.1 and 86400 seconds (a day), got `86401`"
        ),
        "{err}"
    );
}

// See: #18
#[test]
fn not_a_number_and_infinity_are_refused_for_every_agent_duration() {
    let (code, _, err) = validate(
        &with_agent("  base_interval: .nan\n  timeout: .inf\n  alert_timeout: -.inf\n"),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: agent.base_interval: must be a positive number of seconds, got `NaN`\n\
         DIR/agent.yaml: agent.timeout: must be a positive number of seconds, got `inf`\n\
         DIR/agent.yaml: agent.alert_timeout: must be a positive number of seconds, got `-inf`"
    );
}

// See: #18
#[test]
fn tiny_check_timeouts_are_refused() {
    let env = Env::new();
    env.write_check(
        "web.yaml",
        "tiny:\n  command: \"true\"\n  timeout: 1e-300\nnan:\n  http: {url: \"http://127.0.0.1:9/\", timeout: .nan}\n",
    );
    let output = env.cimaa(&["validate"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`timeout` must be between 0.1 and 86400 seconds (a day), got `1e-300`"),
        "{err}"
    );
    assert!(
        err.contains("`http.timeout` must be a positive number of seconds, got `NaN`"),
        "{err}"
    );
}

// See: #18
#[test]
fn a_bad_base_interval_is_the_only_problem_reported() {
    let (code, _, err) = validate(&with_agent("  base_interval: -1\n"), &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: agent.base_interval: must be a positive number of seconds, got `-1`"
    );
}

// See: #18
#[test]
fn a_300_digit_number_is_not_echoed_whole() {
    let digits = format!("1{}", "0".repeat(300));
    let (code, _, err) = validate(
        &with_agent(&format!(
            "  base_interval: {digits}\n  max_concurrency: {digits}\n"
        )),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains(&"0".repeat(50)), "{err}");
    assert!(err.contains("max_concurrency"), "{err}");
    assert!(err.len() < 300, "{err}");
}

// See: #18
#[test]
fn a_long_value_is_quoted_as_an_excerpt() {
    let long = "x".repeat(5000);
    let (code, _, err) = validate(&with_agent(&format!("  base_interval: {long}\n")), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("agent.base_interval: invalid type: string \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…\", expected f64 at line 4 column 18"),
        "{err}"
    );
}

// See: #18
#[test]
fn an_unknown_top_level_key_names_its_line() {
    let text = format!("{}metric:\n  type: log\n", with_agent(""));
    let (code, _, err) = validate(&text, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown field `metric`, expected one of `agent`, `database`, `alerter`, `alerters`, `metrics`, `alerting`, `squelch`, `web` at line 10 column 1"),
        "{err}"
    );
}

// See: #18
#[test]
fn a_byte_order_mark_is_accepted() {
    let (code, out, err) = validate(&format!("\u{feff}{}", with_agent("")), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 0 check(s)"), "{out}");
}

// See: #18
#[test]
fn sections_of_the_wrong_shape_are_described_without_internal_type_names() {
    let cases = [
        (
            "agent: 3\nalerter:\n  type: file\n  path: x\n",
            "agent: invalid type: integer `3`, expected a mapping of agent options at line 1 column 8",
        ),
        (
            "agent:\n  name: a\nalerter: 5\n",
            "alerter: invalid type: integer `5`, expected a mapping with `type` at line 3 column 10",
        ),
        (
            "agent:\n  name: a\ndatabase: [1]\nalerter:\n  type: file\n  path: x\n",
            "database: invalid type: sequence, expected a mapping with `type` at line 3 column 11",
        ),
        (
            "agent:\n  name: a\nalerters:\n  x: true\nalerter:\n  type: file\n  path: x\n",
            "alerters.x: invalid type: boolean `true`, expected a mapping with `type` at line 4 column 6",
        ),
        (
            "just text\n",
            "invalid type: string \"just text\", expected a mapping with `agent`, `database`, `alerter`, `alerters` and `metrics`",
        ),
    ];
    for (text, want) in cases {
        let (code, _, err) = validate(text, &[]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
        for internal in [
            "struct",
            "TypeOnly",
            "SectionTypes",
            "RawAgent",
            "RawConfig",
        ] {
            assert!(!err.contains(internal), "{text}: {err}");
        }
    }
}

// See: #18
#[test]
fn the_reserved_agent_name_is_refused_with_any_database() {
    let text = with_agent("").replace("name: a", "name: _");
    let (code, _, err) = validate(&text, &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: agent.name: `_` is reserved by the database layout"
    );
}

// See: #18
#[test]
fn an_invalid_logging_filter_names_its_key_and_line() {
    let (code, _, err) = validate(&with_agent("  logging: \"cimaa=loud\"\n"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with(
            "error: DIR/agent.yaml: agent.logging: `cimaa=loud` is not a level or tracing filter directives"
        ),
        "{err}"
    );
    assert!(err.contains("at line 4 column 12"), "{err}");
}

// See: #18
#[test]
fn filter_directives_are_accepted() {
    let (code, _, err) = validate(&with_agent("  logging: \"warn,cimaa::agent=debug\"\n"), &[]);
    assert_eq!(code, 0, "{err}");
}

// See: #18
#[test]
fn a_timeout_longer_than_a_tick_is_a_warning_in_validate() {
    let (code, out, err) = validate(&with_agent("  base_interval: 10\n  timeout: 20\n"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 0 check(s)"), "{out}");
    assert_eq!(
        err.trim(),
        "warning: DIR/agent.yaml: agent.timeout: `20` seconds is longer than agent.base_interval (`10`), so a tick can run into the next"
    );
}

// See: #18
#[test]
fn the_agent_logs_a_timeout_longer_than_a_tick_at_start() {
    let env = Env::new();
    env.write(
        "agent.yaml",
        &with_agent("  base_interval: 10\n  timeout: 20\n  logging: info\n"),
    );
    let output = env.cimaa(&["agent", "--once"]);
    assert_success(&output);
    let log = format!("{}{}", stdout(&output), stderr(&output));
    assert!(log.contains("configuration warning"), "{log}");
    assert!(
        log.contains("agent.timeout: `20` seconds is longer than agent.base_interval"),
        "{log}"
    );
}

/// Values that are YAML syntax when pasted into YAML text.
const NASTY: &[&str] = &[
    "xoxb-abc #def",
    "x\nmetrics:\n  type: log",
    "a: b",
    "\"quoted",
    "'single",
    "{flow",
    "*alias",
    "&anchor",
    "!tag",
    "[list",
    "trailing ",
];

// See: #18
#[test]
fn a_variable_becomes_one_scalar_value_whatever_it_contains() {
    for value in NASTY {
        let env = Env::new();
        std::fs::create_dir_all(env.path(value)).unwrap();
        env.write(
            "agent.yaml",
            &with_agent("").replace("directory: checks.d", "directory: ${CHECKS}"),
        );
        let output = env.cimaa_with_env(&["validate"], &[("CHECKS", value)]);
        assert_success(&output);
        assert_eq!(
            stdout(&output).trim_end_matches('\n'),
            format!("ok: 0 check(s) in {}", env.path(value).display()),
            "{value:?}"
        );
    }
}

// See: #18
#[test]
fn a_variable_with_a_hash_is_not_cut_short() {
    let env = Env::new();
    env.write(
        "agent.yaml",
        &with_agent("").replace("name: a", "name: ${NAME}"),
    );
    let vars = [("NAME", "xoxb-abc #def")];
    assert_success(&env.cimaa_with_env(&["agent", "--once"], &vars));
    let agents = env.cimaa_with_env(&["agents", "--json"], &vars);
    let agents: serde_json::Value = serde_json::from_slice(&agents.stdout).unwrap();
    assert_eq!(agents[0]["name"], "xoxb-abc #def");
}

// See: #18
#[test]
fn a_variable_with_a_newline_injects_no_key() {
    // Before, the newline started a `metrics:` section with a typo in it.
    let value = "a\nmetrics:\n  type: lg";
    let text = with_agent("").replace("name: a", "name: ${NAME}");
    let (code, _, err) = validate(&text, &[("NAME", value)]);
    assert_eq!(code, 0, "{err}");
}

// See: #18
#[test]
fn an_empty_variable_is_an_empty_value_not_a_missing_key() {
    let text = with_agent("").replace("name: a", "name: ${NAME}");
    let (code, _, err) = validate(&text, &[("NAME", "")]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: agent.name: must not be empty"
    );
}

// See: #18
#[test]
fn a_variable_is_read_as_the_type_of_its_key() {
    let text =
        with_agent("  base_interval: ${BI}\n  max_concurrency: ${MC}\n  log_format: ${FORMAT}\n");
    let (code, _, err) = validate(&text, &[("BI", "5"), ("MC", "8"), ("FORMAT", "json")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = validate(&text, &[("BI", "0.01"), ("MC", "8"), ("FORMAT", "json")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "agent.base_interval: must be between 0.1 and 86400 seconds (a day), got `0.01`"
        ),
        "{err}"
    );
    let (code, _, err) = validate(&text, &[("BI", "5 # no"), ("MC", "8"), ("FORMAT", "json")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "agent.base_interval: invalid type: string \"5 # no\", expected f64 at line 4 column 18"
        ),
        "{err}"
    );
}

// See: #18
#[test]
fn an_unset_variable_names_the_variable_key_and_line_and_comments_are_left_alone() {
    let text = with_agent("  logging: ${LEVEL} # ${NOT_SET_EITHER}\n");
    let (code, _, err) = validate(&text, &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: agent.logging: environment variable `LEVEL` is not set at line 4 column 12"
    );
    let (code, _, err) = validate(&text, &[("LEVEL", "debug")]);
    assert_eq!(code, 0, "{err}");
}

// See: #18
#[test]
fn a_doubled_dollar_is_a_literal() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("${CHECKS}")).unwrap();
    env.write(
        "agent.yaml",
        &with_agent("").replace("directory: checks.d", "directory: $${CHECKS}"),
    );
    let output = env.cimaa(&["validate"]);
    assert_success(&output);
    assert!(stdout(&output).contains("${CHECKS}"), "{}", stdout(&output));
}
