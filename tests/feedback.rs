//! What the CLI tells a new operator (issue #22, item 7): `squelch` says how
//! many current faults it matches, `faults` marks squelched ones, `squelches`
//! names every kind, empty listings say so, errors say `error:` once, and a
//! missing default configuration says how to give one.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{AGENT, Env, assert_success, check_name, stderr, stdout};

/// A second agent sharing the test agent's database.
const PEER: &str = "peer-agent";

/// Checks that fail: `app/down` as ERROR, `app/slow` as WARNING.
fn with_two_faults() -> Env {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "down:\n  command: \"echo down; exit 2\"\nslow:\n  command: \"echo slow; exit 1\"\n",
    );
    env.once();
    env
}

/// Gives the database a CRITICAL fault of `PEER`, written by its own agent.
fn add_peer_fault(env: &Env) {
    env.write(
        "peer.yaml",
        &format!(
            "agent:\n  name: {PEER}\n  directory: peer.d\n  base_interval: 60\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: peer-alerts.jsonl\n"
        ),
    );
    env.write(
        "peer.d/db.yaml",
        "conn:\n  command: \"echo refused; exit 2\"\n",
    );
    crate::util::age(&env.path("peer.d/db.yaml"));
    let output = Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.path("peer.yaml"))
        .args(["agent", "--once"])
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_success(&output);
}

fn json(output: &Output) -> Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `cimaa squelch ARGS...`, which must succeed; its stdout.
fn squelch(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["squelch"];
    all.extend_from_slice(args);
    let output = env.cimaa(&all);
    assert_success(&output);
    stdout(&output)
}

// See: #22
#[test]
fn squelch_says_how_many_current_faults_it_matches_on_any_agent_at_any_severity() {
    let env = with_two_faults();
    add_peer_fault(&env);
    assert_eq!(env.faults().len(), 3);
    assert_eq!(
        squelch(&env, &["nothing-fails-here", "quiet"]),
        "matches no current fault\n"
    );
    assert_eq!(
        squelch(&env, &["app/slow", "known slowness"]),
        "squelched 1 current fault\n"
    );
    // ERROR and WARNING of this agent, CRITICAL of the peer.
    assert_eq!(
        squelch(&env, &["^//", "maintenance", "--expires", "1h"]),
        "squelched 3 current faults\n"
    );
    let list = json(&env.cimaa(&["squelches", "--json"]));
    let regexes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["regex"].as_str().unwrap())
        .collect();
    assert_eq!(regexes, ["^//", "app/slow", "nothing-fails-here"]);
}

// See: #22
#[test]
fn faults_json_says_which_faults_a_squelch_in_force_matches() {
    let env = with_two_faults();
    squelch(&env, &["app/do+wn", "deploying"]);
    let faults = env.faults();
    let squelched: Vec<(&str, &Value)> = faults
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), &f["squelched"]))
        .collect();
    let (down, slow) = (check_name("app", "down"), check_name("app", "slow"));
    assert_eq!(
        squelched,
        [
            (down.as_str(), &Value::Bool(true)),
            (slow.as_str(), &Value::Bool(false))
        ]
    );
    // Every key SPEC §1 lists keeps its type.
    let fault = &faults[0];
    assert_eq!(fault["agent"], AGENT);
    assert_eq!(fault["severity"], 40);
    assert!(fault["message"].is_string());
    assert!(fault["since"].is_i64() && fault["updated"].is_i64());
    assert!(fault["triggered"].is_boolean() && fault["escalates"].is_boolean());
    assert!(fault["attempts"].is_u64());
}

// See: #22
#[test]
fn faults_table_marks_squelched_faults() {
    let env = with_two_faults();
    squelch(&env, &["app/down", "deploying"]);
    let output = env.cimaa(&["faults"]);
    assert_success(&output);
    let text = stdout(&output);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    let (down, slow) = (check_name("app", "down"), check_name("app", "slow"));
    assert_eq!(
        lines,
        [
            vec!["AGENT", "NAME", "SEVERITY", "SQUELCHED"],
            vec![AGENT, down.as_str(), "ERROR", "yes"],
            vec![AGENT, slow.as_str(), "WARNING", "no"],
        ],
        "{text}"
    );
}

// See: #22
#[test]
fn squelches_names_the_kind_of_a_squelch_without_expiry() {
    let env = Env::new();
    squelch(&env, &["web1", "reboot"]);
    squelch(&env, &["web2", "decommissioned", "--permanent"]);
    squelch(&env, &["web3", "deploying", "--expires", "2h"]);
    let output = env.cimaa(&["squelches"]);
    assert_success(&output);
    let text = stdout(&output);
    let kinds: Vec<(&str, &str)> = text
        .lines()
        .skip(1)
        .map(|line| {
            let regex = line.split_whitespace().next().unwrap();
            // REGEX USER SET KIND REASON: KIND sits under its header.
            let at = text.lines().next().unwrap().find("KIND").unwrap();
            let kind = line[at..].split("  ").next().unwrap();
            (regex, kind)
        })
        .collect();
    assert_eq!(kinds[0], ("web1", "until removed"), "{text}");
    assert_eq!(kinds[1], ("web2", "permanent"), "{text}");
    // Two hours less the seconds the test took.
    assert!(
        ["expires in 2h", "expires in 1h59m"].contains(&kinds[2].1),
        "{text}"
    );
}

// See: #22
#[test]
fn empty_listings_say_so_and_json_stays_an_empty_array() {
    let env = Env::new();
    for (command, says) in [
        ("faults", "no faults\n"),
        ("agents", "no agents\n"),
        ("squelches", "no squelches\n"),
    ] {
        let output = env.cimaa(&[command]);
        assert_success(&output);
        assert_eq!(stdout(&output), says, "{command}");
        assert_eq!(stderr(&output), "", "{command}");
        assert_eq!(json(&env.cimaa(&[command, "--json"])), Value::Array(vec![]));
    }
}

// See: #22
#[test]
fn faults_of_an_agent_nobody_knows_warns_about_the_name() {
    let env = with_two_faults();
    let output = env.cimaa(&["faults", "--agent", "test"]);
    assert_success(&output);
    assert_eq!(stdout(&output), "no faults on test\n");
    assert_eq!(
        stderr(&output),
        "warning: no agent named `test` has a heartbeat (see `cimaa agents`)\n"
    );
}

// See: #22
#[test]
fn an_invalid_squelch_regex_says_error_once_and_stores_nothing() {
    let env = Env::new();
    let output = env.cimaa(&["squelch", "(", "why"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "error: invalid squelch regex `(`: unclosed group at character 1\n"
    );
    assert_eq!(
        json(&env.cimaa(&["squelches", "--json"])),
        Value::Array(vec![])
    );
}

/// The configuration path the binary uses when given none.
const DEFAULT_CONFIG: &str = "/etc/cimaa/agent.yaml";

/// `cimaa faults` with neither `-c` nor `CIMAA_CONFIG`.
fn faults_without_a_config(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("faults")
        .current_dir(dir)
        .env_remove("CIMAA_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

// See: #22. On a host where the default file exists (a packaged install), the
// binary must read it and say nothing of the hint; the message itself is also
// unit-tested against a default path that cannot exist (src/cli/mod.rs).
#[test]
fn no_config_and_no_default_file_says_how_to_give_one() {
    let env = Env::bare();
    let output = faults_without_a_config(&env.path(""));
    if Path::new(DEFAULT_CONFIG).exists() {
        assert!(
            !stderr(&output).contains("no configuration at"),
            "{}",
            stderr(&output)
        );
        return;
    }
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: no configuration at `/etc/cimaa/agent.yaml` (the default): give one with `-c FILE` or `CIMAA_CONFIG=FILE`; `examples/agent.yaml` in the cimaa repository is a start\n"
    );
}

// See: #22
#[test]
fn a_missing_config_given_with_c_is_named_without_the_hint() {
    let env = Env::bare();
    let output = env.cimaa(&["faults"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.starts_with(&format!("error: cannot read `{}`", env.config().display())),
        "{text}"
    );
    assert!(!text.contains("no configuration at"), "{text}");
}

// See: #22. clap blamed `--config`, which the user had not typed.
#[test]
fn an_empty_cimaa_config_is_named_as_such() {
    let env = Env::bare();
    let output = Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("faults")
        .current_dir(env.path(""))
        .env("CIMAA_CONFIG", "")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: `CIMAA_CONFIG` is set but empty: set it to the configuration file, or unset it to use `/etc/cimaa/agent.yaml`\n"
    );
}

// See: #22
#[test]
fn squelching_a_regex_again_says_what_it_replaces() {
    let env = Env::new();
    assert_eq!(
        stderr(&env.cimaa(&["squelch", "^//db3/", "decommissioning", "--permanent"])),
        ""
    );
    let output = env.cimaa(&["squelch", "^//db3/", "reboot", "--expires", "1h"]);
    assert_success(&output);
    assert_eq!(stdout(&output), "matches no current fault\n");
    let text = stderr(&output);
    assert!(
        text.starts_with("note: replaced the squelch `^//db3/` that ")
            && text.ends_with("s ago (permanent; decommissioning)\n"),
        "{text}"
    );
    let list = json(&env.cimaa(&["squelches", "--json"]));
    assert_eq!(list[0]["reason"], "reboot");
}

// See: #22. A fast clock read `0s ago`, which hid the skew.
#[tokio::test]
async fn a_heartbeat_ahead_of_this_clock_reads_ahead() {
    let env = Env::new();
    let db = cimaa::db::SqliteDb::open(&env.path("cimaa.db"))
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    cimaa::db::Db::heartbeat(&db, "fast-clock", now + 600)
        .await
        .unwrap();
    let output = env.cimaa(&["agents"]);
    assert_success(&output);
    let row = stdout(&output).lines().nth(1).unwrap().to_string();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(
        cells == ["fast-clock", "10m", "ahead"] || cells == ["fast-clock", "9m", "ahead"],
        "{row}"
    );
}
