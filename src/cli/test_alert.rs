//! `cimaa test-alert [NAME]`: a test trigger and its resolve through each alerter.

use crate::config::Config;
use crate::error::{CliError, ExitStatus};

#[expect(clippy::unused_async, reason = "placeholder until #22 builds it")]
pub(super) async fn test_alert(
    _config: &Config,
    _name: Option<&str>,
) -> Result<ExitStatus, CliError> {
    Err(CliError::usage("test-alert is not built yet"))
}
