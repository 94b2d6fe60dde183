//! `log` sink: one JSON line per metric, to the log (target `metrics`) or a file.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{Error, LogConfig, MetricRecord, SendError, Sink};

/// Writes metrics as JSON lines.
pub(crate) struct LogSink {
    path: Option<PathBuf>,
}

impl LogSink {
    #[must_use]
    pub(crate) fn new(config: &LogConfig) -> Self {
        LogSink {
            path: config.path.clone(),
        }
    }
}

#[async_trait]
impl Sink for LogSink {
    async fn send(&self, batch: &[MetricRecord]) -> Result<(), SendError> {
        let mut text = String::new();
        for record in batch {
            // A record of plain strings and a float always serializes.
            if let Ok(line) = serde_json::to_string(record) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let Some(path) = self.path.clone() else {
            for line in text.lines() {
                tracing::info!(target: "metrics", "{line}");
            }
            return Ok(());
        };
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&write_path)?;
            file.write_all(text.as_bytes())
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|source| Error::Write { path, source }.into())
    }
}
