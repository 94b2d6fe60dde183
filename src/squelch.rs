//! Squelches: regex silences set by people (SPEC §1, §5), pure parts.
//!
//! Owns validating a new squelch (regex compiles, reason given), parsing
//! `--expires` durations and matching fault names. Storage is the `Db`'s;
//! the agent reads the active regexes once per tick and uses `Matcher`.

use regex::{Regex, RegexSet};

use serde::{Deserialize, Serialize};

/// A squelch: a regex searched anywhere in fault names; matching faults do not page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Squelch {
    pub regex: String,
    pub reason: String,
    pub user: String,
    /// When it was set (epoch seconds).
    pub time: i64,
    pub permanent: bool,
    /// When it stops matching (epoch seconds), if ever.
    pub expires: Option<i64>,
}

impl Squelch {
    /// True while the squelch is in force at `now`.
    #[must_use]
    pub fn active(&self, now: i64) -> bool {
        self.expires.is_none_or(|expires| now < expires)
    }
}

/// Why a squelch was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    #[error("invalid squelch regex `{regex}`: {detail}")]
    Regex { regex: String, detail: String },
    #[error("a squelch needs a reason, so the next person knows why alerts are silent")]
    NoReason,
    #[error("invalid duration `{0}`: use a number and a unit, e.g. `90s`, `30m`, `2h`, `1d`")]
    Duration(String),
}

/// Parses a squelch's lifetime (`90s`, `30m`, `2h`, `1d`; also what
/// humantime reads, such as `1h30m`, `1.5h` or `2weeks`) into whole seconds.
///
/// # Errors
/// When humantime cannot read it, or it is shorter than one second or not a
/// whole number of seconds (`1500ms`).
pub(crate) fn parse_duration(text: &str) -> Result<i64, Error> {
    let bad = || Error::Duration(text.to_string());
    let duration = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    if duration.subsec_nanos() != 0 {
        return Err(bad());
    }
    match i64::try_from(duration.as_secs()) {
        Ok(seconds) if seconds > 0 => Ok(seconds),
        _ => Err(bad()),
    }
}

/// Builds a squelch record after checking the regex and the reason.
///
/// # Errors
/// An invalid regex or an empty reason.
pub(crate) fn new_squelch(
    regex: &str,
    reason: &str,
    user: &str,
    permanent: bool,
    expires_in: Option<i64>,
    now: i64,
) -> Result<Squelch, Error> {
    Regex::new(regex).map_err(|e| Error::Regex {
        regex: regex.to_string(),
        detail: e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string(),
    })?;
    if reason.trim().is_empty() {
        return Err(Error::NoReason);
    }
    Ok(Squelch {
        regex: regex.to_string(),
        reason: reason.to_string(),
        user: user.to_string(),
        time: now,
        permanent,
        expires: expires_in.map(|seconds| now.saturating_add(seconds)),
    })
}

/// Who set a squelch: `$SUDO_USER` when running as root and it is set, else
/// the current user.
#[must_use]
pub(crate) fn user(is_root: bool, sudo_user: Option<&str>, current: Option<&str>) -> String {
    match (is_root, sudo_user) {
        (true, Some(sudo)) if !sudo.is_empty() => sudo.to_string(),
        _ => current.unwrap_or("unknown").to_string(),
    }
}

/// Compiled squelch regexes, searched anywhere in a fault name.
///
/// One `RegexSet`, so a fault name is scanned once however many squelches
/// there are. Each pattern also compiles alone (to find invalid ones), and
/// those single regexes are kept for the rare set that passes the regex
/// crate's size limit: silently dropping every squelch would page people.
#[derive(Debug, Default)]
pub(crate) struct Matcher {
    set: Option<RegexSet>,
    each: Vec<Regex>,
}

impl Matcher {
    /// Compiles the regexes; invalid ones (written by another tool) are skipped and returned.
    #[must_use]
    pub(crate) fn new(patterns: &[String]) -> (Matcher, Vec<String>) {
        let mut each = Vec::new();
        let mut invalid = Vec::new();
        for pattern in patterns {
            match Regex::new(pattern) {
                Ok(regex) => each.push(regex),
                Err(_) => invalid.push(pattern.clone()),
            }
        }
        let set = RegexSet::new(each.iter().map(Regex::as_str)).ok();
        (Matcher { set, each }, invalid)
    }

    /// True when any squelch matches anywhere in `name`.
    #[must_use]
    pub(crate) fn matches(&self, name: &str) -> bool {
        match &self.set {
            Some(set) => set.is_match(name),
            None => self.each.iter().any(|r| r.is_match(name)),
        }
    }

    /// Squelches in the set.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.each.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("2h", Some(7200)),
            ("1d", Some(86_400)),
            ("0m", None),
            ("5", None),
            ("m", None),
            ("1h30m", Some(5400)),
            ("2weeks", Some(1_209_600)),
            ("5x", None),
            ("-5m", None),
            ("1.5h", Some(5400)),
            ("1500ms", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn squelches_match_anywhere_in_the_name() {
        let (matcher, invalid) = Matcher::new(&["web[12]/app".into(), "^//db".into(), "(".into()]);
        assert_eq!(invalid, ["("]);
        let cases = [
            ("//web1/app/disk", true),
            ("//web3/app/disk", false),
            ("//db2/x/y", true),
            ("//x/db/y", false),
        ];
        for (name, want) in cases {
            assert_eq!(matcher.matches(name), want, "{name}");
        }
    }

    #[test]
    fn new_squelches_are_validated() {
        assert!(matches!(
            new_squelch("(", "r", "u", false, None, 0),
            Err(Error::Regex { .. })
        ));
        assert_eq!(
            new_squelch("x", "  ", "u", false, None, 0),
            Err(Error::NoReason)
        );
        let squelch = new_squelch("x", "deploy", "ann", false, Some(60), 1000).unwrap();
        assert_eq!((squelch.time, squelch.expires), (1000, Some(1060)));
    }

    #[test]
    fn the_user_is_sudo_user_only_for_root() {
        assert_eq!(user(true, Some("ann"), Some("root")), "ann");
        assert_eq!(user(true, None, Some("root")), "root");
        assert_eq!(user(false, Some("ann"), Some("bob")), "bob");
    }
}
