//! The meta-check (SPEC §8, §14), pure: stale agents, forgotten squelches,
//! peers whose alerts fail and agents stopped with open alerts, as plugin
//! JSON faults.
//!
//! `agent::meta_faults` reads the database (only stale heartbeats,
//! squelches, `AGENT#alerts` faults and the summaries of stopped agents, so
//! the cost grows with trouble, not with the fleet) and hands the records
//! here with `now`.

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

/// `-w`, `-e`, `-s` and what they are measured in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Base intervals after which an agent is a WARNING.
    pub warn_intervals: f64,
    /// Base intervals after which an agent is an ERROR.
    pub error_intervals: f64,
    /// Minutes after which a non-permanent squelch is reported.
    pub squelch_minutes: i64,
    pub base_interval: f64,
}

impl Limits {
    /// Seconds after which an agent counts as inactive.
    #[must_use]
    #[expect(
        clippy::cast_possible_truncation,
        reason = "whole seconds of sane intervals"
    )]
    pub(crate) fn warn_secs(&self) -> i64 {
        (self.warn_intervals * self.base_interval).ceil() as i64
    }
}

/// One fault of the meta-check's output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct MetaFault {
    pub name: String,
    pub severity: Severity,
    pub message: String,
}

/// The meta-check's faults, in a stable order.
#[must_use]
#[expect(
    clippy::cast_precision_loss,
    reason = "ages in seconds are far below 2^52"
)]
pub(crate) fn faults(
    own_agent: &str,
    stale: &[Heartbeat],
    squelches: &[Squelch],
    alert_failures: &[AgentFault],
    limits: Limits,
    now: i64,
) -> Vec<MetaFault> {
    let mut out = Vec::new();
    let warn = limits.warn_intervals * limits.base_interval;
    let error = limits.error_intervals * limits.base_interval;
    let mut stale: Vec<&Heartbeat> = stale.iter().filter(|a| a.name != own_agent).collect();
    stale.sort_by(|a, b| a.name.cmp(&b.name));
    for agent in stale {
        let age = (now - agent.updated) as f64;
        if age <= warn {
            continue;
        }
        out.push(MetaFault {
            name: agent.name.clone(),
            severity: if age > error {
                Severity::ERROR
            } else {
                Severity::WARNING
            },
            message: format!(
                "Inactive agent (no heartbeat for {})",
                duration(now - agent.updated)
            ),
        });
    }
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
    fn stale_agents_warn_then_error_and_never_the_own_agent() {
        let now = 10_000;
        let stale = [
            heartbeat("b", now - 121),
            heartbeat("a", now - 301),
            heartbeat("self", now - 1000),
            heartbeat("c", now - 120),
        ];
        let got = faults("self", &stale, &[], &[], LIMITS, now);
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
        let got = faults("self", &[], &squelches, &[], LIMITS, now);
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
        let got = faults("self", &[], &[squelch("x", 500, false)], &[], limits, 500);
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
            },
        };
        let got = faults(
            "self",
            &[],
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

    #[test]
    fn regexes_are_percent_encoded() {
        assert_eq!(percent_encode("^web[12] app$"), "%5Eweb%5B12%5D%20app%24");
        assert_eq!(percent_encode("a/b.c-d_e~f"), "a/b.c-d_e~f");
    }
}
