//! OS signals to control messages.
//!
//! A signal-hook thread maps SIGTERM/SIGINT to `Control::Shutdown` and SIGHUP
//! to `Control::Reload` on a tokio channel. A second SIGTERM/SIGINT while the
//! agent is shutting down exits at once.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio::sync::mpsc;

/// What a signal asks the agent to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Shutdown,
    Reload,
}

/// Exit status used when a second signal cuts shutdown short.
const IMPATIENT_EXIT: i32 = 130;

/// Starts the signal thread.
///
/// # Errors
/// When the signal handlers cannot be registered.
pub(crate) fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Control>> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("cimaa-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                let control = if signal == SIGHUP {
                    Control::Reload
                } else {
                    Control::Shutdown
                };
                if control == Control::Shutdown {
                    if stopping {
                        eprintln!("second signal during shutdown: exiting now");
                        std::process::exit(IMPATIENT_EXIT);
                    }
                    stopping = true;
                }
                if sender.send(control).is_err() {
                    return;
                }
            }
        })?;
    Ok(receiver)
}
