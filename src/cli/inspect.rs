//! What the shared database holds: `faults`, `agents`, `squelches`, and the
//! squelch changes `squelch` and `unsquelch`.

use serde::Serialize;

use super::table::{print_table, relative};
use super::{Printer, open_db, warn_skipped};
use crate::config::Config;
use crate::db::AgentFault;
use crate::env;
use crate::error::{CliError, ExitStatus};
use crate::squelch;

#[derive(Serialize)]
struct FaultJson<'a> {
    agent: &'a str,
    name: &'a str,
    severity: i64,
    message: &'a str,
    since: i64,
    updated: i64,
    triggered: bool,
    escalates: bool,
    attempts: u32,
}

pub(super) async fn faults(
    config: &Config,
    agent: Option<&str>,
    json: bool,
) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let faults = db.list_faults(agent).await.map_err(CliError::failure)?;
    warn_skipped(db.as_ref());
    if json {
        let items: Vec<FaultJson> = faults
            .iter()
            .map(|AgentFault { agent, fault }| FaultJson {
                agent,
                name: &fault.name,
                severity: fault.severity.0,
                message: &fault.message,
                since: fault.since,
                updated: fault.updated,
                triggered: fault.triggered,
                escalates: fault.escalates,
                attempts: fault.attempts,
            })
            .collect();
        Printer::line(&serde_json::to_string_pretty(&items).map_err(CliError::failure)?);
        return Ok(ExitStatus::Success);
    }
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<[String; 5]> = faults
        .iter()
        .map(|AgentFault { agent, fault }| {
            [
                agent.clone(),
                fault.name.clone(),
                fault.severity.to_string(),
                relative(now - fault.since),
                fault.message.clone(),
            ]
        })
        .collect();
    print_table(
        ["AGENT", "NAME", "SEVERITY", "SINCE", "MESSAGE"],
        [32, 80, 8, 8, 120],
        &rows,
    );
    Ok(ExitStatus::Success)
}

pub(super) async fn agents(config: &Config, json: bool) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let agents = db.agents().await.map_err(CliError::failure)?;
    warn_skipped(db.as_ref());
    if json {
        Printer::line(&serde_json::to_string_pretty(&agents).map_err(CliError::failure)?);
        return Ok(ExitStatus::Success);
    }
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<[String; 2]> = agents
        .iter()
        .map(|a| [a.name.clone(), relative(now - a.updated)])
        .collect();
    print_table(["AGENT", "HEARTBEAT"], [64, 10], &rows);
    Ok(ExitStatus::Success)
}

pub(super) async fn add_squelch(
    config: &Config,
    regex: &str,
    reason: &str,
    permanent: bool,
    expires: Option<&str>,
) -> Result<ExitStatus, CliError> {
    let expires_in = expires
        .map(squelch::parse_duration)
        .transpose()
        .map_err(CliError::usage)?;
    let user = squelch::user(
        crate::host::is_root(),
        std::env::var(env::SUDO_USER).ok().as_deref(),
        crate::host::user_name().as_deref(),
    );
    let now = chrono::Utc::now().timestamp();
    let record = squelch::new_squelch(regex, reason, &user, permanent, expires_in, now)
        .map_err(CliError::usage)?;
    let db = open_db(config).await?;
    db.squelch(&record).await.map_err(CliError::failure)?;
    Ok(ExitStatus::Success)
}

pub(super) async fn unsquelch(config: &Config, regex: &str) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    if db.unsquelch(regex).await.map_err(CliError::failure)? {
        Ok(ExitStatus::Success)
    } else {
        Err(CliError::failure(format!(
            "no squelch `{}` (see `cimaa squelches --json` for the exact regexes)",
            squelch::excerpt(regex)
        )))
    }
}

#[derive(Serialize)]
struct SquelchJson<'a> {
    regex: &'a str,
    reason: &'a str,
    user: &'a str,
    time: i64,
    permanent: bool,
    expires: Option<i64>,
}

pub(super) async fn squelches(config: &Config, json: bool) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    let mut list = db.get_squelch_details().await.map_err(CliError::failure)?;
    warn_skipped(db.as_ref());
    list.retain(|s| s.active(now));
    if json {
        let items: Vec<SquelchJson> = list
            .iter()
            .map(|s| SquelchJson {
                regex: &s.regex,
                reason: &s.reason,
                user: &s.user,
                time: s.time,
                permanent: s.permanent,
                expires: s.expires,
            })
            .collect();
        Printer::line(&serde_json::to_string_pretty(&items).map_err(CliError::failure)?);
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|s| {
            let kind = match (s.permanent, s.expires) {
                (true, _) => "permanent".to_string(),
                (false, Some(at)) => {
                    format!("expires in {}", relative(at - now).trim_end_matches(" ago"))
                }
                (false, None) => String::new(),
            };
            [
                s.regex.clone(),
                s.user.clone(),
                relative(now - s.time),
                kind,
                s.reason.clone(),
            ]
        })
        .collect();
    print_table(
        ["REGEX", "USER", "SET", "KIND", "REASON"],
        [60, 24, 8, 20, 80],
        &rows,
    );
    Ok(ExitStatus::Success)
}
