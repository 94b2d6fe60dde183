//! Hostile check directories and plugins (#18), driving the real binary:
//! stem clashes, entries that cannot be read, huge broken files and plugin
//! output, plugin JSON with a bad severity or cut off at the output cap.
//! Each scenario is what an outside test broke; the unit tests of
//! `check_file`, `check_dir`, `json` and `fault` cover the details, and
//! `agent_in_process` a file that turns into a dangling symlink while the
//! agent runs (a `--once` process has no last good version to keep).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use crate::util::{AGENT, Env, check_name, events, stderr};

/// Dates a symlink itself (not its target) a minute back, so the agent does
/// not hold it back as "being written".
fn age_link(path: &Path) {
    let status = Command::new("touch")
        .args(["-h", "-d", "1 minute ago"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The placeholder check of a check file: `//AGENT/STEM/`.
fn placeholder(stem: &str) -> String {
    format!("//{AGENT}/{stem}/")
}

// See: #18
#[test]
fn two_files_with_one_stem_fail_validate_naming_both() {
    let env = Env::new();
    env.write_check("good.yaml", "a:\n  command: echo OK\n");
    env.write_check("good.yml", "a:\n  command: echo OK\n");
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("good.yaml` and `") && text.contains("good.yml` have the same stem `good`"),
        "{text}"
    );
}

// See: #18
#[test]
fn two_files_with_one_stem_run_neither_and_page_once() {
    let env = Env::new();
    env.write_check("good.yaml", "a:\n  command: echo OK\n");
    env.write_check(
        "good.yml",
        "a:\n  command: echo 'CRIT'; exit 2\n  retry: 0\n",
    );
    for _ in 0..3 {
        env.once();
    }
    let fault = env.fault(&placeholder("good")).unwrap();
    assert_eq!(fault["severity"], 50);
    assert!(
        fault["message"]
            .as_str()
            .unwrap()
            .ends_with("have the same stem `good`: neither runs until one is renamed or removed"),
        "{fault}"
    );
    assert!(env.fault(&check_name("good", "a")).is_none());
    let alerts = events(&env.alerts());
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].1, placeholder("good"));
}

// See: #18
#[test]
fn a_dangling_symlink_a_loop_and_a_directory_are_critical_faults() {
    let env = Env::new();
    let dir = env.path("checks.d");
    symlink("/nowhere/gone.yaml", dir.join("gone.yaml")).unwrap();
    symlink(dir.join("loop2.yaml"), dir.join("loop1.yaml")).unwrap();
    symlink(dir.join("loop1.yaml"), dir.join("loop2.yaml")).unwrap();
    for link in ["gone.yaml", "loop1.yaml", "loop2.yaml"] {
        age_link(&dir.join(link));
    }
    fs::create_dir(dir.join("folder.yaml")).unwrap();
    age_link(&dir.join("folder.yaml"));
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    env.once();
    let want = [
        ("gone", "a dangling symlink to `/nowhere/gone.yaml`"),
        (
            "loop1",
            "a symlink loop (too many levels of symbolic links)",
        ),
        (
            "loop2",
            "a symlink loop (too many levels of symbolic links)",
        ),
        ("folder", "a directory, not a check file"),
    ];
    for (stem, detail) in want {
        let fault = env
            .fault(&placeholder(stem))
            .unwrap_or_else(|| panic!("no fault for {stem}"));
        assert_eq!(fault["severity"], 50, "{fault}");
        let message = fault["message"].as_str().unwrap();
        assert!(message.starts_with("error parsing "), "{message}");
        assert!(message.ends_with(detail), "{message}");
    }
}

// See: #18
#[test]
fn a_huge_broken_check_file_is_a_short_fault_and_alert() {
    let env = Env::new();
    let text = format!("{} --password hunter2\n", "a".repeat(5_000_000));
    env.write_check("big.yaml", &text);
    env.once();
    let fault = env.fault(&placeholder("big")).unwrap();
    let message = fault["message"].as_str().unwrap();
    assert!(message.len() < 400, "{} bytes", message.len());
    assert!(!message.contains("hunter2"));
    let alerts = events(&env.alerts());
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].2, message);
}

// See: #18
#[test]
fn a_plugin_message_over_4_kib_is_capped_with_a_marker() {
    let env = Env::new();
    let plugin = env.script(
        "loud.sh",
        "echo OK; head -c 100000 /dev/zero | tr '\\0' x >&2",
    );
    env.write_check(
        "app.yaml",
        &format!("loud:\n  command: {}\n", plugin.display()),
    );
    env.once();
    let fault = env
        .fault(&format!("{}#monitor-stderr", check_name("app", "loud")))
        .unwrap();
    let message = fault["message"].as_str().unwrap();
    assert!(message.len() <= 4096, "{} bytes", message.len());
    assert!(
        message.ends_with(" ... [truncated, 65536 bytes]"),
        "{}",
        &message[message.len() - 60..]
    );
}

// See: #18
#[test]
fn a_plugin_json_severity_outside_the_levels_is_a_json_error() {
    let env = Env::new();
    let plugin = env.script(
        "json.sh",
        r#"echo '{"faults": [{"severity": -5, "message": "odd"}]}'"#,
    );
    env.write_check(
        "app.yaml",
        &format!("j:\n  command: {}\n", plugin.display()),
    );
    env.once();
    let check = check_name("app", "j");
    assert!(env.fault(&check).is_none());
    let fault = env.fault(&format!("{check}#json-error")).unwrap();
    assert_eq!(fault["severity"], 40);
    assert!(
        fault["message"].as_str().unwrap().starts_with(
            "faults[0]: `severity` must be 20, 30, 40 or an integer of at least 50, got `-5`"
        ),
        "{fault}"
    );
}

// See: #18
#[test]
fn plugin_json_over_the_output_cap_says_it_was_truncated() {
    let env = Env::new();
    let plugin = env.script(
        "json.sh",
        r#"printf '{"faults": [{"severity": 40, "message": "'; head -c 100000 /dev/zero | tr '\0' x; echo '"}]}'"#,
    );
    env.write_check(
        "app.yaml",
        &format!("j:\n  command: {}\n", plugin.display()),
    );
    env.once();
    let fault = env
        .fault(&format!("{}#json-error", check_name("app", "j")))
        .unwrap();
    let message = fault["message"].as_str().unwrap();
    assert!(
        message.starts_with("plugin JSON was truncated at 65536 bytes (the output cap)"),
        "{message}"
    );
}

// See: #13, #18. A NUL byte in a plugin's output reaches no backend (a
// PostgreSQL text refuses it, which would fail every write of the agent's
// state): it is shown as U+FFFD, as invalid UTF-8 is.
#[test]
fn a_nul_byte_in_plugin_output_is_shown_as_a_replacement_character() {
    let env = Env::new();
    let plugin = env.script("nul.sh", "printf 'CRITICAL - a\\000b\\n'; exit 2");
    env.write_check(
        "app.yaml",
        &format!("nul:\n  command: {}\n  retry: 0\n", plugin.display()),
    );
    env.once();
    let fault = env.fault(&check_name("app", "nul")).unwrap();
    assert_eq!(fault["message"], "CRITICAL - a\u{fffd}b");
}
