//! Items ↔ records: the faults-table and squelches-table layout, and the
//! conversion of faults, alert markers, heartbeats and squelches to and from
//! DynamoDB items (pure).
//!
//! # Layout (compatible with zc.cimaa, so a fleet can migrate host by host)
//! - `PREFIX.faults`: hash key `agent`, range key `name`; global secondary
//!   index `updated` on (`agent`, `updated` Number) projecting name, since and
//!   updated. A fault item holds `severity` (integer Number), `message` (left
//!   out when empty), `since` and `updated` (integer Numbers), `triggered`
//!   (`"y"`, left out when false) and the attributes zc.cimaa ignores:
//!   `escalates` (BOOL), `attempts` (Number) and `monitor_runs` (Number,
//!   the broken-monitor run count of SPEC §14; left out when 0).
//! - Heartbeats are items of agent `_` with name = the agent and `updated`,
//!   plus what the agent says about itself (SPEC §14), attributes zc.cimaa
//!   ignores: `version` (String) and `checks` (Number), each left out when
//!   not known. The `updated` index does not project them.
//! - Markers of failing alerts are items of agent `_alerts` with name = the
//!   agent and the attributes of its `AGENT#alerts` fault, so the meta-check
//!   finds them with one query instead of a scan of the fleet. zc.cimaa never
//!   reads that key.
//! - The open alerts an agent keeps at a clean stop (SPEC §14) are items of
//!   agent `_open/AGENT`, one per alert (no item nears the 400 KB limit):
//!   the fault's attributes plus `alerter` (left out for the default route)
//!   and `monitor_runs`. A summary item of agent `_stopped`, name = the
//!   agent, holds `stopped` (the stop time) and `count`, so the meta-check
//!   finds stopped agents with one query. zc.cimaa never reads these keys.
//! - The notification record of a fleet fault (SPEC §10) is an item of
//!   agent `_notices`, name = the fault's name, with `version` (Number,
//!   bumped by every write; conditional writes compare it) and `record`
//!   (String: the JSON object of `notice_record`). zc.cimaa never reads
//!   `_`-prefixed agent keys, and no listing of faults shows them.
//! - A fault that is part of an alert storm (SPEC §10) holds `storm`
//!   (BOOL true); left out when not, which is how zc.cimaa reads it.
//!   Likewise `held` (BOOL true, SPEC §11 quiet hours), `flapping` (BOOL
//!   true, its check is flapping, SPEC §11) and `suppressed_by` (String,
//!   the failing dependency's full check name, SPEC §11).
//! - `PREFIX.squelches`: hash key `regex`, with `reason`, `user`, `time`,
//!   `permanent` (`"p"`, left out when false) and `expires` (Number, optional).
//!
//! Reading is lenient with what zc.cimaa wrote: times may be fractional
//! Numbers (truncated), `escalates` may be a Number (0 = false) or missing
//! (true), `message` may be missing (empty), `attempts` and
//! `monitor_runs` missing (0), and a heartbeat's `version` and `checks`
//! missing or of another type (not recorded).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::db::{
    AgentFacts, AgentFault, Error, Fault, Heartbeat, Notice, OpenAlert, Squelch, StoppedAgent,
    notice_record, short_key,
};
use crate::severity::Severity;

/// One DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

/// `agent` of heartbeat items (zc.cimaa's key).
pub(super) const HEARTBEAT_AGENT: &str = "_";
/// `agent` of the markers of agents whose alerts fail.
pub(super) const ALERTS_AGENT: &str = "_alerts";
/// `agent` of the summaries of agents stopped with open alerts.
pub(super) const STOPPED_AGENT: &str = "_stopped";
/// `agent` of the notification records of fleet faults.
pub(super) const NOTICES_AGENT: &str = "_notices";
/// Prefix of the `agent` key under which an agent's kept alerts are stored.
const OPEN_PREFIX: &str = "_open/";
/// The global secondary index on (`agent`, `updated`).
pub(super) const UPDATED_INDEX: &str = "updated";
/// Attributes the `updated` index projects besides its keys (zc.cimaa's list).
pub(super) const UPDATED_INDEX_INCLUDES: [&str; 3] = ["name", "since", "updated"];

/// Agent names the layout reserves for its own items.
#[must_use]
pub(crate) fn is_reserved_agent(name: &str) -> bool {
    name == HEARTBEAT_AGENT
        || name == ALERTS_AGENT
        || name == STOPPED_AGENT
        || name == NOTICES_AGENT
        || name.starts_with(OPEN_PREFIX)
}

/// The `agent` key of the open alerts `agent` kept.
pub(super) fn open_alerts_agent(agent: &str) -> String {
    format!("{OPEN_PREFIX}{agent}")
}

/// A String attribute.
pub(super) fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A Number attribute.
pub(super) fn number(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The key of a faults-table item.
pub(super) fn fault_key(agent: &str, name: &str) -> Item {
    HashMap::from([
        ("agent".to_owned(), string(agent)),
        ("name".to_owned(), string(name)),
    ])
}

/// The key of a squelches-table item.
pub(super) fn squelch_key(regex: &str) -> Item {
    HashMap::from([("regex".to_owned(), string(regex))])
}

/// A fault item in zc.cimaa's layout plus `escalates`, `attempts` and
/// (when not 0) `monitor_runs`.
pub(super) fn fault_item(agent: &str, fault: &Fault) -> Item {
    let mut item = fault_key(agent, &fault.name);
    item.insert("severity".to_owned(), number(fault.severity.0));
    if !fault.message.is_empty() {
        item.insert("message".to_owned(), string(&fault.message));
    }
    item.insert("since".to_owned(), number(fault.since));
    item.insert("updated".to_owned(), number(fault.updated));
    if fault.triggered {
        item.insert("triggered".to_owned(), string("y"));
    }
    item.insert(
        "escalates".to_owned(),
        AttributeValue::Bool(fault.escalates),
    );
    item.insert("attempts".to_owned(), number(fault.attempts));
    if fault.monitor_runs > 0 {
        item.insert("monitor_runs".to_owned(), number(fault.monitor_runs));
    }
    if fault.storm {
        item.insert("storm".to_owned(), AttributeValue::Bool(true));
    }
    if fault.held {
        item.insert("held".to_owned(), AttributeValue::Bool(true));
    }
    if fault.flapping {
        item.insert("flapping".to_owned(), AttributeValue::Bool(true));
    }
    if let Some(by) = &fault.suppressed_by {
        item.insert("suppressed_by".to_owned(), string(by));
    }
    item
}

/// The marker of an agent whose alerts fail: its `AGENT#alerts` fault under
/// agent `_alerts`, name = the agent.
pub(super) fn marker_item(agent: &str, fault: &Fault) -> Item {
    let mut item = fault_item(ALERTS_AGENT, fault);
    item.insert("name".to_owned(), string(agent));
    item
}

/// The heartbeat of `agent` at `now`, recording `facts` (each left out
/// when not known, so a put replaces facts that are no longer known).
pub(super) fn heartbeat_item(agent: &str, now: i64, facts: &AgentFacts) -> Item {
    let mut item = fault_key(HEARTBEAT_AGENT, agent);
    item.insert("updated".to_owned(), number(now));
    if let Some(version) = &facts.version {
        item.insert("version".to_owned(), string(version));
    }
    if let Some(checks) = facts.checks {
        item.insert("checks".to_owned(), number(checks));
    }
    item
}

/// A squelch item in zc.cimaa's layout.
pub(super) fn squelch_item(squelch: &Squelch) -> Item {
    let mut item = squelch_key(&squelch.regex);
    for (key, value) in [("reason", &squelch.reason), ("user", &squelch.user)] {
        if !value.is_empty() {
            item.insert(key.to_owned(), string(value));
        }
    }
    item.insert("time".to_owned(), number(squelch.time));
    if squelch.permanent {
        item.insert("permanent".to_owned(), string("p"));
    }
    if let Some(expires) = squelch.expires {
        item.insert("expires".to_owned(), number(expires));
    }
    item
}

/// An item's key for messages: `agent/name` or the regex (cut when long).
pub(super) fn describe_item(item: &Item) -> String {
    let key = ["agent", "name", "regex"]
        .iter()
        .filter_map(|key| match item.get(*key) {
            Some(AttributeValue::S(value)) => Some(value.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/");
    short_key(&key)
}

fn corrupt(item: &Item, detail: &str) -> Error {
    Error::Corrupt {
        key: describe_item(item),
        detail: detail.to_owned(),
    }
}

pub(super) fn text(item: &Item, key: &str) -> Result<Option<String>, Error> {
    match item.get(key) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(corrupt(item, &format!("`{key}` is not a string"))),
    }
}

/// A String attribute that must be there.
pub(super) fn required_text(item: &Item, key: &str) -> Result<String, Error> {
    text(item, key)?.ok_or_else(|| corrupt(item, &format!("`{key}` is missing")))
}

/// A Number attribute as whole units: zc.cimaa wrote `time.time()` floats,
/// so fractions are truncated.
pub(super) fn whole_number(item: &Item, key: &str) -> Result<Option<i64>, Error> {
    let bad = || corrupt(item, &format!("`{key}` is not a number"));
    match item.get(key) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => parse_whole(value).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// Parses a DynamoDB Number, truncating any fraction (pure).
fn parse_whole(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(whole) = value.parse::<i64>() {
        return Some(whole);
    }
    let float = value.parse::<f64>().ok()?;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "truncating is the point; the range is checked first"
    )]
    let whole = (float.is_finite() && float.abs() < 9.0e18).then(|| float.trunc() as i64);
    whole
}

/// `escalates`: a BOOL (cimaa), a Number (zc.cimaa: 0 = false) or missing (true).
fn escalates(item: &Item) -> Result<bool, Error> {
    match item.get("escalates") {
        None | Some(AttributeValue::Null(_)) => Ok(true),
        Some(AttributeValue::Bool(value)) => Ok(*value),
        Some(AttributeValue::N(value)) => value
            .trim()
            .parse::<f64>()
            .map(|number| number != 0.0)
            .map_err(|_| corrupt(item, "`escalates` is not a number")),
        Some(_) => Err(corrupt(item, "`escalates` is not a boolean")),
    }
}

/// `triggered`: zc.cimaa's `"y"`; also accepts a BOOL.
fn triggered(item: &Item) -> bool {
    match item.get("triggered") {
        Some(AttributeValue::S(value)) => !value.is_empty(),
        Some(AttributeValue::Bool(value)) => *value,
        _ => false,
    }
}

/// Reads a fault item: its agent and the fault.
pub(super) fn fault_from_item(item: &Item) -> Result<(String, Fault), Error> {
    let agent = required_text(item, "agent")?;
    let name = required_text(item, "name")?;
    let severity =
        whole_number(item, "severity")?.ok_or_else(|| corrupt(item, "`severity` is missing"))?;
    let updated = whole_number(item, "updated")?;
    // Early zc.cimaa items have no `since`: the fault is as old as its record.
    let since = whole_number(item, "since")?.or(updated).unwrap_or(0);
    let attempts = count(item, "attempts")?;
    let fault = Fault {
        name,
        severity: Severity(severity),
        // DynamoDB used to refuse empty strings, so zc.cimaa left it out.
        message: text(item, "message")?.unwrap_or_default(),
        since,
        updated: updated.unwrap_or(since),
        triggered: triggered(item),
        escalates: escalates(item)?,
        attempts,
        monitor_runs: count(item, "monitor_runs")?,
        storm: flag(item, "storm")?,
        suppressed_by: text(item, "suppressed_by")?,
        held: flag(item, "held")?,
        flapping: flag(item, "flapping")?,
    };
    Ok((agent, fault))
}

/// A flag such as `storm`, `held` or `flapping`: a BOOL; missing
/// (zc.cimaa, an older cimaa) is false.
fn flag(item: &Item, key: &str) -> Result<bool, Error> {
    match item.get(key) {
        None | Some(AttributeValue::Null(_)) => Ok(false),
        Some(AttributeValue::Bool(value)) => Ok(*value),
        Some(_) => Err(corrupt(item, &format!("`{key}` is not a boolean"))),
    }
}

/// The notice item of `notice` stored at `version`.
pub(super) fn notice_item(notice: &Notice, version: u64) -> Result<Item, Error> {
    let mut item = fault_key(NOTICES_AGENT, &notice.name);
    item.insert("version".to_owned(), number(version));
    item.insert("record".to_owned(), string(&notice_record::write(notice)?));
    Ok(item)
}

/// The stored version of a notice item: the whole part of its `version`
/// Number. One that is missing, not a Number, negative or from 2^63 up
/// (written by a broken or newer agent) is unreadable and reads as 0, like
/// an absent item, with its description: `Expect::Absent` matches exactly
/// these, so a put expecting 0 replaces the item.
pub(super) fn notice_version(item: &Item) -> (u64, Option<String>) {
    let value = match item.get("version") {
        Some(AttributeValue::N(value)) => value.trim(),
        None => return (0, Some("`version` is missing".to_owned())),
        Some(_) => return (0, Some("`version` is not a number".to_owned())),
    };
    let whole = value.split_once('.').map_or(value, |(whole, _)| whole);
    let version = match whole.parse::<i64>() {
        Ok(version) => Some(version),
        // Exponent notation, or too many digits.
        Err(_) => value.parse::<f64>().ok().and_then(|float| {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_precision_loss,
                reason = "truncating is the point; the range is checked first"
            )]
            let whole =
                (float.is_finite() && float.abs() < i64::MAX as f64).then(|| float.trunc() as i64);
            whole
        }),
    };
    match version.map(u64::try_from) {
        Some(Ok(version)) => (version, None),
        Some(Err(_)) => (0, Some("`version` is negative".to_owned())),
        None => (0, Some("`version` is out of range".to_owned())),
    }
}

/// Reads a notice item: a malformed one (written by a broken or newer
/// agent) reads as an empty notice at its stored version (see
/// `notice_version`), with what is wrong with it, so the next put over
/// that version replaces it. Fails only without a readable `name`.
pub(super) fn notice_from_item(item: &Item) -> Result<(Notice, Option<String>), Error> {
    let name = required_text(item, "name")?;
    let (version, mut problem) = notice_version(item);
    let notice = match item.get("record") {
        Some(AttributeValue::S(json)) => notice_record::read(&name, version, json)
            .map_err(|detail| format!("`record` is not a notice: {detail}")),
        Some(_) => Err("`record` is not a string".to_owned()),
        None => Err("`record` is missing".to_owned()),
    };
    let notice = match notice {
        Ok(notice) if problem.is_none() => notice,
        Ok(_) => Notice::new(&name),
        Err(detail) => {
            problem = Some(problem.map_or(detail.clone(), |first| format!("{first}; {detail}")));
            Notice {
                version,
                ..Notice::new(&name)
            }
        }
    };
    Ok((notice, problem))
}

/// A counter attribute: 0 when missing (zc.cimaa, and items written before
/// the counter existed).
fn count(item: &Item, key: &str) -> Result<u32, Error> {
    match whole_number(item, key)? {
        None => Ok(0),
        Some(value) => {
            u32::try_from(value).map_err(|_| corrupt(item, &format!("`{key}` is out of range")))
        }
    }
}

/// Reads an item of the faults table as an agent's fault; `None` for the
/// heartbeats and markers that share the table.
pub(super) fn agent_fault_from_item(item: &Item) -> Result<Option<AgentFault>, Error> {
    if is_reserved_agent(&required_text(item, "agent")?) {
        return Ok(None);
    }
    let (agent, fault) = fault_from_item(item)?;
    Ok(Some(AgentFault { agent, fault }))
}

/// Reads an alert marker: the agent and its `AGENT#alerts` fault.
pub(super) fn marker_from_item(item: &Item) -> Result<AgentFault, Error> {
    let (_, mut fault) = fault_from_item(item)?;
    let agent = fault.name;
    fault.name = format!("{agent}#alerts");
    Ok(AgentFault { agent, fault })
}

/// Reads a heartbeat item. Its facts are optional: one missing (zc.cimaa,
/// the `updated` index) or of another type (written by another tool) is
/// not recorded, and the heartbeat still counts (SPEC §17).
pub(super) fn heartbeat_from_item(item: &Item) -> Result<Heartbeat, Error> {
    Ok(Heartbeat {
        name: required_text(item, "name")?,
        updated: whole_number(item, "updated")?
            .ok_or_else(|| corrupt(item, "`updated` is missing"))?,
        version: match item.get("version") {
            Some(AttributeValue::S(version)) => Some(version.clone()),
            _ => None,
        },
        checks: match item.get("checks") {
            Some(AttributeValue::N(checks)) => checks.trim().parse().ok(),
            _ => None,
        },
    })
}

/// Reads a squelch item.
pub(super) fn squelch_from_item(item: &Item) -> Result<Squelch, Error> {
    Ok(Squelch {
        regex: required_text(item, "regex")?,
        reason: text(item, "reason")?.unwrap_or_default(),
        user: text(item, "user")?.unwrap_or_default(),
        time: whole_number(item, "time")?.unwrap_or(0),
        // zc.cimaa: `"p"` or empty; Python's `bool()` of the string.
        permanent: match item.get("permanent") {
            Some(AttributeValue::S(value)) => !value.is_empty(),
            Some(AttributeValue::Bool(value)) => *value,
            _ => false,
        },
        expires: whole_number(item, "expires")?,
    })
}

/// A kept open alert of `agent`: its fault under agent `_open/AGENT`.
pub(super) fn open_alert_item(agent: &str, alert: &OpenAlert) -> Item {
    let mut item = fault_item(&open_alerts_agent(agent), &alert.fault);
    item.insert("monitor_runs".to_owned(), number(alert.fault.monitor_runs));
    if let Some(alerter) = &alert.alerter {
        item.insert("alerter".to_owned(), string(alerter));
    }
    item
}

/// Reads a kept open alert.
pub(super) fn open_alert_from_item(item: &Item) -> Result<OpenAlert, Error> {
    let (_, mut fault) = fault_from_item(item)?;
    if let Some(runs) = whole_number(item, "monitor_runs")? {
        fault.monitor_runs =
            u32::try_from(runs).map_err(|_| corrupt(item, "`monitor_runs` is out of range"))?;
    }
    Ok(OpenAlert {
        fault,
        alerter: text(item, "alerter")?,
    })
}

/// The summary of `agent` stopped at `stopped` with `count` open alerts.
pub(super) fn stopped_item(agent: &str, stopped: i64, count: usize) -> Item {
    let mut item = fault_key(STOPPED_AGENT, agent);
    item.insert("stopped".to_owned(), number(stopped));
    item.insert("count".to_owned(), number(count));
    item
}

/// Reads the summary of a stopped agent.
pub(super) fn stopped_from_item(item: &Item) -> Result<StoppedAgent, Error> {
    let count = whole_number(item, "count")?.ok_or_else(|| corrupt(item, "`count` is missing"))?;
    Ok(StoppedAgent {
        name: required_text(item, "name")?,
        stopped: whole_number(item, "stopped")?
            .ok_or_else(|| corrupt(item, "`stopped` is missing"))?,
        open_alerts: usize::try_from(count)
            .map_err(|_| corrupt(item, "`count` is out of range"))?,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An ERROR fault record as the backend's tests store it.
    pub(in crate::db::dynamodb) fn fault(name: &str) -> Fault {
        Fault {
            name: name.to_owned(),
            severity: Severity::ERROR,
            message: format!("{name} is failing"),
            since: 100,
            updated: 100,
            triggered: false,
            escalates: true,
            attempts: 1,
            monitor_runs: 0,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        }
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect()
    }

    fn n(value: &str) -> AttributeValue {
        AttributeValue::N(value.to_owned())
    }

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    #[test]
    fn fault_items_have_the_zc_cimaa_layout() {
        let written = fault_item(
            "web1",
            &Fault {
                triggered: true,
                escalates: false,
                attempts: 3,
                severity: Severity::CRITICAL,
                ..fault("disk")
            },
        );
        assert_eq!(
            written,
            item(&[
                ("agent", s("web1")),
                ("name", s("disk")),
                ("severity", n("50")),
                ("message", s("disk is failing")),
                ("since", n("100")),
                ("updated", n("100")),
                ("triggered", s("y")),
                ("escalates", AttributeValue::Bool(false)),
                ("attempts", n("3")),
            ])
        );
        let quiet = fault_item(
            "web1",
            &Fault {
                message: String::new(),
                ..fault("disk")
            },
        );
        assert!(!quiet.contains_key("message"));
        assert!(!quiet.contains_key("triggered"));
    }

    // See: #22
    #[test]
    fn monitor_runs_round_trip_and_is_left_out_when_zero() {
        let broken = Fault {
            monitor_runs: 4,
            storm: false,
            ..fault("x#monitor-status")
        };
        let written = fault_item("web1", &broken);
        assert_eq!(written.get("monitor_runs"), Some(&n("4")));
        assert_eq!(fault_from_item(&written).unwrap().1, broken);
        let fine = fault_item("web1", &fault("x"));
        assert!(!fine.contains_key("monitor_runs"));
        assert_eq!(fault_from_item(&fine).unwrap().1.monitor_runs, 0);
        let mut bad = written;
        bad.insert("monitor_runs".into(), n("-1"));
        assert!(fault_from_item(&bad).is_err());
    }

    #[test]
    fn items_zc_cimaa_wrote_are_read() {
        let python = item(&[
            ("agent", s("web1")),
            ("name", s("//web1/app/down")),
            ("severity", n("50")),
            ("since", n("1417000000.25")),
            ("updated", n("1417000060.9")),
            ("triggered", s("y")),
            ("escalates", n("0")),
        ]);
        let (agent, read) = fault_from_item(&python).unwrap();
        assert_eq!(agent, "web1");
        assert_eq!(
            read,
            Fault {
                name: "//web1/app/down".into(),
                severity: Severity::CRITICAL,
                message: String::new(),
                since: 1_417_000_000,
                updated: 1_417_000_060,
                triggered: true,
                escalates: false,
                attempts: 0,
                monitor_runs: 0,
                storm: false,
                suppressed_by: None,
                held: false,
                flapping: false,
            }
        );
        let oldest = item(&[
            ("agent", s("web1")),
            ("name", s("x")),
            ("severity", n("40")),
            ("updated", n("5.5")),
        ]);
        let (_, read) = fault_from_item(&oldest).unwrap();
        assert_eq!((read.since, read.updated, read.escalates), (5, 5, true));
    }

    #[test]
    fn heartbeats_and_markers_are_no_agent_faults() {
        let disk = fault("disk");
        assert_eq!(
            agent_fault_from_item(&fault_item("web1", &disk)).unwrap(),
            Some(AgentFault {
                agent: "web1".into(),
                fault: disk.clone(),
            })
        );
        assert_eq!(
            agent_fault_from_item(&heartbeat_item("web1", 100, &AgentFacts::default())).unwrap(),
            None
        );
        assert_eq!(
            agent_fault_from_item(&marker_item("web1", &disk)).unwrap(),
            None
        );
    }

    #[test]
    fn the_layouts_own_agent_keys_are_reserved() {
        for name in ["_", "_alerts", "_stopped", "_open/web1", "_open/"] {
            assert!(is_reserved_agent(name), "{name}");
        }
        for name in ["web1", "_open", "_web1", "open/web1", "web1/_open/"] {
            assert!(!is_reserved_agent(name), "{name}");
        }
    }

    #[test]
    fn kept_alerts_and_stop_summaries_round_trip_and_are_no_agent_faults() {
        let alert = OpenAlert {
            fault: Fault {
                triggered: true,
                monitor_runs: 10,
                storm: false,
                ..fault("//web1/app/down")
            },
            alerter: Some("ops".into()),
        };
        let kept = open_alert_item("web1", &alert);
        assert_eq!(kept.get("agent"), Some(&s("_open/web1")));
        assert_eq!(open_alert_from_item(&kept).unwrap(), alert);
        let default_route = OpenAlert {
            alerter: None,
            ..alert.clone()
        };
        let kept = open_alert_item("web1", &default_route);
        assert!(!kept.contains_key("alerter"));
        assert_eq!(open_alert_from_item(&kept).unwrap(), default_route);

        let summary = stopped_item("web1", 500, 3);
        assert_eq!(
            stopped_from_item(&summary).unwrap(),
            StoppedAgent {
                name: "web1".into(),
                stopped: 500,
                open_alerts: 3,
            }
        );
        assert_eq!(agent_fault_from_item(&kept).unwrap(), None);
        assert_eq!(agent_fault_from_item(&summary).unwrap(), None);
    }

    #[test]
    fn escalates_is_read_from_a_bool_or_a_number() {
        let cases = [
            (None, true),
            (Some(AttributeValue::Bool(true)), true),
            (Some(AttributeValue::Bool(false)), false),
            (Some(n("0")), false),
            (Some(n("1")), true),
            (Some(n("0.0")), false),
        ];
        for (value, want) in cases {
            let mut stored = fault_item("web1", &fault("x"));
            stored.remove("escalates");
            if let Some(value) = value.clone() {
                stored.insert("escalates".into(), value);
            }
            assert_eq!(escalates(&stored).unwrap(), want, "{value:?}");
        }
    }

    #[test]
    fn squelch_items_round_trip_and_read_zc_cimaa_ones() {
        let squelch = Squelch {
            regex: "web1".into(),
            reason: "deploy".into(),
            user: "alice".into(),
            time: 100,
            permanent: true,
            expires: Some(200),
        };
        let written = squelch_item(&squelch);
        assert_eq!(written.get("permanent"), Some(&s("p")));
        assert_eq!(squelch_from_item(&written).unwrap(), squelch);

        let python = item(&[
            ("regex", s("db")),
            ("reason", s("r")),
            ("user", s("bob")),
            ("time", n("1417000000.5")),
            ("permanent", s("")),
        ]);
        let read = squelch_from_item(&python).unwrap();
        assert_eq!(
            (read.time, read.permanent, read.expires),
            (1_417_000_000, false, None)
        );
    }

    #[test]
    fn numbers_are_truncated_to_whole_units() {
        let cases = [
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("1417000000.999", Some(1_417_000_000)),
            ("-1.5", Some(-1)),
            ("1e3", Some(1000)),
            ("abc", None),
            ("1e300", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_whole(text), want, "{text}");
        }
    }

    // See: #11
    #[test]
    fn storm_is_a_bool_left_out_when_false() {
        let folded = Fault {
            storm: true,
            ..fault("disk")
        };
        let written = fault_item("web1", &folded);
        assert_eq!(written.get("storm"), Some(&AttributeValue::Bool(true)));
        assert_eq!(fault_from_item(&written).unwrap().1, folded);
        let alone = fault_item("web1", &fault("disk"));
        assert_eq!(alone.get("storm"), None);
        assert!(!fault_from_item(&alone).unwrap().1.storm);
        let mut odd = alone;
        odd.insert("storm".to_owned(), s("y"));
        assert!(fault_from_item(&odd).is_err());
    }

    // See: #17, #21. zc.cimaa and older cimaa items have no `flapping`.
    #[test]
    fn flapping_is_a_bool_left_out_when_false_and_missing_reads_as_false() {
        let flapping = Fault {
            flapping: true,
            ..fault("disk")
        };
        let written = fault_item("web1", &flapping);
        assert_eq!(written.get("flapping"), Some(&AttributeValue::Bool(true)));
        assert_eq!(fault_from_item(&written).unwrap().1, flapping);
        let steady = fault_item("web1", &fault("disk"));
        assert_eq!(steady.get("flapping"), None);
        assert!(!fault_from_item(&steady).unwrap().1.flapping);
        let mut odd = steady;
        odd.insert("flapping".to_owned(), n("1"));
        assert!(fault_from_item(&odd).is_err());
    }

    // See: #11. What `Expect::Absent`'s condition matches is what reads
    // as 0 here.
    #[test]
    fn notice_versions_read_as_their_whole_part_or_as_0_when_unreadable() {
        let cases = [
            (Some(n("7")), 7, false),
            (Some(n("0")), 0, false),
            (Some(n("2.5")), 2, false),
            (Some(n("-0.5")), 0, false),
            (Some(n("1e3")), 1000, false),
            (
                Some(n("9223372036854775807")),
                9_223_372_036_854_775_807,
                false,
            ),
            (Some(n("-2")), 0, true),
            (Some(n("9223372036854775808")), 0, true),
            (Some(n("1e30")), 0, true),
            (Some(s("7")), 0, true),
            (None, 0, true),
        ];
        for (version, want, unreadable) in cases {
            let mut stored = fault_key(NOTICES_AGENT, "//meta");
            if let Some(version) = version.clone() {
                stored.insert("version".to_owned(), version);
            }
            let (read, problem) = notice_version(&stored);
            assert_eq!((read, problem.is_some()), (want, unreadable), "{version:?}");
        }
    }

    // See: #11
    #[test]
    fn a_notice_item_reads_back_and_a_malformed_one_reads_as_empty_at_its_version() {
        let notice = Notice {
            holders: ["web1".to_owned()].into(),
            delivered: vec!["down".to_owned()],
            ..Notice::new("//meta")
        };
        let written = notice_item(&notice, 4).unwrap();
        assert_eq!(
            notice_from_item(&written).unwrap(),
            (
                Notice {
                    version: 4,
                    ..notice
                },
                None
            )
        );

        let mut broken = written;
        broken.insert("record".to_owned(), s("{}"));
        let (read, problem) = notice_from_item(&broken).unwrap();
        assert_eq!(
            read,
            Notice {
                version: 4,
                ..Notice::new("//meta")
            }
        );
        assert!(
            problem
                .unwrap()
                .starts_with("`record` is not a notice: missing field `holders`")
        );
    }
}
