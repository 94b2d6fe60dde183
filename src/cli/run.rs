//! `cimaa agent` and `cimaa check`.

use std::path::Path;
use std::sync::Arc;

use super::{Printer, open_db};
use crate::agent::{self, Backends, Mode};
use crate::alerters;
use crate::checks::{self, CheckDef, CheckKind, RunContext};
use crate::config::{self, Config};
use crate::db::Db;
use crate::error::{CliError, ExitStatus};
use crate::fault;
use crate::signals;
use crate::sinks;

pub(super) async fn agent(
    config: &Config,
    count: Option<u64>,
    once: bool,
) -> Result<ExitStatus, CliError> {
    let mode = match (count, once) {
        (_, true) => Mode::Once,
        (Some(n), false) => Mode::Count(n),
        (None, false) => Mode::Forever,
    };
    let db = open_db(config).await?;
    let context = alerters::Context {
        agent: config.agent.name.clone(),
        alert_timeout: config.agent.alert_timeout,
    };
    let alerters = alerters::Alerters::build(&config.alerter, &config.alerters, &context)
        .map_err(CliError::failure)?;
    let sink = match &config.metrics {
        Some(metrics) => Some((
            sinks::build(metrics).await.map_err(CliError::failure)?,
            metrics.buffer_size(),
        )),
        None => None,
    };
    let backends = Backends {
        db,
        alerters: Arc::new(alerters),
        sink,
    };
    let controls = signals::listen().map_err(CliError::failure)?;
    // On a worker thread, not on `block_on`'s: every finished check wakes
    // the tick loop, and waking a parked main thread costs a futex call and
    // a context switch each time (a fifth of the CPU of a 50,000-probe tick).
    let config = config.clone();
    tokio::spawn(async move {
        agent::run(&config, backends, agent::Clock::system(), mode, controls).await
    })
    .await
    .map_err(CliError::failure)?
    .map_err(CliError::failure)?;
    Ok(ExitStatus::Success)
}

pub(super) async fn check(
    config: &Config,
    file: Option<&Path>,
    name: Option<&str>,
) -> Result<ExitStatus, CliError> {
    let mut checks: Vec<CheckDef> = match file {
        Some(path) => {
            if !path.is_file() {
                return Err(CliError::usage(format!(
                    "no such check file `{}`",
                    path.display()
                )));
            }
            config::load_check_file(&config.scope(), path)
        }
        None => config::load_check_dir(&config.scope(), &config.agent.directory).map_err(|e| {
            CliError::usage(format!(
                "cannot read check directory `{}`: {e}",
                config.agent.directory.display()
            ))
        })?,
    };
    let dependencies = super::validate::with_dependencies(config, &mut checks, file.is_some());
    if let Some(name) = name {
        let all = std::mem::take(&mut checks);
        let (named, others): (Vec<CheckDef>, Vec<CheckDef>) = all
            .into_iter()
            .partition(|c| c.name == name || c.name.rsplit('/').next() == Some(name));
        if named.is_empty() {
            let place = file.unwrap_or(&config.agent.directory);
            return Err(CliError::usage(no_such_check(name, place, &others)));
        }
        checks = named;
    }
    let broken = checks
        .iter()
        .filter(|c| matches!(c.kind, CheckKind::Broken(_)))
        .count();
    // One check at a time: the output stays in order.
    let probes = checks::Probes::with_nameservers(
        config.agent.resolver.clone(),
        config.agent.connections_per_host,
    );
    probes.begin_tick(checks.iter());
    let context = RunContext {
        config_path: &config.path,
        default_timeout: config.agent.timeout,
        probes: &probes,
    };
    let db = meta_database(config, &checks).await;
    let fleet = agent::Fleet {
        db: db.as_deref(),
        agent: &config.agent.name,
        base_interval: config.agent.base_interval,
        clock: agent::Clock::system(),
        memory: None,
    };
    for check in &checks {
        let mut output = agent::run_check(check, &context, fleet).await;
        checks::apply_thresholds(check, &mut output, &|_| false);
        Printer::line(&check.name);
        print_dependencies(&dependencies, &check.name);
        if let Some(raw) = &output.raw {
            Printer::line(&format!("  exit: {}", raw.status));
            for (label, text) in [("stdout", &raw.stdout), ("stderr", &raw.stderr)] {
                for line in text.lines() {
                    Printer::line(&format!("  {label}: {line}"));
                }
            }
        }
        if output.faults.is_empty() {
            Printer::line("  OK: no faults");
        }
        for f in &output.faults {
            let name = fault::full_name(&check.name, f.name.as_deref());
            let escalates = if f.escalates {
                ""
            } else {
                " (does not escalate)"
            };
            Printer::line(&format!(
                "  {} {name}: {}{escalates}",
                f.severity, f.message
            ));
        }
        for m in &output.metrics {
            let name = fault::full_name(&check.name, Some(&m.name));
            Printer::line(&format!(
                "  metric {name} = {}{}",
                crate::thresholds::format_value(m.value),
                m.units
            ));
        }
        // SPEC §11: as the agent's flap state file knows it.
        Printer::line(&format!("  {}", agent::flap_line(config, check)));
    }
    // Printed in full above; the exit status lets a script (or a deploy
    // pipeline) tell a configuration error from a failing check.
    if broken > 0 {
        eprintln!("{broken} check(s) with a configuration error");
        return Ok(ExitStatus::Usage);
    }
    Ok(ExitStatus::Success)
}

/// `  depends on: NAME, ...` for a check with dependencies (SPEC §11).
fn print_dependencies(dependencies: &crate::agent::Resolved, check: &str) {
    if let Some(targets) = dependencies.targets.get(check) {
        let names: Vec<String> = targets
            .iter()
            .map(|target| match target {
                crate::dependency::Target::Local(name) => name.clone(),
                crate::dependency::Target::Absolute(name) => format!("{name} (any agent)"),
            })
            .collect();
        Printer::line(&format!("  depends on: {}", names.join(", ")));
    }
}

/// Most names `no check named` lists; a directory may hold thousands.
const NAMES_LISTED: usize = 20;

/// `no check named `NAME` in PLACE`, with the names that are there.
fn no_such_check(name: &str, place: &Path, checks: &[CheckDef]) -> String {
    // `//AGENT/STEM/` only reports a file's own error: no name to ask for.
    let names: Vec<String> = checks
        .iter()
        .filter(|c| !c.name.ends_with('/'))
        .map(|c| format!("`{}`", c.name))
        .collect();
    let head = format!("no check named `{name}` in `{}`", place.display());
    if names.is_empty() {
        return format!("{head}, which has no check");
    }
    let listed = names
        .iter()
        .take(NAMES_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(NAMES_LISTED) {
        0 => format!("{head}; its checks: {listed}"),
        more => format!("{head}; its checks: {listed} and {more} more"),
    }
}

/// The database a `meta:` check reads (nothing is written), when one is
/// among `checks`. One that cannot be opened (no credentials on a laptop)
/// becomes the meta check's own `monitor-database` fault; the other checks
/// still run.
async fn meta_database(config: &Config, checks: &[CheckDef]) -> Option<Arc<dyn Db>> {
    if !checks.iter().any(CheckDef::reads_database) {
        return None;
    }
    match crate::db::build(&config.database).await {
        Ok(db) => Some(db),
        Err(e) => {
            eprintln!(
                "warning: cannot open the database for the meta check: {}",
                crate::error::chain(&e)
            );
            None
        }
    }
}
