//! Command checks: Nagios plugins and JSON plugins (SPEC §4).
//!
//! `run` executes the plugin through `process` (own process group, killed on
//! timeout, output capped); `interpret` is the pure part that turns exit
//! status and output into faults and metrics.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use super::{CheckOutput, OUTPUT_CAP, RawFault, RawMetric, RawRun, json};
use crate::severity::Severity;
use crate::{env, perfdata, process};

/// Longest Nagios status text kept as a fault message.
const MESSAGE_CHARS: usize = 200;

/// Runs a plugin and interprets its output.
pub(crate) async fn run(
    command: &str,
    cwd: Option<&Path>,
    nagios_performance: bool,
    timeout: Duration,
    config_path: &Path,
) -> CheckOutput {
    run_as(
        process::Launch::Auto,
        command,
        cwd,
        nagios_performance,
        timeout,
        config_path,
    )
    .await
}

/// `run`, launched as `launch` says (tests compare the two ways).
async fn run_as(
    launch: process::Launch,
    command: &str,
    cwd: Option<&Path>,
    nagios_performance: bool,
    timeout: Duration,
    config_path: &Path,
) -> CheckOutput {
    let config = config_path.to_string_lossy();
    let mut vars = vec![(env::CONFIG, config.as_ref())];
    if let Some(binary) = process::own_binary() {
        vars.push((env::BINARY, binary));
    }
    // One byte over the cap tells a cut-off output from one that fits.
    match process::run_as(launch, command, &vars, cwd, timeout, OUTPUT_CAP + 1).await {
        Err(error) => CheckOutput {
            faults: vec![RawFault::monitor(
                "status",
                format!("cannot start /bin/sh: {error}"),
            )],
            ..CheckOutput::default()
        },
        Ok(mut output) => {
            let cut_off = output.stdout.len() > OUTPUT_CAP;
            output.stdout.truncate(OUTPUT_CAP);
            output.stderr.truncate(OUTPUT_CAP);
            let stdout = super::output_text(&output.stdout);
            let stderr = super::output_text(&output.stderr);
            let mut result = match output.status {
                None => CheckOutput {
                    faults: vec![RawFault::monitor(
                        "timeout",
                        format!(
                            "plugin timed out after {} s",
                            crate::thresholds::format_value(timeout.as_secs_f64())
                        ),
                    )],
                    ..CheckOutput::default()
                },
                Some(status) if cut_off && is_json(status, &stdout) => json::truncated(OUTPUT_CAP),
                Some(status) => interpret(status, &stdout, &stderr, nagios_performance),
            };
            result.raw = Some(RawRun {
                status: output
                    .status
                    .map_or_else(|| "killed after timeout".into(), describe),
                stdout,
                stderr,
            });
            result
        }
    }
}

/// Turns a finished plugin's exit status and output into faults and metrics.
#[must_use]
pub(crate) fn interpret(
    status: ExitStatus,
    stdout: &str,
    stderr: &str,
    nagios_performance: bool,
) -> CheckOutput {
    if is_json(status, stdout) {
        return json::output(stdout);
    }
    let mut faults = Vec::new();
    if !stderr.trim().is_empty() {
        faults.push(RawFault::monitor("stderr", stderr.trim_end()));
    }
    let (text, metrics) = if nagios_performance {
        let parsed = perfdata::parse_output(stdout);
        let metrics = parsed
            .metrics
            .into_iter()
            .map(|p| RawMetric {
                name: p.label,
                value: p.value,
                units: p.units,
                timestamp: None,
            })
            .collect();
        (parsed.text, metrics)
    } else {
        (stdout.trim().to_string(), Vec::new())
    };
    let message = if text.is_empty() {
        let printed = if stdout.trim().is_empty() {
            "nothing"
        } else {
            "only performance data"
        };
        faults.push(RawFault::monitor(
            "no-out",
            format!(
                "plugin printed {printed} on stdout ({})",
                status_text(status)
            ),
        ));
        "(no output)".to_string()
    } else {
        shorten(&text)
    };
    match status.code() {
        Some(0) => {}
        Some(code @ 1..=3) => faults.push(RawFault {
            name: None,
            severity: if code == 1 {
                Severity::WARNING
            } else {
                Severity::ERROR
            },
            message,
            escalates: true,
        }),
        Some(code) => faults.push(RawFault::monitor(
            "status",
            format!("exit status {code}: {message}"),
        )),
        None => {
            let signal = status
                .signal()
                .map_or_else(|| "?".into(), |s| s.to_string());
            faults.push(RawFault::monitor(
                "status",
                format!("killed by signal {signal}: {message}"),
            ));
        }
    }
    CheckOutput {
        faults,
        metrics,
        raw: None,
    }
}

/// How a plugin ended, as `cimaa check` prints it: `0`, `2`, `killed by
/// signal 9` (Rust's own `exit status: 0` repeats the label it follows).
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown exit status".to_owned(),
    }
}

/// How a plugin ended, for messages: `exit status 127`, `killed by signal 9`.
fn status_text(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => describe(status),
    }
}

/// Whether a finished plugin's output is plugin JSON (SPEC §4): exit 0 and
/// stdout starting with `{`.
fn is_json(status: ExitStatus, stdout: &str) -> bool {
    status.code() == Some(0) && stdout.trim_start().starts_with('{')
}

/// First 200 characters, then ` ...`.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MESSAGE_CHARS) {
        Some((cut, _)) => format!("{} ...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn fault(name: Option<&str>, severity: Severity, message: &str, escalates: bool) -> RawFault {
        RawFault {
            name: name.map(str::to_string),
            severity,
            message: message.to_string(),
            escalates,
        }
    }

    #[test]
    fn nagios_exit_codes_and_output() {
        let long = "x".repeat(250);
        let long_message = format!("{} ...", "x".repeat(200));
        let cases: Vec<(ExitStatus, &str, &str, Vec<RawFault>)> = vec![
            (exit(0), "OK fine", "", vec![]),
            (
                exit(1),
                "WARN slow",
                "",
                vec![fault(None, Severity::WARNING, "WARN slow", true)],
            ),
            (
                exit(2),
                "CRIT down",
                "",
                vec![fault(None, Severity::ERROR, "CRIT down", true)],
            ),
            (
                exit(3),
                "UNKNOWN what",
                "",
                vec![fault(None, Severity::ERROR, "UNKNOWN what", true)],
            ),
            (
                exit(2),
                &long,
                "",
                vec![fault(None, Severity::ERROR, &long_message, true)],
            ),
            (
                exit(0),
                "OK",
                "oops\n",
                vec![fault(
                    Some("monitor-stderr"),
                    Severity::ERROR,
                    "oops",
                    false,
                )],
            ),
            (
                exit(0),
                "",
                "",
                vec![fault(
                    Some("monitor-no-out"),
                    Severity::ERROR,
                    "plugin printed nothing on stdout (exit status 0)",
                    false,
                )],
            ),
            (
                exit(2),
                "| a=1",
                "",
                vec![
                    fault(
                        Some("monitor-no-out"),
                        Severity::ERROR,
                        "plugin printed only performance data on stdout (exit status 2)",
                        false,
                    ),
                    fault(None, Severity::ERROR, "(no output)", true),
                ],
            ),
            (
                exit(7),
                "odd",
                "",
                vec![fault(
                    Some("monitor-status"),
                    Severity::ERROR,
                    "exit status 7: odd",
                    false,
                )],
            ),
            (
                ExitStatus::from_raw(9),
                "dead",
                "",
                vec![fault(
                    Some("monitor-status"),
                    Severity::ERROR,
                    "killed by signal 9: dead",
                    false,
                )],
            ),
        ];
        for (status, stdout, stderr, want) in cases {
            let got = interpret(status, stdout, stderr, true);
            assert_eq!(got.faults, want, "{status:?} {stdout:?} {stderr:?}");
        }
    }

    // See: #22: `monitor-no-out` used to have an empty message.
    #[test]
    fn a_missing_program_is_three_monitor_faults_that_say_what_happened() {
        let got = interpret(exit(127), "", "sh: 1: /opt/check_gone: not found\n", true);
        assert_eq!(
            got.faults,
            vec![
                fault(
                    Some("monitor-stderr"),
                    Severity::ERROR,
                    "sh: 1: /opt/check_gone: not found",
                    false,
                ),
                fault(
                    Some("monitor-no-out"),
                    Severity::ERROR,
                    "plugin printed nothing on stdout (exit status 127)",
                    false,
                ),
                fault(
                    Some("monitor-status"),
                    Severity::ERROR,
                    "exit status 127: (no output)",
                    false,
                ),
            ]
        );
        let killed = interpret(ExitStatus::from_raw(9), "", "", true);
        assert_eq!(
            killed.faults[0].message,
            "plugin printed nothing on stdout (killed by signal 9)"
        );
    }

    #[test]
    fn perfdata_becomes_metrics_and_leaves_the_message() {
        let got = interpret(exit(1), "WARN speed 99 | speed=99rpm;50;70", "", true);
        assert_eq!(
            got.faults,
            vec![fault(None, Severity::WARNING, "WARN speed 99", true)]
        );
        assert_eq!(got.metrics.len(), 1);
        assert_eq!(
            (
                got.metrics[0].name.as_str(),
                got.metrics[0].value,
                got.metrics[0].units.as_str()
            ),
            ("speed", 99.0, "rpm")
        );
    }

    #[test]
    fn perfdata_is_kept_as_text_when_parsing_is_off() {
        let got = interpret(exit(1), "WARN | a=1", "", false);
        assert_eq!(
            got.faults,
            vec![fault(None, Severity::WARNING, "WARN | a=1", true)]
        );
        assert!(got.metrics.is_empty());
    }

    #[test]
    fn json_output_on_exit_zero_is_plugin_json() {
        let got = interpret(
            exit(0),
            r#"{"faults": [{"severity": "critical", "message": "m", "name": "n"}]}"#,
            "",
            true,
        );
        assert_eq!(
            got.faults,
            vec![fault(Some("n"), Severity::CRITICAL, "m", true)]
        );
    }

    #[test]
    fn bad_json_is_one_escalating_json_error() {
        let got = interpret(exit(0), r#"{"faults": 3}"#, "", true);
        assert_eq!(
            got.faults,
            vec![fault(
                Some("json-error"),
                Severity::ERROR,
                "`faults` must be a list, got a number",
                true
            )]
        );
    }

    #[test]
    fn json_on_a_failing_exit_is_nagios_text() {
        let got = interpret(exit(2), r#"{"faults": []}"#, "", false);
        assert_eq!(
            got.faults,
            vec![fault(None, Severity::ERROR, r#"{"faults": []}"#, true)]
        );
    }
}

/// SPEC §4: a plain command line runs without the shell, and nothing a
/// check reports tells the two ways apart.
#[cfg(test)]
mod direct_or_shell {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    use super::*;

    const PLUGIN: &str = r#"#!/bin/sh
case "$1" in
  0|1|2|3) echo "STATUS $1 | load=$1;5;10"; exit "$1" ;;
  stderr) echo "oops" >&2; echo "OK" ;;
  silent) exit 0 ;;
  signal) kill -"${2:-9}" $$ ;;
  json) echo '{"faults": [{"name": "db", "severity": "error", "message": "down"}]}' ;;
  env) env | grep -v '^CIMAA_RUN_ID=' | sort ;;
  argv) echo "$0 $#" ;;
  linger) sleep 30 & echo $! > "$2"; sleep 30 ;;
esac
"#;

    struct Folder {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    fn folder() -> Folder {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let plugin = path.join("plugin.sh");
        std::fs::write(&plugin, PLUGIN).unwrap();
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Folder { _dir: dir, path }
    }

    async fn check(folder: &Folder, command: &str, timeout: Duration) -> CheckOutput {
        check_as(process::Launch::Auto, folder, command, timeout).await
    }

    async fn check_as(
        launch: process::Launch,
        folder: &Folder,
        command: &str,
        timeout: Duration,
    ) -> CheckOutput {
        run_as(
            launch,
            command,
            Some(&folder.path),
            true,
            timeout,
            Path::new("/etc/cimaa/agent.yaml"),
        )
        .await
    }

    /// Runs `command` as it runs in the agent (plain: without the shell)
    /// and with `/bin/sh -c`; returns both outputs.
    async fn both_ways(command: &str) -> (CheckOutput, CheckOutput) {
        let folder = folder();
        assert!(
            crate::program::plain_words(command).is_some(),
            "{command} is plain"
        );
        let direct = check(&folder, command, Duration::from_secs(10)).await;
        let shell = check_as(
            process::Launch::Shell,
            &folder,
            command,
            Duration::from_secs(10),
        )
        .await;
        (direct, shell)
    }

    #[tokio::test]
    async fn exit_codes_zero_to_three_give_the_same_faults_and_metrics() {
        for code in 0..=3 {
            let (direct, shell) = both_ways(&format!("./plugin.sh {code}")).await;
            assert_eq!(direct.faults, shell.faults, "exit {code}");
            assert_eq!(direct.metrics, shell.metrics, "exit {code}");
            assert_eq!(direct.metrics.len(), 1, "exit {code}");
        }
    }

    #[tokio::test]
    async fn stderr_silence_a_signal_and_json_give_the_same_faults() {
        for case in ["stderr", "silent", "signal", "json"] {
            let (direct, shell) = both_ways(&format!("./plugin.sh {case}")).await;
            assert_eq!(direct.faults, shell.faults, "{case}");
            assert!(!direct.faults.is_empty(), "{case}");
        }
    }

    #[tokio::test]
    async fn death_by_a_signal_is_reported_as_the_shell_reports_it() {
        for signal in [1, 2, 6, 9, 11, 13, 15] {
            let (direct, shell) = both_ways(&format!("./plugin.sh signal {signal}")).await;
            assert_eq!(direct.faults, shell.faults, "signal {signal}");
            let (direct, shell) = (direct.raw.unwrap(), shell.raw.unwrap());
            assert_eq!(direct.status, shell.status, "signal {signal}");
            assert_eq!(direct.stderr, shell.stderr, "signal {signal}");
        }
    }

    #[tokio::test]
    async fn a_missing_program_exits_127_saying_not_found() {
        for command in ["./gone.sh 1", "no-such-plugin-here 1"] {
            let (direct, shell) = both_ways(command).await;
            assert_eq!(direct.faults, shell.faults, "{command}");
            let raw = direct.raw.unwrap();
            assert_eq!(raw.status, "127", "{command}");
            assert!(raw.stderr.contains("not found"), "{}", raw.stderr);
        }
    }

    #[tokio::test]
    async fn a_program_without_execute_permission_fails_as_in_the_shell() {
        let folder = folder();
        let plugin = folder.path.join("plugin.sh");
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let direct = check(&folder, "./plugin.sh 0", Duration::from_secs(10)).await;
        let shell = check_as(
            process::Launch::Shell,
            &folder,
            "./plugin.sh 0",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(direct.faults, shell.faults);
        let raw = direct.raw.unwrap();
        assert_eq!(raw.status, "126");
        assert!(raw.stderr.contains("Permission denied"), "{}", raw.stderr);
    }

    #[tokio::test]
    async fn the_plugin_sees_the_same_environment_and_arguments() {
        for case in ["env", "argv a b"] {
            let (direct, shell) = both_ways(&format!("./plugin.sh {case}")).await;
            let (direct, shell) = (direct.raw.unwrap(), shell.raw.unwrap());
            assert_eq!(direct.stdout, shell.stdout, "{case}");
            assert_eq!(direct.stderr, "", "{case}");
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_plugin_and_its_children_either_way() {
        for launch in [process::Launch::Auto, process::Launch::Shell] {
            let folder = folder();
            let pidfile = folder.path.join("child.pid");
            let command = format!("./plugin.sh linger {}", pidfile.display());
            let out = check_as(launch, &folder, &command, Duration::from_millis(700)).await;
            assert_eq!(out.faults[0].name.as_deref(), Some("monitor-timeout"));
            let pid: i32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let gone = (0..50).any(|_| {
                std::thread::sleep(Duration::from_millis(20));
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map_or(true, |stat| stat.contains(") Z "))
            });
            assert!(
                gone,
                "the plugin's child {pid} outlived the timeout ({launch:?})"
            );
        }
    }
}
