//! The meta-check (SPEC §8, §14), pure: inactive peers (judged by their
//! heartbeat changing, remembered between runs as `Observations`), peers
//! whose clock runs ahead, expected agents that never reported, forgotten
//! squelches, peers whose alerts fail and agents stopped with open alerts,
//! as plugin JSON faults.
//!
//! `agent::meta_faults` reads the database and the observer's memory and
//! hands the records here with `now`, the observer's clock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::fault::AgentFault;
use crate::severity::Severity;
use crate::squelch::Squelch;

/// An agent's heartbeat: the one fleet record the meta-check judges, plus
/// what the agent says about itself (SPEC §14).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub name: String,
    /// Last heartbeat (epoch seconds).
    pub updated: i64,
    /// The agent's version (what `cimaa --version` prints after the name);
    /// `None` for an agent that does not record it (zc.cimaa, an older
    /// cimaa) or a stored value that is not text. Left out of JSON when
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How many checks the agent runs (last good versions included,
    /// placeholders for broken files not); `None` as for `version`, and
    /// until the agent's first tick has scanned its check directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<u64>,
}

/// An agent that stopped cleanly and left open alerts (SPEC §14).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedAgent {
    pub name: String,
    /// When it stopped (epoch seconds).
    pub stopped: i64,
    /// How many open alerts it kept.
    pub open_alerts: usize,
}

/// The one fault that stands for more than `-m` inactive agents at once.
pub(crate) const INACTIVE_AGENTS: &str = "inactive-agents";

/// `-w`, `-e`, `-s`, `-m` and what they are measured in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Base intervals after which an agent is a WARNING.
    pub warn_intervals: f64,
    /// Base intervals after which an agent is an ERROR.
    pub error_intervals: f64,
    /// Minutes after which a non-permanent squelch is reported.
    pub squelch_minutes: i64,
    /// `-x`: a squelch that expires within this many minutes while it
    /// still matches a critical fault is a WARNING (SPEC §12).
    pub expiring_minutes: i64,
    /// `-m`: more inactive agents than this at once are one fault
    /// `inactive-agents` (SPEC §10).
    pub max_inactive: usize,
    pub base_interval: f64,
}

/// One fault of the meta-check's output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct MetaFault {
    pub name: String,
    pub severity: Severity,
    pub message: String,
}

/// What an observer remembers of one peer between runs (SPEC §14): the
/// heartbeat value it last saw and when, on the observer's own clock, it
/// last saw that value change (`None` until it has seen one change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Observation {
    pub heartbeat: i64,
    pub changed: Option<i64>,
}

/// An observer's memory of its peers, by agent name.
pub(crate) type Observations = BTreeMap<String, Observation>;

/// Most peers an observer remembers: beyond it, the peers whose heartbeat
/// time is nearest the observer's clock are forgotten first (they are the
/// ones the clock judges right anyway) and fall back to that clock.
pub(crate) const MAX_OBSERVED: usize = 20_000;

/// The observations after seeing `heartbeats` at `now` (observer's clock).
///
/// A value that differs from the one remembered was written since the last
/// run: it changed `now`. A peer no longer listed (deregistered, forgotten)
/// is dropped, and so is the observer itself. The observer's clock may step
/// back: a change remembered in its future is moved to `now`, so elapsed
/// times are never negative and a step back only delays a report by the
/// step, never raises a false one.
#[must_use]
pub(crate) fn observe(
    previous: &Observations,
    heartbeats: &[Heartbeat],
    own_agent: &str,
    now: i64,
) -> Observations {
    let mut peers: Vec<(&Heartbeat, Observation)> = heartbeats
        .iter()
        .filter(|peer| peer.name != own_agent)
        .map(|peer| {
            let observation = match previous.get(&peer.name) {
                None => Observation {
                    heartbeat: peer.updated,
                    changed: None,
                },
                Some(seen) if seen.heartbeat == peer.updated => Observation {
                    heartbeat: peer.updated,
                    changed: seen.changed.map(|changed| changed.min(now)),
                },
                Some(_) => Observation {
                    heartbeat: peer.updated,
                    changed: Some(now),
                },
            };
            (peer, observation)
        })
        .collect();
    if peers.len() > MAX_OBSERVED {
        peers.sort_by_key(|(peer, _)| std::cmp::Reverse(now.abs_diff(peer.updated)));
        peers.truncate(MAX_OBSERVED);
    }
    peers
        .into_iter()
        .map(|(peer, observation)| (peer.name.clone(), observation))
        .collect()
}

/// The seconds beyond which a peer's heartbeat time ahead of the observer's
/// clock is a `clock-skew-AGENT` WARNING: `max(base_interval, 30 s)`.
#[must_use]
#[expect(
    clippy::cast_possible_truncation,
    reason = "whole seconds of sane intervals"
)]
pub(crate) fn skew_limit(base_interval: f64) -> i64 {
    base_interval.max(30.0).ceil() as i64
}

/// Inactive peers and peers whose clock runs ahead, judged by the observer
/// at `now` with `observations` (already updated by `observe` for this run).
///
/// A peer is idle for as long as its heartbeat value has stayed unchanged on
/// the observer's clock once the observer has seen it change; until then,
/// for as long as its heartbeat time is behind the observer's clock (never
/// negative). Idle beyond `-w` base intervals is a WARNING, beyond `-e` an
/// ERROR. A heartbeat time more than `skew_limit` ahead of `now` is a
/// WARNING `clock-skew-AGENT` (a peer behind is judged by change alone).
///
/// More inactive peers than `-m` at once (a network partition, a lost
/// zone) are one ERROR `inactive-agents`, `N agents inactive: NAME, ...
/// and K more` (names listed as a storm's are, `storm::listing`), instead of
/// one fault each (SPEC §10); clock-skew warnings are not folded.
#[must_use]
#[expect(
    clippy::cast_precision_loss,
    reason = "ages in seconds are far below 2^52"
)]
pub(crate) fn peer_faults(
    own_agent: &str,
    heartbeats: &[Heartbeat],
    observations: &Observations,
    limits: Limits,
    now: i64,
) -> Vec<MetaFault> {
    let warn = limits.warn_intervals * limits.base_interval;
    let error = limits.error_intervals * limits.base_interval;
    let skew = skew_limit(limits.base_interval);
    let mut peers: Vec<&Heartbeat> = heartbeats.iter().filter(|a| a.name != own_agent).collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut inactive = Vec::new();
    let mut skewed = Vec::new();
    for peer in peers {
        let since = observations
            .get(&peer.name)
            .filter(|seen| seen.heartbeat == peer.updated)
            .and_then(|seen| seen.changed)
            .unwrap_or(peer.updated);
        let idle = (now - since).max(0);
        if idle as f64 > warn {
            inactive.push(MetaFault {
                name: peer.name.clone(),
                severity: if idle as f64 > error {
                    Severity::ERROR
                } else {
                    Severity::WARNING
                },
                message: format!("Inactive agent (no heartbeat for {})", duration(idle)),
            });
        }
        if peer.updated - now > skew {
            skewed.push(MetaFault {
                name: format!("clock-skew-{}", peer.name),
                severity: Severity::WARNING,
                message: format!(
                    "Clock more than {} ahead of the clock of {own_agent}; its heartbeats are judged by their change alone (check NTP on it)",
                    duration(skew)
                ),
            });
        }
    }
    if inactive.len() > limits.max_inactive {
        let message = format!(
            "{} agents inactive: {}",
            inactive.len(),
            crate::storm::listing(inactive.iter().map(|f| f.name.as_str()))
        );
        inactive = vec![MetaFault {
            name: INACTIVE_AGENTS.to_owned(),
            severity: Severity::ERROR,
            message,
        }];
    }
    inactive.extend(skewed);
    inactive
}

/// One line of an expect file (`meta-check --expect`): an agent name, or a
/// `/regex/` (searched in agent names, as squelch regexes are).
#[derive(Clone, Debug)]
pub(crate) enum Expected {
    Name(String),
    Pattern { line: String, regex: regex::Regex },
}

/// The lines of an expect file: one agent name or `/regex/` per line; blank
/// lines and lines starting with `#` are ignored, surrounding spaces trimmed.
///
/// # Errors
/// An invalid regex, naming its line number (from 1).
pub(crate) fn parse_expected(text: &str) -> Result<Vec<Expected>, String> {
    let mut expected = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pattern = line
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|_| line.len() >= 2);
        expected.push(match pattern {
            Some(pattern) => Expected::Pattern {
                line: line.to_owned(),
                regex: regex::Regex::new(pattern).map_err(|error| {
                    format!("line {}: invalid regex `{line}`: {error}", index + 1)
                })?,
            },
            None => Expected::Name(line.to_owned()),
        });
    }
    Ok(expected)
}

/// ERROR `Never reported` for every expected agent with no heartbeat in
/// `heartbeats` (named by it) and every `/regex/` that matches no agent
/// (named by the line). The observer itself is never reported, and counts
/// as an agent that reported.
#[must_use]
pub(crate) fn expected_faults(
    own_agent: &str,
    expected: &[Expected],
    heartbeats: &[Heartbeat],
) -> Vec<MetaFault> {
    let known = |name: &str| name == own_agent || heartbeats.iter().any(|a| a.name == name);
    let mut names = BTreeSet::new();
    for entry in expected {
        match entry {
            Expected::Name(name) if !known(name) => {
                names.insert(name.clone());
            }
            Expected::Pattern { line, regex }
                if !regex.is_match(own_agent)
                    && !heartbeats.iter().any(|a| regex.is_match(&a.name)) =>
            {
                names.insert(line.clone());
            }
            _ => {}
        }
    }
    names
        .into_iter()
        .map(|name| MetaFault {
            name,
            severity: Severity::ERROR,
            message: "Never reported".to_owned(),
        })
        .collect()
}

/// The meta-check's other faults, in a stable order: forgotten squelches and
/// peers whose alerts fail.
#[must_use]
pub(crate) fn faults(
    own_agent: &str,
    squelches: &[Squelch],
    alert_failures: &[AgentFault],
    limits: Limits,
    now: i64,
) -> Vec<MetaFault> {
    let mut out = Vec::new();
    let max_age = limits.squelch_minutes.saturating_mul(60);
    for squelch in squelches {
        if squelch.permanent || !squelch.active(now) {
            continue;
        }
        let age = now - squelch.time;
        if age > max_age || max_age == 0 {
            out.push(MetaFault {
                name: format!("squelch-{}", percent_encode(&squelch.regex)),
                severity: Severity::ERROR,
                message: format!(
                    "Alerts squelched {} minutes ago by {} because {}",
                    age.max(0) / 60,
                    squelch.user,
                    squelch.reason
                ),
            });
        }
    }
    for failure in alert_failures {
        if failure.agent == own_agent {
            continue;
        }
        out.push(MetaFault {
            name: failure.fault.name.clone(),
            severity: Severity::ERROR,
            message: failure.fault.message.clone(),
        });
    }
    out
}

/// WARNING `squelch-expiring-REGEX` (the regex percent-encoded as for
/// `squelch-REGEX`) for every squelch in force that expires within `-x`
/// minutes (compared in seconds) while it still matches one of the
/// `critical` fault names (SPEC §12): its faults page once it is gone.
///
/// The message names the expiry time in UTC rather than a countdown, so it
/// stays the same from run to run and the stored fault is not rewritten
/// each time.
#[must_use]
pub(crate) fn expiring_faults(
    squelches: &[Squelch],
    critical: &[&str],
    limits: Limits,
    now: i64,
) -> Vec<MetaFault> {
    let within = limits.expiring_minutes.saturating_mul(60);
    crate::squelch::expiring(squelches, critical, within, now)
        .into_iter()
        .map(|(squelch, matched)| MetaFault {
            name: format!("squelch-expiring-{}", percent_encode(&squelch.regex)),
            severity: Severity::WARNING,
            message: format!(
                "Squelch set by {} expires at {} and still matches {} critical fault{} (because {}); extend it or fix them",
                squelch.user,
                utc(squelch.expires.unwrap_or(now)),
                matched,
                if matched == 1 { "" } else { "s" },
                squelch.reason
            ),
        })
        .collect()
}

/// WARNING `stopped-with-alerts-AGENT` for every agent other than
/// `own_agent` that stopped cleanly more than `-s` minutes ago (compared in
/// seconds, so `-s 0` reports it at once) leaving open alerts (SPEC §14):
/// nothing resolves those until it starts again or is forgotten.
///
/// The message names the stop time in UTC rather than an age, so it stays
/// the same from run to run and the stored fault is not rewritten each time.
#[must_use]
pub(crate) fn stopped_faults(
    own_agent: &str,
    stopped: &[StoppedAgent],
    limits: Limits,
    now: i64,
) -> Vec<MetaFault> {
    let max_age = limits.squelch_minutes.saturating_mul(60);
    let mut stopped: Vec<&StoppedAgent> = stopped
        .iter()
        .filter(|agent| agent.name != own_agent)
        .filter(|agent| max_age <= 0 || now - agent.stopped > max_age)
        .collect();
    stopped.sort_by(|a, b| a.name.cmp(&b.name));
    stopped
        .into_iter()
        .map(|agent| MetaFault {
            name: format!("stopped-with-alerts-{}", agent.name),
            severity: Severity::WARNING,
            message: format!(
                "Stopped at {} with {} open alert{}; start it again or run `cimaa forget {}`",
                utc(agent.stopped),
                agent.open_alerts,
                if agent.open_alerts == 1 { "" } else { "s" },
                agent.name
            ),
        })
        .collect()
}

/// Epoch seconds as `2025-01-02 03:04:05 UTC`.
fn utc(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).map_or_else(
        || format!("epoch second {epoch}"),
        |time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// An age in seconds for people, in its two largest units: `45s`,
/// `3m12s`, `2h5m`, `3d4h` (a zero second unit is left out: `3m`, `2h`).
/// A negative age (a clock ahead of the observer's) is `0s`.
#[must_use]
pub(crate) fn duration(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let seconds = seconds.max(0);
    let (major, major_unit, minor, minor_unit) = if seconds < MINUTE {
        return format!("{seconds}s");
    } else if seconds < HOUR {
        (seconds / MINUTE, "m", seconds % MINUTE, "s")
    } else if seconds < DAY {
        (seconds / HOUR, "h", seconds % HOUR / MINUTE, "m")
    } else {
        (seconds / DAY, "d", seconds % DAY / HOUR, "h")
    };
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// Percent-encodes all but `A-Z a-z 0-9 _ . - ~ /` (Python's `quote`), so a
/// regex becomes a stable, readable fault name.
#[must_use]
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Fault;

    const LIMITS: Limits = Limits {
        warn_intervals: 2.0,
        error_intervals: 5.0,
        squelch_minutes: 60,
        expiring_minutes: 15,
        max_inactive: 5,
        base_interval: 60.0,
    };

    fn heartbeat(name: &str, updated: i64) -> Heartbeat {
        Heartbeat {
            name: name.into(),
            updated,
            ..Heartbeat::default()
        }
    }

    fn squelch(regex: &str, time: i64, permanent: bool) -> Squelch {
        Squelch {
            regex: regex.into(),
            reason: "maintenance".into(),
            user: "ann".into(),
            time,
            permanent,
            expires: None,
        }
    }

    #[test]
    fn unobserved_agents_warn_then_error_by_heartbeat_time_and_never_the_own_agent() {
        let now = 10_000;
        let stale = [
            heartbeat("b", now - 121),
            heartbeat("a", now - 301),
            heartbeat("self", now - 1000),
            heartbeat("c", now - 120),
        ];
        let got = peer_faults("self", &stale, &Observations::new(), LIMITS, now);
        let names: Vec<_> = got
            .iter()
            .map(|f| (f.name.as_str(), f.severity.0, f.message.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("a", 40, "Inactive agent (no heartbeat for 5m1s)"),
                ("b", 30, "Inactive agent (no heartbeat for 2m1s)")
            ]
        );
    }

    /// `count` peers silent for 3 minutes (WARNING each, unfolded), one
    /// of them named `aN` for each N.
    fn silent_peers(count: usize, now: i64) -> Vec<Heartbeat> {
        (0..count)
            .map(|i| heartbeat(&format!("a{i:02}"), now - 180))
            .collect()
    }

    #[test]
    fn inactive_agents_up_to_the_fold_are_reported_one_by_one() {
        let now = 10_000;
        let got = peer_faults(
            "self",
            &silent_peers(5, now),
            &Observations::new(),
            LIMITS,
            now,
        );
        assert_eq!(
            got.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["a00", "a01", "a02", "a03", "a04"]
        );
    }

    #[test]
    fn more_inactive_agents_than_the_fold_are_one_error() {
        let now = 10_000;
        let mut peers = silent_peers(6, now);
        peers.push(heartbeat("self", now - 1000));
        peers.push(heartbeat("alive", now - 10));
        let got = peer_faults("self", &peers, &Observations::new(), LIMITS, now);
        assert_eq!(
            got,
            [MetaFault {
                name: "inactive-agents".into(),
                severity: Severity::ERROR,
                message: "6 agents inactive: a00, a01, a02, a03, a04, a05".into(),
            }]
        );
    }

    #[test]
    fn a_folded_message_lists_ten_agents_and_counts_the_rest() {
        let now = 10_000;
        let got = peer_faults(
            "self",
            &silent_peers(13, now),
            &Observations::new(),
            LIMITS,
            now,
        );
        assert_eq!(
            got[0].message,
            "13 agents inactive: a00, a01, a02, a03, a04, a05, a06, a07, a08, a09 and 3 more"
        );
    }

    #[test]
    fn fold_zero_folds_a_single_inactive_agent_and_skew_stays_apart() {
        let now = 10_000;
        let limits = Limits {
            max_inactive: 0,
            ..LIMITS
        };
        let peers = [heartbeat("a", now - 400), heartbeat("ahead", now + 600)];
        let got = peer_faults("self", &peers, &Observations::new(), limits, now);
        let names: Vec<_> = got
            .iter()
            .map(|f| (f.name.as_str(), f.severity.0, f.message.as_str()))
            .collect();
        assert_eq!(names[0], ("inactive-agents", 40, "1 agents inactive: a"));
        assert_eq!(names[1].0, "clock-skew-ahead");
    }

    #[test]
    fn a_squelch_expiring_over_a_critical_fault_is_a_stable_warning() {
        let now = 1_800_000_000;
        let mut ending = squelch("web1/app+", now - 3600, false);
        ending.expires = Some(now + 600);
        let got = expiring_faults(&[ending], &["//web1/app/disk"], LIMITS, now);
        assert_eq!(
            got,
            [MetaFault {
                name: "squelch-expiring-web1/app%2B".into(),
                severity: Severity::WARNING,
                message: "Squelch set by ann expires at 2027-01-15 08:10:00 UTC and still matches 1 critical fault (because maintenance); extend it or fix them".into(),
            }]
        );
        // The next run, a minute later, says the same.
        let mut ending = squelch("web1/app+", now - 3600, false);
        ending.expires = Some(now + 600);
        let later = expiring_faults(&[ending], &["//web1/app/disk"], LIMITS, now + 60);
        assert_eq!(later, got);
    }

    #[test]
    fn a_squelch_expiring_beyond_x_minutes_is_not_reported() {
        let now = 1_800_000_000;
        let mut ending = squelch("web", now, false);
        ending.expires = Some(now + 15 * 60 + 1);
        assert!(expiring_faults(&[ending.clone()], &["//web1/a/b"], LIMITS, now).is_empty());
        let limits = Limits {
            expiring_minutes: 16,
            ..LIMITS
        };
        assert_eq!(
            expiring_faults(&[ending], &["//web1/a/b"], limits, now).len(),
            1
        );
    }

    #[test]
    fn durations_show_their_two_largest_units() {
        let cases = [
            (-5, "0s"),
            (0, "0s"),
            (45, "45s"),
            (59, "59s"),
            (60, "1m"),
            (192, "3m12s"),
            (3599, "59m59s"),
            (3600, "1h"),
            (7500, "2h5m"),
            (7559, "2h5m"),
            (86_399, "23h59m"),
            (86_400, "1d"),
            (273_600, "3d4h"),
            (90 * 86_400 + 59, "90d"),
        ];
        for (seconds, want) in cases {
            assert_eq!(duration(seconds), want, "{seconds} s");
        }
    }

    fn stopped(name: &str, at: i64, open_alerts: usize) -> StoppedAgent {
        StoppedAgent {
            name: name.into(),
            stopped: at,
            open_alerts,
        }
    }

    #[test]
    fn agents_stopped_with_open_alerts_warn_after_the_squelch_age() {
        let now = 10_000;
        let agents = [
            stopped("web2", now - 3601, 2),
            stopped("young", now - 3600, 1),
            stopped("self", now - 99_999, 1),
            stopped("db1", now - 7200, 1),
        ];
        let got = stopped_faults("self", &agents, LIMITS, now);
        assert_eq!(
            got,
            [
                MetaFault {
                    name: "stopped-with-alerts-db1".into(),
                    severity: Severity::WARNING,
                    message: "Stopped at 1970-01-01 00:46:40 UTC with 1 open alert; start it again or run `cimaa forget db1`".into(),
                },
                MetaFault {
                    name: "stopped-with-alerts-web2".into(),
                    severity: Severity::WARNING,
                    message: "Stopped at 1970-01-01 01:46:39 UTC with 2 open alerts; start it again or run `cimaa forget web2`".into(),
                },
            ]
        );
    }

    #[test]
    fn squelch_age_zero_reports_an_agent_stopped_this_second() {
        let limits = Limits {
            squelch_minutes: 0,
            ..LIMITS
        };
        let got = stopped_faults("self", &[stopped("web 2", 500, 3)], limits, 500);
        assert_eq!(
            got.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["stopped-with-alerts-web 2"],
            "the name is kept as is"
        );
        assert_eq!(
            got[0].message,
            "Stopped at 1970-01-01 00:08:20 UTC with 3 open alerts; start it again or run `cimaa forget web 2`"
        );
    }

    #[test]
    fn old_non_permanent_squelches_are_reported() {
        let now = 10_000;
        let squelches = [
            squelch("web1/app", now - 3601, false),
            squelch("perm", now - 99_999, true),
            squelch("young", now - 100, false),
        ];
        let got = faults("self", &squelches, &[], LIMITS, now);
        assert_eq!(
            got,
            [MetaFault {
                name: "squelch-web1/app".into(),
                severity: Severity::ERROR,
                message: "Alerts squelched 60 minutes ago by ann because maintenance".into(),
            }]
        );
    }

    #[test]
    fn squelch_age_zero_reports_every_non_permanent_squelch() {
        let limits = Limits {
            squelch_minutes: 0,
            ..LIMITS
        };
        let got = faults("self", &[squelch("x", 500, false)], &[], limits, 500);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn peers_alert_failures_are_reported_as_errors() {
        let failure = |agent: &str| AgentFault {
            agent: agent.into(),
            fault: Fault {
                name: format!("{agent}#alerts"),
                severity: Severity::CRITICAL,
                message: "Failed to send alert information (2/3)".into(),
                since: 0,
                updated: 0,
                triggered: false,
                escalates: false,
                attempts: 0,
                monitor_runs: 0,
                storm: false,
                suppressed_by: None,
                held: false,
                flapping: false,
            },
        };
        let got = faults(
            "self",
            &[],
            &[failure("web2"), failure("self")],
            LIMITS,
            100,
        );
        assert_eq!(
            got,
            [MetaFault {
                name: "web2#alerts".into(),
                severity: Severity::ERROR,
                message: "Failed to send alert information (2/3)".into(),
            }]
        );
    }

    fn seen(heartbeat: i64, changed: Option<i64>) -> Observation {
        Observation { heartbeat, changed }
    }

    /// One observer run: remember what is seen, then judge.
    fn run(
        memory: &mut Observations,
        heartbeats: &[Heartbeat],
        now: i64,
    ) -> Vec<(String, i64, String)> {
        *memory = observe(memory, heartbeats, "self", now);
        peer_faults("self", heartbeats, memory, LIMITS, now)
            .into_iter()
            .map(|f| (f.name, f.severity.0, f.message))
            .collect()
    }

    #[test]
    fn observations_remember_when_each_value_changed_on_the_observers_clock() {
        // (remembered, heartbeat seen, now) -> remembered after the run
        let cases = [
            (None, 900, 1000, seen(900, None)),
            (Some(seen(900, None)), 900, 1060, seen(900, None)),
            (Some(seen(900, None)), 960, 1060, seen(960, Some(1060))),
            (
                Some(seen(960, Some(1060))),
                960,
                1500,
                seen(960, Some(1060)),
            ),
            (
                Some(seen(960, Some(1060))),
                1020,
                1120,
                seen(1020, Some(1120)),
            ),
            // The observer's clock stepped back: never a change in its future.
            (Some(seen(960, Some(1060))), 960, 700, seen(960, Some(700))),
            // A value that goes back (a peer's clock stepped back) is a change.
            (
                Some(seen(960, Some(1060))),
                500,
                1120,
                seen(500, Some(1120)),
            ),
        ];
        for (remembered, heartbeat_time, now, want) in cases {
            let mut previous = Observations::new();
            if let Some(remembered) = remembered.clone() {
                previous.insert("web2".into(), remembered);
            }
            let got = observe(&previous, &[heartbeat("web2", heartbeat_time)], "self", now);
            assert_eq!(
                got.get("web2"),
                Some(&want),
                "{remembered:?}, heartbeat {heartbeat_time}, now {now}"
            );
        }
    }

    #[test]
    fn observations_drop_the_observer_and_peers_no_longer_listed() {
        let mut previous = Observations::new();
        previous.insert("gone".into(), seen(5, Some(10)));
        previous.insert("self".into(), seen(5, None));
        let got = observe(
            &previous,
            &[heartbeat("self", 90), heartbeat("web2", 90)],
            "self",
            100,
        );
        assert_eq!(got.keys().collect::<Vec<_>>(), ["web2"]);
    }

    #[test]
    fn observations_are_capped_keeping_the_peers_furthest_from_the_clock() {
        let now = 1_000_000;
        let heartbeats: Vec<Heartbeat> = (0..=MAX_OBSERVED)
            .map(|i| heartbeat(&format!("a{i}"), now - 10))
            .chain([
                heartbeat("behind", now - 300),
                heartbeat("ahead", now + 300),
            ])
            .collect();
        let got = observe(&Observations::new(), &heartbeats, "self", now);
        assert_eq!(got.len(), MAX_OBSERVED);
        assert!(got.contains_key("behind") && got.contains_key("ahead"));
    }

    #[test]
    fn a_peer_five_minutes_behind_and_alive_is_inactive_only_until_observed_twice() {
        let mut memory = Observations::new();
        let first = run(&mut memory, &[heartbeat("late", 1000 - 300)], 1000);
        assert_eq!(
            first,
            [(
                "late".into(),
                30,
                "Inactive agent (no heartbeat for 5m)".into()
            )],
            "before any change is seen, the heartbeat time is all there is"
        );
        for (tick, now) in [1060, 1120, 1180, 1240].into_iter().enumerate() {
            let got = run(&mut memory, &[heartbeat("late", now - 300)], now);
            assert_eq!(got, [], "run {} at {now}", tick + 2);
        }
    }

    #[test]
    fn a_peer_behind_that_stops_is_reported_by_how_long_its_value_stood_still() {
        let mut memory = Observations::new();
        run(&mut memory, &[heartbeat("late", 700)], 1000);
        run(&mut memory, &[heartbeat("late", 760)], 1060);
        // Dies: the value stays 760 from here on.
        let by_time: Vec<_> = [1120, 1180, 1181, 1360, 1361]
            .into_iter()
            .map(|now| run(&mut memory, &[heartbeat("late", 760)], now))
            .collect();
        assert_eq!(
            by_time,
            [
                vec![],
                vec![],
                vec![(
                    "late".into(),
                    30,
                    "Inactive agent (no heartbeat for 2m1s)".into()
                )],
                vec![(
                    "late".into(),
                    30,
                    "Inactive agent (no heartbeat for 5m)".into()
                )],
                vec![(
                    "late".into(),
                    40,
                    "Inactive agent (no heartbeat for 5m1s)".into()
                )],
            ]
        );
    }

    #[test]
    fn a_peer_ahead_is_a_clock_skew_warning_beyond_the_limit_only() {
        let now = 10_000;
        // base_interval 60: the limit is 60 s.
        let heartbeats = [
            heartbeat("ahead", now + 61),
            heartbeat("near", now + 60),
            heartbeat("behind", now - 100),
            heartbeat("self", now + 999),
        ];
        let got = peer_faults("self", &heartbeats, &Observations::new(), LIMITS, now);
        assert_eq!(
            got,
            [MetaFault {
                name: "clock-skew-ahead".into(),
                severity: Severity::WARNING,
                message: "Clock more than 1m ahead of the clock of self; its heartbeats are judged by their change alone (check NTP on it)".into(),
            }]
        );
    }

    #[test]
    fn the_skew_limit_is_the_base_interval_but_at_least_30_seconds() {
        for (base, want) in [(10.0, 30), (30.0, 30), (60.0, 60), (90.5, 91)] {
            assert_eq!(skew_limit(base), want, "{base}");
        }
    }

    #[test]
    fn a_dead_peer_ahead_is_reported_once_its_value_stood_still_long_enough() {
        let mut memory = Observations::new();
        run(&mut memory, &[heartbeat("ahead", 1300)], 1000);
        run(&mut memory, &[heartbeat("ahead", 1360)], 1060);
        let got = run(&mut memory, &[heartbeat("ahead", 1360)], 1181);
        assert_eq!(
            got.iter().map(|f| (f.0.as_str(), f.1)).collect::<Vec<_>>(),
            [("ahead", 30), ("clock-skew-ahead", 30)]
        );
    }

    fn expected(text: &str) -> Vec<Expected> {
        parse_expected(text).unwrap()
    }

    #[test]
    fn expected_agents_and_patterns_without_a_heartbeat_never_reported() {
        let list =
            expected("# the web tier\n\nweb1\n  web2  \n/^db\\d+$/\n/^cache/\nself\n/^se/\n");
        let heartbeats = [heartbeat("web1", 5), heartbeat("cache-a", 5)];
        let got = expected_faults("self", &list, &heartbeats);
        assert_eq!(
            got.iter()
                .map(|f| (f.name.as_str(), f.severity.0, f.message.as_str()))
                .collect::<Vec<_>>(),
            [
                ("/^db\\d+$/", 40, "Never reported"),
                ("web2", 40, "Never reported")
            ]
        );
    }

    #[test]
    fn expect_lines_that_are_not_regexes_are_names() {
        let list = expected("/\nweb/1\n");
        let names: Vec<String> = list
            .iter()
            .map(|e| match e {
                Expected::Name(name) => name.clone(),
                Expected::Pattern { line, .. } => format!("regex {line}"),
            })
            .collect();
        assert_eq!(names, ["/", "web/1"]);
    }

    #[test]
    fn an_invalid_expect_regex_names_its_line() {
        let error = parse_expected("web1\n\n/web[/\n").unwrap_err();
        assert!(
            error.starts_with("line 3: invalid regex `/web[/`"),
            "{error}"
        );
    }

    #[test]
    fn regexes_are_percent_encoded() {
        assert_eq!(percent_encode("^web[12] app$"), "%5Eweb%5B12%5D%20app%24");
        assert_eq!(percent_encode("a/b.c-d_e~f"), "a/b.c-d_e~f");
    }
}
