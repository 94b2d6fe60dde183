//! The `cimaa` binary: parse arguments, run the command, map the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cimaa::cli::Cli::parse();
    match cimaa::cli::run(cli) {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("{}", cimaa::error::render(e.error.as_ref()));
            e.status.into()
        }
    }
}
