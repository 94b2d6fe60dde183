//! Agent configuration errors: exit 2 and a sentence naming file, key and line.

use crate::util::{Env, stderr, stdout};

fn run_with_config(text: &str) -> (i32, String) {
    let env = Env::new();
    env.write("agent.yaml", text);
    let output = env.cimaa(&["validate"]);
    (
        output.status.code().unwrap_or(-1),
        stderr(&output).replace(&env.path("").display().to_string(), "DIR/"),
    )
}

#[test]
fn a_typo_in_the_agent_section_names_file_key_and_line() {
    let (code, err) = run_with_config(
        "agent:\n  name: a\n  base_intervl: 5\nalerter:\n  type: file\n  path: x\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "error: DIR/agent.yaml: agent: unknown field `base_intervl`, expected one of"
        ),
        "{err}"
    );
    assert!(err.contains("at line 3 column 3"), "{err}");
}

#[test]
fn a_typo_inside_a_backend_section_names_the_section_and_line() {
    let (code, err) = run_with_config("agent:\n  name: a\nalerter:\n  type: file\n  pth: x\n");
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "error: DIR/agent.yaml: alerter: unknown field `pth`, expected one of `path`"
        ),
        "{err}"
    );
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn an_unknown_backend_type_is_named() {
    let (code, err) = run_with_config("agent:\n  name: a\nalerter:\n  type: pager\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("alerter: unknown variant `pager`, expected one of `pagerduty`, `slack`, `file`, `command`"),
        "{err}"
    );
}

#[test]
fn a_bad_value_names_its_key_and_line() {
    let (code, err) = run_with_config(
        "agent:\n  name: a\n  base_interval: soon\nalerter:\n  type: file\n  path: x\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "agent.base_interval: invalid type: string \"soon\", expected f64 at line 3 column 18"
        ),
        "{err}"
    );
}

#[test]
fn an_unset_environment_variable_is_named() {
    let (code, err) = run_with_config(
        "agent:\n  name: ${CIMAA_TEST_SURELY_UNSET}\nalerter:\n  type: file\n  path: x\n",
    );
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "error: DIR/agent.yaml: agent.name: environment variable `CIMAA_TEST_SURELY_UNSET` is not set at line 2 column 9"
    );
}

#[test]
fn environment_variables_are_substituted() {
    let env = Env::new();
    env.write(
        "agent.yaml",
        "agent:\n  name: ${USER_FOR_TEST}\n  directory: checks.d\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: alerts.jsonl\n",
    );
    let vars = [("USER_FOR_TEST", "from-env")];
    crate::util::assert_success(&env.cimaa_with_env(&["agent", "--once"], &vars));
    let agents = env.cimaa_with_env(&["agents", "--json"], &vars);
    let agents: serde_json::Value = serde_json::from_slice(&agents.stdout).unwrap();
    assert_eq!(agents[0]["name"], "from-env");
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let env = Env::bare();
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_negative_timeout_is_refused() {
    let (code, err) =
        run_with_config("agent:\n  name: a\n  timeout: -1\nalerter:\n  type: file\n  path: x\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("agent.timeout: must be a positive number of seconds, got `-1`"),
        "{err}"
    );
}

#[test]
fn every_shipped_example_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut configs: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    configs.sort();
    assert!(!configs.is_empty());
    for config in configs {
        let text = std::fs::read_to_string(&config).unwrap();
        let env = Env::new();
        // Point the example at a scratch check directory and database, keep the rest.
        env.write("agent.yaml", &text);
        // Dummy values for the secrets examples take from the environment.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", &env.config().display().to_string(), "validate"])
            .current_dir(env.path(""))
            .env("PAGERDUTY_ROUTING_KEY", "dummy")
            .env("SLACK_BOT_TOKEN", "xoxb-dummy")
            .env("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook")
            .output()
            .unwrap();
        let err = stderr(&output);
        // The check directory of a production example does not exist here; all
        // that must hold is that the agent configuration itself is valid.
        assert!(
            output.status.success() || err.contains("cannot read check directory"),
            "{}: {err}",
            config.display()
        );
    }
    let checks = std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .args([
            "-c",
            &root.join("examples/agent.yaml").display().to_string(),
            "validate",
        ])
        .output()
        .unwrap();
    crate::util::assert_success(&checks);
}

/// The network probes ship outside the example's check directory (they aim at
/// services a bare machine lacks), so they are validated here on their own.
#[test]
fn the_shipped_probe_examples_load_as_check_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = Env::new();
    let mut files = 0;
    for entry in std::fs::read_dir(root.join("examples/probes")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        env.write_check(&name, &std::fs::read_to_string(&path).unwrap());
        files += 1;
    }
    assert!(files > 0);
    crate::util::assert_success(&env.cimaa(&["validate"]));
}

#[test]
fn the_shipped_meta_checks_load_as_check_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = Env::new();
    for entry in std::fs::read_dir(root.join("meta_checks")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        env.write_check(&name, &std::fs::read_to_string(&path).unwrap());
    }
    let output = env.cimaa(&["validate"]);
    crate::util::assert_success(&output);
    assert!(
        stdout(&output).starts_with("ok: 1 check(s)"),
        "{}",
        stdout(&output)
    );
}
