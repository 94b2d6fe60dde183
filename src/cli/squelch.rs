//! The squelch lifecycle's commands (SPEC §1, §12): `squelch` (with
//! `--dry-run` and the `squelch:` limits), `unsquelch` and `squelches`.
//!
//! Each reads the stored squelches first and removes the expired ones on
//! the way (`agent::expire_squelches`, which records them); an added or
//! removed squelch is recorded in the history with the user and reason.

use super::table::{print_rows, print_table, relative};
use super::{Printer, open_db, warn_skipped};
use crate::agent;
use crate::config::Config;
use crate::db::{AgentFault, Db, Squelch};
use crate::env;
use crate::error::{CliError, ExitStatus};
use crate::history::{Event, Record};
use crate::squelch;

/// What `cimaa squelch` was asked.
pub(super) struct Request<'a> {
    pub regex: &'a str,
    pub reason: Option<&'a str>,
    pub permanent: bool,
    pub expires: Option<&'a str>,
    pub dry_run: bool,
}

/// Who runs this command: `$SUDO_USER` under sudo, else the login name.
fn current_user() -> String {
    squelch::user(
        crate::host::is_root(),
        std::env::var(env::SUDO_USER).ok().as_deref(),
        crate::host::user_name().as_deref(),
    )
}

/// The squelches stored, the expired ones removed (and recorded) on the way.
async fn squelches_in_force(
    db: &dyn Db,
    config: &Config,
    now: i64,
) -> Result<Vec<Squelch>, CliError> {
    let stored = db.get_squelch_details().await.map_err(CliError::failure)?;
    Ok(agent::expire_squelches(db, stored, &config.agent.name, now).await)
}

/// Appends `record` to the history; a failure is a warning, since the
/// change it records is made.
async fn record(db: &dyn Db, record: Record) {
    if let Err(e) = db.append_history(std::slice::from_ref(&record)).await {
        eprintln!(
            "warning: cannot record `{}` in the history: {}",
            record.event,
            crate::error::chain(&e)
        );
    }
}

/// `cimaa squelch`: checks the regex and the `squelch:` limits (a refusal
/// stores nothing, exit 2), then lists (`--dry-run`) or stores the squelch,
/// records it and says how many current faults it matches.
pub(super) async fn add_squelch(
    config: &Config,
    request: &Request<'_>,
) -> Result<ExitStatus, CliError> {
    let asked = request
        .expires
        .map(squelch::parse_duration)
        .transpose()
        .map_err(CliError::usage)?;
    let lifetime = config
        .squelch
        .lifetime(
            request.permanent,
            asked,
            &format!("`{}`", config.path.display()),
        )
        .map_err(CliError::usage)?;
    if request.dry_run {
        let regex = squelch::check_regex(request.regex).map_err(CliError::usage)?;
        return dry_run(config, &regex, lifetime).await;
    }
    let user = current_user();
    let now = chrono::Utc::now().timestamp();
    let new = squelch::new_squelch(
        request.regex,
        request.reason.unwrap_or_default(),
        &user,
        request.permanent,
        lifetime,
        now,
    )
    .map_err(CliError::usage)?;
    let db = open_db(config).await?;
    // Squelching a regex again replaces its squelch (the way to extend one):
    // say what it replaces, since it may be a colleague's permanent one.
    let replaced = squelches_in_force(db.as_ref(), config, now)
        .await
        .ok()
        .and_then(|list| list.into_iter().find(|s| s.regex == new.regex));
    db.squelch(&new).await.map_err(CliError::failure)?;
    let mut added = Record::new(now, &config.agent.name, &new.regex, Event::SquelchAdded);
    added.message = Some(new.reason.clone());
    added.user = Some(new.user.clone());
    record(db.as_ref(), added).await;
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
    if asked.is_none()
        && let Some(expires) = lifetime
    {
        eprintln!(
            "note: expires in {} (`squelch.default_expiry` of `{}`)",
            crate::meta::duration(expires),
            config.path.display()
        );
    }
    // The squelch is stored: failing to count now must not read as "not
    // squelched" (exit 1 would invite a retry), so it is only a warning.
    match db.list_faults(None).await {
        Ok(faults) => {
            warn_skipped(db.as_ref());
            let regex = squelch::compile(&new.regex).map_err(CliError::usage)?;
            let count = faults
                .iter()
                .filter(|f| regex.is_match(&f.fault.name))
                .count();
            Printer::line(&match_count(count));
        }
        Err(e) => eprintln!(
            "warning: squelch stored, but cannot count the current faults it matches: {}",
            crate::error::chain(&e)
        ),
    }
    Ok(ExitStatus::Success)
}

/// `squelch --dry-run`: one line per current fault the regex matches, on
/// any agent and of any severity (agent, full name, severity, message);
/// the count and the lifetime the squelch would get go to stderr.
async fn dry_run(
    config: &Config,
    regex: &regex::Regex,
    lifetime: Option<i64>,
) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let faults = db.list_faults(None).await.map_err(CliError::failure)?;
    warn_skipped(db.as_ref());
    let matched: Vec<&AgentFault> = faults
        .iter()
        .filter(|f| regex.is_match(&f.fault.name))
        .collect();
    let rows: Vec<[String; 4]> = matched
        .iter()
        .map(|AgentFault { agent, fault }| {
            [
                agent.clone(),
                fault.name.clone(),
                fault.severity.to_string(),
                fault.message.clone(),
            ]
        })
        .collect();
    print_rows([32, 80, 8, 120], &rows);
    let count = match matched.len() {
        0 => "matches no current fault".to_owned(),
        1 => "would squelch 1 current fault".to_owned(),
        n => format!("would squelch {n} current faults"),
    };
    let lifetime = lifetime.map_or_else(
        || "no expiry".to_owned(),
        |seconds| format!("expires in {}", crate::meta::duration(seconds)),
    );
    eprintln!("dry run: {count} ({lifetime}); nothing stored");
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

/// `cimaa unsquelch`: removes the squelch and records who removed it.
pub(super) async fn unsquelch(config: &Config, regex: &str) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    // Read first, for the reason the record keeps; an expired one is
    // removed and recorded as expired, and is then not there to remove.
    let stored = squelches_in_force(db.as_ref(), config, now)
        .await
        .ok()
        .and_then(|list| list.into_iter().find(|s| s.regex == regex));
    if !db.unsquelch(regex).await.map_err(CliError::failure)? {
        return Err(CliError::failure(format!(
            "no squelch `{}` (see `cimaa squelches --json` for the exact regexes)",
            squelch::excerpt(regex)
        )));
    }
    let mut removed = Record::new(now, &config.agent.name, regex, Event::SquelchRemoved);
    removed.message = stored.map(|s| s.reason);
    removed.user = Some(current_user());
    record(db.as_ref(), removed).await;
    Ok(ExitStatus::Success)
}

/// `cimaa squelches`: the squelches in force, each with the number of
/// current faults it matches.
pub(super) async fn squelches(config: &Config, json: bool) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    let list = squelches_in_force(db.as_ref(), config, now).await?;
    let faults = if list.is_empty() {
        Vec::new()
    } else {
        db.list_faults(None).await.map_err(CliError::failure)?
    };
    warn_skipped(db.as_ref());
    let counts = crate::web::json::match_counts(&list, &faults);
    if json {
        let items = crate::web::json::squelches(&list, &counts);
        Printer::line(&serde_json::to_string_pretty(&items).map_err(CliError::failure)?);
        return Ok(ExitStatus::Success);
    }
    if list.is_empty() {
        Printer::line("no squelches");
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<[String; 6]> = list
        .iter()
        .zip(&counts)
        .map(|(s, matches)| {
            [
                s.regex.clone(),
                s.user.clone(),
                relative(now - s.time),
                kind(s, now),
                matches.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                s.reason.clone(),
            ]
        })
        .collect();
    print_table(
        ["REGEX", "USER", "SET", "KIND", "MATCHES", "REASON"],
        [60, 24, 8, 20, 7, 80],
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
