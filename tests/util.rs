//! Test environment: a temp dir with an agent config, a check directory, a
//! `SQLite` database and a file alerter; a runner for the real `cimaa` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

/// The name every test agent uses.
pub(crate) const AGENT: &str = "test-agent";

/// A throwaway agent setup.
pub(crate) struct Env {
    dir: TempDir,
}

impl Env {
    /// An agent with `SQLite`, a file alerter and `extra_agent` lines under `agent:`.
    pub(crate) fn new() -> Env {
        Env::with_alerter("alerter:\n  type: file\n  path: alerts.jsonl\n", "")
    }

    /// An agent with the given `alerter:` section and extra `agent:` lines.
    pub(crate) fn with_alerter(alerter: &str, extra_agent: &str) -> Env {
        let env = Env::bare();
        fs::create_dir_all(env.path("checks.d")).unwrap();
        env.configure(alerter, extra_agent);
        env
    }

    /// Rewrites agent.yaml with this `alerter:` section and extra `agent:` lines.
    pub(crate) fn configure(&self, alerter: &str, extra_agent: &str) {
        let base = if extra_agent.contains("base_interval:") {
            ""
        } else {
            "  base_interval: 60\n"
        };
        let config = format!(
            "agent:\n  name: {AGENT}\n  directory: checks.d\n{base}{extra_agent}database:\n  type: sqlite\n  path: cimaa.db\n{alerter}"
        );
        self.write("agent.yaml", &config);
    }

    /// An empty temp dir.
    pub(crate) fn bare() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.path("agent.yaml")
    }

    /// Writes a file relative to the temp dir.
    pub(crate) fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, text).unwrap();
    }

    /// Writes a check file, dated a minute ago so the agent does not hold
    /// it back as "being written".
    pub(crate) fn write_check(&self, name: &str, text: &str) {
        let path = self.path(&format!("checks.d/{name}"));
        fs::write(&path, text).unwrap();
        age(&path);
    }

    /// Writes an executable script.
    pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut permissions = fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        fs::set_permissions(&path, permissions).unwrap();
        path
    }

    /// Runs `cimaa -c agent.yaml ARGS`.
    pub(crate) fn cimaa(&self, args: &[&str]) -> Output {
        self.cimaa_with_env::<&str>(args, &[])
    }

    /// Runs `cimaa -c agent.yaml ARGS` with extra environment variables.
    pub(crate) fn cimaa_with_env<V: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[&str],
        vars: &[(&str, V)],
    ) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cimaa"));
        command
            .arg("-c")
            .arg(self.config())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("CIMAA_MAX_CONCURRENCY")
            .envs(vars.iter().map(|(k, v)| (k, v)));
        command.output().unwrap()
    }

    /// One `cimaa agent --once`, which must succeed.
    pub(crate) fn once(&self) -> Output {
        let output = self.cimaa(&["agent", "--once"]);
        assert_success(&output);
        output
    }

    /// The alert events written so far.
    pub(crate) fn alerts(&self) -> Vec<Value> {
        read_json_lines(&self.path("alerts.jsonl"))
    }

    /// `cimaa faults --json`.
    pub(crate) fn faults(&self) -> Vec<Value> {
        let output = self.cimaa(&["faults", "--json"]);
        assert_success(&output);
        match serde_json::from_slice(&output.stdout).unwrap() {
            Value::Array(items) => items,
            other => panic!("faults --json is not an array: {other}"),
        }
    }

    /// The stored fault with this name, if any.
    pub(crate) fn fault(&self, name: &str) -> Option<Value> {
        self.faults().into_iter().find(|f| f["name"] == name)
    }
}

/// Dates a file a minute back.
pub(crate) fn age(path: &Path) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_mins(1))
        .unwrap();
}

pub(crate) fn read_json_lines(path: &Path) -> Vec<Value> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "cimaa failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// A compact view of alert events: `(action, name, message)`.
pub(crate) fn events(alerts: &[Value]) -> Vec<(String, String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or_default().to_string(),
                a["name"].as_str().unwrap_or_default().to_string(),
                a["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `(action, name, message)` with owned strings, for expectations.
pub(crate) fn event(action: &str, name: &str, message: &str) -> (String, String, String) {
    (action.into(), name.into(), message.into())
}

/// The full name of a check in file `stem` with key `key`.
pub(crate) fn check_name(stem: &str, key: &str) -> String {
    format!("//{AGENT}/{stem}/{key}")
}

/// Polls `done` until it holds, failing the test after `limit`; returns how
/// long it took.
pub(crate) fn wait_for(
    what: &str,
    limit: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    started.elapsed()
}

/// `${NAME}`s used in a text, in order (for dummy values).
pub(crate) fn variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find('}') {
            names.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    names
}

/// The faults a successful `cimaa meta-check` printed, as
/// `(name, severity, message)`.
pub(crate) fn meta_faults(output: &Output) -> Vec<(String, i64, String)> {
    assert_success(output);
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
