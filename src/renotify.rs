//! Message churn (SPEC §11), pure: whether a triggered fault's changed
//! message goes out again now.
//!
//! An alert whose message drifts with its value (`1200 > 1000`, then
//! `1300 > 1000`) is re-sent to an alerter at most once per that alerter's
//! `renotify`; a change of the severity the check reported (before
//! escalation) always goes out at once.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// Default `renotify` of a Slack alerter, where every send is a new
/// message (seconds).
pub(crate) const SLACK_DEFAULT: i64 = 3600;

/// The last trigger of one fault delivered through its alerter route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sent {
    /// When (epoch seconds).
    pub at: i64,
    /// The severity the check reported then, before escalation.
    pub reported: Severity,
}

/// Whether a trigger of a fault whose message changed goes out at `now`.
///
/// Always for a first trigger (`last` is `None`), for a change of the
/// reported severity, or when `renotify` is 0; else once `renotify`
/// seconds have passed since the last one was sent. `reported` is `None`
/// for faults no check reported (the agent's own): always sent.
#[must_use]
pub(crate) fn due(last: Option<Sent>, reported: Option<Severity>, now: i64, renotify: i64) -> bool {
    let Some(last) = last else {
        return true;
    };
    let Some(reported) = reported else {
        return true;
    };
    renotify <= 0 || reported != last.reported || now - last.at >= renotify
}

/// Longest `renotify` accepted: a week.
const LONGEST: i64 = 7 * 86_400;

/// Reads an alerter's `renotify`: a duration as humantime writes it
/// (`30s`, `10m`, `1h`), or whole seconds (`0`: every change).
///
/// # Errors
/// Not a duration, negative, or longer than a week (named with its key;
/// the YAML reader adds the line).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    struct RenotifyVisitor;
    impl Visitor<'_> for RenotifyVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as `30m` or `1h`, or `0`")
        }
        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<i64, E> {
            bounded(i64::try_from(secs).unwrap_or(i64::MAX), &secs.to_string())
        }
        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<i64, E> {
            bounded(secs, &secs.to_string())
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<i64, E> {
            let text = text.trim();
            if let Ok(secs) = text.parse::<i64>() {
                return bounded(secs, text);
            }
            let shown: String = text.chars().take(40).collect();
            let duration = humantime::parse_duration(text).map_err(|_| {
                E::custom(format!(
                    "`{shown}` is not a duration (such as `30m`, `1h` or `0`)"
                ))
            })?;
            bounded(
                i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
                &shown,
            )
        }
    }
    deserializer.deserialize_any(RenotifyVisitor).map(Some)
}

fn bounded<E: de::Error>(secs: i64, shown: &str) -> Result<i64, E> {
    if (0..=LONGEST).contains(&secs) {
        Ok(secs)
    } else {
        Err(E::custom(format!(
            "`{shown}` must be from 0 to a week (`7d`)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renotify_cases() {
        let sent = |at, reported| Some(Sent { at, reported });
        let cases = [
            (
                "a first trigger goes out",
                None,
                Some(Severity::CRITICAL),
                100,
                3600,
                true,
            ),
            (
                "renotify 0 sends every change",
                sent(100, Severity::CRITICAL),
                Some(Severity::CRITICAL),
                101,
                0,
                true,
            ),
            (
                "a drift inside the window waits",
                sent(100, Severity::CRITICAL),
                Some(Severity::CRITICAL),
                3699,
                3600,
                false,
            ),
            (
                "a drift at the window's end goes out",
                sent(100, Severity::CRITICAL),
                Some(Severity::CRITICAL),
                3700,
                3600,
                true,
            ),
            (
                "a reported severity change goes out at once",
                sent(100, Severity::ERROR),
                Some(Severity::CRITICAL),
                101,
                3600,
                true,
            ),
            (
                "a fault no check reported goes out",
                sent(100, Severity::CRITICAL),
                None,
                101,
                3600,
                true,
            ),
        ];
        for (what, last, reported, now, renotify, want) in cases {
            assert_eq!(due(last, reported, now, renotify), want, "{what}");
        }
    }
}
