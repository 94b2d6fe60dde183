//! The squelch lifecycle (SPEC §12, issue #12) against the real binary and
//! a shared SQLite file: `squelch --dry-run`, the count of current faults a
//! squelch matches, the `squelch:` limits, expired squelches removed by
//! whoever reads them first, `matches` in `squelches`, and the meta-check's
//! `squelch-expiring-REGEX` warning.
//!
//! Peers' faults and squelches with a chosen expiry are stored through the
//! backend, as another agent or an earlier `cimaa squelch` would have.

use cimaa::db::{Db, SqliteDb, Squelch};
use cimaa::severity::Severity;
use serde_json::Value;

use crate::db_contract::fault;
use crate::util::{Env, assert_success, meta_faults, stderr, stdout};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs `work` on the env's database (its schema created if needed).
fn with_db<T>(env: &Env, work: impl AsyncFnOnce(&SqliteDb) -> T) -> T {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
        work(&db).await
    })
}

/// Stores `faults` (name, severity) as `agent`'s current faults.
fn store_faults(env: &Env, agent: &str, faults: &[(&str, Severity)]) {
    let faults: Vec<_> = faults
        .iter()
        .map(|(name, severity)| {
            let mut stored = fault(name);
            stored.severity = *severity;
            stored
        })
        .collect();
    with_db(env, async |db| {
        db.set_faults(agent, &faults, now()).await.unwrap();
    });
}

/// A fleet of three agents with four faults, three of them under `app/`.
fn fleet(env: &Env) {
    store_faults(
        env,
        "web1",
        &[
            ("//web1/app/disk", Severity::CRITICAL),
            ("//web1/app/load", Severity::WARNING),
        ],
    );
    store_faults(env, "web2", &[("//web2/app/disk", Severity::ERROR)]);
    store_faults(env, "db1", &[("//db1/pg/replication", Severity::CRITICAL)]);
}

/// Stores a squelch as `cimaa squelch` would have, with this expiry.
fn store_squelch(env: &Env, regex: &str, time: i64, expires: Option<i64>) {
    let squelch = Squelch {
        regex: regex.to_owned(),
        reason: "deploying".to_owned(),
        user: "ann".to_owned(),
        time,
        permanent: false,
        expires,
    };
    with_db(env, async |db| db.squelch(&squelch).await.unwrap());
}

fn stored_squelches(env: &Env) -> Vec<Squelch> {
    with_db(env, async |db| db.get_squelch_details().await.unwrap())
}

fn squelches_json(env: &Env) -> Vec<Value> {
    let output = env.cimaa(&["squelches", "--json"]);
    assert_success(&output);
    match serde_json::from_slice(&output.stdout).unwrap() {
        Value::Array(items) => items,
        other => panic!("squelches --json is not an array: {other}"),
    }
}

/// An env whose agent file has this `squelch:` section.
fn env_with_policy(section: &str) -> Env {
    let env = Env::new();
    let config = std::fs::read_to_string(env.config()).unwrap();
    env.write("agent.yaml", &format!("{config}squelch:\n{section}"));
    env
}

#[test]
fn dry_run_lists_the_matching_faults_of_every_agent_and_stores_nothing() {
    let env = Env::new();
    fleet(&env);
    let output = env.cimaa(&["squelch", "--dry-run", "app/"]);
    assert_success(&output);
    let text = stdout(&output);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["web1", "//web1/app/disk", "CRITICAL"],
            vec!["web1", "//web1/app/load", "WARNING"],
            vec!["web2", "//web2/app/disk", "ERROR"],
        ],
        "{text}"
    );
    assert!(text.contains("//web2/app/disk is failing"), "{text}");
    assert!(
        stderr(&output).contains("would squelch 3 current faults"),
        "{}",
        stderr(&output)
    );
    assert!(stored_squelches(&env).is_empty());
}

#[test]
fn dry_run_refuses_an_invalid_regex_as_a_real_squelch_does() {
    let env = Env::new();
    let output = env.cimaa(&["squelch", "--dry-run", "app/("]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("invalid squelch regex"));
}

#[test]
fn a_squelch_says_how_many_current_faults_it_matches_in_spec_words() {
    let env = Env::new();
    fleet(&env);
    let cases = [
        ("app/", "squelched 3 current faults"),
        ("pg/", "squelched 1 current fault"),
        ("nothing-here", "matches no current fault"),
    ];
    for (regex, want) in cases {
        let output = env.cimaa(&["squelch", regex, "maintenance"]);
        assert_success(&output);
        assert_eq!(stdout(&output).trim(), want, "{regex}");
    }
    assert_eq!(stored_squelches(&env).len(), 3);
}

#[test]
fn an_expiry_beyond_max_duration_is_refused_with_exit_2_and_nothing_stored() {
    let env = env_with_policy("  max_duration: 1d\n");
    let output = env.cimaa(&["squelch", "web", "kernel upgrade", "--expires", "2d"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is longer than `squelch.max_duration` (1day)"),
        "{}",
        stderr(&output)
    );
    assert!(stored_squelches(&env).is_empty());
    assert_success(&env.cimaa(&["squelch", "web", "kernel upgrade", "--expires", "1d"]));
    assert_eq!(stored_squelches(&env).len(), 1);
}

#[test]
fn require_expiry_refuses_a_squelch_without_expires() {
    let env = env_with_policy("  require_expiry: true\n");
    let output = env.cimaa(&["squelch", "web", "kernel upgrade"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("a squelch needs `--expires DURATION`"),
        "{}",
        stderr(&output)
    );
    assert!(stored_squelches(&env).is_empty());
    // A permanent squelch is the explicit "never" and is allowed.
    assert_success(&env.cimaa(&["squelch", "web", "decommissioned", "--permanent"]));
}

#[test]
fn default_expiry_applies_to_a_squelch_without_expires() {
    let env = env_with_policy("  require_expiry: true\n  default_expiry: 4h\n");
    let before = now();
    let output = env.cimaa(&["squelch", "web", "kernel upgrade"]);
    assert_success(&output);
    assert!(stderr(&output).contains("squelch.default_expiry"));
    let list = squelches_json(&env);
    let expires = list[0]["expires"].as_i64().unwrap();
    assert!(
        (before + 4 * 3600..=now() + 4 * 3600).contains(&expires),
        "{list:?}"
    );
}

#[test]
fn a_default_expiry_beyond_max_duration_is_a_configuration_error_with_its_line() {
    let env = env_with_policy("  max_duration: 2h\n  default_expiry: 4h\n");
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("agent.yaml"), "{text}");
    assert!(
        text.contains("squelch.default_expiry: `4h` is longer than `squelch.max_duration` (2h)"),
        "{text}"
    );
    assert!(text.contains("line 13"), "{text}");
}

#[test]
fn the_agent_removes_an_expired_squelch() {
    let env = Env::new();
    let now = now();
    store_squelch(&env, "gone", now - 7200, Some(now - 60));
    store_squelch(&env, "kept", now - 7200, Some(now + 3600));
    env.once();
    let left: Vec<String> = stored_squelches(&env)
        .into_iter()
        .map(|s| s.regex)
        .collect();
    assert_eq!(left, ["kept"]);
}

#[test]
fn the_cli_removes_an_expired_squelch_it_reads() {
    let env = Env::new();
    let now = now();
    store_squelch(&env, "gone", now - 7200, Some(now - 60));
    assert!(squelches_json(&env).is_empty());
    assert!(stored_squelches(&env).is_empty());
}

#[test]
fn squelches_json_has_matches_and_expires() {
    let env = Env::new();
    fleet(&env);
    assert_success(&env.cimaa(&["squelch", "app/", "deploying", "--expires", "2h"]));
    assert_success(&env.cimaa(&["squelch", "nowhere", "just in case"]));
    let list = squelches_json(&env);
    let got: Vec<(&str, i64, bool)> = list
        .iter()
        .map(|s| {
            (
                s["regex"].as_str().unwrap(),
                s["matches"].as_i64().unwrap(),
                s["expires"].is_null(),
            )
        })
        .collect();
    assert_eq!(got, [("app/", 3, false), ("nowhere", 0, true)]);
    let table = stdout(&env.cimaa(&["squelches"]));
    assert!(table.lines().next().unwrap().contains("MATCHES"), "{table}");
}

#[test]
fn the_meta_check_warns_of_a_squelch_expiring_over_a_critical_fault() {
    let env = Env::new();
    fleet(&env);
    let now = now();
    // Ends in ten minutes and still covers //web1/app/disk (CRITICAL).
    store_squelch(&env, "app/disk", now - 3600, Some(now + 600));
    // Ends as soon, but covers only a WARNING.
    store_squelch(&env, "app/load", now - 3600, Some(now + 600));
    let expiring = |args: &[&str]| -> Vec<(String, i64)> {
        meta_faults(&env.cimaa(args))
            .into_iter()
            .filter(|(name, _, _)| name.starts_with("squelch-expiring-"))
            .map(|(name, severity, _)| (name, severity))
            .collect()
    };
    assert_eq!(
        expiring(&["meta-check"]),
        [("squelch-expiring-app/disk".to_owned(), 30)]
    );
    assert!(expiring(&["meta-check", "-x", "5"]).is_empty());
}

#[test]
fn a_meta_check_with_expiring_warns_of_a_squelch_ending_within_it() {
    let env = Env::new();
    fleet(&env);
    let now = now();
    store_squelch(&env, "pg/replication", now - 3600, Some(now + 25 * 60));
    env.write_check("meta.yaml", "//meta:\n  meta: {expiring: 30}\n  retry: 0\n");
    env.once();
    let fault = env
        .fault("//meta#squelch-expiring-pg/replication")
        .expect("the expiring warning is stored");
    assert_eq!(fault["severity"], 30);
    assert!(
        fault["message"]
            .as_str()
            .unwrap()
            .contains("still matches 1 critical fault"),
        "{fault}"
    );
}

/// `cimaa history --json` as (event, name, message, user), oldest first.
fn squelch_history(env: &Env) -> Vec<(String, String, String, String)> {
    let output = env.cimaa(&["history", "--json", "--since", "2d"]);
    assert_success(&output);
    let Value::Array(records) = serde_json::from_slice(&output.stdout).unwrap() else {
        panic!("history --json is not an array: {}", stdout(&output));
    };
    let text = |record: &Value, key: &str| record[key].as_str().unwrap_or("").to_owned();
    let mut rows: Vec<_> = records
        .iter()
        .filter(|r| text(r, "event").starts_with("squelch-"))
        .map(|r| {
            (
                text(r, "event"),
                text(r, "name"),
                text(r, "message"),
                text(r, "user"),
            )
        })
        .collect();
    rows.reverse();
    rows
}

// See: #12. A squelch's whole life is in the history: added and removed by
// the CLI with user and reason, expired by the agent that saw it first.
#[test]
fn squelch_added_removed_and_expired_are_recorded_in_the_history() {
    let env = Env::new();
    let added = env.cimaa_with_env(
        &["squelch", "web", "deploying web"],
        &[("SUDO_USER", "carol")],
    );
    assert_success(&added);
    let removed = env.cimaa_with_env(&["unsquelch", "web"], &[("SUDO_USER", "dave")]);
    assert_success(&removed);
    let now = now();
    store_squelch(&env, "gone", now - 7200, Some(now - 60));
    env.once();

    let got = squelch_history(&env);
    let row = |event: &str, name: &str, message: &str, user: &str| {
        (
            event.to_owned(),
            name.to_owned(),
            message.to_owned(),
            user.to_owned(),
        )
    };
    assert_eq!(
        got,
        [
            // Recorded at the time it expired, a minute before the others.
            row("squelch-expired", "gone", "deploying", "ann"),
            row("squelch-added", "web", "deploying web", "carol"),
            row("squelch-removed", "web", "deploying web", "dave"),
        ]
    );
}
