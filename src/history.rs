//! The history of state changes kept in the shared database (SPEC §12):
//! one `Record` per change, never one per tick for a fault whose state did
//! not change.
//!
//! Pure: records are built by the agent and the CLI, stored by the `Db`
//! backends, printed by `cimaa history`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// What changed (SPEC §12's `event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    Triggered,
    Escalated,
    Resolved,
    Squelched,
    Suppressed,
    Held,
    Flapping,
    Delivered,
    Failed,
    SquelchAdded,
    SquelchRemoved,
    SquelchExpired,
    Started,
    Deregistered,
    Inactive,
}

impl Event {
    /// Every event, in SPEC §12's order.
    pub const ALL: [Event; 15] = [
        Event::Triggered,
        Event::Escalated,
        Event::Resolved,
        Event::Squelched,
        Event::Suppressed,
        Event::Held,
        Event::Flapping,
        Event::Delivered,
        Event::Failed,
        Event::SquelchAdded,
        Event::SquelchRemoved,
        Event::SquelchExpired,
        Event::Started,
        Event::Deregistered,
        Event::Inactive,
    ];

    /// The stored and printed name, e.g. `squelch-added`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Triggered => "triggered",
            Event::Escalated => "escalated",
            Event::Resolved => "resolved",
            Event::Squelched => "squelched",
            Event::Suppressed => "suppressed",
            Event::Held => "held",
            Event::Flapping => "flapping",
            Event::Delivered => "delivered",
            Event::Failed => "failed",
            Event::SquelchAdded => "squelch-added",
            Event::SquelchRemoved => "squelch-removed",
            Event::SquelchExpired => "squelch-expired",
            Event::Started => "started",
            Event::Deregistered => "deregistered",
            Event::Inactive => "inactive",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored event name this build does not know.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown history event `{0}`")]
pub struct UnknownEvent(pub String);

impl FromStr for Event {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Event::ALL
            .into_iter()
            .find(|event| event.as_str() == s)
            .ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

/// One change of state (SPEC §12): every field is there, `None` where it
/// does not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When it happened (epoch seconds).
    pub time: i64,
    /// The agent it happened on (or that recorded it: the CLI's agent name
    /// for squelch records).
    pub agent: String,
    /// The fault's full name; for squelch records the regex.
    pub name: String,
    pub event: Event,
    pub severity: Option<Severity>,
    /// The fault's message; for squelch records the reason.
    pub message: Option<String>,
    /// `delivered`/`failed`: the alerter (`default` for the one under
    /// `alerter:`).
    pub alerter: Option<String>,
    /// Squelch records: the squelch's user (the remover's for
    /// `squelch-removed`).
    pub user: Option<String>,
    /// `delivered`/`failed`: `trigger` or `resolve`, and the error.
    pub detail: Option<String>,
    /// The record's identity for its writer: given once, when the agent
    /// queues it, so that a write retried after a failure, or
    /// repeated at a stop, stores it once (every backend writes by it).
    /// `None` for a record written once (the CLI's). Not part of the
    /// record's JSON, and not read back.
    #[serde(skip)]
    pub id: Option<u64>,
}

impl Record {
    /// A record of `event` for `name` on `agent` at `time`, every optional
    /// field empty.
    #[must_use]
    pub fn new(time: i64, agent: &str, name: &str, event: Event) -> Record {
        Record {
            time,
            agent: agent.to_owned(),
            name: name.to_owned(),
            event,
            severity: None,
            message: None,
            alerter: None,
            user: None,
            detail: None,
            id: None,
        }
    }

    /// The same record with the fault's severity and message.
    #[must_use]
    pub fn with_fault(mut self, severity: Severity, message: &str) -> Record {
        self.severity = Some(severity);
        self.message = Some(message.to_owned());
        self
    }
}

/// The default retention (SPEC §12): 30 days.
pub const DEFAULT_RETENTION: i64 = 30 * 86_400;

/// `database: {history: {...}}`: how long records are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Seconds a record is kept (`retention: 30d`).
    pub retention: i64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: DEFAULT_RETENTION,
        }
    }
}

impl<'de> Deserialize<'de> for HistoryConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            retention: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        let retention = match raw.retention {
            None => DEFAULT_RETENTION,
            Some(text) => crate::squelch::parse_duration(&text).map_err(|_| {
                serde::de::Error::custom(format!(
                    "history.retention: `{text}` is not a duration (e.g. `30d`, `12h`)"
                ))
            })?,
        };
        Ok(HistoryConfig { retention })
    }
}

/// What `cimaa history` asks for (SPEC §12): records at or after `since`
/// (and within the retention at `now`), of one agent, whose name the regex
/// matches anywhere, newest first, at most `limit`.
#[derive(Clone, Debug)]
pub struct Query {
    pub agent: Option<String>,
    pub name: Option<regex::Regex>,
    /// Oldest time wanted (epoch seconds).
    pub since: i64,
    /// The reader's clock: records older than the retention are left out
    /// even where the backend has not removed them yet (DynamoDB's TTL).
    pub now: i64,
    pub limit: usize,
}

impl Query {
    /// Records since `since`, every agent and name, at most `limit`.
    #[must_use]
    pub fn recent(since: i64, now: i64, limit: usize) -> Query {
        Query {
            agent: None,
            name: None,
            since,
            now,
            limit,
        }
    }

    /// The one name the `name` regex stands for when it is an anchored
    /// literal (`^web1 disk$`, no other metacharacter): a backend then reads
    /// it through its index by name instead of filtering by time.
    #[must_use]
    pub fn exact_name(&self) -> Option<String> {
        let source = self.name.as_ref()?.as_str();
        let inner = source.strip_prefix('^')?.strip_suffix('$')?;
        let mut name = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let escaped = chars.next()?;
                    if escaped.is_alphanumeric() {
                        return None; // `\d`, `\b`, ...: a class, not a literal
                    }
                    name.push(escaped);
                }
                '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                    return None;
                }
                c => name.push(c),
            }
        }
        Some(name)
    }

    /// Whether `record` is one this query asks for, under `retention`.
    #[must_use]
    pub fn matches(&self, record: &Record, retention: i64) -> bool {
        record.time >= self.since
            && record.time > self.now.saturating_sub(retention)
            && self
                .agent
                .as_ref()
                .is_none_or(|agent| *agent == record.agent)
            && self
                .name
                .as_ref()
                .is_none_or(|regex| regex.is_match(&record.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_from_its_stored_name() {
        for event in Event::ALL {
            assert_eq!(event.as_str().parse::<Event>(), Ok(event));
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
        }
        assert_eq!(
            "exploded".parse::<Event>(),
            Err(UnknownEvent("exploded".into()))
        );
    }
}
