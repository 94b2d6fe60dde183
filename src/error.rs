//! Exit codes and how errors reach the user.
//!
//! One enum defines the exit codes of SPEC §1; `report` prints an error and
//! its causes once, in main: `error: …` then `  Caused by: …` lines.

use std::fmt::Write as _;
use std::process::ExitCode;

/// How the process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done.
    Success,
    /// 1: a runtime failure (database unreachable, ...).
    Failure,
    /// 2: bad usage or configuration.
    Usage,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Usage => ExitCode::from(2),
        }
    }
}

/// An error for the user, with the exit status it implies.
#[derive(Debug)]
pub struct CliError {
    pub status: ExitStatus,
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl CliError {
    /// A usage or configuration error (exit 2).
    pub fn usage(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CliError {
            status: ExitStatus::Usage,
            error: error.into(),
        }
    }

    /// A runtime failure (exit 1).
    pub fn failure(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CliError {
            status: ExitStatus::Failure,
            error: error.into(),
        }
    }
}

/// The error and its chain as the user sees it.
#[must_use]
pub fn render(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, "\n  Caused by: {cause}");
        source = cause.source();
    }
    text
}
