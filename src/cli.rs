//! The command line (SPEC §1): clap types and one function per subcommand.
//!
//! Every subcommand takes `-c/--config` (default `$CIMAA_CONFIG`, else
//! `/etc/cimaa/agent.yaml`). Data goes to stdout through `Printer`; logs and
//! errors go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::agent::{self, Backends, Mode};
use crate::alerters;
use crate::checks::{self, RunContext};
use crate::checks::{CheckDef, CheckKind};
use crate::config::{self, Config};
use crate::db::{self, AgentFault, Db};
use crate::env;
use crate::error::{CliError, ExitStatus};
use crate::fault;
use crate::meta;
use crate::signals;
use crate::sinks;
use crate::squelch;
use crate::telemetry;

/// cimaa: a monitoring agent that needs no central server.
#[derive(Debug, Parser)]
#[command(name = "cimaa", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Agent configuration file.
    #[arg(short, long, global = true, env = env::CONFIG, default_value = env::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent loop (default: forever).
    Agent {
        /// Run this many ticks, then exit.
        #[arg(long, conflicts_with = "once")]
        count: Option<u64>,
        /// Run one tick now with every check due, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Run checks once and print what they report; touches no database or alerter.
    Check {
        /// One check file (default: every file of the check directory).
        file: Option<PathBuf>,
        /// One check of that file (its key or full name).
        name: Option<String>,
    },
    /// Validate the agent configuration and every check file.
    Validate {
        /// Also reach the database and the metric sink.
        #[arg(long)]
        healthchecks: bool,
    },
    /// Current faults of all agents (or one).
    Faults {
        /// Only this agent.
        #[arg(long)]
        agent: Option<String>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Known agents and their last heartbeat.
    Agents {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Silence alerts of faults whose name matches REGEX (searched anywhere).
    Squelch {
        /// Regular expression searched in fault names.
        regex: String,
        /// Why: shown to whoever wonders why alerts are silent.
        reason: String,
        /// Never reported as forgotten by the meta-check.
        #[arg(long)]
        permanent: bool,
        /// Stop matching after this long: `90s`, `30m`, `2h`, `1d`.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Remove a squelch.
    Unsquelch {
        /// The regex exactly as it was squelched.
        regex: String,
    },
    /// List squelches in force.
    Squelches {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print the meta-check's plugin JSON: inactive agents, forgotten squelches, failing alerters.
    MetaCheck {
        /// Base intervals without a heartbeat before an agent is a WARNING.
        #[arg(short = 'w', long = "warn", default_value_t = 2.0)]
        warn: f64,
        /// Base intervals without a heartbeat before an agent is an ERROR.
        #[arg(short = 'e', long = "error", default_value_t = 5.0)]
        error: f64,
        /// Minutes before a non-permanent squelch is reported.
        #[arg(short = 's', long = "squelch-age", default_value_t = 60)]
        squelch_minutes: i64,
    },
    /// Create the database tables (idempotent) and wait until they are usable.
    SetupDb {
        /// Provisioned read capacity units per table and index (default: on-demand billing).
        #[arg(long, requires = "write_capacity", value_parser = clap::value_parser!(i64).range(1..))]
        read_capacity: Option<i64>,
        /// Provisioned write capacity units per table and index (default: on-demand billing).
        #[arg(long, requires = "read_capacity", value_parser = clap::value_parser!(i64).range(1..))]
        write_capacity: Option<i64>,
    },
}

/// Writes data to stdout; a closed pipe (`| head`) is not an error.
struct Printer;

impl Printer {
    fn line(text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// A user-facing error with its exit status.
pub fn run(cli: Cli) -> Result<ExitStatus, CliError> {
    let config_path = cli.global.config;
    let config = match config::load_agent_config(&config_path) {
        Ok(config) => config,
        Err(error) => {
            if matches!(cli.command, Command::Agent { .. })
                && let Some((dsn, agent)) = config::startup_sentry(&config_path)
            {
                telemetry::report_startup_error(&dsn, &agent, &crate::error::render(&error));
            }
            return Err(CliError::usage(error));
        }
    };
    // Held until the runtime is gone: dropping it flushes Sentry.
    let _telemetry = match &cli.command {
        Command::Agent { .. } => telemetry::init(
            &config.agent.logging,
            config.agent.log_format,
            config.agent.sentry_dsn.as_deref(),
            &config.agent.name,
        ),
        _ => telemetry::init("warn", config.agent.log_format, None, &config.agent.name),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::failure)?;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Agent { count, once } => run_agent(&config, count, once).await,
            Command::Check { file, name } => {
                run_check(&config, file.as_deref(), name.as_deref()).await
            }
            Command::Validate { healthchecks } => validate(&config, healthchecks).await,
            Command::Faults { agent, json } => faults(&config, agent.as_deref(), json).await,
            Command::Agents { json } => agents(&config, json).await,
            Command::Squelch {
                regex,
                reason,
                permanent,
                expires,
            } => add_squelch(&config, &regex, &reason, permanent, expires.as_deref()).await,
            Command::Unsquelch { regex } => unsquelch(&config, &regex).await,
            Command::Squelches { json } => squelches(&config, json).await,
            Command::MetaCheck {
                warn,
                error,
                squelch_minutes,
            } => {
                let limits = meta::Limits {
                    warn_intervals: warn,
                    error_intervals: error,
                    squelch_minutes,
                    base_interval: config.agent.base_interval,
                };
                meta_check(&config, limits).await
            }
            Command::SetupDb {
                read_capacity,
                write_capacity,
            } => {
                let capacity = read_capacity
                    .zip(write_capacity)
                    .map(|(read, write)| db::Capacity { read, write });
                setup_db(&config, capacity).await
            }
        }
    });
    // Don't wait for blocking tasks (a stuck stdout write, a slow sqlite call).
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn open_db(config: &Config) -> Result<Arc<dyn Db>, CliError> {
    db::build(&config.database).await.map_err(CliError::failure)
}

async fn run_agent(
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

async fn run_check(
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
    if let Some(name) = name {
        checks.retain(|c| c.name == name || c.name.rsplit('/').next() == Some(name));
        if checks.is_empty() {
            return Err(CliError::usage(format!("no check named `{name}`")));
        }
    }
    // One check at a time: the output stays in order.
    let probes = checks::Probes::new();
    probes.begin_tick(checks.iter());
    let context = RunContext {
        config_path: &config.path,
        default_timeout: config.agent.timeout,
        probes: &probes,
    };
    for check in &checks {
        let mut output = checks::run(check, &context).await;
        checks::apply_thresholds(check, &mut output, &|_| false);
        Printer::line(&check.name);
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
    }
    Ok(ExitStatus::Success)
}

async fn validate(config: &Config, healthchecks: bool) -> Result<ExitStatus, CliError> {
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

async fn faults(config: &Config, agent: Option<&str>, json: bool) -> Result<ExitStatus, CliError> {
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

async fn agents(config: &Config, json: bool) -> Result<ExitStatus, CliError> {
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

async fn add_squelch(
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

async fn unsquelch(config: &Config, regex: &str) -> Result<ExitStatus, CliError> {
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

async fn squelches(config: &Config, json: bool) -> Result<ExitStatus, CliError> {
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

#[derive(Serialize)]
struct MetaOutput {
    faults: Vec<meta::MetaFault>,
}

async fn meta_check(config: &Config, limits: meta::Limits) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    let stale = db
        .old_agents(limits.warn_secs(), now)
        .await
        .map_err(CliError::failure)?;
    let squelches = db.get_squelch_details().await.map_err(CliError::failure)?;
    let failures = db.alert_failures().await.map_err(CliError::failure)?;
    let mut faults = meta::faults(
        &config.agent.name,
        &stale,
        &squelches,
        &failures,
        limits,
        now,
    );
    // A fault rather than stderr: a plugin's stderr is an ERROR (#18).
    let skipped = db.skipped_rows();
    if !skipped.is_empty() {
        faults.push(meta::MetaFault {
            name: "database".to_owned(),
            severity: crate::severity::Severity::WARNING,
            message: db::skipped_message(&skipped),
        });
    }
    Printer::line(&serde_json::to_string(&MetaOutput { faults }).map_err(CliError::failure)?);
    Ok(ExitStatus::Success)
}

/// Names on stderr the malformed rows the reads skipped (the good rows
/// are printed as usual).
fn warn_skipped(db: &dyn Db) {
    for row in db.skipped_rows() {
        eprintln!("warning: skipped a malformed database row: {row}");
    }
}

async fn setup_db(config: &Config, capacity: Option<db::Capacity>) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    db.setup(capacity).await.map_err(CliError::failure)?;
    Ok(ExitStatus::Success)
}

/// `42s ago`, `5m ago`, `3h ago`, `2d ago`.
fn relative(age: i64) -> String {
    let age = age.max(0);
    match age {
        0..60 => format!("{age}s ago"),
        60..3600 => format!("{}m ago", age / 60),
        3600..86_400 => format!("{}h ago", age / 3600),
        _ => format!("{}d ago", age / 86_400),
    }
}

/// Prints rows under a header, each column as wide as its widest cell up to
/// its entry in `max`: a longer cell (a 100 KB regex, a 70,000-character
/// name) is cut and ends with `…`; `--json` prints it whole.
fn print_table<const N: usize>(header: [&str; N], max: [usize; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for ((width, cell), max) in widths.iter_mut().zip(row).zip(max) {
            *width = (*width).max(cell.chars().count().min(max));
        }
    }
    let format_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, ((cell, width), max)) in cells.iter().zip(widths).zip(max).enumerate() {
            let cell = truncate(cell, max);
            line.push_str(&cell);
            if i + 1 < N {
                // Padding by hand: `{:<width$}` panics on widths over 65,535.
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.trim_end().to_string()
    };
    Printer::line(&format_row(header.to_vec()));
    for row in rows {
        Printer::line(&format_row(row.iter().map(String::as_str).collect()));
    }
}

/// `cell` within `max` characters: cut to `max - 1` and `…` when longer;
/// line breaks and tabs become spaces so a row stays one line, and other
/// control characters (ESC and the like, which a peer's fault message may
/// carry) become `�`, so nothing in a cell drives the operator's terminal.
fn truncate(cell: &str, max: usize) -> String {
    let flat = |text: &str| -> String {
        text.chars()
            .map(|c| match c {
                '\n' | '\r' | '\t' => ' ',
                c if c.is_control() => '\u{fffd}',
                c => c,
            })
            .collect()
    };
    if cell.char_indices().nth(max).is_none() {
        return flat(cell);
    }
    let keep: String = cell.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", flat(&keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: #18. A peer's fault message must not drive the terminal.
    #[test]
    fn table_cells_carry_no_terminal_escapes() {
        assert_eq!(
            truncate("red \u{1b}[31malert\u{7}\tnow\r\n", 80),
            "red \u{fffd}[31malert\u{fffd} now  "
        );
    }

    #[test]
    fn ages_read_as_relative_times() {
        let cases = [
            (5, "5s ago"),
            (-3, "0s ago"),
            (125, "2m ago"),
            (7200, "2h ago"),
            (200_000, "2d ago"),
        ];
        for (age, want) in cases {
            assert_eq!(relative(age), want);
        }
    }

    // See: #18
    #[test]
    fn long_cells_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("a\nb", 5), "a b");
        assert_eq!(truncate(&"x".repeat(70_000), 80).chars().count(), 80);
    }
}
