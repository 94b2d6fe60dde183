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

/// The error and its chain as the user sees it: `error: ` once, then a
/// `  Caused by: ` line per cause.
///
/// As in `chain`, a cause whose text the line above already ends with is
/// skipped (`cannot send: timed out` then `Caused by: timed out` says it
/// twice); and a leading `error: ` of the message itself (a library's or a
/// plugin's text passed on as is) is dropped, so the user never reads
/// `error: error: ...`.
#[must_use]
pub fn render(error: &(dyn std::error::Error + 'static)) -> String {
    let first = error.to_string();
    let mut text = format!("error: {}", without_prefix(&first));
    let mut previous = first;
    for cause in causes(error.source()) {
        let cause_text = cause.to_string();
        if !previous.ends_with(&cause_text) {
            let _ = write!(text, "\n  Caused by: {cause_text}");
        }
        previous = cause_text;
    }
    text
}

/// `message` without a leading `error:` (any case) and the spaces after it.
fn without_prefix(message: &str) -> &str {
    match message.get(..6) {
        Some(head) if head.eq_ignore_ascii_case("error:") => message[6..].trim_start(),
        _ => message,
    }
}

/// An error and its causes on one line, joined by `: `
/// (`dispatch failure: io error: connection refused`).
///
/// The one formatter for errors that go into log lines and fault messages
/// (`render` is for the user's terminal). A cause whose text the message
/// already ends with is skipped: several libraries (the AWS SDK, hyper)
/// repeat their source in their own message.
#[must_use]
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    push_causes(&mut text, error.source());
    text
}

/// Appends `: cause` for each cause in turn, skipping repeats (see `chain`).
pub(crate) fn push_causes(text: &mut String, source: Option<&(dyn std::error::Error + 'static)>) {
    for cause in causes(source) {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
    }
}

/// The causes from `first` down, for callers that pick among them.
pub(crate) fn causes<'a>(
    first: Option<&'a (dyn std::error::Error + 'static)>,
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(first, |cause| cause.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, &text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .unwrap()
    }

    #[test]
    fn a_chain_joins_every_cause_on_one_line() {
        let error = layers(&["dispatch failure", "io error", "connection refused"]);
        assert_eq!(
            chain(&error),
            "dispatch failure: io error: connection refused"
        );
    }

    #[test]
    fn a_cause_the_message_already_ends_with_is_not_repeated() {
        let error = layers(&["request failed: timed out", "timed out"]);
        assert_eq!(chain(&error), "request failed: timed out");
    }

    // See: #22
    #[test]
    fn the_terminal_rendering_says_error_once() {
        let cases: [(&[&'static str], &str); 4] = [
            (&["error: unclosed group"], "error: unclosed group"),
            (&["Error: unclosed group"], "error: unclosed group"),
            (
                &["cannot send: timed out", "timed out"],
                "error: cannot send: timed out",
            ),
            (
                &["cannot send", "timed out", "timed out"],
                "error: cannot send\n  Caused by: timed out",
            ),
        ];
        for (texts, want) in cases {
            assert_eq!(render(&layers(texts)), want, "{texts:?}");
        }
    }

    #[test]
    fn the_terminal_rendering_puts_each_cause_on_its_own_line() {
        let error = layers(&["cannot open", "no such file"]);
        assert_eq!(
            render(&error),
            "error: cannot open\n  Caused by: no such file"
        );
    }
}
