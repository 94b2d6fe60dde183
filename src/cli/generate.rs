//! Files generated from the clap definitions (SPEC §16): shell completions
//! and the man page. Neither reads a configuration: the Debian package is
//! built with them, on a machine without `/etc/cimaa/agent.yaml`.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;
use crate::error::{CliError, ExitStatus};

/// Prints the completions of `shell` on stdout.
///
/// # Errors
/// When stdout cannot be written (a closed pipe is not an error).
pub(super) fn completions(shell: Shell) -> Result<ExitStatus, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cimaa", &mut script);
    print(&script)
}

/// Prints the man page (roff) on stdout.
///
/// # Errors
/// When stdout cannot be written (a closed pipe is not an error).
pub(super) fn man() -> Result<ExitStatus, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(CliError::failure)?;
    print(&page)
}

fn print(bytes: &[u8]) -> Result<ExitStatus, CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::failure(e)),
        _ => Ok(ExitStatus::Success),
    }
}
