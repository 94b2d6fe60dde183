//! Command checks: Nagios plugins and JSON plugins (SPEC §4).
//!
//! `run` executes the plugin through `process` (own process group, killed on
//! timeout, output capped); `interpret` is the pure part that turns exit
//! status and output into faults and metrics.

use std::borrow::Cow;
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
    let config = config_path.to_string_lossy();
    let mut vars = vec![(env::CONFIG, config.as_ref())];
    if let Some(binary) = process::own_binary() {
        vars.push((env::BINARY, binary));
    }
    let line = shell_line(command);
    // One byte over the cap tells a cut-off output from one that fits.
    match process::run(&line, &vars, cwd, timeout, OUTPUT_CAP + 1).await {
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
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
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

/// The line given to `/bin/sh -c`: a plain plugin invocation gets `exec`.
///
/// dash forks once more before running an external program, so every
/// check would cost two processes. When the command is one program named by
/// a path with plain arguments (no quoting, variables, globs, redirections,
/// separators or comments), `exec` makes the shell become the plugin: same
/// behaviour, same process group, one fork fewer (BENCHMARKS.md). Anything
/// else runs as written. Running plugins without the shell was the faster
/// alternative, but SPEC §4 promises `/bin/sh -c`.
#[must_use]
pub(crate) fn shell_line(command: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_/.,:=+%@- \t".contains(c);
    let trimmed = command.trim();
    let program = trimmed.split_whitespace().next().unwrap_or_default();
    if trimmed.chars().all(plain) && program.contains('/') && !program.contains('=') {
        Cow::Owned(format!("exec {trimmed}"))
    } else {
        Cow::Borrowed(command)
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
    fn plain_plugin_invocations_are_execed_by_the_shell() {
        let cases = [
            (
                "/usr/lib/nagios/plugins/check_dummy 0 OK",
                "exec /usr/lib/nagios/plugins/check_dummy 0 OK",
            ),
            (
                "./plugins/disk.sh -w 80% -c=90",
                "exec ./plugins/disk.sh -w 80% -c=90",
            ),
            ("echo OK", "echo OK"),
            ("/bin/check -v\n", "exec /bin/check -v"),
            ("/bin/check a; echo b", "/bin/check a; echo b"),
            ("/bin/check $HOME", "/bin/check $HOME"),
            ("/bin/check 'a b'", "/bin/check 'a b'"),
            ("/bin/check > /dev/null", "/bin/check > /dev/null"),
            ("/bin/check *", "/bin/check *"),
            ("X=/a /bin/check", "X=/a /bin/check"),
            ("/bin/check | tail", "/bin/check | tail"),
        ];
        for (command, want) in cases {
            assert_eq!(shell_line(command), want, "{command}");
        }
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
