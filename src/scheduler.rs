//! Tick arithmetic and the due rule (SPEC §5), pure.
//!
//! Ticks count base intervals since the epoch, so every agent with the same
//! base interval ticks on the same boundaries and a check with `interval: 5`
//! runs five minutes apart "on the hour". The agent loop owns the clock and
//! the sleeping; this module only computes.

/// The tick in progress at `now` (epoch seconds).
#[must_use]
pub fn tick_at(now: f64, base_interval: f64) -> i64 {
    // Ticks since 1970 at any sane base interval fit easily in an i64.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "floored ratio of two sane positive numbers"
    )]
    let tick = (now / base_interval).floor() as i64;
    tick
}

/// Epoch seconds at which `tick` starts.
#[must_use]
pub fn tick_start(tick: i64, base_interval: f64) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "tick numbers are far below 2^52"
    )]
    let start = tick as f64 * base_interval;
    start
}

/// Whether a check runs on `tick`.
///
/// A passing check runs when `tick % interval == 0`. While failing (its last
/// run had an ERROR or CRITICAL fault, at tick `last_failure`) it follows the
/// retry schedule instead: it runs once `retry_interval` ticks have passed
/// since that failure. This is the original zc.cimaa rule. Measuring "at
/// least `retry_interval` since" rather than "a multiple of it" means a tick
/// lost to an overrun delays a retry by one tick instead of a whole cycle.
#[must_use]
pub fn is_due(tick: i64, interval: u64, retry_interval: u64, last_failure: Option<i64>) -> bool {
    let interval = i64::try_from(interval.max(1)).unwrap_or(i64::MAX);
    let retry_interval = i64::try_from(retry_interval.max(1)).unwrap_or(i64::MAX);
    match last_failure {
        Some(failed) => tick - failed >= retry_interval,
        None => tick.rem_euclid(interval) == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of the original zc.cimaa scheduling table (schedule.rst).
    enum Step {
        /// Is the check due at this tick?
        Due(i64, bool),
        /// The last run failed (true) or passed (false).
        Failing(bool),
    }
    use Step::{Due, Failing};

    fn replay(retry_interval: u64, steps: &[Step]) {
        let mut last_run = 0;
        let mut last_failure = None;
        for step in steps {
            match *step {
                Due(tick, want) => {
                    let got = is_due(tick, 5, retry_interval, last_failure);
                    assert_eq!(got, want, "retry_interval {retry_interval}, tick {tick}");
                    if got {
                        last_run = tick;
                    }
                }
                Failing(failing) => last_failure = failing.then_some(last_run),
            }
        }
    }

    #[test]
    fn original_table_interval_5_retry_interval_2() {
        replay(
            2,
            &[
                Due(0, true),
                Due(1, false),
                Due(2, false),
                Due(3, false),
                Due(4, false),
                Due(5, true),
                Failing(true),
                Due(6, false),
                Due(7, true),
                Failing(true),
                Due(8, false),
                Due(9, true),
                Failing(true),
                Due(10, false),
                Due(11, true),
                Failing(false),
                Due(12, false),
                Due(13, false),
                Due(14, false),
                Due(15, true),
                Failing(true),
                Due(16, false),
                Due(17, true),
                Failing(false),
                Due(18, false),
                Due(19, false),
                Due(20, true),
            ],
        );
    }

    #[test]
    fn original_table_interval_5_retry_interval_1() {
        replay(
            1,
            &[
                Due(0, true),
                Due(1, false),
                Due(2, false),
                Due(3, false),
                Due(4, false),
                Due(5, true),
                Failing(true),
                Due(6, true),
                Due(7, true),
                Due(8, true),
                Due(9, true),
                Due(10, true),
            ],
        );
    }

    #[test]
    fn original_table_interval_5_retry_interval_3() {
        replay(
            3,
            &[
                Due(0, true),
                Due(1, false),
                Due(2, false),
                Due(3, false),
                Due(4, false),
                Due(5, true),
                Failing(true),
                Due(6, false),
                Due(7, false),
                Due(8, true),
                Failing(true),
                Due(9, false),
                Due(10, false),
                Due(11, true),
                Failing(true),
                Due(12, false),
                Due(13, false),
                Due(15, true),
                Failing(false),
                Due(16, false),
                Due(17, false),
                Due(18, false),
                Due(19, false),
                Due(20, true),
            ],
        );
    }

    #[test]
    fn original_table_interval_5_retry_interval_5() {
        replay(
            5,
            &[
                Due(0, true),
                Due(1, false),
                Due(2, false),
                Due(3, false),
                Due(4, false),
                Due(5, true),
                Failing(true),
                Due(6, false),
                Due(7, false),
                Due(8, false),
                Due(9, false),
                Due(10, true),
                Failing(true),
                Due(11, false),
                Due(12, false),
                Due(13, false),
                Due(14, false),
                Due(15, true),
                Failing(true),
                Due(16, false),
                Due(17, false),
                Due(18, false),
                Due(19, false),
                Due(20, true),
                Failing(false),
                Due(21, false),
                Due(22, false),
                Due(23, false),
                Due(24, false),
                Due(25, true),
            ],
        );
    }

    #[test]
    fn ticks_are_aligned_to_the_base_interval() {
        assert_eq!(tick_at(120.5, 60.0), 2);
        assert_eq!(tick_at(119.999, 60.0), 1);
        assert_eq!(tick_at(1.05, 0.1), 10);
        assert!((tick_start(3, 60.0) - 180.0).abs() < f64::EPSILON);
    }

    #[test]
    fn passing_checks_run_only_on_their_interval() {
        let due: Vec<i64> = (0..12).filter(|t| is_due(*t, 5, 1, None)).collect();
        assert_eq!(due, [0, 5, 10]);
    }
}
