//! Logging and error reports: tracing-subscriber to stderr (text or JSON),
//! and Sentry when `agent.sentry_dsn` is set.
//!
//! The log level comes from `agent.logging` (a level or filter directives);
//! `RUST_LOG` overrides it. With a DSN, ERROR events become Sentry events and
//! INFO/WARN events their breadcrumbs, panics are reported, and every event
//! carries the agent name as a tag (checks add their name: see `agent`).
//! Without a DSN no Sentry client, layer or thread exists.
//!
//! The text format escapes control characters in every field value (see
//! `EscapedFields`): plugin output, check names and database rows come from
//! outside, and a raw newline or terminal escape in them would forge log
//! lines or rewrite the operator's terminal. The JSON format escapes them
//! already.

use std::fmt::{self as text, Write as _};
use std::io::IsTerminal;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::LogFormat;
use crate::env;

/// How long exiting waits for queued Sentry events.
const SENTRY_FLUSH: Duration = Duration::from_secs(2);

/// Keeps Sentry alive; dropping it flushes queued events.
pub(crate) struct Telemetry {
    /// Held only for its `Drop`, which flushes queued events.
    _sentry: Option<sentry::ClientInitGuard>,
}

/// Starts a Sentry client for `dsn` with the agent's name as a tag.
fn start_sentry(dsn: &str, agent: &str) -> Option<sentry::ClientInitGuard> {
    // An invalid DSN would panic inside `sentry::init`; config validation
    // refuses one, and this check keeps that promise local.
    let dsn: sentry::types::Dsn = dsn.parse().ok()?;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = sentry::release_name!();
    options.shutdown_timeout = SENTRY_FLUSH;
    let guard = sentry::init(options);
    let agent = agent.to_string();
    sentry::configure_scope(|scope| scope.set_tag("agent", agent));
    Some(guard)
}

/// Installs logging (and Sentry when `sentry_dsn` is given).
#[must_use]
pub(crate) fn init(
    directives: &str,
    format: LogFormat,
    sentry_dsn: Option<&str>,
    agent: &str,
) -> Telemetry {
    let sentry = sentry_dsn.and_then(|dsn| start_sentry(dsn, agent));
    let chosen = std::env::var(env::RUST_LOG)
        .ok()
        .filter(|value| EnvFilter::try_new(value).is_ok())
        .unwrap_or_else(|| directives.to_string());
    let mut filter = EnvFilter::try_new(&chosen).unwrap_or_else(|_| EnvFilter::new("info"));
    // aws-config's per-request warnings repeat, as Debug dumps, what the
    // AWS backends say in one sentence (`aws`): kept out unless asked for.
    if !chosen.contains("aws_config") {
        for directive in crate::aws::LOG_DIRECTIVES {
            if let Ok(directive) = directive.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let ansi = std::io::stderr().is_terminal();
    let logs = match format {
        LogFormat::Text => fmt::layer()
            .fmt_fields(EscapedFields)
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    }
    .with_filter(filter);
    let reports = sentry.is_some().then(|| {
        sentry::integrations::tracing::ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(
                sentry::integrations::tracing::BreadcrumbLayer::new()
                    .with_filter(LevelFilter::INFO),
            )
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(reports)
        .try_init();
    Telemetry { _sentry: sentry }
}

/// Reports an error that stops the agent before it starts, to the DSN of a
/// configuration that could not be loaded, and waits for the report.
pub(crate) fn report_startup_error(dsn: &str, agent: &str, message: &str) {
    if let Some(guard) = start_sentry(dsn, agent) {
        sentry::capture_message(message, sentry::Level::Error);
        drop(guard);
    }
}

/// Field formatter of the text format: `name=value` pairs like tracing's
/// default, with control characters in names and values escaped.
struct EscapedFields;

impl<'w> MakeVisitor<Writer<'w>> for EscapedFields {
    type Visitor = EscapedVisitor<'w>;

    fn make_visitor(&self, writer: Writer<'w>) -> Self::Visitor {
        EscapedVisitor {
            writer,
            empty: true,
            result: Ok(()),
        }
    }
}

struct EscapedVisitor<'w> {
    writer: Writer<'w>,
    /// Nothing written yet, so no separating space is due.
    empty: bool,
    result: text::Result,
}

impl Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Like tracing's default: the message bare, other strings quoted.
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn text::Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.empty { "" } else { " " };
        self.empty = false;
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let mut out = Escape(&mut self.writer);
        self.result = if name == "message" {
            write!(out, "{separator}{value:?}")
        } else {
            write!(out, "{separator}{name}={value:?}")
        };
    }
}

impl VisitOutput<text::Result> for EscapedVisitor<'_> {
    fn finish(self) -> text::Result {
        self.result
    }
}

impl VisitFmt for EscapedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn text::Write {
        &mut self.writer
    }
}

/// Writes through to `0`, escaping control characters (C0, DEL, C1) as
/// `\n`, `\r`, `\t` or `\u{1b}`.
struct Escape<'a, W: text::Write>(&'a mut W);

impl<W: text::Write> text::Write for Escape<'_, W> {
    fn write_str(&mut self, s: &str) -> text::Result {
        let mut rest = s;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            // `find` returned an index, so a character is there.
            let Some(c) = chars.next() else { break };
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        write!(Escape(&mut out), "{s}").unwrap();
        out
    }

    // See: #18
    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escaped("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(
            escaped("\u{1b}[31mred\u{7f}\u{9b}"),
            "\\u{1b}[31mred\\u{7f}\\u{9b}"
        );
        assert_eq!(escaped("plain é ü 🦀 \\n"), "plain é ü 🦀 \\n");
    }
}
