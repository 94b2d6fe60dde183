//! Fleet upkeep: `meta-check`, `forget` and `setup-db`.

use serde::Serialize;

use super::{Printer, open_db};
use crate::agent;
use crate::config::Config;
use crate::db;
use crate::error::{CliError, ExitStatus};
use crate::meta;

#[derive(Serialize)]
struct MetaOutput {
    faults: Vec<meta::MetaFault>,
}

pub(super) async fn meta_check(
    config: &Config,
    limits: meta::Limits,
) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    let faults = agent::meta_faults(db.as_ref(), &config.agent.name, limits, now)
        .await
        .map_err(CliError::failure)?;
    Printer::line(&serde_json::to_string(&MetaOutput { faults }).map_err(CliError::failure)?);
    Ok(ExitStatus::Success)
}

pub(super) async fn setup_db(
    config: &Config,
    capacity: Option<db::Capacity>,
) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    db.setup(capacity).await.map_err(CliError::failure)?;
    Ok(ExitStatus::Success)
}

#[expect(clippy::unused_async, reason = "placeholder until #22 builds it")]
pub(super) async fn forget(_config: &Config, _agent: &str) -> Result<ExitStatus, CliError> {
    Err(CliError::usage("forget is not built yet"))
}
