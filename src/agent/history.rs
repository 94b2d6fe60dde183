//! What the agent records in the history (SPEC §12), as records of the
//! tick (`Agent::note`) that the writer stores with the tick's write:
//! triggered, resolved and the delivery of each alert per alerter
//! (`delivered`/`failed`), escalated, squelched, inactive (a meta-check's
//! finding), started and deregistered; and `AGENT#history` while records
//! are dropped or the database has nowhere to store them.
//!
//! Each record marks a change: a fault that stays as it is adds nothing,
//! however many ticks it lasts. A delivery that keeps failing is recorded
//! when it starts failing (and again when its error changes), not on every
//! retry.

use std::collections::{BTreeMap, BTreeSet};

use super::Agent;
use super::store::HistoryStatus;
use crate::db::Fault;
use crate::fault::{Action, RawFault};
use crate::history::Event;
use crate::severity::Severity;

/// The meta-check's message for a dead peer (SPEC §8), as it starts.
const INACTIVE: &str = "Inactive agent";

/// The full names of the faults a check reported as ERROR (before the
/// failure counter escalates them).
pub(super) fn erroring(check: &str, raw: &[RawFault]) -> Vec<String> {
    raw.iter()
        .filter(|fault| fault.severity.is_error())
        .map(|fault| crate::fault::full_name(check, fault.name.as_deref()))
        .collect()
}

/// What the recorder remembers between ticks so that it records changes
/// only.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    /// Deliveries failing now, by (fault, `trigger`/`resolve`, alerter),
    /// with the error last recorded.
    failing: BTreeMap<(String, &'static str, String), String>,
    /// CRITICAL faults squelched at the last tick.
    squelched: BTreeSet<String>,
    /// `HistoryStatus::dropped` at the previous tick.
    dropped_seen: u64,
    /// Records dropped since `AGENT#history` appeared.
    dropped_in_fault: u64,
}

/// How the alerters of one action fared, in the order tried: each alerter
/// and its error (`None`: it delivered).
pub(super) type Attempts = Vec<(String, Option<String>)>;

impl Agent<'_> {
    /// Records the outcome of one delivered (or failed) action: `triggered`
    /// or `resolved` when it reached a receiver, and per alerter tried
    /// `delivered` or `failed` (with `detail` the action, and the error).
    pub(super) fn record_delivery(&mut self, action: &Action, attempts: &Attempts, now: i64) {
        let (name, detail, event) = match action {
            Action::Trigger { name, .. } => (name, "trigger", Event::Triggered),
            Action::Resolve { name } => (name, "resolve", Event::Resolved),
        };
        let fault = self
            .faults
            .get(name)
            .map(|fault| (fault.severity, fault.message.clone()));
        let message = match action {
            Action::Trigger { message, .. } => Some(message.clone()),
            Action::Resolve { .. } => None,
        };
        if attempts.iter().any(|(_, error)| error.is_none()) {
            let record = self.note(now, name, event);
            if let Action::Trigger { .. } = action {
                record.severity = fault.as_ref().map(|(severity, _)| *severity);
                record.message.clone_from(&message);
            }
        }
        for (alerter, error) in attempts {
            let key = (name.clone(), detail, alerter.clone());
            match error {
                None => {
                    self.recorder.failing.remove(&key);
                    let record = self.note(now, name, Event::Delivered);
                    record.alerter = Some(alerter.clone());
                    record.detail = Some(detail.to_owned());
                    record.message.clone_from(&message);
                }
                Some(error) => {
                    if self.recorder.failing.get(&key) == Some(error) {
                        continue;
                    }
                    self.recorder.failing.insert(key, error.clone());
                    let record = self.note(now, name, Event::Failed);
                    record.alerter = Some(alerter.clone());
                    record.detail = Some(format!("{detail}: {error}"));
                    record.message.clone_from(&message);
                }
            }
        }
    }

    /// Records `escalated` for a fault its check reported as an ERROR
    /// (`erroring`, full names) that the failure counter (or a broken
    /// monitor's run count) made CRITICAL after it was stored as an ERROR
    /// (`N of M`): with `retry: 0` an ERROR is CRITICAL at once, and there
    /// is no escalation to record, only its trigger;
    /// and `inactive` for a peer the meta-check newly finds dead (named by
    /// the meta-check's fault, which holds the peer's name: `//meta#web2`).
    /// Called with the check's new fault records before they replace the
    /// old ones.
    pub(super) fn record_check_changes(
        &mut self,
        erroring: &[String],
        records: &[Fault],
        now: i64,
    ) {
        for fault in records {
            let (was_erroring, was_inactive) =
                self.faults.get(&fault.name).map_or((false, false), |old| {
                    (old.severity.is_error(), old.message.starts_with(INACTIVE))
                });
            if fault.severity.is_critical() && was_erroring && erroring.contains(&fault.name) {
                let record = self.note(now, &fault.name, Event::Escalated);
                record.severity = Some(fault.severity);
                record.message = Some(fault.message.clone());
            }
            if fault.message.starts_with(INACTIVE) && !was_inactive {
                let record = self.note(now, &fault.name, Event::Inactive);
                record.severity = Some(fault.severity);
                record.message = Some(fault.message.clone());
            }
        }
    }

    /// Records `squelched` for each CRITICAL fault that a squelch newly
    /// silences (SPEC §12); one that stays squelched adds nothing.
    pub(super) fn record_squelched(&mut self, now: i64) {
        let own = format!("{}#", self.config.agent.name);
        let squelched: BTreeSet<String> = self
            .faults
            .values()
            .filter(|fault| {
                fault.severity.is_critical()
                    && !fault.name.starts_with(&own)
                    && self.squelches.matches(&fault.name)
            })
            .map(|fault| fault.name.clone())
            .collect();
        let new: Vec<(String, Severity, String)> = squelched
            .difference(&self.recorder.squelched)
            .filter_map(|name| self.faults.get(name))
            .map(|fault| (fault.name.clone(), fault.severity, fault.message.clone()))
            .collect();
        for (name, severity, message) in new {
            let record = self.note(now, &name, Event::Squelched);
            record.severity = Some(severity);
            record.message = Some(message);
        }
        self.recorder.squelched = squelched;
    }

    /// Records the WARNING `AGENT#history` while the writer drops history
    /// records (its buffer is full during a long outage) or the database
    /// has nowhere to store them (a DynamoDB table not created by `cimaa
    /// setup-db`); clears it once records are stored again and none were
    /// dropped since the previous tick. Like every `AGENT#...` fault it is
    /// stored, never alerted by this agent.
    pub(super) fn record_history_status(&mut self, now: i64) {
        let HistoryStatus {
            dropped,
            unavailable,
        } = self.writer.history_status();
        let new = dropped.saturating_sub(self.recorder.dropped_seen);
        self.recorder.dropped_seen = dropped;
        let name = format!("{}#history", self.config.agent.name);
        if new == 0 && unavailable.is_none() {
            self.recorder.dropped_in_fault = 0;
            self.faults.remove(&name);
            return;
        }
        self.recorder.dropped_in_fault += new;
        let message = match unavailable {
            Some(why) => format!(
                "Cannot store history records ({} dropped): {why}",
                self.recorder.dropped_in_fault
            ),
            None => format!(
                "Dropped {} history records while the database was unreachable",
                self.recorder.dropped_in_fault
            ),
        };
        self.set_agent_fault(name, Severity::WARNING, message, now);
    }
}
