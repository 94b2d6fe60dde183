//! The meta-check (SPEC §8), pure: stale agents, forgotten squelches and
//! peers whose alerts fail, as plugin JSON faults.
//!
//! The CLI reads the database (only stale heartbeats, squelches and
//! `AGENT#alerts` faults, so the cost grows with trouble, not with the
//! fleet) and hands the records here with `now`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::fault::AgentFault;
use crate::severity::Severity;
use crate::squelch::Squelch;

/// An agent's heartbeat: the one fleet record the meta-check judges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub name: String,
    /// Last heartbeat (epoch seconds).
    pub updated: i64,
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
            message: "Inactive agent".into(),
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
            [("a", 40, "Inactive agent"), ("b", 30, "Inactive agent")]
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
