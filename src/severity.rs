//! Fault severities: Python logging levels, as zc.cimaa stored them.
//!
//! Owns the integer scale (20 info, 30 warning, 40 error, 50 critical) and
//! the case-insensitive names accepted in plugin JSON and threshold lines.
//! Anything at or above 50 is critical.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A fault severity on the Python logging scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Severity(pub i64);

impl Severity {
    pub const INFO: Severity = Severity(20);
    pub const WARNING: Severity = Severity(30);
    pub const ERROR: Severity = Severity(40);
    pub const CRITICAL: Severity = Severity(50);

    /// Parses a severity name in any case (`info`, `warning`, `error`, `critical`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Severity> {
        match name.to_ascii_lowercase().as_str() {
            "info" => Some(Self::INFO),
            "warning" | "warn" => Some(Self::WARNING),
            "error" => Some(Self::ERROR),
            "critical" => Some(Self::CRITICAL),
            _ => None,
        }
    }

    /// True for CRITICAL and above: the faults that page.
    #[must_use]
    pub fn is_critical(self) -> bool {
        self >= Self::CRITICAL
    }

    /// True for ERROR (but not CRITICAL): the faults that count towards escalation.
    #[must_use]
    pub fn is_error(self) -> bool {
        self >= Self::ERROR && self < Self::CRITICAL
    }

    /// The name people read: `CRITICAL`, `ERROR`, `WARNING`, `INFO`, or the number.
    #[must_use]
    pub fn label(self) -> String {
        match self {
            s if s >= Self::CRITICAL => "CRITICAL".into(),
            s if s >= Self::ERROR => "ERROR".into(),
            s if s >= Self::WARNING => "WARNING".into(),
            s if s >= Self::INFO => "INFO".into(),
            Severity(n) => n.to_string(),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case() {
        let cases = [
            ("info", Some(Severity::INFO)),
            ("WARNING", Some(Severity::WARNING)),
            ("Error", Some(Severity::ERROR)),
            ("critical", Some(Severity::CRITICAL)),
            ("fatal", None),
        ];
        for (name, want) in cases {
            assert_eq!(Severity::from_name(name), want, "{name}");
        }
    }

    #[test]
    fn anything_at_or_above_fifty_is_critical() {
        assert!(Severity(55).is_critical());
        assert!(!Severity(49).is_critical());
        assert!(Severity(49).is_error());
    }
}
