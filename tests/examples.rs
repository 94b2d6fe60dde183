//! The shipped examples work as a new user runs them, from the repository:
//! every agent configuration of examples/ validates as shipped (relative
//! paths, `${VAR}`s set), holds no system paths and absolute http(s) URLs
//! only, names where each secret comes from, its checks run cleanly on a
//! bare machine, and the README's two-agent fleet pages a killed peer.
//! See: #22

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{read_json_lines, stderr, stdout, wait_for};

/// The repository root, where the README's commands run.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Folders of examples/ that hold check files, not agent configurations.
const CHECK_FOLDERS: [&str; 2] = ["checks.d", "probes"];

/// Every `*.yaml` under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The agent configurations of examples/, relative to the repository.
fn agent_configs() -> Vec<PathBuf> {
    let configs: Vec<PathBuf> = yaml_files(&root().join("examples"))
        .into_iter()
        .map(|p| p.strip_prefix(root()).unwrap().to_path_buf())
        .filter(|p| {
            !p.components()
                .any(|c| CHECK_FOLDERS.iter().any(|f| c.as_os_str() == *f))
        })
        .collect();
    assert!(
        configs.len() > 5,
        "too few example configurations found: {configs:?}"
    );
    configs
}

/// A dummy value of the right shape for a `${NAME}`: an absolute URL for
/// the URLs, a plausible token otherwise.
fn dummy(name: &str) -> &'static str {
    if name.ends_with("URL") {
        "https://127.0.0.1:9/dummy"
    } else if name.contains("SLACK") {
        "xoxb-dummy"
    } else {
        "dummy"
    }
}

/// The text of a line before its comment (a `#` at its start or after a
/// space; `#` inside a value such as `"#ops"` is kept).
fn code(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    line.find(" #").map_or(line, |i| &line[..i])
}

/// `cimaa ARGS` from the repository root, with `vars` set.
fn cimaa_in_repository(args: &[&str], vars: &[(String, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .args(args)
        .current_dir(root())
        .env_remove("CIMAA_CONFIG")
        .env_remove("RUST_LOG")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

#[test]
fn every_example_agent_config_validates_as_shipped_from_the_repository() {
    let mut failures = Vec::new();
    for config in agent_configs() {
        let text = std::fs::read_to_string(root().join(&config)).unwrap();
        let vars: Vec<(String, &str)> = crate::util::variables(&text)
            .into_iter()
            .map(|name| {
                let value = dummy(&name);
                (name, value)
            })
            .collect();
        let path = config.display().to_string();
        let output = cimaa_in_repository(&["validate", "-c", &path], &vars);
        if !(output.status.success() && stdout(&output).starts_with("ok:")) {
            failures.push(format!(
                "{path}: {}\n{}{}",
                output.status,
                stdout(&output),
                stderr(&output)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "`cimaa validate -c FILE` fails on shipped examples:\n{}",
        failures.join("\n")
    );
}

#[test]
fn examples_use_no_system_paths() {
    let mut found = Vec::new();
    for file in yaml_files(&root().join("examples")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (index, line) in text.lines().enumerate() {
            if ["/etc/", "/var/"].iter().any(|p| code(line).contains(p)) {
                found.push(format!("{}:{}: {line}", file.display(), index + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "examples run from the repository must not need /etc or /var:\n{}",
        found.join("\n")
    );
}

/// The values of `url`, `webhook_url` and `endpoint_url` keys on a line,
/// commented-out ones included (a user uncomments them).
fn url_values(line: &str) -> Vec<String> {
    let line = line.trim_start().trim_start_matches('#');
    let mut values = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("url:") {
        let before = rest[..at].chars().last();
        let after = &rest[at + 4..];
        rest = after;
        if before.is_some_and(char::is_alphanumeric) {
            continue;
        }
        let value = after.trim_start().trim_start_matches(['"', '\'']);
        let end = if value.starts_with("${") {
            value.find('}').map_or(value.len(), |i| i + 1)
        } else {
            value
                .find(|c: char| c.is_whitespace() || ",}\"'".contains(c))
                .unwrap_or(value.len())
        };
        values.push(value[..end].to_string());
    }
    values
}

#[test]
fn every_url_in_the_examples_is_absolute_http() {
    let mut urls = 0;
    let mut bad = Vec::new();
    for file in yaml_files(&root().join("examples")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (index, line) in text.lines().enumerate() {
            for value in url_values(line) {
                urls += 1;
                let absolute = value.starts_with("http://")
                    || value.starts_with("https://")
                    || value.starts_with("postgres://");
                let from_environment = value.starts_with("${") && value.ends_with('}');
                if !(absolute || from_environment) {
                    bad.push(format!("{}:{}: {value}", file.display(), index + 1));
                }
            }
        }
    }
    assert!(urls > 3, "only {urls} url keys found");
    assert!(
        bad.is_empty(),
        "not an absolute http(s) URL:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_variable_of_an_example_is_explained_in_its_comments() {
    let mut unexplained = Vec::new();
    let mut seen = 0;
    for config in agent_configs() {
        let text = std::fs::read_to_string(root().join(&config)).unwrap();
        let comments: String = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for name in crate::util::variables(&text) {
            seen += 1;
            if !comments.contains(&name) {
                unexplained.push(format!("{}: ${{{name}}}", config.display()));
            }
        }
    }
    assert!(seen > 0, "no ${{VAR}} in the examples");
    assert!(
        unexplained.is_empty(),
        "say in a comment where each value comes from:\n{}",
        unexplained.join("\n")
    );
}

#[test]
fn the_example_checks_run_cleanly_on_a_bare_machine() {
    for config in ["examples/agent.yaml", "examples/fleet/agent-a.yaml"] {
        let output = cimaa_in_repository(&["check", "-c", config], &[]);
        let out = stdout(&output);
        assert!(
            output.status.success(),
            "{config}: {}\n{out}{}",
            output.status,
            stderr(&output)
        );
        for broken in ["#monitor-", "#json-error", "error loading", "error parsing"] {
            assert!(
                !out.contains(broken),
                "{config}: a shipped check is broken here ({broken}):\n{out}"
            );
        }
        assert!(out.contains("OK"), "{config}: no check ran:\n{out}");
    }
}

/// An agent of the fleet walkthrough, its log in the fleet's folder.
struct Agent {
    child: Option<Child>,
}

impl Agent {
    /// `cimaa -c CONFIG agent`, run in `dir` with `path` as PATH.
    fn start(dir: &Path, config: &str, path: &str) -> Agent {
        let log = File::create(dir.join(format!("{config}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", config, "agent"])
            .current_dir(dir)
            .env("PATH", path)
            .env_remove("CIMAA_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent { child: Some(child) }
    }

    /// `kill -9`: no deregistration, as a crashed host.
    fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Copies `from` into `to`, recursively, keeping permissions.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The README's "Try a two-agent fleet", step by step: copy examples/fleet,
/// deploy meta_checks/meta.yaml beside its check, start both agents with
/// `cimaa` installed on PATH as the README's install step leaves it,
/// `kill -9` agent-b, and agent-a pages `//meta#agent-b` within the time the
/// README promises (meta.yaml's `error: 5` base intervals of 5 s, plus two
/// runs of the meta-check, plus a little for a loaded machine).
#[test]
fn the_readme_fleet_walkthrough_pages_a_killed_peer() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("cimaa-fleet");
    copy_tree(&root().join("examples/fleet"), &fleet);
    std::fs::copy(
        root().join("meta_checks/meta.yaml"),
        fleet.join("checks.d/meta.yaml"),
    )
    .unwrap();
    let installed = Path::new(env!("CARGO_BIN_EXE_cimaa")).parent().unwrap();
    let path = format!(
        "{}:{}",
        installed.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cimaa = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(args)
            .current_dir(&fleet)
            .env_remove("CIMAA_CONFIG")
            .output()
            .unwrap()
    };
    let agents = || -> Vec<String> {
        let output = cimaa(&["-c", "agent-a.yaml", "agents", "--json"]);
        let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&output.stdout) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|a| a["name"].as_str().map(str::to_string))
            .collect()
    };

    let _a = Agent::start(&fleet, "agent-a.yaml", &path);
    let mut b = Agent::start(&fleet, "agent-b.yaml", &path);
    wait_for("both heartbeats", Duration::from_secs(20), || {
        let names = agents();
        names.contains(&"agent-a".to_string()) && names.contains(&"agent-b".to_string())
    });
    b.kill_hard();

    let pages = || read_json_lines(&fleet.join("alerts.jsonl"));
    let from_agent_a = |alert: &Value| {
        alert["action"] == "trigger"
            && alert["name"] == "//meta#agent-b"
            && alert["agent"] == "agent-a"
    };
    let promised = Duration::from_secs(5 * 5 + 2 * 5);
    let took = wait_for(
        "agent-a to page //meta#agent-b",
        promised + Duration::from_secs(10),
        || pages().iter().any(from_agent_a),
    );
    assert!(
        took >= Duration::from_secs(2 * 5),
        "paged after {took:?}, before the peer could be inactive: {:?}",
        pages()
    );
    let output = cimaa(&["-c", "agent-a.yaml", "faults", "--json"]);
    let faults: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        faults
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["agent"] == "agent-a"
                && f["name"] == "//meta#agent-b"
                && f["severity"] == 50),
        "{faults}"
    );

    // Three more meta-check runs: the age in the message grows, the page
    // does not repeat.
    std::thread::sleep(Duration::from_secs(3 * 5));
    let triggers = pages().iter().filter(|a| from_agent_a(a)).count();
    assert_eq!(triggers, 1, "one page per dead peer: {:?}", pages());

    // The walkthrough's last step: forget the peer, and the page resolves.
    let output = cimaa(&["-c", "agent-a.yaml", "forget", "agent-b"]);
    assert!(output.status.success(), "{output:?}");
    wait_for(
        "agent-a to resolve //meta#agent-b",
        Duration::from_secs(4 * 5),
        || {
            pages().iter().any(|alert| {
                alert["action"] == "resolve"
                    && alert["name"] == "//meta#agent-b"
                    && alert["agent"] == "agent-a"
            })
        },
    );
}
