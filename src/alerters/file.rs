//! `file` alerter: one JSON line per event, appended to a file or stdout.
//!
//! The line is `{"action", "name", "message", "agent", "time"}` (SPEC §7);
//! `time` is epoch seconds. Each event opens, appends and closes the file, so
//! log rotation needs no signal.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Serialize;

use super::{Alerter, Context, Error, FileConfig};

/// Appends alert events as JSON lines.
pub(crate) struct FileAlerter {
    path: PathBuf,
    agent: String,
}

#[derive(Serialize)]
struct Event<'a> {
    action: &'a str,
    name: &'a str,
    message: &'a str,
    agent: &'a str,
    time: i64,
}

impl FileAlerter {
    #[must_use]
    pub(crate) fn new(config: &FileConfig, context: &Context) -> Self {
        FileAlerter {
            path: config.path.clone(),
            agent: context.agent.clone(),
        }
    }

    async fn write(&self, action: &str, name: &str, message: &str) -> Result<(), Error> {
        let event = Event {
            action,
            name,
            message,
            agent: &self.agent,
            time: chrono::Utc::now().timestamp(),
        };
        let mut line = serde_json::to_string(&event).map_err(|e| Error::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push('\n');
        let path = self.path.clone();
        let result = tokio::task::spawn_blocking(move || append(&path, line.as_bytes()))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        result.map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        return out.flush();
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(bytes)
}

#[async_trait]
impl Alerter for FileAlerter {
    async fn trigger(&self, name: &str, message: &str) -> Result<(), Error> {
        self.write("trigger", name, message).await
    }

    async fn resolve(&self, name: &str) -> Result<(), Error> {
        self.write("resolve", name, "").await
    }
}
