//! Gating a deploy: `cimaa validate [FILE...]` with program resolution and
//! `cimaa check`'s exit status and messages (SPEC §16). See: #22

use std::path::Path;
use std::process::{Command, Output};

use crate::util::{Env, check_name, stderr, stdout};

/// Runs `cimaa -c agent.yaml ARGS` from `folder`.
fn cimaa_in(env: &Env, folder: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.config())
        .args(args)
        .current_dir(folder)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn path_of(env: &Env, name: &str) -> String {
    env.path(name).display().to_string()
}

// See: #22
#[test]
fn validate_file_reports_a_missing_plugin_with_file_key_and_program() {
    let env = Env::new();
    env.write(
        "deploy/shop.yaml",
        "health:\n  command: echo OK\ndisk:\n  command: check_shop_disk_missing_22 -w 20%\n",
    );
    let file = path_of(&env, "deploy/shop.yaml");
    let output = env.cimaa(&["validate", &file]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "{file} [disk]: program `check_shop_disk_missing_22` not found in PATH ("
        )),
        "{err}"
    );
    assert!(err.contains("1 problem(s) in 2 check(s)"), "{err}");
    assert!(!stdout(&output).contains("ok:"), "{}", stdout(&output));
}

// See: #22
#[test]
fn validate_file_refuses_a_script_without_execute_permission() {
    let env = Env::new();
    env.write("deploy/plugins/load.sh", "#!/bin/sh\necho OK\n");
    env.write(
        "deploy/app.yaml",
        "load:\n  command: ./plugins/load.sh -w 5\n",
    );
    let file = path_of(&env, "deploy/app.yaml");
    let output = env.cimaa(&["validate", &file]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    let script = path_of(&env, "deploy/plugins/load.sh");
    assert!(
        err.contains(&format!(
            "{file} [load]: program `./plugins/load.sh` is not executable (`{script}` has no execute permission)"
        )),
        "{err}"
    );
}

// See: #22
#[test]
fn validate_file_passes_a_good_file_with_its_plugin_beside_it() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("deploy/plugins")).unwrap();
    env.script("deploy/plugins/load.sh", "echo OK");
    env.write(
        "deploy/app.yaml",
        "load:\n  command: ./plugins/load.sh -w 5\nshell:\n  command: \"test -d /tmp && echo OK\"\nenv:\n  command: LANG=C ./nowhere.sh\nport:\n  tcp: 127.0.0.1:9\n",
    );
    let file = path_of(&env, "deploy/app.yaml");
    let output = env.cimaa(&["validate", &file]);
    crate::util::assert_success(&output);
    assert_eq!(stdout(&output), format!("ok: 4 check(s) in {file}\n"));
}

// See: #22
#[test]
fn validate_of_a_missing_file_exits_2() {
    let env = Env::new();
    env.write("deploy/good.yaml", "a:\n  command: echo OK\n");
    let good = path_of(&env, "deploy/good.yaml");
    let missing = path_of(&env, "deploy/gone.yaml");
    let output = env.cimaa(&["validate", &good, &missing]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("{missing}: no such check file")),
        "{err}"
    );
}

// See: #22
#[test]
fn validate_without_file_resolves_the_programs_of_the_check_directory() {
    let env = Env::new();
    env.write_check("app.yaml", "x:\n  command: ./plugin_missing_22.sh\n");
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    let file = path_of(&env, "checks.d/app.yaml");
    let plugin = path_of(&env, "checks.d/plugin_missing_22.sh");
    assert!(
        err.contains(&format!(
            "{file} [x]: program `./plugin_missing_22.sh` not found (no file `{plugin}`)"
        )),
        "{err}"
    );
}

// See: #22
#[test]
fn check_exits_2_on_a_broken_entry_and_still_prints_the_good_checks() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "good:\n  command: echo 'OK - fine'\nbad:\n  command: echo OK\n  intervl: 5\n",
    );
    let output = env.cimaa(&["check"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stdout(&output);
    let good = check_name("app", "good");
    let bad = check_name("app", "bad");
    assert!(
        text.contains(&format!(
            "{good}\n  exit: 0\n  stdout: OK - fine\n  OK: no faults\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{bad}\n  CRITICAL {bad}: error loading check ")),
        "{text}"
    );
    assert!(
        stderr(&output).contains("1 check(s) with a configuration error"),
        "{}",
        stderr(&output)
    );
}

// See: #22
#[test]
fn check_exits_0_when_checks_fail_but_none_is_misconfigured() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "x:\n  command: \"echo 'CRITICAL - down'; exit 2\"\n",
    );
    let output = env.cimaa(&["check"]);
    crate::util::assert_success(&output);
    assert!(
        stdout(&output).contains("  exit: 2\n"),
        "{}",
        stdout(&output)
    );
}

// See: #22
#[test]
fn check_prints_a_plugin_killed_by_a_signal() {
    let env = Env::new();
    env.write_check("app.yaml", "x:\n  command: \"kill -9 $$\"\n");
    let output = env.cimaa(&["check"]);
    crate::util::assert_success(&output);
    let text = stdout(&output);
    assert!(text.contains("  exit: killed by signal 9\n"), "{text}");
}

// See: #22
#[test]
fn check_of_an_unknown_name_lists_the_names_of_the_file() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "disk:\n  command: echo OK\nload:\n  command: echo OK\n",
    );
    let file = path_of(&env, "checks.d/app.yaml");
    let output = env.cimaa(&["check", &file, "nosuch"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim_end(),
        format!(
            "error: no check named `nosuch` in `{file}`; its checks: `{}`, `{}`",
            check_name("app", "disk"),
            check_name("app", "load")
        )
    );
}

// See: #22
#[test]
fn check_of_an_unknown_name_in_a_big_file_lists_twenty_names() {
    let env = Env::new();
    let text = (0..25)
        .map(|i| format!("c{i:02}:\n  command: echo OK\n"))
        .collect::<Vec<_>>()
        .concat();
    env.write_check("many.yaml", &text);
    let file = path_of(&env, "checks.d/many.yaml");
    let output = env.cimaa(&["check", &file, "nosuch"]);
    let err = stderr(&output);
    assert!(
        err.contains(&format!("`{}`", check_name("many", "c19"))),
        "{err}"
    );
    assert!(!err.contains(&check_name("many", "c20")), "{err}");
    assert!(err.trim_end().ends_with(" and 5 more"), "{err}");
}

// See: #22
#[test]
fn check_of_a_bare_file_name_runs_from_its_folder_as_with_dot_slash() {
    let env = Env::new();
    env.script(
        "checks.d/fan.sh",
        "echo 'WARNING - fan | speed=99rpm'; exit 1",
    );
    env.write_check(
        "thresh.yaml",
        "fan:\n  command: ./fan.sh\n  thresholds: speed error > 70\n",
    );
    let folder = env.path("checks.d");
    let bare = cimaa_in(&env, &folder, &["check", "thresh.yaml"]);
    let dotted = cimaa_in(&env, &folder, &["check", "./thresh.yaml"]);
    crate::util::assert_success(&bare);
    let name = check_name("thresh", "fan");
    assert_eq!(
        stdout(&bare),
        format!(
            "{name}\n  exit: 1\n  stdout: WARNING - fan | speed=99rpm\n  WARNING {name}: WARNING - fan\n  ERROR {name}#speed: 99 > 70\n  metric {name}#speed = 99rpm\n  flapping: no (no runs recorded by the agent yet; starts at 50%)\n"
        )
    );
    assert_eq!(stdout(&bare), stdout(&dotted));
}

// See: #22
#[test]
fn validate_of_a_bare_file_name_finds_its_plugin_beside_it() {
    let env = Env::new();
    env.script("checks.d/fan.sh", "echo OK");
    env.write_check("thresh.yaml", "fan:\n  command: ./fan.sh\n");
    let output = cimaa_in(&env, &env.path("checks.d"), &["validate", "thresh.yaml"]);
    crate::util::assert_success(&output);
    assert_eq!(stdout(&output), "ok: 1 check(s) in thresh.yaml\n");
}
