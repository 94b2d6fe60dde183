//! The CLI around the agent: `check`, `validate`, `faults`, `agents`.

use crate::util::{AGENT, Env, check_name, stderr, stdout};

#[test]
fn check_prints_faults_metrics_and_raw_output_without_touching_the_database() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "fan:\n  command: \"echo 'WARNING - fan | speed=99rpm'; exit 1\"\n  thresholds: speed error > 70\n",
    );
    let output = env.cimaa(&["check"]);
    crate::util::assert_success(&output);
    let name = check_name("app", "fan");
    assert_eq!(
        stdout(&output),
        format!(
            "{name}\n  exit: 1\n  stdout: WARNING - fan | speed=99rpm\n  WARNING {name}: WARNING - fan\n  ERROR {name}#speed: 99 > 70\n  metric {name}#speed = 99rpm\n  flapping: no (no runs recorded by the agent yet; starts at 50%)\n"
        )
    );
    assert!(!env.path("cimaa.db").exists());
    assert!(!env.path("alerts.jsonl").exists());
}

#[test]
fn check_runs_one_named_check_of_one_file() {
    let env = Env::new();
    env.write_check("app.yaml", "a:\n  command: echo A\nb:\n  command: echo B\n");
    let output = env.cimaa(&[
        "check",
        &env.path("checks.d/app.yaml").display().to_string(),
        "b",
    ]);
    crate::util::assert_success(&output);
    let text = stdout(&output);
    assert!(
        text.contains("stdout: B") && !text.contains("stdout: A"),
        "{text}"
    );
}

#[test]
fn validate_lists_every_problem_and_exits_2() {
    let env = Env::new();
    env.write_check("a.yaml", "x:\n  command: echo\n  interval: 0\n");
    env.write_check("b.yaml", "y: [\n");
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("[x]: `interval` must be at least 1"), "{err}");
    assert!(
        err.contains(&format!(
            "error parsing {}",
            env.path("checks.d/b.yaml").display()
        )),
        "{err}"
    );
}

#[test]
fn validate_passes_a_clean_directory() {
    let env = Env::new();
    env.write_check("a.yaml", "x:\n  command: echo OK\n");
    let output = env.cimaa(&["validate", "--healthchecks"]);
    crate::util::assert_success(&output);
    assert!(stdout(&output).starts_with("ok: 1 check(s)"));
}

#[test]
fn faults_json_has_the_documented_fields_and_types() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "x:\n  command: \"echo 'bad'; exit 2\"\n  retry: 0\n",
    );
    env.once();
    let faults = env.faults();
    assert_eq!(faults.len(), 1);
    let fault = faults[0].as_object().unwrap();
    let mut keys: Vec<_> = fault.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "agent",
            "attempts",
            "escalates",
            "flapping",
            "held",
            "message",
            "name",
            "severity",
            "since",
            "squelched",
            "storm",
            "suppressed_by",
            "triggered",
            "updated"
        ]
    );
    assert_eq!(fault["agent"], AGENT);
    assert_eq!(fault["suppressed_by"], serde_json::Value::Null);
    assert_eq!(fault["held"], false);
    assert_eq!(fault["flapping"], false);
    assert_eq!(fault["severity"], 50);
    assert_eq!(fault["triggered"], true);
    assert_eq!(fault["escalates"], true);
    assert!(fault["since"].is_i64() && fault["updated"].is_i64());
}

#[test]
fn faults_table_is_readable() {
    let env = Env::new();
    env.write_check("app.yaml", "x:\n  command: \"echo 'slow'; exit 1\"\n");
    env.once();
    let output = env.cimaa(&["faults"]);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("AGENT") && lines[0].contains("SEVERITY"),
        "{text}"
    );
    assert!(
        lines[1].contains(&check_name("app", "x"))
            && lines[1].contains("WARNING")
            && lines[1].contains("s ago")
            && lines[1].ends_with("slow"),
        "{text}"
    );
}

#[test]
fn agents_lists_heartbeats() {
    let env = Env::new();
    env.once();
    let output = env.cimaa(&["agents", "--json"]);
    let agents: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(agents[0]["name"], AGENT);
    assert!(agents[0]["updated"].is_i64());
    let table = stdout(&env.cimaa(&["agents"]));
    assert!(table.contains(AGENT) && table.contains("s ago"), "{table}");
}

#[test]
fn config_defaults_to_the_cimaa_config_variable() {
    let env = Env::new();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .args(["validate"])
        .env("CIMAA_CONFIG", env.config())
        .output()
        .unwrap();
    crate::util::assert_success(&output);
}
