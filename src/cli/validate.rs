//! `cimaa validate [--healthchecks] [FILE...]`: the agent configuration,
//! then every check file of the directory or just the FILEs (a deploy
//! pipeline's gate), each command check's program (`program`), and
//! with `--healthchecks` the database, alerters and metric sink.

use std::path::{Path, PathBuf};

use super::Printer;
use crate::alerters;
use crate::checks::{CheckDef, CheckKind};
use crate::config::{self, Config};
use crate::db;
use crate::error::{CliError, ExitStatus};
use crate::program;
use crate::sinks;

pub(super) async fn validate(
    config: &Config,
    files: &[PathBuf],
    healthchecks: bool,
) -> Result<ExitStatus, CliError> {
    // Allowed but probably not meant: said, and no reason to fail.
    for warning in &config.warnings {
        eprintln!("warning: {}: {warning}", config.path.display());
    }
    let (checks, mut problems, place) = if files.is_empty() {
        let checks =
            config::load_check_dir(&config.scope(), &config.agent.directory).map_err(|e| {
                CliError::usage(format!(
                    "cannot read check directory `{}`: {e}",
                    config.agent.directory.display()
                ))
            })?;
        (
            checks,
            Vec::new(),
            config.agent.directory.display().to_string(),
        )
    } else {
        let (checks, problems) = load_files(config, files);
        let place = match files {
            [one] => one.display().to_string(),
            _ => format!("{} files", files.len()),
        };
        (checks, problems, place)
    };
    // A name of another file resolves against the directory's checks too
    // (a deploy pipeline validates a new file against what is deployed).
    let mut checks = checks;
    with_dependencies(config, &mut checks, !files.is_empty());
    let path_var = std::env::var_os("PATH");
    for check in &checks {
        match &check.kind {
            CheckKind::Broken(message) => problems.push(message.clone()),
            CheckKind::Command(command) => {
                let folder = check.file.parent().unwrap_or(Path::new("/"));
                if let Err(problem) = program::check(command, folder, path_var.as_deref()) {
                    problems.push(format!(
                        "{} [{}]: {problem}",
                        check.file.display(),
                        key_of(config, check)
                    ));
                }
            }
            _ => {}
        }
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    if problems.is_empty() {
        Printer::line(&format!("ok: {} check(s) in {place}", checks.len()));
    }
    let failed = if healthchecks {
        run_healthchecks(config).await
    } else {
        0
    };
    if !problems.is_empty() {
        eprintln!("{} problem(s) in {} check(s)", problems.len(), checks.len());
        return Ok(ExitStatus::Usage);
    }
    if failed > 0 {
        eprintln!("{failed} healthcheck(s) failed");
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

/// Resolves the `depends_on` of `checks` (SPEC §11) as the agent does and
/// turns each check whose names are wrong into its broken check. With
/// `some_files`, the checks of `agent.directory` (when it can be read) are
/// known too, the given files' own checks taking their place.
pub(super) fn with_dependencies(
    config: &Config,
    checks: &mut [CheckDef],
    some_files: bool,
) -> crate::agent::Resolved {
    let deployed = if some_files && checks.iter().any(|c| !c.depends_on.is_empty()) {
        config::load_check_dir(&config.scope(), &config.agent.directory).unwrap_or_default()
    } else {
        Vec::new()
    };
    let given: std::collections::HashSet<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    let known: Vec<&CheckDef> = checks
        .iter()
        .chain(deployed.iter().filter(|c| !given.contains(c.name.as_str())))
        .collect();
    let resolved = crate::agent::resolve_dependencies(&config.agent.name, &known);
    for check in checks.iter_mut() {
        if let Some(message) = resolved.problems.get(&check.name) {
            *check = CheckDef::broken(check.name.clone(), &check.file, message.clone());
        }
    }
    resolved
}

/// The checks of the check files a deploy pipeline names, and a problem for
/// each path that is not a check file (the agent would never read it).
fn load_files(config: &Config, files: &[PathBuf]) -> (Vec<CheckDef>, Vec<String>) {
    let scope = config.scope();
    let mut checks = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        if let Some(why) = ignored_by_the_agent(file) {
            problems.push(format!("{}: {why}", file.display()));
            continue;
        }
        match std::fs::metadata(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("{}: no such check file", file.display()));
            }
            Err(e) => problems.push(format!("{}: cannot read the check file: {e}", file.display())),
            Ok(meta) if meta.is_dir() => problems.push(format!(
                "{}: a directory, not a check file (name the files, or validate without FILE for `agent.directory`)",
                file.display()
            )),
            Ok(meta) if !meta.is_file() => problems.push(format!(
                "{}: not a regular file (a FIFO, socket or device)",
                file.display()
            )),
            Ok(_) => checks.extend(config::load_check_file(&scope, file)),
        }
    }
    (checks, problems)
}

/// Why the agent would skip this file in its directory, if it would: a
/// deploy that drops such a file checks nothing, silently.
fn ignored_by_the_agent(file: &Path) -> Option<&'static str> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    if name.as_ref().is_some_and(|n| n.starts_with('.')) {
        return Some("a hidden file: the agent skips it in its check directory");
    }
    let yaml = file
        .extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml");
    (!yaml).then_some("not a `*.yaml` or `*.yml` file: the agent does not read it")
}

/// The key a check has in its file, as `error loading check PATH [KEY]`
/// shows it: the name without `//AGENT/STEM/`, or the absolute name.
fn key_of<'a>(config: &Config, check: &'a CheckDef) -> &'a str {
    let stem = check
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("//{}/{stem}/", config.agent.name);
    check.name.strip_prefix(&prefix).unwrap_or(&check.name)
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
        db::DbConfig::Memory(_) => ("database (memory)".to_string(), "usable"),
        db::DbConfig::DynamoDb(_) => ("database (dynamodb)".to_string(), "both tables ACTIVE"),
        db::DbConfig::Postgres(postgres) => (
            format!("database (postgres `{}`)", postgres.shown_url()),
            "tables writable",
        ),
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
