//! Logging and error reports: tracing-subscriber to stderr (text or JSON),
//! and Sentry when `agent.sentry_dsn` is set.
//!
//! The log level comes from `agent.logging` (a level or filter directives);
//! `RUST_LOG` overrides it. With a DSN, ERROR events become Sentry events and
//! INFO/WARN events their breadcrumbs, panics are reported, and every event
//! carries the agent name as a tag (checks add their name: see `agent`).
//! Without a DSN no Sentry client, layer or thread exists.

use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
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
    let filter = std::env::var(env::RUST_LOG)
        .ok()
        .and_then(|value| EnvFilter::try_new(value).ok())
        .or_else(|| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let logs = match format {
        LogFormat::Text => fmt::layer()
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
