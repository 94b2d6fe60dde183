//! Tick arithmetic and the due rule (SPEC §5), pure.
//!
//! Ticks count base intervals since the epoch, so every agent with the same
//! base interval ticks on the same boundaries and a check with `interval: 5`
//! runs five minutes apart "on the hour". The agent loop owns the clock and
//! the sleeping; this module only computes: which tick it is, which checks
//! are due, where a crowded tick's probes start, and in which order a tick's
//! checks take their turns.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::checks;
use crate::checks::{CheckDef, CheckKind};

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
pub(crate) fn tick_start(tick: i64, base_interval: f64) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "tick numbers are far below 2^52"
    )]
    let start = tick as f64 * base_interval;
    start
}

/// The longest automatic splay, whatever the base interval.
const SPLAY_MAX: f64 = 30.0;

/// Seconds after each tick's start at which the agent named `name` starts
/// its ticks (`agent.splay: auto`, SPEC §14).
///
/// A fleet ticking on the same boundaries hits the database and shared
/// services in the same second; each agent instead waits a fixed share of
/// `[0, min(base_interval / 2, 30 s))` taken from a stable hash of its name
/// (the same across restarts, hosts and builds), so the fleet's ticks spread
/// evenly over that window while tick numbers stay those of SPEC §5.
#[must_use]
pub(crate) fn splay_offset(name: &str, base_interval: f64) -> f64 {
    // `splay:` as a prefix keeps it independent of a check's spread offset
    // should an agent and a check share a name.
    fraction(&format!("splay:{name}")) * (base_interval / 2.0).min(SPLAY_MAX)
}

/// The tick whose splayed start (`tick_start + splay`) is the latest at or
/// before `now`: the tick in progress as a splayed agent sees it.
#[must_use]
pub(crate) fn splayed_tick_at(now: f64, base_interval: f64, splay: f64) -> i64 {
    tick_at(now - splay, base_interval)
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
pub(crate) fn is_due(
    tick: i64,
    interval: u64,
    retry_interval: u64,
    last_failure: Option<i64>,
) -> bool {
    let interval = i64::try_from(interval.max(1)).unwrap_or(i64::MAX);
    let retry_interval = i64::try_from(retry_interval.max(1)).unwrap_or(i64::MAX);
    match last_failure {
        Some(failed) => tick - failed >= retry_interval,
        None => tick.rem_euclid(interval) == 0,
    }
}

/// Share of the base interval over which a crowded tick's probes are spread.
const SPREAD_SHARE: f64 = 0.5;
/// A spread probe still has its whole timeout before this share of the
/// interval, so a spread tick does not overrun into the next.
const SPREAD_FINISH_BY: f64 = 0.9;

/// Seconds after the tick's start at which a probe of a crowded tick starts.
///
/// When a tick has more probes than can be in flight at once, starting them
/// all at the tick's start only queues them behind each other and hits their
/// targets with a burst; spreading them over part of the interval gives each
/// target an even rate and each probe an idle connection. The offset is a
/// fixed fraction of the window taken from a hash of the check's name, so a
/// probe keeps its place from tick to tick and across restarts, and every
/// target sees its probes at a steady cadence. The window is half the
/// interval, shortened so that the probe's `timeout` still ends before 90%
/// of the interval; a probe whose timeout leaves no room starts at once.
#[must_use]
pub(crate) fn spread_offset(name: &str, base_interval: f64, timeout: f64) -> f64 {
    let window = (base_interval * SPREAD_SHARE)
        .min(base_interval * SPREAD_FINISH_BY - timeout)
        .max(0.0);
    fraction(name) * window
}

/// A stable number in [0, 1) from a name.
fn fraction(name: &str) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's high bits barely change between `p1` and `p2`; a final mix
    // (MurmurHash3's fmix64) spreads every input bit over all of them.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    // The top 53 bits fit an f64's mantissa exactly.
    #[expect(clippy::cast_precision_loss, reason = "53 bits are exact in an f64")]
    let value = (hash >> 11) as f64 / (1u64 << 53) as f64;
    value
}

/// The checks in an order that takes turns between targets: the first
/// check of every target, then the second of every target, and so on
/// (targets in order of first appearance; checks without a shared target
/// each count as their own).
pub(crate) fn take_turns(checks: Vec<Arc<CheckDef>>) -> Vec<Arc<CheckDef>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut queues: Vec<VecDeque<Arc<CheckDef>>> = Vec::new();
    let total = checks.len();
    for check in checks {
        let fresh = queues.len();
        let queue =
            checks::target_key(&check).map_or(fresh, |key| *index.entry(key).or_insert(fresh));
        if queue == fresh {
            queues.push(VecDeque::new());
        }
        queues[queue].push_back(check);
    }
    let mut ordered = Vec::with_capacity(total);
    while ordered.len() < total {
        for queue in &mut queues {
            ordered.extend(queue.pop_front());
        }
        queues.retain(|q| !q.is_empty());
    }
    ordered
}

/// Whether a check is an in-process probe (spread in crowded ticks).
pub(crate) fn is_probe(check: &CheckDef) -> bool {
    matches!(
        check.kind,
        CheckKind::Http(_) | CheckKind::Tcp(_) | CheckKind::Socket(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::http::HttpCheck;
    use std::path::Path;

    fn probe(name: &str, url: &str) -> Arc<CheckDef> {
        let mut check = CheckDef::broken(name.into(), Path::new("/c/web.yaml"), String::new());
        check.kind = CheckKind::Http(Box::new(HttpCheck::new(url.parse().unwrap())));
        Arc::new(check)
    }

    #[test]
    fn a_tick_takes_turns_between_targets() {
        let checks = vec![
            probe("a1", "http://a/1"),
            probe("a2", "http://a/2"),
            probe("a3", "http://a:80/3"),
            probe("b1", "http://b/1"),
            Arc::new(CheckDef::broken("x".into(), Path::new("/c"), String::new())),
            probe("b2", "https://b/2"),
        ];
        let order: Vec<String> = take_turns(checks).iter().map(|c| c.name.clone()).collect();
        assert_eq!(order, ["a1", "b1", "x", "b2", "a2", "a3"]);
        assert!(is_probe(&probe("p", "http://a/")));
    }

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

    // See: #16
    #[test]
    fn splay_offsets_of_many_names_spread_evenly_over_the_window() {
        // 60 s ticks: the window is [0, 30) s, thirty 1-second buckets.
        let names = 10_000;
        let mut buckets = [0usize; 30];
        for i in 0..names {
            let offset = splay_offset(&format!("web{i}.example.com"), 60.0);
            assert!((0.0..30.0).contains(&offset), "{offset}");
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bucket = offset.floor() as usize;
            buckets[bucket] += 1;
        }
        let mean = names / buckets.len();
        let fullest = *buckets.iter().max().unwrap();
        let emptiest = *buckets.iter().min().unwrap();
        assert!(fullest <= 3 * mean, "{buckets:?}");
        // Even, not merely capped: no bucket is nearly empty either.
        assert!(emptiest * 3 >= mean, "{buckets:?}");
    }

    // See: #16
    #[test]
    fn a_splay_offset_is_stable_and_differs_between_names() {
        let first = splay_offset("web1.example.com", 60.0);
        // Bit for bit: the same name, the same offset.
        assert_eq!(
            first.to_bits(),
            splay_offset("web1.example.com", 60.0).to_bits()
        );
        assert!((first - splay_offset("web2.example.com", 60.0)).abs() > 1e-6);
        // A fixed value: the offset must not change between builds.
        let expected = fraction("splay:web1.example.com") * 30.0;
        assert!((first - expected).abs() < 1e-12);
    }

    // See: #16
    #[test]
    fn the_splay_window_is_half_a_short_interval_and_at_most_30_seconds() {
        for i in 0..1000 {
            let name = format!("db{i}");
            assert!(splay_offset(&name, 2.0) < 1.0);
            assert!(splay_offset(&name, 600.0) < 30.0);
        }
        let name = "db1";
        let short = splay_offset(name, 2.0);
        assert!((splay_offset(name, 4.0) - 2.0 * short).abs() < 1e-9);
        assert!((splay_offset(name, 3600.0) - splay_offset(name, 60.0)).abs() < 1e-9);
    }

    // See: #16
    #[test]
    fn a_splayed_tick_keeps_its_number_and_starts_late() {
        // Tick 10 of a 60 s interval starts at 600 s; splayed by 7 s, at 607 s.
        assert_eq!(splayed_tick_at(606.9, 60.0, 7.0), 9);
        assert_eq!(splayed_tick_at(607.0, 60.0, 7.0), 10);
        assert_eq!(splayed_tick_at(666.9, 60.0, 7.0), 10);
        assert_eq!(splayed_tick_at(607.0, 60.0, 0.0), 10);
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

    #[test]
    fn spread_offsets_are_stable_and_leave_room_for_the_timeout() {
        let names: Vec<String> = (0..1000).map(|i| format!("//a/web/p{i}")).collect();
        let offsets: Vec<f64> = names.iter().map(|n| spread_offset(n, 60.0, 10.0)).collect();
        assert!(offsets.iter().all(|&o| (0.0..30.0).contains(&o)));
        // Spread over the whole window, not bunched.
        let early = offsets.iter().filter(|&&o| o < 15.0).count();
        assert!((400..600).contains(&early), "{early}");
        assert_eq!(
            spread_offset(&names[7], 60.0, 10.0).to_bits(),
            offsets[7].to_bits()
        );
        // A 42 s timeout leaves 60 * 0.9 - 42 = 12 s of window.
        assert!(names.iter().all(|n| spread_offset(n, 60.0, 42.0) < 12.0));
        // No room at all: every probe starts at once.
        assert!(
            names
                .iter()
                .all(|n| spread_offset(n, 60.0, 60.0).to_bits() == 0.0f64.to_bits())
        );
    }
}
