//! One test binary (Cargo.toml: autotests = false), as ripgrep does.

mod agent;
mod cli;
mod config;
mod coordination;
mod db_contract;
mod probes;
mod servers;
mod util;
