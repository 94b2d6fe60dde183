//! AWS errors as an operator reads them: `validate --healthchecks` with a
//! DynamoDB database and no credentials says so in one line, with where
//! credentials are looked up, and no SDK Debug dump (`ProviderError(`,
//! `FailedToLoadToken`) on any line, log lines included. See: #22
//!
//! No request leaves 127.0.0.1: the endpoint is a closed local port, and the
//! instance metadata service is either disabled or a fake on 127.0.0.1.

use std::process::{Command, Output};

use crate::fake_http::{FakeHttp, Reply};
use crate::util::{Env, stderr};

/// Runs `cimaa validate --healthchecks` with a DynamoDB database, no AWS
/// variable from the test's own environment, `HOME` an empty folder (no
/// `~/.aws` files) and these variables.
fn healthchecks_without_credentials(vars: &[(&str, &str)]) -> Output {
    let env = Env::with_alerter("alerter:\n  type: file\n  path: alerts.jsonl\n", "");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let text = std::fs::read_to_string(env.config()).unwrap().replace(
        "database:\n  type: sqlite\n  path: cimaa.db\n",
        &format!("database:\n  type: dynamodb\n  region: us-east-1\n  endpoint_url: {endpoint}\n"),
    );
    env.write("agent.yaml", &text);
    std::fs::create_dir_all(env.path("home")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cimaa"));
    command
        .arg("-c")
        .arg(env.config())
        .args(["validate", "--healthchecks"])
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .env("HOME", env.path("home"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.envs(vars.iter().copied());
    command.output().unwrap()
}

/// The one line of stderr about the database; no line anywhere carries an
/// SDK Debug dump.
fn database_line(output: &Output) -> String {
    let err = stderr(output);
    for dump in ["ProviderError(", "FailedToLoadToken", "Attempted:", " { "] {
        assert!(!err.contains(dump), "{dump}: {err}");
    }
    let lines: Vec<&str> = err
        .lines()
        .filter(|line| line.starts_with("database"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(
        err.lines().count(),
        2,
        "the database line and the count: {err}"
    );
    lines[0].to_string()
}

#[test]
fn no_credentials_at_all_is_one_line_saying_where_they_are_looked_up() {
    let output = healthchecks_without_credentials(&[("AWS_EC2_METADATA_DISABLED", "true")]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let line = database_line(&output);
    assert!(line.starts_with("database (dynamodb): "), "{line}");
    assert!(
        line.ends_with(
            "no AWS credentials found; they are looked up in the environment variables \
             `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, then in the profile that \
             `AWS_PROFILE` names (else `default`) in `~/.aws/credentials` and `~/.aws/config`, \
             then through a web identity token, the ECS task role and the EC2 instance role"
        ),
        "{line}"
    );
}

#[test]
fn an_instance_metadata_service_that_refuses_is_one_line_without_a_dump() {
    // What a host outside EC2 behind a proxy sees: the token request of the
    // instance metadata service is refused.
    let imds = FakeHttp::start(Reply::new(403, "denied"));
    let output =
        healthchecks_without_credentials(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url("/"))]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let line = database_line(&output);
    assert!(
        line.contains("no usable AWS credentials: loading them failed: "),
        "{line}"
    );
    assert!(line.contains("IMDS"), "{line}");
    assert!(
        line.ends_with("the ECS task role and the EC2 instance role"),
        "{line}"
    );
    assert!(
        imds.requests()
            .iter()
            .any(|r| r.path == "/latest/api/token"),
        "the fake metadata service was asked"
    );
}
