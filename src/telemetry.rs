//! Logging: tracing-subscriber to stderr, text or JSON.
//!
//! The level comes from `agent.logging` (a level or filter directives);
//! `RUST_LOG` overrides it. CLI commands other than `agent` log warnings only
//! unless `RUST_LOG` says otherwise, so their stdout stays data.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::env;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(directives: &str, format: LogFormat) {
    let filter = std::env::var(env::RUST_LOG)
        .ok()
        .and_then(|value| EnvFilter::try_new(value).ok())
        .or_else(|| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
