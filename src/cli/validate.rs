//! `cimaa validate [--healthchecks] [FILE...]`.

use std::path::PathBuf;

use super::Printer;
use crate::alerters;
use crate::checks::CheckKind;
use crate::config::{self, Config};
use crate::db;
use crate::error::{CliError, ExitStatus};
use crate::sinks;

pub(super) async fn validate(
    config: &Config,
    _files: &[PathBuf],
    healthchecks: bool,
) -> Result<ExitStatus, CliError> {
    let checks = config::load_check_dir(&config.scope(), &config.agent.directory).map_err(|e| {
        CliError::usage(format!(
            "cannot read check directory `{}`: {e}",
            config.agent.directory.display()
        ))
    })?;
    // Allowed but probably not meant: said, and no reason to fail.
    for warning in &config.warnings {
        eprintln!("warning: {}: {warning}", config.path.display());
    }
    let mut problems = 0;
    for check in &checks {
        if let CheckKind::Broken(message) = &check.kind {
            problems += 1;
            eprintln!("{message}");
        }
    }
    if problems == 0 {
        Printer::line(&format!(
            "ok: {} check(s) in {}",
            checks.len(),
            config.agent.directory.display()
        ));
    }
    let failed = if healthchecks {
        run_healthchecks(config).await
    } else {
        0
    };
    if problems > 0 {
        eprintln!("{problems} problem(s) in {} check(s)", checks.len());
        return Ok(ExitStatus::Usage);
    }
    if failed > 0 {
        eprintln!("{failed} healthcheck(s) failed");
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

/// Reaches the database, every alerter and the metric sink without writing
/// or sending anything; prints `ok: WHAT: ...` for each that works and a
/// line naming what failed for each that does not. Returns the failures.
async fn run_healthchecks(config: &Config) -> usize {
    let mut failed = 0;
    let mut report = |what: &str, outcome: Result<String, String>| match outcome {
        Ok(detail) => Printer::line(&format!("ok: {what}: {detail}")),
        Err(why) => {
            failed += 1;
            eprintln!("{what}: {why}");
        }
    };
    let (what, done) = match &config.database {
        db::DbConfig::Sqlite(sqlite) => (
            format!("database (sqlite `{}`)", sqlite.path.display()),
            "writable",
        ),
        db::DbConfig::Memory => ("database (memory)".to_string(), "usable"),
        db::DbConfig::DynamoDb(_) => ("database (dynamodb)".to_string(), "both tables ACTIVE"),
    };
    let outcome = match db::build(&config.database).await {
        Ok(db) => db.healthcheck().await,
        Err(e) => Err(e),
    };
    report(
        &what,
        outcome
            .map(|()| done.to_string())
            .map_err(|e| crate::error::chain(&e)),
    );
    for (what, outcome) in alerters::healthchecks(&config.alerter, &config.alerters).await {
        report(&what, outcome);
    }
    if let Some(metrics) = &config.metrics {
        let outcome = match sinks::build(metrics).await {
            Ok(sink) => sink.healthcheck().await,
            Err(e) => Err(e),
        };
        report(
            "metric sink",
            outcome
                .map(|()| "reachable".to_string())
                .map_err(|e| crate::error::chain(&e)),
        );
    }
    failed
}
