//! The agent's one source of epoch seconds (`Clock::now`).
//!
//! Intervals, sleeps and timeouts use tokio's time, so a test that pauses
//! tokio's clock drives them. The epoch seconds the agent aligns ticks to and
//! writes into faults, heartbeats and metrics come from a `Clock` passed to
//! `agent::run`: the system one reads `SystemTime`; the tokio one counts
//! tokio's (possibly paused) clock from a fixed start, so under
//! `tokio::time::pause()` the agent's epoch moves exactly as far as its
//! timers do. Rejected: reading `SystemTime` everywhere and sleeping for real
//! in tests (seconds per scenario, and flaky on a loaded machine).

use std::time::{Duration, SystemTime};

/// Where the agent reads the time of day.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Source);

#[derive(Clone, Copy, Debug)]
enum Source {
    /// `SystemTime::now()`.
    System,
    /// `start_epoch` plus the tokio time elapsed since `start`.
    Tokio {
        start_epoch: f64,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// The wall clock (production).
    #[must_use]
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that reads `start_epoch` now and then follows tokio's clock,
    /// paused or not (tests).
    #[must_use]
    pub fn tokio_from(start_epoch: f64) -> Clock {
        Clock(Source::Tokio {
            start_epoch,
            start: tokio::time::Instant::now(),
        })
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn now(&self) -> f64 {
        match self.0 {
            Source::System => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            Source::Tokio { start_epoch, start } => start_epoch + start.elapsed().as_secs_f64(),
        }
    }

    /// `now` as a `SystemTime`, to compare with file modification times.
    #[must_use]
    pub fn system_time(&self) -> SystemTime {
        match self.0 {
            Source::System => SystemTime::now(),
            Source::Tokio { .. } => {
                SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.now().max(0.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time() {
        let clock = Clock::tokio_from(1_000.0);
        assert!((clock.now() - 1_000.0).abs() < 1e-9);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert!((clock.now() - 1_090.0).abs() < 1e-3);
        assert_eq!(
            clock.system_time(),
            SystemTime::UNIX_EPOCH + Duration::from_secs_f64(clock.now())
        );
    }
}
