//! Running one check and turning what it did into raw faults and metrics.
//!
//! Owns the check-run result types and `run()`, which dispatches on the
//! check's kind. It does not decide escalation, alerting or storage: those
//! are `fault` (pure) and `agent`. Thresholds are applied by `evaluate()` here
//! because they turn this run's metrics into this run's faults.

pub(crate) mod command;
pub(crate) mod json;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{CheckDef, CheckKind};
use crate::severity::Severity;

/// A fault as a check reports it, before retries and escalation.
#[derive(Clone, Debug, PartialEq)]
pub struct RawFault {
    /// `None` for the check's own fault; else appended as `#name`.
    pub name: Option<String>,
    pub severity: Severity,
    pub message: String,
    /// Whether an ERROR escalates to CRITICAL after the check's retries.
    pub escalates: bool,
}

impl RawFault {
    /// A non-escalating ERROR about the monitor itself (`monitor-*`, `json-error` is not one).
    #[must_use]
    pub fn monitor(name: &str, message: impl Into<String>) -> RawFault {
        RawFault {
            name: Some(format!("monitor-{name}")),
            severity: Severity::ERROR,
            message: message.into(),
            escalates: false,
        }
    }
}

/// A metric as a check reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawMetric {
    pub name: String,
    pub value: f64,
    pub units: String,
    /// When measured; `None` means "at the check run".
    pub timestamp: Option<DateTime<Utc>>,
}

/// What the process did, kept for `cimaa check`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawRun {
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Everything one run of a check produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckOutput {
    pub faults: Vec<RawFault>,
    pub metrics: Vec<RawMetric>,
    pub raw: Option<RawRun>,
}

/// What a check run needs from the agent.
#[derive(Clone, Debug)]
pub struct RunContext<'a> {
    /// Absolute agent configuration path, passed as `CIMAA_CONFIG`.
    pub config_path: &'a Path,
    /// The agent's default check timeout.
    pub default_timeout: Duration,
}

/// Output kept per stream of a command plugin.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// Runs a check once.
///
/// # Panics
/// Only on purpose: when `CIMAA_PANIC_CHECK` names this check (fault
/// injection that tests the agent's crash handling).
pub async fn run(check: &CheckDef, context: &RunContext<'_>) -> CheckOutput {
    let injected =
        std::env::var_os(crate::env::PANIC_CHECK).is_some_and(|name| name == check.name.as_str());
    assert!(
        !injected,
        "{} asked this check to panic",
        crate::env::PANIC_CHECK
    );
    let timeout = check.timeout.unwrap_or(context.default_timeout);
    match &check.kind {
        CheckKind::Command(command) => {
            // Relative plugin paths in a check file are relative to that file.
            command::run(
                command,
                check.file.parent(),
                check.nagios_performance,
                timeout,
                context.config_path,
            )
            .await
        }
        CheckKind::Broken(message) => CheckOutput {
            faults: vec![RawFault {
                name: None,
                severity: Severity::CRITICAL,
                message: message.clone(),
                escalates: true,
            }],
            ..CheckOutput::default()
        },
    }
}

/// Adds the check's threshold faults to its output.
///
/// `was_failing(metric)` tells whether the metric's stored fault is ERROR or
/// CRITICAL, which keeps a `clear` threshold sticky across runs and restarts.
pub fn apply_thresholds(
    check: &CheckDef,
    output: &mut CheckOutput,
    was_failing: &dyn Fn(&str) -> bool,
) {
    if check.thresholds.is_empty() {
        return;
    }
    let metrics = &output.metrics;
    let value = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    let faults = check.thresholds.evaluate(&value, was_failing);
    output.faults.extend(faults.into_iter().map(|f| RawFault {
        name: Some(f.metric),
        severity: f.severity,
        message: f.message,
        escalates: f.escalates,
    }));
}
