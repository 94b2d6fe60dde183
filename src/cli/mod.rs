//! The command line (SPEC §1): clap types and one function per subcommand.
//!
//! Every subcommand takes `-c/--config` (default `$CIMAA_CONFIG`, else
//! `/etc/cimaa/agent.yaml`). Data goes to stdout through `Printer`; logs and
//! errors go to stderr. This file holds the clap types and the dispatch; the
//! subcommands live by theme: `run` (agent, check), `validate` (validate,
//! healthchecks), `test_alert`, `inspect` (faults, agents), `squelch`
//! (squelch, unsquelch, squelches),
//! `fleet` (meta-check, forget, setup-db), `generate` (completions, man);
//! `table` prints tables.

mod fleet;
mod generate;
mod history;
mod inspect;
mod run;
mod squelch;
mod table;
mod test_alert;
mod validate;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config};
use crate::db::{self, Db};
use crate::env;
use crate::error::{CliError, ExitStatus};
use crate::meta;
use crate::telemetry;

/// What `cimaa --version` prints after the name: the version, the short
/// commit it was built from and that commit's date (`build.rs`; SPEC §16).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CIMAA_COMMIT"),
    " ",
    env!("CIMAA_COMMIT_DATE"),
    ")"
);

/// cimaa: a monitoring agent that needs no central server.
#[derive(Debug, Parser)]
#[command(name = "cimaa", version = VERSION, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Agent configuration file [default: $CIMAA_CONFIG, else /etc/cimaa/agent.yaml]
    // An `Option`, `CIMAA_CONFIG` and the default applied in `run`, rather
    // than clap's `env` and `default_value`: a missing default file then gets
    // a message that says how to point at a configuration (a missing file
    // the user named keeps its plain "cannot read" error), and an empty
    // `CIMAA_CONFIG` is named as such (clap blamed `--config`, which the
    // user had not typed).
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Run checks once and print what they report; writes no database, calls no alerter.
    Check {
        /// One check file (default: every file of the check directory).
        file: Option<PathBuf>,
        /// One check of that file (its key or full name).
        name: Option<String>,
    },
    /// Validate the agent configuration and every check file (or just FILEs).
    Validate {
        /// Also reach the database, the alerters and the metric sink.
        #[arg(long)]
        healthchecks: bool,
        /// Validate just these check files (for a deploy pipeline).
        files: Vec<PathBuf>,
    },
    /// Send a test trigger and its resolve through an alerter (default: every one).
    TestAlert {
        /// The alerter's name (`default` is the one under `alerter:`).
        name: Option<String>,
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
        /// Why: shown to whoever wonders why alerts are silent (required, but with --dry-run).
        reason: Option<String>,
        /// List the current faults REGEX matches, on every agent; store nothing.
        #[arg(long)]
        dry_run: bool,
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
    /// What changed: faults triggered and resolved, notifications, squelches, agents (newest first).
    History(history::HistoryArgs),
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
        /// Minutes before a squelch's expiry from which it is a WARNING while it matches a critical fault.
        #[arg(short = 'x', long = "expiring", default_value_t = 15)]
        expiring_minutes: i64,
        /// More agents inactive at once than this are one ERROR `inactive-agents`.
        #[arg(short = 'm', long = "fold", value_name = "N", default_value_t = 5)]
        fold: usize,
        /// File of expected agents (a name or `/regex/` per line): those that never reported are ERRORs.
        #[arg(long, value_name = "FILE")]
        expect: Option<std::path::PathBuf>,
    },
    /// Resolve the open alerts of a decommissioned agent and remove what it left in the database.
    Forget {
        /// The agent's name, as `cimaa agents` shows it.
        agent: String,
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
    /// Serve the web view of the fleet (faults, agents, squelches, history) and its JSON API.
    Web {
        /// Address to listen on [default: `web.listen`, else 127.0.0.1:8642].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Print shell completions on stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
}

/// Writes data to stdout; a closed pipe (`| head`) is not an error.
struct Printer;

impl Printer {
    fn line(text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }
}

/// Runs one command that needs the configuration, inside the runtime.
async fn dispatch(config: &Config, command: Command) -> Result<ExitStatus, CliError> {
    match command {
        Command::Agent { count, once } => run::agent(config, count, once).await,
        Command::Check { file, name } => run::check(config, file.as_deref(), name.as_deref()).await,
        Command::Validate {
            healthchecks,
            files,
        } => validate::validate(config, &files, healthchecks).await,
        Command::TestAlert { name } => test_alert::test_alert(config, name.as_deref()).await,
        Command::Faults { agent, json } => inspect::faults(config, agent.as_deref(), json).await,
        Command::Agents { json } => inspect::agents(config, json).await,
        Command::Squelch {
            regex,
            reason,
            dry_run,
            permanent,
            expires,
        } => {
            let request = squelch::Request {
                regex: &regex,
                reason: reason.as_deref(),
                permanent,
                expires: expires.as_deref(),
                dry_run,
            };
            squelch::add_squelch(config, &request).await
        }
        Command::Unsquelch { regex } => squelch::unsquelch(config, &regex).await,
        Command::Squelches { json } => squelch::squelches(config, json).await,
        Command::History(options) => history::history(config, &options).await,
        Command::MetaCheck {
            warn,
            error,
            squelch_minutes,
            expiring_minutes,
            fold,
            expect,
        } => {
            let limits = meta::Limits {
                warn_intervals: warn,
                error_intervals: error,
                squelch_minutes,
                expiring_minutes,
                max_inactive: fold,
                base_interval: config.agent.base_interval,
            };
            fleet::meta_check(config, limits, expect.as_deref()).await
        }
        Command::Forget { agent } => fleet::forget(config, &agent).await,
        Command::Web { listen } => crate::web::serve(config, listen.as_deref()).await,
        Command::Completions { .. } | Command::Man => Ok(ExitStatus::Success),
        Command::SetupDb {
            read_capacity,
            write_capacity,
        } => {
            let capacity = read_capacity
                .zip(write_capacity)
                .map(|(read, write)| db::Capacity { read, write });
            fleet::setup_db(config, capacity).await
        }
    }
}

/// Worker threads of the agent's tokio runtime (issue 15: idle footprint).
const WORKER_THREADS: usize = 2;

/// Runs a parsed command line.
///
/// # Errors
/// A user-facing error with its exit status.
pub fn run(cli: Cli) -> Result<ExitStatus, CliError> {
    // Generated from the clap definitions alone: no configuration needed.
    match cli.command {
        Command::Completions { shell } => return generate::completions(shell),
        Command::Man => return generate::man(),
        _ => {}
    }
    let config_path = config_path(
        cli.global.config,
        std::env::var_os(env::CONFIG),
        Path::new(env::DEFAULT_CONFIG_PATH),
    )?;
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
    // Two workers whatever the core count: the agent waits on children and
    // sockets, and two workers carry a 50,000-probe tick (BENCHMARKS.md,
    // issue 15); each further worker is one more thread and malloc arena.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .map_err(CliError::failure)?;
    let result = runtime.block_on(dispatch(&config, cli.command));
    // Don't wait for blocking tasks (a stuck stdout write, a slow sqlite call).
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The configuration file to read: the one given with `-c`, else the value
/// of `CIMAA_CONFIG` (`from_env`), else `default`.
///
/// # Errors
/// When `CIMAA_CONFIG` is set but empty (a script's unset variable: falling
/// back to the default would read another file than meant); when none was
/// given and `default` does not exist: a new user has not written one yet,
/// so the message says how to point at one (exit 2).
fn config_path(
    given: Option<PathBuf>,
    from_env: Option<OsString>,
    default: &Path,
) -> Result<PathBuf, CliError> {
    if let Some(path) = given {
        return Ok(path);
    }
    match from_env {
        Some(value) if value.is_empty() => {
            return Err(CliError::usage(format!(
                "`{}` is set but empty: set it to the configuration file, or unset it to use `{}`",
                env::CONFIG,
                default.display()
            )));
        }
        Some(value) => return Ok(PathBuf::from(value)),
        None => {}
    }
    // Only a definite "not there": another failure (a directory without
    // read permission) is reported by the read, with its cause.
    if matches!(default.try_exists(), Ok(false)) {
        return Err(CliError::usage(format!(
            "no configuration at `{}` (the default): give one with `-c FILE` or `{}=FILE`; `examples/agent.yaml` in the cimaa repository is a start",
            default.display(),
            env::CONFIG
        )));
    }
    Ok(default.to_path_buf())
}

async fn open_db(config: &Config) -> Result<Arc<dyn Db>, CliError> {
    db::build(&config.database).await.map_err(CliError::failure)
}

/// Names on stderr the malformed rows the reads skipped (the good rows
/// are printed as usual).
fn warn_skipped(db: &dyn Db) {
    for row in db.skipped_rows() {
        eprintln!("warning: skipped a malformed database row: {row}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: #22
    #[test]
    fn a_missing_default_configuration_says_how_to_give_one() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("agent.yaml");
        let error = config_path(None, None, &default).unwrap_err();
        assert_eq!(error.status, ExitStatus::Usage);
        assert_eq!(
            error.error.to_string(),
            format!(
                "no configuration at `{}` (the default): give one with `-c FILE` or `CIMAA_CONFIG=FILE`; `examples/agent.yaml` in the cimaa repository is a start",
                default.display()
            )
        );
    }

    #[test]
    fn a_given_configuration_is_used_as_is_even_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let given = dir.path().join("nope.yaml");
        let default = dir.path().join("agent.yaml");
        let from_env = Some(OsString::from("env.yaml"));
        assert_eq!(
            config_path(Some(given.clone()), from_env.clone(), &default).unwrap(),
            given
        );
        assert_eq!(
            config_path(None, from_env, &default).unwrap(),
            PathBuf::from("env.yaml")
        );
        std::fs::write(&default, "").unwrap();
        assert_eq!(config_path(None, None, &default).unwrap(), default);
    }

    // See: #22. clap said `a value is required for '--config <FILE>'`.
    #[test]
    fn an_empty_cimaa_config_is_named() {
        let error = config_path(None, Some(OsString::new()), Path::new("/x.yaml")).unwrap_err();
        assert_eq!(error.status, ExitStatus::Usage);
        assert_eq!(
            error.error.to_string(),
            "`CIMAA_CONFIG` is set but empty: set it to the configuration file, or unset it to use `/x.yaml`"
        );
    }
}
