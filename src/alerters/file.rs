//! `file` alerter: one JSON line per event, appended to a file or stdout.
//!
//! The line is `{"action", "name", "message", "agent", "time"}` (SPEC §7);
//! `time` is epoch seconds. Each event opens, appends and closes the file, so
//! log rotation needs no signal; a missing folder is created.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use nix::unistd::AccessFlags;
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

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        return out.flush();
    }
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    let mut file = match open() {
        // The folder is missing (first run, or removed by a cleanup): make it.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder)?;
            }
            open()?
        }
        opened => opened?,
    };
    file.write_all(bytes)
}

/// Checks that alerts can be appended to `path` without writing any: an
/// existing file opens for appending; else the nearest existing folder on
/// its way is writable (the missing folders are created at the first alert).
///
/// # Errors
/// What failed, as one lower-case sentence.
pub(crate) fn healthcheck(path: &Path) -> Result<String, String> {
    if path.as_os_str() == "-" {
        return Ok("writes to standard output".into());
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open `{}` for appending: {e}", path.display()))?;
        return Ok(format!("`{}` writable", path.display()));
    }
    let folder = path
        .ancestors()
        .skip(1)
        .map(|f| {
            if f.as_os_str().is_empty() {
                Path::new(".")
            } else {
                f
            }
        })
        .find(|f| f.exists())
        .unwrap_or(Path::new("/"));
    if !folder.is_dir() {
        return Err(format!(
            "cannot create `{}`: `{}` is not a folder",
            path.display(),
            folder.display()
        ));
    }
    nix::unistd::access(folder, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        format!(
            "cannot create `{}`: folder `{}` is not writable: {}",
            path.display(),
            folder.display(),
            e.desc()
        )
    })?;
    Ok(format!(
        "`{}` can be created in `{}`",
        path.display(),
        folder.display()
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    // See: #18
    #[tokio::test]
    async fn a_missing_folder_is_created_at_the_first_alert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/deeper/alerts.jsonl");
        let config = FileConfig {
            path: path.clone(),
            fallback: None,
            quiet_hours: None,
            renotify: None,
        };
        let context = Context {
            agent: "a".into(),
            alert_timeout: std::time::Duration::from_secs(1),
        };
        assert!(healthcheck(&path).is_ok(), "the folder can be created");
        FileAlerter::new(&config, &context)
            .trigger("//a/b/c", "m")
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""action":"trigger""#), "{text}");
    }

    // See: #18
    #[test]
    fn a_path_under_a_file_is_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        let error = healthcheck(&file.join("alerts.jsonl")).unwrap_err();
        assert!(error.contains("is not a folder"), "{error}");
        assert!(healthcheck(&file).is_ok());
        assert!(healthcheck(Path::new("-")).is_ok());
    }
}
