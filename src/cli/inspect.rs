//! What the shared database holds: `faults` and `agents` (the squelch
//! commands are in `squelch`).

use super::table::{print_table, relative};
use super::{Printer, open_db, warn_skipped};
use crate::config::Config;
use crate::db::{AgentFault, Db};
use crate::error::{CliError, ExitStatus};
use crate::squelch;

pub(super) async fn faults(
    config: &Config,
    agent: Option<&str>,
    json: bool,
) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    let faults = db.list_faults(agent).await.map_err(CliError::failure)?;
    let in_force = squelches_in_force(db.as_ref(), now).await?;
    warn_skipped(db.as_ref());
    if json {
        let items = crate::web::json::faults(&faults, &in_force);
        Printer::line(&serde_json::to_string_pretty(&items).map_err(CliError::failure)?);
        return Ok(ExitStatus::Success);
    }
    if faults.is_empty() {
        match agent {
            None => Printer::line("no faults"),
            Some(name) => {
                Printer::line(&format!("no faults on {name}"));
                warn_unknown_agent(db.as_ref(), name).await;
            }
        }
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<[String; 8]> = faults
        .iter()
        .map(|AgentFault { agent, fault }| {
            [
                agent.clone(),
                fault.name.clone(),
                fault.severity.to_string(),
                yes_no(in_force.matches(&fault.name)),
                fault.suppressed_by.clone().unwrap_or_else(|| "-".into()),
                yes_no(fault.flapping),
                relative(now - fault.since),
                fault.message.clone(),
            ]
        })
        .collect();
    print_table(
        [
            "AGENT",
            "NAME",
            "SEVERITY",
            "SQUELCHED",
            "SUPPRESSED BY",
            "FLAPPING",
            "SINCE",
            "MESSAGE",
        ],
        [32, 80, 8, 9, 80, 8, 8, 120],
        &rows,
    );
    Ok(ExitStatus::Success)
}

/// A flag column's cell.
fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_owned()
}

/// The squelches in force at `now`, compiled as the agent compiles them
/// (so `faults` marks exactly what the agent keeps from paging); one the
/// agent ignores (invalid or oversized, written by another tool) is named
/// on stderr.
async fn squelches_in_force(db: &dyn Db, now: i64) -> Result<squelch::Matcher, CliError> {
    let regexes = db.get_squelches(now).await.map_err(CliError::failure)?;
    let matcher = squelch::Matcher::new(&regexes);
    for (_, why) in matcher.rejected() {
        eprintln!("warning: ignoring a stored squelch, as the agents do: {why}");
    }
    Ok(matcher)
}

/// With `--agent NAME` and no fault: a name no agent has (a typo, a short
/// name for an FQDN) is worth a word on stderr, since "no faults" alone
/// would read as good news.
async fn warn_unknown_agent(db: &dyn Db, name: &str) {
    if let Ok(agents) = db.agents().await
        && !agents.iter().any(|a| a.name == name)
    {
        eprintln!("warning: no agent named `{name}` has a heartbeat (see `cimaa agents`)");
    }
}

pub(super) async fn agents(config: &Config, json: bool) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let agents = db.agents().await.map_err(CliError::failure)?;
    warn_skipped(db.as_ref());
    if json {
        Printer::line(&serde_json::to_string_pretty(&agents).map_err(CliError::failure)?);
        return Ok(ExitStatus::Success);
    }
    if agents.is_empty() {
        Printer::line("no agents");
        return Ok(ExitStatus::Success);
    }
    let now = chrono::Utc::now().timestamp();
    // VERSION and CHECKS are blank for an agent that does not record them
    // (zc.cimaa, an older cimaa; CHECKS until an agent's first tick).
    let rows: Vec<[String; 4]> = agents
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                relative(now - a.updated),
                a.version.clone().unwrap_or_default(),
                a.checks
                    .map(|checks| checks.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        ["AGENT", "HEARTBEAT", "VERSION", "CHECKS"],
        [64, 10, 32, 8],
        &rows,
    );
    Ok(ExitStatus::Success)
}
