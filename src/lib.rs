//! cimaa: a Coordinating Independent Monitoring Agent.
//!
//! One agent per host reads check files, runs checks, keeps soft/hard fault
//! state, pages through alerters and writes its heartbeat and faults into a
//! shared database. There is no central server.
//!
//! # Layout
//! Five layers, top to bottom. A file uses only its own layer and the layers
//! below; no backend folder uses another; no two modules use each other.
//! `tests/layering.rs` holds this by scanning the `crate::` paths of `src/`.
//!
//! Face (the process and its user):
//! - `main.rs`: sync main: Sentry guard, tracing, runtime, `cli::run`, exit code.
//! - `cli`: clap types and one function per subcommand (SPEC §1).
//! - `telemetry`: tracing-subscriber and Sentry setup.
//!
//! Agent (the daemon and its configuration):
//! - `agent/`: `mod.rs` runs the ticks; `check_dir.rs` scans and caches the
//!   check directory (under `spawn_blocking`); `runner.rs` runs due checks
//!   (slots, spreading, panics → `checker` faults); `alerts.rs` plans and
//!   delivers alerts and keeps `AGENT#alerts`; `clock.rs` is the one source
//!   of epoch seconds (the wall clock, or tokio's clock in tests);
//!   `state.rs` loads, restores and reconciles the previous state;
//!   `store.rs` writes it (`Writer`, `Bounded`, deregistration);
//!   `meta_check.rs` and `observations.rs` are the meta-check's reads and
//!   its memory of peers.
//! - `config/`: `load.rs` (the only `serde_yaml` user, errors with file:line),
//!   `env_subst.rs` (`${VAR}`), `sections.rs` (agent, database, alerter and
//!   metrics sections and their validation), `check_file.rs` (check files).
//! - `scheduler`: pure tick arithmetic, the due rule, taking turns between targets.
//! - `signals`: signal-hook thread → `Control` messages.
//!
//! Checks and backends (each kind owns its options, parsing and validation):
//! - `checks/`: `CheckDef`, `CheckKind` and running one check into raw faults
//!   and metrics: `command` (plugins), `json` (plugin JSON), `http/`, `tcp`,
//!   `socket` probes, and `meta` (the in-process meta-check's options; the
//!   agent's `runner` runs it, since it reads the database).
//! - `db/`: the `Db` trait (SPEC §6) and its backends `memory`, `sqlite/`
//!   (`connection`, `schema`, `rows`, `notices`) and `dynamodb/` (`config`,
//!   `api` seam, `item` layout, `read`, `write_plan`, `tables`).
//! - `alerters/`: the `Alerter` trait, routing and fallbacks; `pagerduty`,
//!   `slack`, `file`, `command`, and the shared `http` client.
//! - `sinks/`: metric records, the `Sink` trait, the bounded buffer; `log`, `kinesis`.
//!
//! Core (pure: no I/O, no clock reads, no async):
//! - `fault`: `Fault`, `AgentFault`, `RawFault`; failure counter, escalation,
//!   fault records and the alert plan.
//! - `flap`: flap detection (SPEC §11): the percent state change over a
//!   check's last 21 results, when it starts and stops flapping, `flap:`.
//! - `renotify`: message churn (SPEC §11): whether a changed message of an
//!   open alert is sent again now.
//! - `thresholds`: the threshold language (`METRIC [?] LEVEL OP VALUE ...`).
//! - `perfdata`: Nagios output splitter and perfdata parser.
//! - `severity`: the integer severity scale (20/30/40/50) and its names.
//! - `history`: the history's `Record` and `Event` (SPEC §12).
//! - `squelch`: `Squelch`; validation, durations and matching (`RegexSet`).
//! - `meta`: `Heartbeat`; the meta-check over fleet state.
//! - `notice`: `Notice`, the shared record of a fleet fault's notifications
//!   (SPEC §10), and its transitions.
//! - `dependency`: `depends_on` (SPEC §11): names resolved, cycles, which
//!   failing dependency suppresses a check's faults.
//! - `storm`: alert storms (SPEC §10): which triggers fold into one
//!   `AGENT#storm` alert per alerter, when it is re-sent and resolves.
//! - `quiet`: an alerter's quiet hours (SPEC §11): windows in an IANA zone,
//!   whether an instant is quiet and until when.
//!
//! Base:
//! - `error`: exit codes, the terminal rendering and the one error chain.
//! - `env`: names of environment variables.
//! - `host`: FQDN, root or not, the login name.
//! - `process`: child processes in their own group, capped output, group kill.
//! - `program`: the program a command line runs, found as the shell would.
//! - `retry`: the one capped, jittered exponential backoff with a deadline.
//! - `limits`: raising the open-file limit; the concurrency it allows.
//! - `aws`: AWS SDK errors as one sentence with a hint (DynamoDB, Kinesis).
//! - `http_url`: the absolute http(s) URL rule of every `url`,
//!   `webhook_url` and `endpoint_url` option, checked as the file is read.

// Public: what `main.rs` and `tests/` use. Everything else is internal, and
// the `unreachable_pub` lint keeps `pub` for what is reachable from here.
pub mod agent;
pub mod alerters;
pub mod cli;
pub mod config;
pub mod db;
pub mod env;
pub mod error;
pub mod history;
pub mod host;
pub mod scheduler;
pub mod severity;
pub mod signals;
pub mod sinks;

mod aws;
mod checks;
mod dependency;
mod fault;
mod flap;
mod http_url;
mod limits;
mod meta;
mod notice;
mod perfdata;
mod process;
mod program;
mod quiet;
mod renotify;
mod retry;
mod squelch;
mod storm;
mod telemetry;
mod thresholds;
mod web;

#[cfg(test)]
mod properties;
