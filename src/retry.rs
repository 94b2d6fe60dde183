//! The one retry policy: capped, jittered exponential backoff with a deadline.
//!
//! Used wherever cimaa retries a remote call on its own: DynamoDB requests
//! and batch resends, and the metric buffer's resends to a sink (Kinesis).
//! Alert deliveries are not retried here: SPEC §5 retries a failed alert on
//! the next tick, and within a tick the only wait is Slack's `Retry-After`,
//! which the receiver sets.
//!
//! The delay after the n-th failure is drawn uniformly from
//! `[bound/2, bound]`, where `bound = first * 2^(n-1)`, capped at `cap`
//! ("equal jitter"): agents that failed together spread out, and no retry
//! comes back at once to hammer a server that just refused. Full jitter
//! (`[0, bound]`) spreads slightly better but allows a near-zero pause.

use std::time::Duration;

use tokio::time::Instant;

/// How a failed call is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Upper bound of the first pause.
    pub first: Duration,
    /// No pause is longer than this.
    pub cap: Duration,
    /// Attempts in all, the first one included; `u32::MAX` for no limit.
    pub attempts: u32,
}

impl Backoff {
    /// The pause after failed attempt `attempt` (1 for the first), given a
    /// `random` number in [0, 1). Pure, so tests can pin the jitter.
    #[must_use]
    pub(crate) fn delay_with(&self, attempt: u32, random: f64) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        let bound = self.first.saturating_mul(doubling).min(self.cap);
        let half = bound / 2;
        half + half.mul_f64(random.clamp(0.0, 1.0))
    }

    /// The pause after failed attempt `attempt`, with fresh jitter.
    #[must_use]
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }

    /// Starts counting attempts of one call that must be done by `deadline`.
    #[must_use]
    pub(crate) fn start(self, deadline: Option<Instant>) -> Retry {
        Retry {
            backoff: self,
            attempt: 1,
            deadline,
        }
    }
}

/// The retry state of one call.
#[derive(Clone, Debug)]
pub(crate) struct Retry {
    backoff: Backoff,
    attempt: u32,
    deadline: Option<Instant>,
}

impl Retry {
    /// The attempt under way (1 for the first).
    #[must_use]
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// After a failed attempt: the pause before the next one, or `None` when
    /// the attempts are used up or the pause would end past the deadline.
    /// Counts the next attempt.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.backoff.attempts {
            return None;
        }
        let delay = self.backoff.delay(self.attempt);
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() + delay >= deadline)
        {
            return None;
        }
        self.attempt += 1;
        Some(delay)
    }

    /// After a success: the next failure starts from the first pause again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        first: Duration::from_millis(100),
        cap: Duration::from_secs(1),
        attempts: 5,
    };

    #[test]
    fn pauses_double_up_to_the_cap_within_half_and_whole_bound() {
        let cases = [
            (1, 0.0, 50),
            (1, 1.0, 100),
            (2, 0.0, 100),
            (2, 0.5, 150),
            (3, 1.0, 400),
            (4, 1.0, 800),
            (5, 1.0, 1000),
            (40, 0.0, 500),
        ];
        for (attempt, random, millis) in cases {
            assert_eq!(
                POLICY.delay_with(attempt, random),
                Duration::from_millis(millis),
                "attempt {attempt}, random {random}"
            );
        }
    }

    #[test]
    fn fresh_jitter_stays_within_the_bounds() {
        for _ in 0..1000 {
            let delay = POLICY.delay(3);
            assert!(delay >= Duration::from_millis(200) && delay <= Duration::from_millis(400));
        }
    }

    #[test]
    fn attempts_run_out() {
        let mut retry = POLICY.start(None);
        let pauses = std::iter::from_fn(|| retry.next_delay()).count();
        assert_eq!(pauses, 4);
        assert_eq!(retry.attempt(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_that_would_pass_the_deadline_is_not_taken() {
        let deadline = Instant::now() + Duration::from_millis(120);
        let mut retry = POLICY.start(Some(deadline));
        assert!(retry.next_delay().is_some(), "50-100 ms fits in 120 ms");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(retry.next_delay(), None, "100-200 ms does not fit in 20 ms");
    }

    #[test]
    fn a_success_starts_the_pauses_over() {
        let mut retry = POLICY.start(None);
        retry.next_delay();
        retry.next_delay();
        retry.reset();
        assert_eq!(retry.attempt(), 1);
    }
}
