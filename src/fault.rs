//! The fault state machine and the alert plan (SPEC §5), pure.
//!
//! `escalate` applies a check's failure counter to one run's raw faults
//! (soft errors with `(N of M)`, escalation to CRITICAL, sticky criticals);
//! `escalate_run` adds the broken-monitor count (`monitor_retry`, SPEC §14)
//! on top, so a plugin that stays broken pages in the end.
//! `records` turns them into stored fault records, keeping `since` and the
//! `triggered` flag from the previous record. `plan` decides which alerts to
//! send this tick. No I/O, no clock: `now` and the tick's facts come in as
//! arguments, so every transition is a table-driven unit test.
//!
//! Every message is capped here (`cap_message`, SPEC §17: untrusted inputs
//! cost bounded memory): plugin output, probe errors, plugin JSON and check
//! file errors all become records through `escalate` and `records`, so a
//! 5 MB message is never stored, logged, alerted or sent anywhere.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// Longest fault message stored, logged or alerted, in bytes (marker included).
pub(crate) const MESSAGE_CAP: usize = 4096;

/// Room kept below `MESSAGE_CAP` in a raw message for what escalation
/// appends (` (N of M)`, at most 27 bytes), so the count survives a cut.
const ESCALATION_ROOM: usize = 32;

/// `message` cut to at most `cap` bytes on a char boundary, ending with
/// ` ... [truncated, N bytes]` (N: the original length) when it was longer.
#[must_use]
pub(crate) fn cap_message(message: String, cap: usize) -> String {
    if message.len() <= cap {
        return message;
    }
    let marker = format!(" ... [truncated, {} bytes]", message.len());
    let mut cut = cap.saturating_sub(marker.len());
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut capped = message;
    capped.truncate(cut);
    capped.push_str(&marker);
    capped
}

/// Caps the messages of one run's raw faults, leaving room for escalation's
/// ` (N of M)`. The agent calls it on every check's output before anything
/// is logged; `escalate` and `records` apply the cap again, so no path
/// around it exists.
pub(crate) fn cap_raw(faults: &mut [RawFault]) {
    for fault in faults {
        if fault.message.len() > MESSAGE_CAP - ESCALATION_ROOM {
            let message = std::mem::take(&mut fault.message);
            fault.message = cap_message(message, MESSAGE_CAP - ESCALATION_ROOM);
        }
    }
}

/// The message prefix of a broken monitor's faults once they page; N is the
/// check's `monitor_retry` (fixed, so the message stays the same each run).
#[must_use]
pub(crate) fn monitor_broken_prefix(monitor_retry: u32) -> String {
    format!("monitor broken for {monitor_retry} runs: ")
}

/// A fault as a check reports it, before retries and escalation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawFault {
    /// `None` for the check's own fault; else appended as `#name`.
    pub name: Option<String>,
    pub severity: Severity,
    pub message: String,
    /// Whether an ERROR escalates to CRITICAL after the check's retries.
    pub escalates: bool,
}

impl RawFault {
    /// A non-escalating ERROR about the monitor itself (`monitor-*`, `json-error` is not one).
    #[must_use]
    pub(crate) fn monitor(name: &str, message: impl Into<String>) -> RawFault {
        RawFault {
            name: Some(format!("monitor-{name}")),
            severity: Severity::ERROR,
            message: message.into(),
            escalates: false,
        }
    }

    /// Whether this fault says the monitor itself is broken (SPEC §14): a
    /// `monitor-*` or `json-error` fault of ERROR or worse. A plugin's own
    /// WARNING that happens to be named `monitor-x` is not one.
    #[must_use]
    pub(crate) fn is_broken_monitor(&self) -> bool {
        self.severity >= Severity::ERROR
            && self
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with("monitor-") || name == "json-error")
    }
}

/// One stored fault of one agent.
///
/// Its flags are independent facts stored as columns and attributes of
/// their own (SPEC §6, §10, §11), not a state machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[expect(clippy::struct_excessive_bools, reason = "independent stored flags")]
pub struct Fault {
    /// Full fault name: check name, plus `#NAME` for a named fault.
    pub name: String,
    pub severity: Severity,
    pub message: String,
    /// First seen in the current run of failures (epoch seconds).
    pub since: i64,
    /// When the record last changed (epoch seconds).
    pub updated: i64,
    /// An alert has been delivered for this fault with this message.
    pub triggered: bool,
    /// Whether an ERROR of this kind escalates to CRITICAL after retries.
    pub escalates: bool,
    /// The check's failure counter when the fault was recorded.
    pub attempts: u32,
    /// Consecutive runs of the check that reported a broken monitor
    /// (`monitor-*` or `json-error`), for `monitor_retry` (SPEC §14);
    /// persisted like `attempts`, 0 when the monitor works.
    #[serde(default)]
    pub monitor_runs: u32,
    /// The fault went critical while an alert storm of its alerter was
    /// open (or opened it): it is part of `AGENT#storm` and not triggered
    /// on its own (SPEC §10). Persisted like `triggered`.
    #[serde(default)]
    pub storm: bool,
    /// The full check name of the failing dependency that suppresses this
    /// fault (SPEC §11 `depends_on`, SPEC §14's `AGENT#dns`): stored, shown,
    /// not triggered. `None` when nothing suppresses it.
    #[serde(default)]
    pub suppressed_by: Option<String>,
    /// The fault's trigger waits for the end of its alerter's quiet hours
    /// (SPEC §11). Persisted like `triggered`.
    #[serde(default)]
    pub held: bool,
    /// The fault's check is flapping (SPEC §11): its flapping alert speaks
    /// for it, so its own changes are not alerted. The agent sets it on
    /// every stored fault of the check before it writes the tick.
    #[serde(default)]
    pub flapping: bool,
}

/// A fault together with the agent that reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentFault {
    pub agent: String,
    pub fault: Fault,
}

impl Fault {
    /// The record of an alert whose fault cleared while its resolve has not
    /// been delivered yet: kept triggered (INFO, never alerted again) so the
    /// resolve is retried, also across a restart.
    #[must_use]
    pub(crate) fn cleared_unresolved(name: &str, now: i64) -> Fault {
        Fault {
            name: name.to_owned(),
            severity: Severity::INFO,
            message: "cleared; resolve not delivered yet".into(),
            since: now,
            updated: now,
            triggered: true,
            escalates: false,
            attempts: 0,
            monitor_runs: 0,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        }
    }

    /// True when `other` would store the same record: only `since` and
    /// `updated` may differ. A record that is the same keeps its `updated`,
    /// so backends rewrite only what changed.
    #[must_use]
    pub fn same_record(&self, other: &Fault) -> bool {
        self.severity == other.severity
            && self.message == other.message
            && self.triggered == other.triggered
            && self.escalates == other.escalates
            && self.attempts == other.attempts
            && self.monitor_runs == other.monitor_runs
            && self.storm == other.storm
            && self.suppressed_by == other.suppressed_by
            && self.held == other.held
            && self.flapping == other.flapping
    }
}

/// Applies the failure counter to one run's faults.
///
/// Returns the new counter and the faults with escalation applied:
/// any CRITICAL sets the counter to `retry`; any ERROR adds one (capped at
/// `retry + 1`) and, past `retry`, turns escalating ERRORs into CRITICALs,
/// else appends ` (N of M)` to them; a run with neither resets it to 0.
#[must_use]
pub(crate) fn escalate(
    retry: u32,
    counter: u32,
    mut faults: Vec<RawFault>,
) -> (u32, Vec<RawFault>) {
    cap_raw(&mut faults);
    let any_critical = faults.iter().any(|f| f.severity.is_critical());
    let any_error = faults.iter().any(|f| f.severity.is_error());
    // Counted in u64: with `retry: 4294967295` the cap `retry + 1` does not
    // fit a u32, and a saturating add would never pass `retry`, so a check
    // that went critical would fall back to a soft error. The stored counter
    // saturates instead, which keeps it past `retry`.
    let retry = u64::from(retry);
    let mut counter = u64::from(counter);
    if any_critical {
        counter = retry;
    }
    if any_error {
        counter = (counter + 1).min(retry + 1);
        for fault in faults
            .iter_mut()
            .filter(|f| f.severity.is_error() && f.escalates)
        {
            if counter > retry {
                fault.severity = Severity::CRITICAL;
            } else {
                fault.message = format!("{} ({counter} of {})", fault.message, retry + 1);
            }
        }
    } else if !any_critical {
        counter = 0;
    }
    (u32::try_from(counter).unwrap_or(u32::MAX), faults)
}

/// One run's faults after both of a check's counters.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Escalated {
    /// The failure counter (`escalate`).
    pub counter: u32,
    /// Consecutive runs with a broken monitor, capped at `monitor_retry`.
    pub monitor_runs: u32,
    pub faults: Vec<RawFault>,
}

/// `escalate`, then the broken-monitor rule (SPEC §14).
///
/// A run with a broken-monitor fault (`RawFault::is_broken_monitor`) adds
/// one to `monitor_runs` (capped at `monitor_retry`, so a lasting fault is
/// not rewritten every run); a run without one resets it to 0. From the
/// `monitor_retry`-th such run on, every broken-monitor fault that is not
/// already CRITICAL becomes CRITICAL, its message (as the check gave it,
/// without ` (N of M)`) prefixed with `monitor broken for N runs: `, N =
/// `monitor_retry`. A `json-error` the failure counter already made
/// CRITICAL keeps its message, so it does not page twice.
///
/// The monitor rule comes after the failure counter and does not feed it:
/// a broken plugin pages about itself without making the check's other
/// errors skip their retries. `monitor_retry` 0 turns the rule off (the
/// count stays 0 and broken monitors never page, as before SPEC §14).
#[must_use]
pub(crate) fn escalate_run(
    retry: u32,
    counter: u32,
    monitor_retry: u32,
    monitor_runs: u32,
    faults: Vec<RawFault>,
) -> Escalated {
    let broken_now = faults.iter().any(RawFault::is_broken_monitor);
    let monitor_runs = if broken_now && monitor_retry > 0 {
        monitor_runs.saturating_add(1).min(monitor_retry)
    } else {
        0
    };
    let pages = monitor_retry > 0 && monitor_runs >= monitor_retry;
    // What each broken-monitor fault said before `escalate` could append
    // ` (N of M)` to it (a `json-error` escalates).
    let said: Vec<Option<String>> = if pages {
        faults
            .iter()
            .map(|f| f.is_broken_monitor().then(|| f.message.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let (counter, mut faults) = escalate(retry, counter, faults);
    // `escalate` keeps the faults in order, one for one.
    for (fault, said) in faults.iter_mut().zip(said) {
        if let Some(message) = said
            && !fault.severity.is_critical()
        {
            fault.severity = Severity::CRITICAL;
            fault.message = format!("{}{message}", monitor_broken_prefix(monitor_retry));
        }
    }
    Escalated {
        counter,
        monitor_runs,
        faults,
    }
}

/// True when a run's faults make the check "failing" for the retry schedule.
#[must_use]
pub(crate) fn is_failing(faults: &[RawFault]) -> bool {
    faults.iter().any(|f| f.severity >= Severity::ERROR)
}

/// The full name of a check's fault.
#[must_use]
pub(crate) fn full_name(check: &str, fault: Option<&str>) -> String {
    match fault {
        Some(name) => format!("{check}#{name}"),
        None => check.to_string(),
    }
}

/// The check a fault belongs to: its name up to the first `#`.
#[must_use]
pub(crate) fn check_of(fault: &str) -> &str {
    fault.split_once('#').map_or(fault, |(check, _)| check)
}

/// Where a message's growing age starts: the meta-check's `Inactive agent
/// (no heartbeat for 3m12s)` (SPEC §8) changes every run while its incident
/// does not.
pub(crate) const AGE_SUFFIX: &str = " (no heartbeat for ";

/// Whether `new` is the alert `old` was: the same message, or the same but
/// for a trailing age (`AGE_SUFFIX ... )`), so an incident whose message
/// only counts its age is triggered once, not on every run.
#[must_use]
pub(crate) fn same_alert(old: &str, new: &str) -> bool {
    fn without_age(message: &str) -> &str {
        let Some(at) = message.rfind(AGE_SUFFIX) else {
            return message;
        };
        let age = message[at + AGE_SUFFIX.len()..].strip_suffix(')');
        if age.is_some_and(|age| !age.is_empty() && age.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            &message[..at]
        } else {
            message
        }
    }
    old == new || without_age(old) == without_age(new)
}

/// Stored records for one check's run; each carries the check's counters.
///
/// `since` carries over from a previous record of the same name; `triggered`
/// carries over only while the message is unchanged (a new message is a new
/// alert); `storm` carries over while the fault stays critical;
/// `suppressed_by` and `flapping` carry over (the agent decides them after
/// the run); `updated` changes only when the record does.
#[must_use]
pub(crate) fn records(
    check: &str,
    faults: Vec<RawFault>,
    counter: u32,
    monitor_runs: u32,
    previous: &BTreeMap<String, Fault>,
    now: i64,
) -> Vec<Fault> {
    let mut out: Vec<Fault> = Vec::with_capacity(faults.len());
    for raw in faults {
        let name = full_name(check, raw.name.as_deref());
        let mut fault = Fault {
            name,
            severity: raw.severity,
            message: cap_message(raw.message, MESSAGE_CAP),
            since: now,
            updated: now,
            triggered: false,
            escalates: raw.escalates,
            attempts: counter,
            monitor_runs,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        };
        if let Some(old) = previous.get(&fault.name) {
            fault.since = old.since;
            fault.triggered = old.triggered && same_alert(&old.message, &fault.message);
            // A storm's member stays in it while it stays critical, whatever
            // its message says (SPEC §10).
            fault.storm = old.storm && fault.severity.is_critical();
            // A held trigger waits while its fault stays critical (SPEC §11).
            fault.held = old.held && fault.severity.is_critical();
            // The agent decides these after the run (`dependency::decide`,
            // `Agent::mark_flapping`).
            fault.suppressed_by.clone_from(&old.suppressed_by);
            fault.flapping = old.flapping;
            if old.same_record(&fault) {
                fault.updated = old.updated;
            }
        }
        // Two faults of one run with one name: keep the worse, say both.
        if let Some(same) = out.iter_mut().find(|f| f.name == fault.name) {
            if fault.severity > same.severity {
                *same = fault;
            }
            continue;
        }
        out.push(fault);
    }
    out
}

/// An alert to deliver.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    Trigger { name: String, message: String },
    Resolve { name: String },
}

/// Facts about this tick that the plan needs.
pub(crate) struct Tick<'a> {
    /// This agent's name: its own `AGENT#...` faults are never alerted here.
    pub agent: &'a str,
    /// Checks that ran this tick.
    pub ran: &'a HashSet<String>,
    /// Checks that exist now (a fault of a vanished check resolves at once).
    pub alive: &'a HashSet<String>,
    /// Faults whose alert may be open at the receiver.
    pub opened: &'a BTreeSet<String>,
    /// Resolves that failed before and are retried now.
    pub retry_resolves: &'a BTreeSet<String>,
    /// Whether a squelch matches the fault name.
    pub squelched: &'a dyn Fn(&str) -> bool,
    /// Whether a check's alerts are held by its flapping alert (SPEC §11):
    /// its faults are neither triggered nor resolved here (`agent::flap`).
    pub flapping: &'a dyn Fn(&str) -> bool,
}

/// Decides this tick's alerts; clears `triggered` on squelched faults.
///
/// The agent's own `AGENT#...` faults are not alerted, except its storm
/// faults (`AGENT#storm`, `AGENT#storm-NAME`, SPEC §10). Members of a storm
/// (`storm: true`) are neither triggered nor resolved on their own: the
/// storm speaks for them (`storm::decide`). A suppressed fault
/// (`suppressed_by`, SPEC §11) is not triggered; its open alert stays open
/// until the fault clears.
#[must_use]
pub(crate) fn plan(faults: &mut BTreeMap<String, Fault>, tick: &Tick<'_>) -> Vec<Action> {
    let own = format!("{}#", tick.agent);
    let quiet =
        |name: &str| name.starts_with(&own) && crate::storm::route_of(tick.agent, name).is_none();
    let mut actions = Vec::new();
    let mut wanted_open = HashSet::new();
    for fault in faults.values_mut() {
        if quiet(&fault.name) || !fault.severity.is_critical() {
            continue;
        }
        if (tick.flapping)(check_of(&fault.name)) {
            continue;
        }
        if fault.storm {
            wanted_open.insert(fault.name.clone());
            continue;
        }
        if (tick.squelched)(&fault.name) {
            fault.triggered = false;
            continue;
        }
        wanted_open.insert(fault.name.clone());
        // A failing dependency (SPEC §11): no new trigger; one sent stays open.
        if fault.suppressed_by.is_some() {
            continue;
        }
        if !fault.triggered {
            actions.push(Action::Trigger {
                name: fault.name.clone(),
                message: fault.message.clone(),
            });
        }
    }
    for name in tick.opened.union(tick.retry_resolves) {
        let check = check_of(name);
        // A flapping check holds its open alerts, unless it is gone or
        // the alert is squelched: those are resolved as any other.
        let held = (tick.flapping)(check) && tick.alive.contains(check) && !(tick.squelched)(name);
        if wanted_open.contains(name) || quiet(name) || held {
            continue;
        }
        if tick.retry_resolves.contains(name)
            || tick.ran.contains(check)
            || !tick.alive.contains(check)
        {
            actions.push(Action::Resolve { name: name.clone() });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(severity: Severity, escalates: bool) -> RawFault {
        RawFault {
            name: None,
            severity,
            message: "m".into(),
            escalates,
        }
    }

    /// Feeds a sequence of runs through `escalate` with retry 3 and shows
    /// (counter, severity, message) after each.
    #[test]
    fn escalation_sequences() {
        type Expected<'a> = Vec<(u32, Option<(i64, &'a str)>)>;
        let e = |esc| vec![raw(Severity::ERROR, esc)];
        let c = || vec![raw(Severity::CRITICAL, true)];
        let w = || vec![raw(Severity::WARNING, true)];
        let ok = Vec::new;
        let cases: Vec<(&str, Vec<Vec<RawFault>>, Expected)> = vec![
            (
                "errors escalate after retries and stay critical",
                vec![e(true), e(true), e(true), e(true), e(true)],
                vec![
                    (1, Some((40, "m (1 of 4)"))),
                    (2, Some((40, "m (2 of 4)"))),
                    (3, Some((40, "m (3 of 4)"))),
                    (4, Some((50, "m"))),
                    (4, Some((50, "m"))),
                ],
            ),
            (
                "a critical then an error stays critical",
                vec![c(), e(true)],
                vec![(3, Some((50, "m"))), (4, Some((50, "m")))],
            ),
            (
                "a clean run starts over",
                vec![e(true), ok(), e(true)],
                vec![
                    (1, Some((40, "m (1 of 4)"))),
                    (0, None),
                    (1, Some((40, "m (1 of 4)"))),
                ],
            ),
            (
                "warnings do not count",
                vec![e(true), w()],
                vec![(1, Some((40, "m (1 of 4)"))), (0, Some((30, "m")))],
            ),
            (
                "non-escalating errors count but never escalate",
                vec![e(false), e(false), e(false), e(false), e(false)],
                vec![
                    (1, Some((40, "m"))),
                    (2, Some((40, "m"))),
                    (3, Some((40, "m"))),
                    (4, Some((40, "m"))),
                    (4, Some((40, "m"))),
                ],
            ),
        ];
        for (what, runs, want) in cases {
            let mut counter = 0;
            let mut got = Vec::new();
            for run in runs {
                let (next, faults) = escalate(3, counter, run);
                counter = next;
                got.push((
                    next,
                    faults.first().map(|f| (f.severity.0, f.message.clone())),
                ));
            }
            let want: Vec<_> = want
                .into_iter()
                .map(|(n, f)| (n, f.map(|(s, m)| (s, m.to_string()))))
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }

    /// After each run: (counter, monitor runs, each fault's severity and message).
    type Shown<'a> = (u32, u32, Vec<(i64, &'a str)>);
    /// What, retry, monitor_retry, the runs, and what each shows.
    type MonitorCase<'a> = (&'a str, u32, u32, Vec<Vec<RawFault>>, Vec<Shown<'a>>);

    /// Feeds each case's runs through `escalate_run`, from fresh counters.
    fn check_monitor_cases(cases: Vec<MonitorCase<'_>>) {
        for (what, retry, monitor_retry, runs, want) in cases {
            let (mut counter, mut monitor_runs) = (0, 0);
            let mut got = Vec::new();
            for run in runs {
                let out = escalate_run(retry, counter, monitor_retry, monitor_runs, run);
                (counter, monitor_runs) = (out.counter, out.monitor_runs);
                let faults: Vec<(i64, String)> = out
                    .faults
                    .into_iter()
                    .map(|f| (f.severity.0, f.message))
                    .collect();
                got.push((counter, monitor_runs, faults));
            }
            let want: Vec<_> = want
                .into_iter()
                .map(|(c, m, f)| {
                    let f: Vec<(i64, String)> =
                        f.into_iter().map(|(s, t)| (s, t.to_string())).collect();
                    (c, m, f)
                })
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }

    fn named(name: &str, severity: Severity, escalates: bool) -> RawFault {
        RawFault {
            name: Some(name.into()),
            severity,
            message: name.into(),
            escalates,
        }
    }

    fn broken() -> Vec<RawFault> {
        vec![RawFault::monitor("status", "m")]
    }

    // See: #22
    #[test]
    fn broken_monitor_sequences() {
        let prefixed = "monitor broken for 3 runs: m";
        check_monitor_cases(vec![
            (
                "a broken monitor pages from the monitor_retry-th run on, with a fixed message",
                3,
                3,
                vec![broken(), broken(), broken(), broken()],
                vec![
                    (1, 1, vec![(40, "m")]),
                    (2, 2, vec![(40, "m")]),
                    (3, 3, vec![(50, prefixed)]),
                    (4, 3, vec![(50, prefixed)]),
                ],
            ),
            (
                "a run without a broken monitor starts the count over",
                3,
                3,
                vec![broken(), broken(), Vec::new(), broken()],
                vec![
                    (1, 1, vec![(40, "m")]),
                    (2, 2, vec![(40, "m")]),
                    (0, 0, vec![]),
                    (1, 1, vec![(40, "m")]),
                ],
            ),
            (
                "monitor_retry 0 never pages",
                3,
                0,
                vec![broken(), broken(), broken(), broken(), broken()],
                vec![
                    (1, 0, vec![(40, "m")]),
                    (2, 0, vec![(40, "m")]),
                    (3, 0, vec![(40, "m")]),
                    (4, 0, vec![(40, "m")]),
                    (4, 0, vec![(40, "m")]),
                ],
            ),
            (
                "monitor_retry 1 pages at once",
                3,
                1,
                vec![broken()],
                vec![(1, 1, vec![(50, "monitor broken for 1 runs: m")])],
            ),
            (
                "a plugin's own warning named monitor-x is no broken monitor",
                3,
                1,
                vec![vec![named("monitor-x", Severity::WARNING, true)]],
                vec![(0, 0, vec![(30, "monitor-x")])],
            ),
        ]);
    }

    // See: #22
    #[test]
    fn broken_monitors_and_the_failure_counter() {
        let json = || vec![named("json-error", Severity::ERROR, true)];
        check_monitor_cases(vec![
            (
                "a json-error the retries made critical keeps its message",
                1,
                3,
                vec![json(), json(), json()],
                vec![
                    (1, 1, vec![(40, "json-error (1 of 2)")]),
                    (2, 2, vec![(50, "json-error")]),
                    (2, 3, vec![(50, "json-error")]),
                ],
            ),
            (
                "a json-error still soft pages without its (N of M)",
                5,
                2,
                vec![json(), json()],
                vec![
                    (1, 1, vec![(40, "json-error (1 of 6)")]),
                    (2, 2, vec![(50, "monitor broken for 2 runs: json-error")]),
                ],
            ),
            (
                "the check's other errors keep their retries",
                5,
                1,
                vec![vec![
                    RawFault::monitor("stderr", "m"),
                    named("app", Severity::ERROR, true),
                ]],
                vec![(
                    1,
                    1,
                    vec![(50, "monitor broken for 1 runs: m"), (40, "app (1 of 6)")],
                )],
            ),
        ]);
    }

    #[test]
    fn records_carry_the_monitor_run_count_and_a_change_updates_them() {
        let mut previous = BTreeMap::new();
        let first = records(
            "//a/b/c",
            vec![RawFault::monitor("status", "m")],
            1,
            1,
            &previous,
            100,
        );
        assert_eq!(first[0].monitor_runs, 1);
        previous.insert(first[0].name.clone(), first[0].clone());
        let second = records(
            "//a/b/c",
            vec![RawFault::monitor("status", "m")],
            2,
            2,
            &previous,
            160,
        );
        assert_eq!((second[0].monitor_runs, second[0].updated), (2, 160));
    }

    // See: #22. A dead peer's page is one alert while its age grows.
    #[test]
    fn a_message_that_only_counts_its_age_is_the_same_alert() {
        let cases = [
            (
                "Inactive agent (no heartbeat for 3m12s)",
                "Inactive agent (no heartbeat for 3m17s)",
                true,
            ),
            (
                "Inactive agent (no heartbeat for 3m12s)",
                "Inactive agent",
                true,
            ),
            ("disk 90% > 80%", "disk 91% > 80%", false),
            (
                "x (no heartbeat for 1s) (1 of 2)",
                "x (no heartbeat for 2s) (1 of 2)",
                false,
            ),
            ("a", "a", true),
        ];
        for (old, new, same) in cases {
            assert_eq!(same_alert(old, new), same, "{old} -> {new}");
        }
    }

    #[test]
    fn retry_zero_alerts_at_once() {
        let (counter, faults) = escalate(0, 0, vec![raw(Severity::ERROR, true)]);
        assert_eq!((counter, faults[0].severity), (1, Severity::CRITICAL));
    }

    fn stored(name: &str, severity: Severity, message: &str, triggered: bool) -> Fault {
        Fault {
            name: name.into(),
            severity,
            message: message.into(),
            since: 100,
            updated: 100,
            triggered,
            escalates: true,
            attempts: 4,
            monitor_runs: 0,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        }
    }

    #[test]
    fn records_keep_since_and_triggered_while_the_message_is_unchanged() {
        let previous: BTreeMap<String, Fault> = [
            (
                "//a/b/c".to_string(),
                stored("//a/b/c", Severity::CRITICAL, "m", true),
            ),
            (
                "//a/b/c#x".to_string(),
                stored("//a/b/c#x", Severity::CRITICAL, "old", true),
            ),
        ]
        .into();
        let faults = vec![
            RawFault {
                name: None,
                severity: Severity::CRITICAL,
                message: "m".into(),
                escalates: true,
            },
            RawFault {
                name: Some("x".into()),
                severity: Severity::CRITICAL,
                message: "new".into(),
                escalates: true,
            },
            RawFault {
                name: Some("y".into()),
                severity: Severity::WARNING,
                message: "w".into(),
                escalates: true,
            },
        ];
        let got = records("//a/b/c", faults, 4, 0, &previous, 200);
        let summary: Vec<_> = got
            .iter()
            .map(|f| (f.name.as_str(), f.since, f.updated, f.triggered))
            .collect();
        assert_eq!(
            summary,
            [
                ("//a/b/c", 100, 100, true),
                ("//a/b/c#x", 100, 200, false),
                ("//a/b/c#y", 200, 200, false)
            ]
        );
    }

    #[test]
    fn records_keep_a_storm_member_in_its_storm_only_while_it_stays_critical() {
        let member = |severity, message: &str| Fault {
            storm: true,
            ..stored("//a/b/c", severity, message, false)
        };
        let run = |severity, message: &str| {
            let raw = RawFault {
                name: None,
                severity,
                message: message.into(),
                escalates: true,
            };
            let previous: BTreeMap<String, Fault> =
                [("//a/b/c".to_string(), member(Severity::CRITICAL, "m"))].into();
            records("//a/b/c", vec![raw], 4, 0, &previous, 200)[0].storm
        };
        assert!(run(Severity::CRITICAL, "m"), "unchanged");
        assert!(run(Severity::CRITICAL, "other"), "a new message keeps it");
        assert!(!run(Severity::ERROR, "m"), "no longer critical");
    }

    // See: #18
    #[test]
    fn a_huge_message_is_capped_with_a_marker_on_a_char_boundary() {
        // A 5 MB message of 3-byte characters: the cut never splits one.
        let huge = "€".repeat(5_000_000 / 3);
        let total = huge.len();
        let got = cap_message(huge, MESSAGE_CAP);
        let marker = format!(" ... [truncated, {total} bytes]");
        assert!(got.len() <= MESSAGE_CAP, "{}", got.len());
        assert!(got.ends_with(&marker), "{}", &got[got.len() - 40..]);
        assert!(got.len() > MESSAGE_CAP - 3 - marker.len());
        assert_eq!(cap_message("short".into(), MESSAGE_CAP), "short");
    }

    // See: #18
    #[test]
    fn records_cap_messages_and_escalation_keeps_its_count() {
        let faults = vec![RawFault {
            name: None,
            severity: Severity::ERROR,
            message: "x".repeat(5_000_000),
            escalates: true,
        }];
        let (counter, escalated) = escalate(3, 0, faults);
        let got = records("//a/b/c", escalated, counter, 0, &BTreeMap::new(), 1);
        assert!(got[0].message.len() <= MESSAGE_CAP);
        assert!(
            got[0]
                .message
                .ends_with(" ... [truncated, 5000000 bytes] (1 of 4)"),
            "{}",
            &got[0].message[got[0].message.len() - 60..]
        );
        // Whatever reaches `records` without `escalate` is capped too.
        let direct = vec![RawFault {
            name: None,
            severity: Severity::CRITICAL,
            message: "y".repeat(10_000),
            escalates: true,
        }];
        let got = records("//a/b/c", direct, 0, 0, &BTreeMap::new(), 1);
        assert_eq!(got[0].message.len(), MESSAGE_CAP);
    }

    struct Facts {
        ran: HashSet<String>,
        alive: HashSet<String>,
        opened: BTreeSet<String>,
        retry: BTreeSet<String>,
    }

    fn facts(ran: &[&str], alive: &[&str], opened: &[&str], retry: &[&str]) -> Facts {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        Facts {
            ran: set(ran),
            alive: set(alive),
            opened: opened.iter().map(|s| (*s).to_string()).collect(),
            retry: retry.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    fn run_plan(faults: Vec<Fault>, f: &Facts, squelch: &str) -> Vec<Action> {
        let mut map: BTreeMap<String, Fault> =
            faults.into_iter().map(|f| (f.name.clone(), f)).collect();
        let squelched = |name: &str| !squelch.is_empty() && name.contains(squelch);
        let tick = Tick {
            agent: "web1",
            ran: &f.ran,
            alive: &f.alive,
            opened: &f.opened,
            retry_resolves: &f.retry,
            squelched: &squelched,
            flapping: &|check: &str| check.ends_with("/flap"),
        };
        plan(&mut map, &tick)
    }

    fn trigger(name: &str, message: &str) -> Action {
        Action::Trigger {
            name: name.into(),
            message: message.into(),
        }
    }

    fn resolve(name: &str) -> Action {
        Action::Resolve { name: name.into() }
    }

    #[test]
    fn alert_plan_cases() {
        type Case<'a> = (&'a str, Vec<Fault>, Facts, &'a str, Vec<Action>);
        let c = "//web1/app/c";
        let cases: Vec<Case> = vec![
            (
                "a new critical fault triggers",
                vec![stored(c, Severity::CRITICAL, "m", false)],
                facts(&[c], &[c], &[], &[]),
                "",
                vec![trigger(c, "m")],
            ),
            (
                "an already triggered fault with the same message stays quiet",
                vec![stored(c, Severity::CRITICAL, "m", true)],
                facts(&[c], &[c], &[c], &[]),
                "",
                vec![],
            ),
            (
                "errors and warnings never trigger",
                vec![stored(c, Severity::ERROR, "m", false)],
                facts(&[c], &[c], &[], &[]),
                "",
                vec![],
            ),
            (
                "a cleared fault resolves once its check ran",
                vec![],
                facts(&[c], &[c], &[c], &[]),
                "",
                vec![resolve(c)],
            ),
            (
                "a cleared fault waits while its check has not run again",
                vec![],
                facts(&[], &[c], &[c], &[]),
                "",
                vec![],
            ),
            (
                "a fault of a vanished check resolves at once",
                vec![],
                facts(&[], &[], &[c], &[]),
                "",
                vec![resolve(c)],
            ),
            (
                "a failed resolve is retried whether or not the check ran",
                vec![],
                facts(&[], &[c], &[], &[c]),
                "",
                vec![resolve(c)],
            ),
            (
                "a squelched critical fault does not trigger",
                vec![stored(c, Severity::CRITICAL, "m", false)],
                facts(&[c], &[c], &[], &[]),
                "app",
                vec![],
            ),
            (
                "a triggered fault that becomes squelched is resolved",
                vec![stored(c, Severity::CRITICAL, "m", true)],
                facts(&[c], &[c], &[c], &[]),
                "app",
                vec![resolve(c)],
            ),
            (
                "a flapping check's new critical fault does not trigger",
                vec![stored("//web1/app/flap", Severity::CRITICAL, "m", false)],
                facts(&["//web1/app/flap"], &["//web1/app/flap"], &[], &[]),
                "",
                vec![],
            ),
            (
                "a flapping check's open alert stays open through a clean run",
                vec![],
                facts(
                    &["//web1/app/flap"],
                    &["//web1/app/flap"],
                    &["//web1/app/flap"],
                    &[],
                ),
                "",
                vec![],
            ),
            (
                "the agent's own faults are never alerted by it",
                vec![stored("web1#alerts", Severity::CRITICAL, "m", false)],
                facts(&[], &[], &[], &[]),
                "",
                vec![],
            ),
        ];
        for (what, faults, f, squelch, want) in cases {
            assert_eq!(run_plan(faults, &f, squelch), want, "{what}");
        }
    }

    #[test]
    fn alert_plan_storm_cases() {
        type Case<'a> = (&'a str, Vec<Fault>, Facts, &'a str, Vec<Action>);
        let c = "//web1/app/c";
        let cases: Vec<Case> = vec![
            (
                "a storm fault is alerted although it is the agent's own",
                vec![
                    stored("web1#storm", Severity::CRITICAL, "11 new", false),
                    stored("web1#storm-pager", Severity::CRITICAL, "12 new", false),
                ],
                facts(&[], &[], &[], &[]),
                "",
                vec![
                    trigger("web1#storm", "11 new"),
                    trigger("web1#storm-pager", "12 new"),
                ],
            ),
            (
                "a storm fault that left the set resolves at once",
                vec![],
                facts(&[], &[c], &["web1#storm"], &[]),
                "",
                vec![resolve("web1#storm")],
            ),
            (
                "a suppressed critical fault is not triggered",
                vec![Fault {
                    suppressed_by: Some("//web1/net/gw".into()),
                    ..stored(c, Severity::CRITICAL, "m", false)
                }],
                facts(&[c], &[c], &[], &[]),
                "",
                vec![],
            ),
            (
                "a trigger sent before the suppression stays open",
                vec![Fault {
                    suppressed_by: Some("//web1/net/gw".into()),
                    ..stored(c, Severity::CRITICAL, "new message", false)
                }],
                facts(&[c], &[c], &[c], &[]),
                "",
                vec![],
            ),
            (
                "a suppressed fault that cleared is resolved as usual",
                vec![Fault {
                    suppressed_by: Some("//web1/net/gw".into()),
                    ..stored(c, Severity::WARNING, "m", false)
                }],
                facts(&[c], &[c], &[c], &[]),
                "",
                vec![resolve(c)],
            ),
            (
                "a member of a storm is not triggered on its own",
                vec![Fault {
                    storm: true,
                    ..stored(c, Severity::CRITICAL, "m", false)
                }],
                facts(&[c], &[c], &[], &[]),
                "",
                vec![],
            ),
        ];
        for (what, faults, f, squelch, want) in cases {
            assert_eq!(run_plan(faults, &f, squelch), want, "{what}");
        }
    }
}
