//! `command` alerter: runs a shell command per event.
//!
//! The command gets `CIMAA_ACTION` (`trigger`/`resolve`), `CIMAA_NAME` and
//! `CIMAA_MESSAGE` in its environment. A non-zero exit or running past
//! `alert_timeout` is a failure; on timeout its whole process group is killed,
//! and nothing it started outlives it (see `process`), even when it ignores
//! SIGTERM or the agent gives up on it first.

use async_trait::async_trait;

use super::{Alerter, CommandConfig, Context, Error};
use crate::{env, process};

/// stderr kept for the error message.
const STDERR_CAP: usize = 4096;

/// Runs a command for each alert event.
pub(crate) struct CommandAlerter {
    command: String,
    context: Context,
}

impl CommandAlerter {
    #[must_use]
    pub(crate) fn new(config: &CommandConfig, context: &Context) -> Self {
        CommandAlerter {
            command: config.command.clone(),
            context: context.clone(),
        }
    }

    async fn run(&self, action: &str, name: &str, message: &str) -> Result<(), Error> {
        let vars = [
            (env::ALERT_ACTION, action),
            (env::ALERT_NAME, name),
            (env::ALERT_MESSAGE, message),
        ];
        let output = process::run(
            &self.command,
            &vars,
            None,
            self.context.alert_timeout,
            STDERR_CAP,
        )
        .await
        .map_err(Error::Spawn)?;
        match output.status {
            None => Err(Error::CommandTimedOut),
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(Error::CommandFailed {
                status: status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            }),
        }
    }
}

#[async_trait]
impl Alerter for CommandAlerter {
    async fn trigger(&self, name: &str, message: &str) -> Result<(), Error> {
        self.run("trigger", name, message).await
    }

    async fn resolve(&self, name: &str) -> Result<(), Error> {
        self.run("resolve", name, "").await
    }
}
