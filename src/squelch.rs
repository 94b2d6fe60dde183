//! Squelches: regex silences set by people (SPEC §1, §5), pure parts.
//!
//! Owns validating a new squelch (regex compiles, reason given), parsing
//! `--expires` durations and matching fault names. Storage is the `Db`'s;
//! the agent reads the active regexes once per tick and uses `Matcher`.

use regex::Regex;

use crate::db::Squelch;

/// Why a squelch was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid squelch regex `{regex}`: {detail}")]
    Regex { regex: String, detail: String },
    #[error("a squelch needs a reason, so the next person knows why alerts are silent")]
    NoReason,
    #[error("invalid duration `{0}`: use a number and a unit, e.g. `90s`, `30m`, `2h`, `1d`")]
    Duration(String),
}

/// Parses `90s`, `30m`, `2h`, `1d` into seconds.
///
/// # Errors
/// When the text is not a positive whole number followed by one of `s m h d`.
pub fn parse_duration(text: &str) -> Result<i64, Error> {
    let bad = || Error::Duration(text.to_string());
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match number.checked_mul(scale) {
        Some(seconds) if seconds > 0 => Ok(seconds),
        _ => Err(bad()),
    }
}

/// Builds a squelch record after checking the regex and the reason.
///
/// # Errors
/// An invalid regex or an empty reason.
pub fn new_squelch(
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
pub fn user(is_root: bool, sudo_user: Option<&str>, current: Option<&str>) -> String {
    match (is_root, sudo_user) {
        (true, Some(sudo)) if !sudo.is_empty() => sudo.to_string(),
        _ => current.unwrap_or("unknown").to_string(),
    }
}

/// Compiled squelch regexes, searched anywhere in a fault name.
#[derive(Debug, Default)]
pub struct Matcher {
    regexes: Vec<Regex>,
}

impl Matcher {
    /// Compiles the regexes; invalid ones (written by another tool) are skipped and returned.
    #[must_use]
    pub fn new(patterns: &[String]) -> (Matcher, Vec<String>) {
        let mut regexes = Vec::new();
        let mut invalid = Vec::new();
        for pattern in patterns {
            match Regex::new(pattern) {
                Ok(regex) => regexes.push(regex),
                Err(_) => invalid.push(pattern.clone()),
            }
        }
        (Matcher { regexes }, invalid)
    }

    /// True when any squelch matches anywhere in `name`.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        self.regexes.iter().any(|r| r.is_match(name))
    }

    /// Squelches in the set.
    #[must_use]
    pub fn len(&self) -> usize {
        self.regexes.len()
    }

    /// True when nothing is squelched.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.regexes.is_empty()
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
            ("5w", None),
            ("-5m", None),
            ("1.5h", None),
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
