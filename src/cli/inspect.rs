//! What the shared database holds: `faults`, `agents`, `squelches`, and the
//! squelch changes `squelch` and `unsquelch`.

use serde::Serialize;

use super::table::{print_table, relative};
use super::{Printer, open_db, warn_skipped};
use crate::config::Config;
use crate::db::{AgentFault, Db, Squelch};
use crate::env;
use crate::error::{CliError, ExitStatus};
use crate::squelch;

#[derive(Serialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the documented fields of `faults --json` (SPEC §1)"
)]
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
    /// Part of an alert storm: folded into `AGENT#storm`, not paged on its own.
    storm: bool,
    /// The full name of the failing dependency (or `AGENT#dns`) that keeps
    /// the fault from paging (SPEC §11); null when none.
    suppressed_by: Option<&'a str>,
    /// A squelch in force matches the name, so the fault does not page.
    squelched: bool,
}

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
                storm: fault.storm,
                suppressed_by: fault.suppressed_by.as_deref(),
                squelched: in_force.matches(&fault.name),
            })
            .collect();
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
    let rows: Vec<[String; 7]> = faults
        .iter()
        .map(|AgentFault { agent, fault }| {
            let mark = if in_force.matches(&fault.name) {
                "yes"
            } else {
                "no"
            };
            [
                agent.clone(),
                fault.name.clone(),
                fault.severity.to_string(),
                mark.to_string(),
                fault.suppressed_by.clone().unwrap_or_else(|| "-".into()),
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
            "SINCE",
            "MESSAGE",
        ],
        [32, 80, 8, 9, 80, 8, 120],
        &rows,
    );
    Ok(ExitStatus::Success)
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
    // Squelching a regex again replaces its squelch (the way to extend one):
    // say what it replaces, since it may be a colleague's permanent one.
    let replaced = db.get_squelch_details().await.ok().and_then(|list| {
        list.into_iter()
            .find(|s| s.regex == record.regex && s.active(now))
    });
    db.squelch(&record).await.map_err(CliError::failure)?;
    if let Some(old) = replaced {
        eprintln!(
            "note: replaced the squelch `{}` that {} set {} ({}; {})",
            squelch::excerpt(&old.regex),
            old.user,
            relative(now - old.time),
            kind(&old, now),
            old.reason
        );
    }
    // The squelch is stored: failing to count now must not read as "not
    // squelched" (exit 1 would invite a retry), so it is only a warning.
    match db.list_faults(None).await {
        Ok(faults) => {
            warn_skipped(db.as_ref());
            let new = squelch::Matcher::new(std::slice::from_ref(&record.regex));
            let count = faults.iter().filter(|f| new.matches(&f.fault.name)).count();
            Printer::line(&match_count(count));
        }
        Err(e) => eprintln!(
            "warning: squelch stored, but cannot count the current faults it matches: {}",
            crate::error::chain(&e)
        ),
    }
    Ok(ExitStatus::Success)
}

/// A squelch's KIND: `permanent`, `expires in 1h59m` or `until removed`
/// (neither: the meta-check reports it once it is older than `-s`).
fn kind(squelch: &Squelch, now: i64) -> String {
    match (squelch.permanent, squelch.expires) {
        (true, _) => "permanent".to_string(),
        (false, Some(at)) => format!("expires in {}", crate::meta::duration(at - now)),
        (false, None) => "until removed".to_string(),
    }
}

/// SPEC §12's words for how many current faults a new squelch matches.
fn match_count(matched: usize) -> String {
    match matched {
        0 => "matches no current fault".to_string(),
        1 => "squelched 1 current fault".to_string(),
        n => format!("squelched {n} current faults"),
    }
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
    if list.is_empty() {
        Printer::line("no squelches");
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|s| {
            [
                s.regex.clone(),
                s.user.clone(),
                relative(now - s.time),
                kind(s, now),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_match_count_reads_as_spec_12_words_it() {
        let cases = [
            (0, "matches no current fault"),
            (1, "squelched 1 current fault"),
            (2, "squelched 2 current faults"),
            (31, "squelched 31 current faults"),
        ];
        for (matched, want) in cases {
            assert_eq!(match_count(matched), want);
        }
    }
}
