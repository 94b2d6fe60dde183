//! One test binary (Cargo.toml: autotests = false), as ripgrep does.

mod agent;
mod agent_in_process;
mod alerters;
mod cli;
mod config;
mod coordination;
mod db_contract;
mod docs;
mod dynamodb;
mod fake_http;
mod hostile_checks;
mod hostile_cli;
mod hostile_config;
mod hostile_db;
mod hostile_processes;
mod layering;
mod lifecycle;
mod probes;
mod servers;
mod sinks;
mod soak;
mod telemetry;
mod util;
