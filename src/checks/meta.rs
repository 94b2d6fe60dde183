//! The `meta:` check kind (SPEC §14): the meta-check run inside the agent.
//!
//! Owns the kind's options as written (`RawMeta`, with the serde that keeps
//! key path and line in every error), their validation into `MetaCheck`,
//! and the mapping of the meta-check's faults onto the check's raw faults
//! (`raw_faults`), the same as `cimaa meta-check`'s JSON would give through
//! the plugin-JSON path.
//!
//! Running it is the agent's: the meta-check reads the shared database, and
//! a check kind may not use a backend (checks and backends never use each
//! other), so `agent::run_check` dispatches this kind with the agent's
//! database, name and clock. No process is forked and no PATH is searched,
//! which is the point: a host that installed `cimaa` off PATH still watches
//! its peers.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::fault::RawFault;
use crate::meta::MetaFault;

/// `-w` of `cimaa meta-check`: base intervals before a WARNING.
pub(crate) const DEFAULT_WARN: f64 = 2.0;
/// `-e` of `cimaa meta-check`: base intervals before an ERROR.
pub(crate) const DEFAULT_ERROR: f64 = 5.0;
/// `-s` of `cimaa meta-check`: minutes before a squelch is reported.
pub(crate) const DEFAULT_SQUELCH: i64 = 60;
/// `-x` of `cimaa meta-check`: minutes before its expiry from which a
/// squelch matching a critical fault is a WARNING.
pub(crate) const DEFAULT_EXPIRING: i64 = 15;
/// `-m` of `cimaa meta-check`: more inactive agents than this at once are
/// one fault `inactive-agents` (SPEC §10).
pub(crate) const DEFAULT_FOLD: usize = 5;

/// A validated `meta:` check: `cimaa meta-check`'s options.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MetaCheck {
    /// Base intervals without a heartbeat before a peer is a WARNING.
    pub warn_intervals: f64,
    /// Base intervals without a heartbeat before a peer is an ERROR.
    pub error_intervals: f64,
    /// Minutes after which a non-permanent squelch is reported.
    pub squelch_minutes: i64,
    /// Minutes before its expiry from which a squelch still matching a
    /// critical fault is a WARNING `squelch-expiring-REGEX`.
    pub expiring_minutes: i64,
    /// More inactive agents than this at once are one fault
    /// `inactive-agents`.
    pub max_inactive: usize,
    /// `--expect`: the file listing the agents that must have reported
    /// (absolute; read at every run, so edits apply without a reload).
    pub expect: Option<PathBuf>,
}

impl Default for MetaCheck {
    fn default() -> MetaCheck {
        MetaCheck {
            warn_intervals: DEFAULT_WARN,
            error_intervals: DEFAULT_ERROR,
            squelch_minutes: DEFAULT_SQUELCH,
            expiring_minutes: DEFAULT_EXPIRING,
            max_inactive: DEFAULT_FOLD,
            expect: None,
        }
    }
}

/// The `meta:` options as written; every one is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "the `meta` options (a mapping with `warn`, `error`, `squelch`, `fold`, `expiring`, `expect`)"
)]
pub(crate) struct RawMeta {
    /// `-w`: base intervals before a silent peer is a WARNING (default 2).
    #[serde(rename = "warn")]
    warn_intervals: Option<Intervals>,
    /// `-e`: base intervals before a silent peer is an ERROR (default 5).
    #[serde(rename = "error")]
    error_intervals: Option<Intervals>,
    /// `-s`: minutes before a non-permanent squelch is reported (default 60).
    #[serde(rename = "squelch")]
    squelch_minutes: Option<Minutes>,
    /// `-m`: more inactive agents than this at once are one fault
    /// `inactive-agents` (default 5).
    #[serde(rename = "fold")]
    max_inactive: Option<Agents>,
    /// `-x`: minutes before its expiry from which a squelch still
    /// matching a critical fault is a WARNING (default 15).
    #[serde(rename = "expiring")]
    expiring_minutes: Option<Minutes>,
    /// `--expect`: the file of expected agents (an absolute path).
    expect: Option<ExpectFile>,
}

impl RawMeta {
    /// The validated options. Pure.
    ///
    /// # Errors
    /// When `error` is below `warn` (an agent would be an ERROR before it is
    /// late at all; surely a typo).
    pub(crate) fn validate(self) -> Result<MetaCheck, String> {
        let defaults = MetaCheck::default();
        let check = MetaCheck {
            warn_intervals: self.warn_intervals.map_or(defaults.warn_intervals, |i| i.0),
            error_intervals: self
                .error_intervals
                .map_or(defaults.error_intervals, |i| i.0),
            squelch_minutes: self
                .squelch_minutes
                .map_or(defaults.squelch_minutes, |m| m.0),
            expiring_minutes: self
                .expiring_minutes
                .map_or(defaults.expiring_minutes, |m| m.0),
            max_inactive: self.max_inactive.map_or(defaults.max_inactive, |a| a.0),
            expect: self.expect.map(|file| file.0),
        };
        if check.error_intervals < check.warn_intervals {
            return Err(format!(
                "meta.error: `{}` is below `meta.warn` (`{}`); a silent agent is a WARNING after `warn` base intervals and an ERROR after `error`",
                crate::thresholds::format_value(check.error_intervals),
                crate::thresholds::format_value(check.warn_intervals),
            ));
        }
        Ok(check)
    }
}

/// `meta:` itself: options, `{}`, or nothing (`meta:` and `meta: null`
/// mean every default). Used as `deserialize_with` of the entry's `meta`
/// field with `#[serde(default)]`, so an absent key stays `None`.
///
/// # Errors
/// What the options' serde reports.
pub(crate) fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RawMeta>, D::Error> {
    Ok(Some(
        Option::<RawMeta>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// A number of agents: a whole number, not negative.
#[derive(Clone, Copy, Debug)]
struct Agents(usize);

impl<'de> Deserialize<'de> for Agents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AgentsVisitor;
        impl Visitor<'_> for AgentsVisitor {
            type Value = Agents;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of agents (a whole number, 0 or more)")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Agents, E> {
                Ok(Agents(usize::try_from(value).unwrap_or(usize::MAX)))
            }
            // Checked inside the visitor, so the error keeps its line.
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Agents, E> {
                Err(E::custom(format_args!(
                    "`{value}` is negative; use a number of agents (a whole number, 0 or more)"
                )))
            }
        }
        deserializer.deserialize_any(AgentsVisitor)
    }
}

/// A number of base intervals: finite and not negative.
#[derive(Clone, Copy, Debug)]
struct Intervals(f64);

impl<'de> Deserialize<'de> for Intervals {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntervalsVisitor;
        impl Visitor<'_> for IntervalsVisitor {
            type Value = Intervals;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of base intervals (0 or more)")
            }
            #[expect(
                clippy::cast_precision_loss,
                reason = "a count of intervals far below 2^52"
            )]
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Intervals, E> {
                Ok(Intervals(value as f64))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Intervals, E> {
                Err(E::custom(format_args!(
                    "`{value}` is negative; use a number of base intervals (0 or more)"
                )))
            }
            // Checked inside the visitor, so the error keeps its line.
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Intervals, E> {
                if value.is_finite() && value >= 0.0 {
                    Ok(Intervals(value))
                } else {
                    Err(E::custom(format_args!(
                        "`{value}` is not a number of base intervals (0 or more)"
                    )))
                }
            }
        }
        deserializer.deserialize_any(IntervalsVisitor)
    }
}

/// The expect file: an absolute path (a check file has no folder of its
/// own to resolve a relative one against; the agent's working folder is
/// `/` under systemd and anything elsewhere).
#[derive(Clone, Debug)]
struct ExpectFile(PathBuf);

impl<'de> Deserialize<'de> for ExpectFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExpectVisitor;
        impl Visitor<'_> for ExpectVisitor {
            type Value = ExpectFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the absolute path of the expect file")
            }
            // Checked inside the visitor, so the error keeps its line.
            fn visit_str<E: de::Error>(self, value: &str) -> Result<ExpectFile, E> {
                let path = PathBuf::from(value);
                if path.is_absolute() {
                    Ok(ExpectFile(path))
                } else {
                    Err(E::custom(format_args!(
                        "`{value}` is not an absolute path; name the expect file from `/`"
                    )))
                }
            }
        }
        deserializer.deserialize_str(ExpectVisitor)
    }
}

/// A whole number of minutes, not negative.
#[derive(Clone, Copy, Debug)]
struct Minutes(i64);

impl<'de> Deserialize<'de> for Minutes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MinutesVisitor;
        impl Visitor<'_> for MinutesVisitor {
            type Value = Minutes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of minutes (0 or more)")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Minutes, E> {
                i64::try_from(value)
                    .map(Minutes)
                    .map_err(|_| E::custom(format_args!("`{value}` minutes is too large")))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Minutes, E> {
                Err(E::custom(format_args!(
                    "`{value}` is negative; use a whole number of minutes (0 or more)"
                )))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Minutes, E> {
                Err(E::custom(format_args!(
                    "`{value}` is not a whole number of minutes (0 or more)"
                )))
            }
        }
        deserializer.deserialize_any(MinutesVisitor)
    }
}

/// The meta-check's faults as the check's raw faults: what its JSON gives
/// through the plugin-JSON path (a name, the severity, the message; an
/// empty name is the check's own fault; every fault escalates).
#[must_use]
pub(crate) fn raw_faults(faults: Vec<MetaFault>) -> Vec<RawFault> {
    faults
        .into_iter()
        .map(|fault| RawFault {
            name: (!fault.name.is_empty()).then_some(fault.name),
            severity: fault.severity,
            message: fault.message,
            escalates: true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::Severity;

    #[test]
    fn error_below_warn_is_refused() {
        let raw = RawMeta {
            warn_intervals: Some(Intervals(5.0)),
            error_intervals: Some(Intervals(2.0)),
            ..RawMeta::default()
        };
        assert_eq!(
            raw.validate().unwrap_err(),
            "meta.error: `2` is below `meta.warn` (`5`); a silent agent is a WARNING after `warn` base intervals and an ERROR after `error`"
        );
    }

    #[test]
    fn fold_is_a_whole_number_of_agents() {
        let raw: RawMeta = serde_yaml::from_str("fold: 12\n").unwrap();
        assert_eq!(raw.validate().unwrap().max_inactive, 12);
        let cases = [
            (
                "fold: -1\n",
                "fold: `-1` is negative; use a number of agents (a whole number, 0 or more) at line 1 column 7",
            ),
            (
                "fold: 2.5\n",
                "fold: invalid type: floating point `2.5`, expected a number of agents (a whole number, 0 or more) at line 1 column 7",
            ),
        ];
        for (text, want) in cases {
            let error = serde_yaml::from_str::<RawMeta>(text).unwrap_err();
            assert_eq!(error.to_string(), want, "{text}");
        }
    }

    #[test]
    fn a_relative_expect_file_is_refused_with_its_line() {
        let error = serde_yaml::from_str::<RawMeta>("warn: 2\nexpect: agents.txt\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "expect: `agents.txt` is not an absolute path; name the expect file from `/` at line 2 column 9"
        );
    }

    #[test]
    fn an_absolute_expect_file_is_kept() {
        let raw = RawMeta {
            expect: Some(ExpectFile(PathBuf::from("/etc/cimaa/agents.txt"))),
            ..RawMeta::default()
        };
        assert_eq!(
            raw.validate().unwrap().expect,
            Some(PathBuf::from("/etc/cimaa/agents.txt"))
        );
    }

    #[test]
    fn no_options_are_the_meta_check_defaults() {
        assert_eq!(
            RawMeta::default().validate().unwrap(),
            MetaCheck {
                warn_intervals: 2.0,
                error_intervals: 5.0,
                squelch_minutes: 60,
                expiring_minutes: 15,
                max_inactive: 5,
                expect: None,
            }
        );
    }

    #[test]
    fn meta_faults_map_as_plugin_json_would() {
        let meta = |name: &str, severity, message: &str| MetaFault {
            name: name.into(),
            severity,
            message: message.into(),
        };
        let got = raw_faults(vec![
            meta("web2", Severity::ERROR, "Inactive agent"),
            meta("", Severity::WARNING, "odd"),
        ]);
        assert_eq!(
            got,
            [
                RawFault {
                    name: Some("web2".into()),
                    severity: Severity::ERROR,
                    message: "Inactive agent".into(),
                    escalates: true,
                },
                RawFault {
                    name: None,
                    severity: Severity::WARNING,
                    message: "odd".into(),
                    escalates: true,
                }
            ]
        );
    }
}
