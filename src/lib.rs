//! cimaa: a Coordinating Independent Monitoring Agent.
//!
//! One agent per host reads check files, runs checks, keeps soft/hard fault
//! state, pages through alerters and writes its heartbeat and faults into a
//! shared database. There is no central server.
//!
//! # Layout
//! - `cli`: clap types and one function per subcommand (SPEC §1).
//! - `error`: exit codes and error rendering.
//! - `env`: names of environment variables.
//! - `telemetry`: tracing-subscriber setup.
//! - `signals`: signal-hook thread → `Control` messages.
//! - `config`: agent and check files (`load.rs` is the only `serde_yaml` user).
//! - `agent`: the daemon loop: scan, run, escalate, alert, store, publish.
//! - `scheduler`: pure tick arithmetic and the due rule.
//! - `checks`: running one check (command plugins, plugin JSON, and the in-process
//!   `tcp`, `http` and `socket` probes) into raw faults and metrics.
//! - `limits`: raising the open-file limit; the concurrency it allows.
//! - `process`: child processes in their own group, capped output, group kill on timeout.
//! - `perfdata`: pure Nagios output splitter and perfdata parser.
//! - `thresholds`: pure threshold language (`METRIC [?] LEVEL OP VALUE ...`).
//! - `fault`: pure failure counter, escalation, fault records and the alert plan.
//! - `severity`: the integer severity scale (20/30/40/50) and its names.
//! - `squelch`: pure squelch validation, durations and matching.
//! - `meta`: pure meta-check (stale agents, old squelches, peers' alert failures).
//! - `host`: the host's FQDN (default agent name).
//! - `db`: the `Db` trait, its records and backends (`memory`, `sqlite`, `dynamodb`).
//! - `alerters`: the `Alerter` trait and backends (`file`, `command`).
//! - `sinks`: metric records, the `Sink` trait, the bounded buffer, the `log` and `kinesis` sinks.

pub mod agent;
pub mod alerters;
pub mod checks;
pub mod cli;
pub mod config;
pub mod db;
pub mod env;
pub mod error;
pub mod fault;
pub mod host;
pub mod limits;
pub mod meta;
pub mod perfdata;
pub(crate) mod process;
pub(crate) mod retry;
pub mod scheduler;
pub mod severity;
pub mod signals;
pub mod sinks;
pub mod squelch;
pub mod telemetry;
pub mod thresholds;
