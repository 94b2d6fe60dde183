//! systemd's notify protocol (SPEC §16), through the `sd-notify` crate.
//!
//! With `Type=notify` the unit is started once the agent sends READY=1:
//! after its first heartbeat is written, or, when the database does not
//! answer at start (SPEC §14), after its first tick. Each tick then sends a
//! `STATUS=` line (`systemctl status` shows it) with the tick, when it ended
//! and how many faults it stored.
//!
//! With `WatchdogSec=` systemd sets `WATCHDOG_USEC`; `watched` pings every
//! half of it from the task that runs the tick loop, whatever
//! `base_interval` is. The pings and the loop are polled by the same task:
//! a loop that blocks its thread (a hang) stops them and systemd restarts
//! the agent, while a loop awaiting a slow database still yields, and the
//! pings go on.
//!
//! Nothing is sent without `NOTIFY_SOCKET` (not under systemd), and errors
//! sending are logged once, never fatal. The variables are left in this
//! process's environment (unsetting them is unsound once threads run);
//! `process` removes them from every plugin's (SPEC §4).

use std::future::Future;
use std::time::Duration;

use chrono::DateTime;
use sd_notify::NotifyState;
use tracing::{debug, warn};

use crate::env::TEST_HANG_TICK_LOOP_AFTER;

/// Tells systemd when the agent is ready and what it last did.
#[derive(Debug)]
pub(super) struct Notifier {
    /// `NOTIFY_SOCKET` is set.
    enabled: bool,
    /// READY=1 was sent.
    ready: bool,
    /// A send failed and was logged (later failures are not).
    failed: bool,
}

impl Notifier {
    /// A notifier for this process's service manager, if any.
    pub(super) fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            ready: false,
            failed: false,
        }
    }

    /// READY=1, once: the first heartbeat is written.
    pub(super) fn heartbeat_written(&mut self) {
        self.ready("started: first heartbeat written");
    }

    /// After each tick: READY=1 if not sent yet (the database did not
    /// answer at start), and the `STATUS=` line.
    pub(super) fn ticked(&mut self, tick: i64, now: i64, faults: usize) {
        let at = DateTime::from_timestamp(now, 0).map_or_else(
            || now.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
        let status = format!("last tick {tick} at {at}: {faults} faults");
        if self.ready {
            self.send(&[NotifyState::Status(&status)]);
        } else {
            self.ready(&status);
        }
    }

    /// STOPPING=1: the agent is leaving (a signal, or `--count` done).
    pub(super) fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn ready(&mut self, status: &str) {
        if self.ready {
            return;
        }
        self.ready = true;
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    fn send(&mut self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            if !self.failed {
                warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
            }
            self.failed = true;
        }
    }
}

/// Runs the tick loop `ticks`, sending WATCHDOG=1 every `WATCHDOG_USEC / 2`
/// meanwhile (when systemd set it for this process) from the same task.
pub(super) async fn watched<F: Future>(ticks: F) -> F::Output {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return ticks.await;
    };
    let period = (timeout / 2).max(Duration::from_millis(1));
    let hang_after = std::env::var(TEST_HANG_TICK_LOOP_AFTER)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    debug!(
        period_secs = period.as_secs_f64(),
        "systemd watchdog enabled"
    );
    let started = tokio::time::Instant::now();
    let mut pings = tokio::time::interval(period);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed = false;
    tokio::pin!(ticks);
    loop {
        tokio::select! {
            biased;
            out = &mut ticks => return out,
            _ = pings.tick() => {
                if hang_after.is_some_and(|after| started.elapsed() >= after) {
                    hang();
                }
                if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog])
                    && !failed
                {
                    warn!(error = %e, "cannot ping the systemd watchdog");
                    failed = true;
                }
            }
        }
    }
}

/// The test hook's hang: blocks this thread, and so the tick loop, for good.
fn hang() {
    warn!(
        variable = TEST_HANG_TICK_LOOP_AFTER,
        "test hook: blocking the tick loop's thread"
    );
    loop {
        std::thread::sleep(Duration::from_hours(1));
    }
}
