//! Safety nets that cannot fail silently (issue #22): the in-process
//! `meta:` check kind, `CIMAA` in plugins' environment, broken monitors that
//! page after `monitor_retry` runs, and log lines that say what `faults`
//! shows. Against the real binary and a shared SQLite file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cimaa::db::{Db, SqliteDb};
use serde_json::Value;

use crate::util::{Env, assert_success, check_name, events, stderr, stdout, wait_for};

/// What a host without `cimaa` installed on PATH has.
const BARE_PATH: &str = "/usr/bin:/bin";

/// The binary, by absolute path, as a service manager starts it.
fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cimaa")
}

/// The shipped meta-check file.
fn shipped_meta_check() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::read_to_string(root.join("meta_checks/meta.yaml")).unwrap()
}

/// An agent configuration named `name` with its own check directory
/// `NAME.d`, sharing `cimaa.db` and `alerts.jsonl` with its peers.
fn agent_config(env: &Env, name: &str, base_interval: &str) -> PathBuf {
    fs::create_dir_all(env.path(&format!("{name}.d"))).unwrap();
    env.write(
        &format!("{name}.yaml"),
        &format!(
            "agent:\n  name: {name}\n  directory: {name}.d\n  base_interval: {base_interval}\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: alerts.jsonl\n"
        ),
    );
    env.path(&format!("{name}.yaml"))
}

/// `cimaa -c CONFIG agent` started by absolute path with only `BARE_PATH`.
struct Agent(Child);

impl Agent {
    fn start(env: &Env, config: &Path) -> Agent {
        let child = Command::new(binary())
            .arg("-c")
            .arg(config)
            .arg("agent")
            .current_dir(env.path(""))
            .env("PATH", BARE_PATH)
            .env_remove("RUST_LOG")
            .env_remove("CIMAA_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Agent(child)
    }

    /// `kill -9`: no deregistration, the heartbeat just stops.
    fn kill_9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn heartbeats(env: &Env) -> Vec<String> {
    let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
    db.agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect()
}

// See: #22
#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_meta_check_pages_a_killed_peer_without_cimaa_on_path() {
    let env = Env::bare();
    let observer_config = agent_config(&env, "observer", "1");
    let peer_config = agent_config(&env, "peer", "1");
    env.write("observer.d/meta.yaml", &shipped_meta_check());
    crate::util::age(&env.path("observer.d/meta.yaml"));

    let peer = Agent::start(&env, &peer_config);
    let observer = Agent::start(&env, &observer_config);
    let started = Instant::now();
    while heartbeats(&env).await != ["observer", "peer"] {
        assert!(started.elapsed() < Duration::from_secs(15), "no heartbeats");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peer.kill_9();

    let alerts = || crate::util::read_json_lines(&env.path("alerts.jsonl"));
    wait_for(
        "the page about the dead peer",
        Duration::from_secs(30),
        || !alerts().is_empty(),
    );
    drop(observer);
    let sent = events(&alerts());
    assert_eq!(sent[0].0, "trigger", "{sent:?}");
    assert_eq!(sent[0].1, "//meta#peer", "{sent:?}");
    assert!(sent[0].2.starts_with("Inactive agent"), "{sent:?}");
    // Nothing about the check itself: it forked nothing that could fail.
    assert!(
        sent.iter()
            .all(|(_, name, _)| name.starts_with("//meta#peer")),
        "{sent:?}"
    );
}

// See: #22
#[tokio::test]
async fn cimaa_check_runs_a_meta_check_over_the_database() {
    let env = Env::new();
    let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    db.heartbeat("web9", now - 1000).await.unwrap();
    env.write_check("meta.yaml", &shipped_meta_check());

    let output = env.cimaa_with_env(&["check", "checks.d/meta.yaml"], &[("PATH", BARE_PATH)]);

    assert_success(&output);
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}{}", stderr(&output));
    assert_eq!(lines[0], "//meta");
    assert!(
        lines[1].starts_with("  ERROR //meta#web9: Inactive agent"),
        "{printed}"
    );
    assert!(lines[2].starts_with("  flapping: no"), "{printed}");
}

// See: #22
#[test]
fn a_plugin_gets_the_absolute_path_of_the_running_binary_as_cimaa() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "whoami:\n  command: printf '%s\\n' \"$CIMAA\"\n",
    );

    let output = env.cimaa_with_env(&["check", "checks.d/app.yaml"], &[("PATH", BARE_PATH)]);

    assert_success(&output);
    let printed = stdout(&output);
    let Some(shown) = printed
        .lines()
        .find_map(|line| line.strip_prefix("  stdout: "))
    else {
        panic!("no stdout line: {printed}")
    };
    assert!(Path::new(shown).is_absolute(), "{shown}");
    assert_eq!(
        fs::canonicalize(shown).unwrap(),
        fs::canonicalize(binary()).unwrap()
    );
}

// See: #22
#[test]
fn a_plugin_runs_cimaa_meta_check_through_cimaa_without_path() {
    let env = Env::new();
    let name = check_name("app", "fleet");
    env.write_check(
        "app.yaml",
        "fleet:\n  command: '\"$CIMAA\" meta-check'\n  retry: 0\n",
    );

    assert_success(&env.cimaa_with_env(&["agent", "--once"], &[("PATH", BARE_PATH)]));

    let faults: Vec<Value> = env.faults();
    assert!(
        faults
            .iter()
            .all(|f| !f["name"].as_str().unwrap().starts_with(&name)),
        "{faults:?}"
    );
}

// See: #22
#[test]
fn a_missing_plugin_pages_after_ten_runs_and_not_before() {
    let env = Env::new();
    env.write_check("app.yaml", "gone:\n  command: /nonexistent/check_gone\n");
    let name = check_name("app", "gone");

    for run in 1..10 {
        env.once();
        assert!(env.alerts().is_empty(), "paged at run {run}");
        let status = env.fault(&format!("{name}#monitor-status")).unwrap();
        assert_eq!(status["severity"], 40, "run {run}");
        assert_eq!(status["message"], "exit status 127: (no output)");
    }
    env.once();

    let status = env.fault(&format!("{name}#monitor-status")).unwrap();
    assert_eq!(status["severity"], 50);
    assert_eq!(
        status["message"],
        "monitor broken for 10 runs: exit status 127: (no output)"
    );
    let no_out = env.fault(&format!("{name}#monitor-no-out")).unwrap();
    assert_eq!(
        no_out["message"],
        "monitor broken for 10 runs: plugin printed nothing on stdout (exit status 127)"
    );
    let mut paged: Vec<(String, String)> = events(&env.alerts())
        .into_iter()
        .map(|(action, name, message)| {
            assert_eq!(action, "trigger");
            (name, message)
        })
        .collect();
    paged.sort();
    let names: Vec<&str> = paged.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{name}#monitor-no-out"),
            format!("{name}#monitor-status"),
            format!("{name}#monitor-stderr"),
        ]
    );
    assert!(
        paged[2].1.starts_with("monitor broken for 10 runs: ") && paged[2].1.contains("not found"),
        "{paged:?}"
    );
    // The message is fixed: an eleventh run pages nothing new.
    env.once();
    assert_eq!(env.alerts().len(), 3);
}

// See: #22
#[test]
fn a_run_with_a_working_monitor_starts_the_count_over() {
    let env = Env::new();
    let plugin = env.script(
        "plugin.sh",
        "if [ -e ok ]; then echo 'OK'; else echo 'odd'; exit 42; fi",
    );
    env.write_check(
        "app.yaml",
        &format!(
            "flaky:\n  command: {}\n  monitor_retry: 3\n",
            plugin.display()
        ),
    );
    let status = format!("{}#monitor-status", check_name("app", "flaky"));
    let severity = || env.fault(&status).map(|f| f["severity"].as_i64().unwrap());

    env.once();
    env.once();
    env.write("checks.d/ok", "");
    env.once();
    assert_eq!(severity(), None);
    fs::remove_file(env.path("checks.d/ok")).unwrap();
    env.once();
    env.once();
    assert_eq!(severity(), Some(40));
    assert!(env.alerts().is_empty());
    env.once();
    assert_eq!(severity(), Some(50));
    assert_eq!(
        env.fault(&status).unwrap()["message"],
        "monitor broken for 3 runs: exit status 42: odd"
    );
}

// See: #22
#[test]
fn meta_option_errors_name_file_key_and_line() {
    let env = Env::new();
    env.write_check(
        "meta.yaml",
        "//meta:\n  meta:\n    warn: 2\n    expect: agents.txt\n//late:\n  meta: {wran: 3}\n//neg:\n  meta: {error: -1}\n",
    );
    let file = env.path("checks.d/meta.yaml");

    let output = env.cimaa(&["validate"]);

    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let errors = stderr(&output);
    for want in [
        format!(
            "error loading check {} [//meta]: //meta.meta.expect: `agents.txt` is not an absolute path; name the expect file from `/` at line 4 column 13",
            file.display()
        ),
        format!(
            "error loading check {} [//late]: //late.meta: unknown field `wran`, expected one of `warn`, `error`, `squelch`, `fold`, `expiring`, `expect` at line 6 column 10",
            file.display()
        ),
        format!(
            "error loading check {} [//neg]: //neg.meta.error: `-1` is negative; use a number of base intervals (0 or more) at line 8 column 17",
            file.display()
        ),
    ] {
        assert!(errors.contains(&want), "missing {want}\nin:\n{errors}");
    }
}

// See: #22
#[test]
fn log_lines_carry_the_stored_severity_and_the_full_fault_name() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n",
    );

    let output = env.once();

    let name = check_name("app", "down");
    let log = stderr(&output);
    let Some(line) = log.lines().find(|l| l.contains("check fault")) else {
        panic!("no check fault line: {log}")
    };
    assert!(line.contains("severity=CRITICAL"), "{line}");
    assert!(line.contains(&format!("fault={name} ")), "{line}");
    assert_eq!(env.fault(&name).unwrap()["severity"], 50);
}
