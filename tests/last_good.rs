//! Last good versions of check files (SPEC §14, #16), driven through the
//! real binary: every `cimaa agent --once` is a fresh process, so each run
//! after the first starts from what the previous one kept in the SQLite
//! file and under the state folder (the default `cimaa-state` beside it).

use crate::util::{AGENT, Env, check_name, event, events};

/// A check file with one failing check (retry 0: it pages on its first
/// run) that counts its runs in `runs`.
const FAILING: &str = "fail:\n  command: ./fail\n  retry: 0\n";

fn env_with_failing_check() -> Env {
    let env = Env::new();
    env.write(
        "checks.d/fail",
        "#!/bin/sh\necho run >> ../runs\necho 'DISK CRITICAL'\nexit 2\n",
    );
    let mut permissions = std::fs::metadata(env.path("checks.d/fail"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(env.path("checks.d/fail"), permissions).unwrap();
    env.write_check("app.yaml", FAILING);
    env
}

/// How many times the failing check ran.
fn runs(env: &Env) -> usize {
    std::fs::read_to_string(env.path("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// The kept copy of `app.yaml` under the default state folder.
fn kept_copy(env: &Env) -> std::path::PathBuf {
    env.path(&format!("cimaa-state/last-good/{AGENT}/app.yaml"))
}

// See: #16
#[test]
fn a_file_that_breaks_keeps_running_its_old_checks_beside_a_critical_parse_fault() {
    let env = env_with_failing_check();
    env.once();
    let fail = check_name("app", "fail");
    assert_eq!(env.fault(&fail).unwrap()["severity"], 50);
    assert_eq!(
        std::fs::read_to_string(kept_copy(&env)).unwrap(),
        FAILING,
        "the parsed file is kept under the state folder"
    );

    env.write_check("app.yaml", "fail: [unclosed\n");
    // Two more starts: the kept version is what each new process runs.
    env.once();
    env.once();
    assert_eq!(runs(&env), 3, "the old check ran on every start");
    let parse = env.fault(&format!("//{AGENT}/app/")).unwrap();
    assert_eq!(parse["severity"], 50);
    let path = env.path("checks.d/app.yaml");
    assert!(
        parse["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("error parsing {}: ", path.display())),
        "{parse}"
    );
    let kept = env.fault(&fail).unwrap();
    assert_eq!(kept["severity"], 50);
    assert_eq!(kept["triggered"], true);
    // The old check's alert stays open: triggered once, never resolved.
    let alerts = events(&env.alerts());
    assert_eq!(
        alerts,
        [
            event("trigger", &fail, "DISK CRITICAL"),
            event(
                "trigger",
                &format!("//{AGENT}/app/"),
                parse["message"].as_str().unwrap()
            ),
        ]
    );
}

// See: #16
#[test]
fn an_entry_made_invalid_keeps_its_old_version_and_its_file_reports_the_error() {
    let env = env_with_failing_check();
    env.once();
    env.write_check(
        "app.yaml",
        "fail:\n  command: ./fail\n  retry: 0\n  retries: 2\n",
    );
    env.once();
    assert_eq!(runs(&env), 2, "the old version of the entry still runs");
    let fail = check_name("app", "fail");
    assert_eq!(env.fault(&fail).unwrap()["message"], "DISK CRITICAL");
    let error = env.fault(&format!("//{AGENT}/app/")).unwrap();
    assert_eq!(error["severity"], 50);
    let message = error["message"].as_str().unwrap();
    let path = env.path("checks.d/app.yaml");
    assert!(
        message.starts_with(&format!(
            "error loading check {} [fail]: fail: unknown field `retries`",
            path.display()
        )),
        "{message}"
    );
    // The copy is still the version the entry last loaded from.
    assert_eq!(std::fs::read_to_string(kept_copy(&env)).unwrap(), FAILING);
}

// See: #16
#[test]
fn removing_the_broken_file_removes_its_checks_and_its_kept_copy() {
    let env = env_with_failing_check();
    env.once();
    env.write_check("app.yaml", "fail: [unclosed\n");
    env.once();
    std::fs::remove_file(env.path("checks.d/app.yaml")).unwrap();
    env.once();
    assert_eq!(runs(&env), 2);
    assert_eq!(env.faults(), Vec::<serde_json::Value>::new());
    assert!(!kept_copy(&env).exists());
    let resolved: Vec<String> = events(&env.alerts())
        .into_iter()
        .filter(|(action, _, _)| action == "resolve")
        .map(|(_, name, _)| name)
        .collect();
    assert!(
        resolved.contains(&check_name("app", "fail")),
        "{resolved:?}"
    );
}

// See: #16
#[test]
fn a_file_that_never_parsed_keeps_nothing() {
    let env = env_with_failing_check();
    env.write_check("app.yaml", "fail: [unclosed\n");
    env.once();
    env.once();
    assert_eq!(runs(&env), 0);
    let names: Vec<String> = env
        .faults()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [format!("//{AGENT}/app/")]);
    assert!(!kept_copy(&env).exists());
}

// See: #16
#[test]
fn a_fixed_file_replaces_the_kept_version() {
    let env = env_with_failing_check();
    env.once();
    env.write_check("app.yaml", "fail: [unclosed\n");
    env.once();
    let fixed = "ok:\n  command: echo OK\n";
    env.write_check("app.yaml", fixed);
    env.once();
    assert_eq!(runs(&env), 2);
    assert_eq!(std::fs::read_to_string(kept_copy(&env)).unwrap(), fixed);
    assert_eq!(env.faults(), Vec::<serde_json::Value>::new());
    // A later break falls back on the fixed version, not the first one.
    env.write_check("app.yaml", "ok: [unclosed\n");
    env.once();
    assert_eq!(runs(&env), 2);
    let names: Vec<String> = env
        .faults()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [format!("//{AGENT}/app/")]);
}

// See: #16
#[test]
fn an_unwritable_state_folder_never_stops_the_agent() {
    let env = env_with_failing_check();
    // A file where the folder should go: nothing can be created under it.
    env.write("cimaa-state", "");
    env.once();
    assert_eq!(runs(&env), 1);
    assert_eq!(
        env.fault(&check_name("app", "fail")).unwrap()["severity"],
        50
    );
}

/// A long-running `cimaa agent`, killed when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

// See: #16
#[test]
fn a_running_agent_keeps_running_the_old_checks_of_a_file_that_breaks() {
    let env = env_with_failing_check();
    env.configure(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  base_interval: 0.5\n",
    );
    let _agent = Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", &env.config().display().to_string(), "agent"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let fail = check_name("app", "fail");
    wait_for("the first page", || !env.alerts().is_empty());
    env.write_check("app.yaml", "fail: [unclosed\n");
    let placeholder = format!("//{AGENT}/app/");
    wait_for("the parse fault", || env.fault(&placeholder).is_some());
    let before = runs(&env);
    wait_for("more runs of the old check", || runs(&env) >= before + 2);
    assert_eq!(env.fault(&placeholder).unwrap()["severity"], 50);
    assert_eq!(env.fault(&fail).unwrap()["triggered"], true);
    let names: Vec<String> = events(&env.alerts())
        .into_iter()
        .map(|(action, name, _)| format!("{action} {name}"))
        .collect();
    assert_eq!(
        names,
        [format!("trigger {fail}"), format!("trigger {placeholder}")]
    );
}
