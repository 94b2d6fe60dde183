//! The `cimaa` binary: parse arguments, run the command, map the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Orphans of plugins and alerter commands (a `setsid` daemon, a double
    // fork) then come to this process instead of init, so that the library's
    // `process` module can kill and reap them when their run ends. It spawns
    // every child this process has, which a subreaper requires of it.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!(
            "warning: cannot become a child subreaper ({e}); leftovers of plugins that leave their process group are not killed"
        );
    }
    let cli = cimaa::cli::Cli::parse();
    match cimaa::cli::run(cli) {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("{}", cimaa::error::render(e.error.as_ref()));
            e.status.into()
        }
    }
}
