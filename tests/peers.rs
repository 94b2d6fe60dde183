//! Dead peers without trusting clocks, and expected agents (SPEC §14): real
//! agents sharing one `SQLite` database, some run under libfaketime (Debian's
//! `faketime`, installed by scripts/test.sh) with a clock ahead or behind,
//! watched by another agent's meta-check.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::util::{assert_success, stderr};

/// Agents named in one folder, sharing `cimaa.db`; base interval 1 s, so
/// `-w 2` is 2 s and the skew limit is 30 s.
struct Fleet {
    dir: TempDir,
}

impl Fleet {
    fn new(names: &[&str]) -> Fleet {
        let fleet = Fleet {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in names {
            fleet.configure(name, "");
        }
        fleet
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `NAME.yaml` (and its check folder, `checks-NAME`).
    fn configure(&self, name: &str, checks: &str) {
        let folder = self.path(&format!("checks-{name}"));
        fs::create_dir_all(&folder).unwrap();
        if !checks.is_empty() {
            let file = folder.join("meta.yaml");
            fs::write(&file, checks).unwrap();
            crate::util::age(&file);
        }
        fs::write(
            self.path(&format!("{name}.yaml")),
            format!(
                "agent:\n  name: {name}\n  directory: checks-{name}\n  base_interval: 1\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: alerts-{name}.jsonl\n"
            ),
        )
        .unwrap();
    }

    /// `cimaa -c NAME.yaml ARGS`, its wall clock moved by `OFFSET` (e.g.
    /// `+300s`) when given. libfaketime is preloaded into `cimaa` itself
    /// rather than through the `faketime` wrapper, which forks: killing the
    /// wrapper would leave the agent running.
    fn command(&self, name: &str, offset: Option<&str>, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cimaa"));
        if let Some(offset) = offset {
            command
                .env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", offset)
                // Only the wall clock moves: tokio's timers keep real time.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        command
            .arg("-c")
            .arg(self.path(&format!("{name}.yaml")))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG");
        command
    }

    fn run(&self, name: &str, offset: Option<&str>, args: &[&str]) -> Output {
        let output = self.command(name, offset, args).output().unwrap();
        assert_success(&output);
        output
    }

    /// A running `cimaa agent` (killed with SIGKILL when dropped).
    fn spawn(&self, name: &str, offset: Option<&str>) -> Running {
        let child = self
            .command(name, offset, &["agent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Running(child)
    }

    /// `cimaa meta-check ARGS` of `observer`: (name, severity, message).
    fn meta_check(&self, observer: &str, args: &[&str]) -> Vec<(String, i64, String)> {
        let mut all = vec!["meta-check"];
        all.extend_from_slice(args);
        let output = self.run(observer, None, &all);
        let value: Value = serde_json::from_slice(&output.stdout).unwrap();
        value["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["severity"].as_i64().unwrap(),
                    f["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The heartbeat time `cimaa agents --json` shows for `agent`.
    fn heartbeat(&self, agent: &str) -> Option<i64> {
        let output = self.run("observer", None, &["agents", "--json"]);
        let agents: Value = serde_json::from_slice(&output.stdout).unwrap();
        agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == agent)
            .and_then(|a| a["updated"].as_i64())
    }

    /// Waits (up to 20 s) until `agent`'s heartbeat differs from `from`.
    fn next_heartbeat(&self, agent: &str, from: Option<i64>) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.heartbeat(agent);
            if let Some(now) = now
                && now != from.unwrap_or(i64::MIN)
            {
                return now;
            }
            assert!(Instant::now() < deadline, "no new heartbeat from {agent}");
            sleep(Duration::from_millis(200));
        }
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's libfaketime (under `/usr/lib/<multiarch triplet>/faketime/`);
/// its absence fails the test (never skipped).
fn libfaketime() -> PathBuf {
    fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.is_file())
        .expect("these tests need libfaketime: install Debian's `faketime` package (scripts/test.sh does)")
}

fn names(faults: &[(String, i64, String)]) -> Vec<&str> {
    faults.iter().map(|f| f.0.as_str()).collect()
}

// See: #16
#[test]
fn a_peer_whose_clock_runs_300_s_ahead_is_a_clock_skew_warning() {
    let fleet = Fleet::new(&["observer", "ahead"]);
    fleet.run("ahead", Some("+300s"), &["agent", "--once"]);

    let faults = fleet.meta_check("observer", &[]);

    assert_eq!(
        faults,
        [(
            "clock-skew-ahead".to_owned(),
            30,
            "Clock more than 30s ahead of the clock of observer; its heartbeats are judged by their change alone (check NTP on it)".to_owned()
        )],
        "a peer ahead is not inactive"
    );
}

// See: #16
#[test]
fn a_peer_300_s_behind_and_alive_is_not_inactive_once_observed_twice_while_a_killed_one_is() {
    let fleet = Fleet::new(&["observer", "behind"]);
    let running = fleet.spawn("behind", Some("-300s"));
    fleet.next_heartbeat("behind", None);

    let once = fleet.meta_check("observer", &[]);
    assert_eq!(
        names(&once),
        ["behind"],
        "seen once, only its heartbeat time speaks"
    );
    // Read after that run, so the value the next run sees differs from the
    // one this run saw, whenever a heartbeat landed in between.
    let seen = fleet.next_heartbeat("behind", None);
    fleet.next_heartbeat("behind", Some(seen));
    let twice = fleet.meta_check("observer", &[]);
    assert_eq!(twice, [], "its heartbeat changed: alive");
    assert!(
        fs::read_dir(fleet.path("cimaa-state"))
            .unwrap()
            .any(|entry| entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-observer.json")),
        "the observations are kept under the state folder"
    );

    drop(running);
    let last = fleet.meta_check("observer", &[]);
    assert_eq!(last, [], "its last heartbeat is new to the observer");
    sleep(Duration::from_millis(3500));
    let dead = fleet.meta_check("observer", &[]);
    assert_eq!(names(&dead), ["behind"], "{dead:?}");
    // Whole seconds on the observer's clock: 3 or 4 s after its last
    // heartbeat, give or take a loaded machine, never the 300 s its clock
    // is behind.
    let age: u64 = dead[0]
        .2
        .strip_prefix("Inactive agent (no heartbeat for ")
        .and_then(|rest| rest.strip_suffix("s)"))
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("{}", dead[0].2));
    assert!(
        (3..60).contains(&age),
        "judged on the observer's clock, not by the 300 s its clock is behind: {}",
        dead[0].2
    );
}

// See: #16
#[test]
fn expected_agents_and_patterns_that_never_reported_are_errors() {
    let fleet = Fleet::new(&["observer", "web1"]);
    fleet.run("web1", None, &["agent", "--once"]);
    fs::write(
        fleet.path("expected.txt"),
        "# the web tier\nweb1\nweb2\n\n/^web\\d+$/\n/^db\\d+$/\nobserver\n",
    )
    .unwrap();

    let faults = fleet.meta_check("observer", &["--expect", "expected.txt"]);

    assert_eq!(
        faults,
        [
            ("/^db\\d+$/".to_owned(), 40, "Never reported".to_owned()),
            ("web2".to_owned(), 40, "Never reported".to_owned()),
        ]
    );
}

// See: #16
#[test]
fn a_missing_expect_file_is_the_meta_checks_own_error_naming_it() {
    let fleet = Fleet::new(&["observer"]);

    let faults = fleet.meta_check("observer", &["--expect", "nowhere.txt"]);

    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!((faults[0].0.as_str(), faults[0].1), ("", 40));
    assert!(
        faults[0]
            .2
            .starts_with("cannot read the expect file `nowhere.txt`"),
        "{}",
        faults[0].2
    );
}

// See: #16
#[test]
fn the_meta_kind_reports_expected_agents_that_never_reported() {
    let fleet = Fleet::new(&["observer"]);
    let expected = fleet.path("expected.txt");
    fs::write(&expected, "ghost\n/^db/\n").unwrap();
    fleet.configure(
        "observer",
        &format!(
            "//meta:\n  meta:\n    expect: {}\n  retry: 0\n",
            expected.display()
        ),
    );

    fleet.run("observer", None, &["agent", "--once"]);

    let output = fleet.run("observer", None, &["faults", "--json"]);
    let faults: Value = serde_json::from_slice(&output.stdout).unwrap();
    let got: Vec<(&str, i64, &str)> = faults
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["severity"].as_i64().unwrap(),
                f["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            // ERRORs that escalate (`retry: 0`): stored CRITICAL.
            ("//meta#/^db/", 50, "Never reported"),
            ("//meta#ghost", 50, "Never reported"),
        ],
        "{}",
        stderr(&output)
    );
}
