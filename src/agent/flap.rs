//! Flap detection and message churn in the agent (SPEC §11).
//!
//! After each run of a check, its result goes into its flap state
//! (`flap::Flap`). When it starts flapping, its open alerts (or, with none
//! open, a new one under the check's name) are triggered once with
//! `flapping: N state changes in the last 21 runs` and held: `fault::plan`
//! neither triggers nor resolves the check's faults while it holds them,
//! so they stay open through clean runs. Once it stops flapping, its first
//! clean or critical run hands the check back to the usual rules: the held
//! alerts are resolved, or triggered anew with the current message.
//! The start is recorded as a `flapping` history event; the end shows as
//! the `resolved` (or `triggered`) record of the alert that follows.
//!
//! Message churn: a trigger of an open alert whose message changed while
//! the severity the check reported did not is held back until its
//! alerter's `renotify` has passed since the last one sent
//! (`renotify::due`); the latest message then goes out.
//!
//! Every stored fault of a check that flaps is marked `flapping`
//! (`mark_flapping`, right before the tick's write).
//!
//! Flap and churn memory survive a restart: the last 21 results, the held
//! alerts and the last trigger sent per fault are kept in
//! `flap-AGENT.json` under `agent.state_dir`, written (through a temporary
//! file renamed over it) only at the end of a tick that changed them. A
//! clean check has no fault record, so the results could not ride on the
//! failure counter in the database. A missing or damaged file is an empty
//! state (logged).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Agent;
use crate::checks::CheckDef;
use crate::config::Config;
use crate::fault::{self, Action, RawFault};
use crate::flap::{self, Flap, Step};
use crate::history::Event;
use crate::renotify::{self, Sent};
use crate::severity::Severity;

/// The file's layout version; another one is read as an empty state.
const VERSION: u32 = 1;

/// What the file keeps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    version: u32,
    /// Each check's flap state.
    #[serde(default)]
    checks: BTreeMap<String, Flap>,
    /// The alerts each flapping check holds, and whether the flapping
    /// message was delivered for each.
    #[serde(default)]
    held: BTreeMap<String, BTreeMap<String, bool>>,
    /// The last trigger sent per fault while its alert is open.
    #[serde(default)]
    sent: BTreeMap<String, Sent>,
}

/// The agent's flap and churn memory.
#[derive(Debug, Default)]
pub(super) struct Noise {
    /// `None`: nothing is kept between runs (the `memory` database).
    file: Option<PathBuf>,
    state: State,
    /// The state as last read or written, to write only changes.
    written: State,
    /// The severity each fault's check reported this run, before escalation.
    reported: HashMap<String, Severity>,
}

/// The file of `config`'s agent, if it keeps one.
fn file_of(config: &Config) -> Option<PathBuf> {
    if config.agent.state_dir.as_os_str().is_empty() {
        return None;
    }
    let agent: String = config
        .agent
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(config.agent.state_dir.join(format!("flap-{agent}.json")))
}

/// The state kept in `path`: empty when there is none yet.
fn load(path: &Path) -> Result<State, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
    };
    match serde_json::from_str::<State>(&text) {
        Ok(state) if state.version == VERSION => Ok(state),
        Ok(state) => Err(format!(
            "`{}` has layout version {} (this cimaa writes {VERSION}); starting afresh",
            path.display(),
            state.version
        )),
        Err(error) => Err(format!(
            "`{}` is not a flap state file ({error}); starting afresh",
            path.display()
        )),
    }
}

/// Replaces the state kept in `path` (creating its folder), through a
/// temporary file renamed over it.
fn store(path: &Path, state: &State) -> Result<(), String> {
    super::observations::store_json(path, state)
}

impl Noise {
    /// The memory of `config`'s agent, read from its file.
    pub(super) fn load(config: &Config) -> Noise {
        let file = file_of(config);
        let mut state = match file.as_deref().map(load) {
            None => State::default(),
            Some(Ok(state)) => state,
            Some(Err(why)) => {
                warn!(error = %why, "cannot load the flap state");
                State::default()
            }
        };
        state.version = VERSION;
        Noise {
            file,
            written: state.clone(),
            state,
            reported: HashMap::new(),
        }
    }

    /// Whether a flapping check holds its alerts (`fault::Tick::flapping`).
    pub(super) fn holds(&self, check: &str) -> bool {
        self.state.held.contains_key(check)
    }

    /// Notes the severities a check reported in this run, before escalation.
    pub(super) fn report(&mut self, check: &str, faults: &[RawFault]) {
        for raw in faults {
            let name = fault::full_name(check, raw.name.as_deref());
            let severity = self.reported.entry(name).or_insert(raw.severity);
            *severity = (*severity).max(raw.severity);
        }
    }
}

/// Whether fault `name` belongs to check `check`.
fn belongs(name: &str, check: &str) -> bool {
    fault::check_of(name) == check
}

impl Agent<'_> {
    /// Folds a check's run (its records already in the fault set) into its
    /// flap state; starts or ends its flapping alert.
    pub(super) fn flap_ran(&mut self, check: &CheckDef, now: i64) {
        let Some(levels) = check.flap.levels(self.config.agent.flap) else {
            self.noise.state.checks.remove(&check.name);
            self.noise.state.held.remove(&check.name);
            return;
        };
        let records = || {
            self.faults
                .range(check.name.clone()..)
                .take_while(|(name, _)| name.starts_with(&check.name))
                .filter(|(name, _)| belongs(name, &check.name))
                .map(|(_, fault)| fault.severity)
                .collect::<Vec<_>>()
        };
        let severities = records();
        let failing = severities.iter().any(|s| *s >= Severity::ERROR);
        let critical = severities.iter().any(|s| s.is_critical());
        let state = self
            .noise
            .state
            .checks
            .entry(check.name.clone())
            .or_default();
        match state.step(failing, critical, levels) {
            Step::Steady | Step::Holding => {}
            Step::Started(changes) => {
                let message = flap::message(changes);
                warn!(check = %check.name, changes, "check is flapping");
                let mut alerts: BTreeMap<String, bool> = self
                    .opened
                    .iter()
                    .filter(|name| belongs(name, &check.name))
                    .map(|name| (name.clone(), false))
                    .collect();
                if alerts.is_empty() {
                    alerts.insert(check.name.clone(), false);
                }
                self.noise.state.held.insert(check.name.clone(), alerts);
                // The open alerts now say "flapping": the current message
                // is sent again when the check is handed back.
                for (name, fault) in &mut self.faults {
                    if belongs(name, &check.name) {
                        fault.triggered = false;
                    }
                }
                let sent = &mut self.noise.state.sent;
                sent.retain(|name, _| !belongs(name, &check.name));
                let record = self.note(now, &check.name, Event::Flapping);
                record.message = Some(message);
            }
            Step::Released => {
                info!(check = %check.name, "check is no longer flapping");
                // Its delivered flapping alerts are open: the plan resolves
                // them now, or triggers the current message over them.
                for (name, sent) in self
                    .noise
                    .state
                    .held
                    .remove(&check.name)
                    .unwrap_or_default()
                {
                    if sent {
                        self.opened.insert(name);
                    }
                }
            }
        }
    }

    /// Before the plan: every alert this memory knows to be open is in
    /// `opened`, also after a restart (a held alert or a churning one has
    /// no triggered fault record).
    pub(super) fn noise_opened(&mut self) {
        for alerts in self.noise.state.held.values() {
            for (name, sent) in alerts {
                if *sent {
                    self.opened.insert(name.clone());
                }
            }
        }
        for name in self.noise.state.sent.keys() {
            self.opened.insert(name.clone());
        }
    }

    /// After the plan: drops triggers that only churn (`renotify`) and adds
    /// the flapping alerts not delivered yet.
    pub(super) fn noise_actions(&mut self, actions: Vec<Action>, now: i64) -> Vec<Action> {
        let mut kept: Vec<Action> = actions
            .into_iter()
            .filter(|action| {
                let Action::Trigger { name, .. } = action else {
                    return true;
                };
                let renotify = self.renotify_of(name);
                let last = self.noise.state.sent.get(name).copied();
                let reported = self.noise.reported.get(name).copied();
                renotify::due(last, reported, now, renotify)
            })
            .collect();
        for (check, alerts) in &self.noise.state.held {
            let Some(changes) = self
                .noise
                .state
                .checks
                .get(check)
                .and_then(|flap| flap.holding)
            else {
                continue;
            };
            // A failing dependency holds it back as it does the check's
            // own triggers (SPEC §11).
            if !self.failing_dependencies(check).is_empty() {
                continue;
            }
            for (name, sent) in alerts {
                if !*sent && !self.squelches.matches(name) {
                    kept.push(Action::Trigger {
                        name: name.clone(),
                        message: flap::message(changes),
                    });
                }
            }
        }
        kept
    }

    /// Before the tick's faults are stored: marks every fault whose check
    /// flaps now (its flapping alert speaks for it: `holding`) `flapping`,
    /// and every other one not, so that `faults --json` and the web view
    /// show it (SPEC §1, §13). A change is a change of the record.
    pub(super) fn mark_flapping(&mut self, now: i64) {
        let checks = &self.noise.state.checks;
        for (name, fault) in &mut self.faults {
            let flapping = checks
                .get(fault::check_of(name))
                .is_some_and(|flap| flap.holding.is_some());
            if fault.flapping != flapping {
                fault.flapping = flapping;
                fault.updated = now;
            }
        }
    }

    /// Whether `message` is the flapping alert of fault `name`, whose check
    /// flaps now: no message churn, so `renotify` neither holds it back nor
    /// counts it as a send (SPEC §11).
    pub(super) fn is_flapping_alert(&self, name: &str, message: &str) -> bool {
        self.noise
            .state
            .checks
            .get(fault::check_of(name))
            .and_then(|flap| flap.holding)
            .is_some_and(|changes| message == flap::message(changes))
    }

    /// The severity fault `name`'s check reported in this tick's run,
    /// before escalation; `None` when it did not run or is the agent's own.
    pub(super) fn noise_reported(&self, name: &str) -> Option<Severity> {
        self.noise.reported.get(name).copied()
    }

    /// The `renotify` seconds of the alerter a fault's alert goes to first.
    pub(super) fn renotify_of(&self, name: &str) -> i64 {
        let route = self.route_of(name);
        let config = match route.as_deref() {
            None | Some(crate::alerters::DEFAULT) => Some(&self.config.alerter),
            Some(other) => self.config.alerters.get(other),
        };
        config.map_or(0, crate::alerters::AlerterConfig::renotify_secs)
    }

    /// Records a delivery's outcome for flap and churn; true when it was a
    /// flapping alert's trigger, which needs nothing else (its fault record
    /// keeps `triggered: false`, so the current message goes out later).
    pub(super) fn flap_delivered(&mut self, action: &Action, delivered: bool, now: i64) -> bool {
        match action {
            Action::Trigger { name, message } => {
                let check = fault::check_of(name);
                let holding = self
                    .noise
                    .state
                    .checks
                    .get(check)
                    .and_then(|flap| flap.holding);
                if let Some(changes) = holding
                    && *message == flap::message(changes)
                    && let Some(sent) = self
                        .noise
                        .state
                        .held
                        .get_mut(check)
                        .and_then(|alerts| alerts.get_mut(name))
                {
                    if delivered {
                        info!(fault = %name, "flapping alert triggered");
                        *sent = true;
                        self.opened.insert(name.clone());
                    }
                    return true;
                }
                if delivered && let Some(reported) = self.noise.reported.get(name).copied() {
                    self.noise
                        .state
                        .sent
                        .insert(name.clone(), Sent { at: now, reported });
                }
                false
            }
            Action::Resolve { name } => {
                if delivered {
                    self.noise.state.sent.remove(name);
                    // A held alert resolved while its check flaps (squelched,
                    // or its check removed) is no longer open.
                    if let Some(sent) = self
                        .noise
                        .state
                        .held
                        .get_mut(fault::check_of(name))
                        .and_then(|alerts| alerts.get_mut(name))
                    {
                        *sent = false;
                    }
                }
                false
            }
        }
    }

    /// At the end of a tick: forgets vanished checks and the alerts no
    /// longer open, and writes the file if anything changed.
    pub(super) fn save_noise(&mut self, alive: &std::collections::HashSet<String>) {
        self.noise.reported.clear();
        let opened = &self.opened;
        let state = &mut self.noise.state;
        state.checks.retain(|check, _| alive.contains(check));
        // Until the previous state is loaded (SPEC §14), `opened` lacks the
        // alerts left open before this start: what is kept of them stays.
        if !self.unloaded {
            state.held.retain(|check, _| {
                alive.contains(check) || opened.iter().any(|n| belongs(n, check))
            });
            state.sent.retain(|name, _| opened.contains(name));
        }
        if state == &self.noise.written {
            return;
        }
        if let Some(path) = &self.noise.file
            && let Err(why) = store(path, state)
        {
            warn!(error = %why, "cannot write the flap state");
            return;
        }
        self.noise.written = state.clone();
    }
}

/// What `cimaa check` says about a check's flapping, from the agent's
/// state file: one line.
#[must_use]
pub(crate) fn flap_line(config: &Config, check: &CheckDef) -> String {
    let Some(levels) = check.flap.levels(config.agent.flap) else {
        return "flapping: off (flap: false)".into();
    };
    let state = file_of(config)
        .as_deref()
        .map(load)
        .and_then(Result::ok)
        .unwrap_or_default();
    let Some(flap) = state.checks.get(&check.name) else {
        return format!(
            "flapping: no (no runs recorded by the agent yet; starts at {}%)",
            levels.high
        );
    };
    let history = flap.history();
    let percent = flap::percent_state_change(&history);
    let runs = history.len();
    if flap.is_flapping() {
        format!(
            "flapping: yes ({percent:.1}% state change, {runs} of {} runs recorded; stops below {}%)",
            flap::RUNS,
            levels.low
        )
    } else if flap.holding.is_some() {
        format!(
            "flapping: ending ({percent:.1}% state change; its alert waits for a clean or critical run)"
        )
    } else {
        format!(
            "flapping: no ({percent:.1}% state change, {runs} of {} runs recorded; starts at {}%)",
            flap::RUNS,
            levels.high
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_store_and_a_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/flap-web1.json");
        assert_eq!(load(&path).unwrap(), State::default());
        let mut state = State {
            version: VERSION,
            ..State::default()
        };
        state.checks.insert(
            "//web1/app/c".into(),
            Flap {
                results: "F.F.F".into(),
                holding: Some(4),
                ended: false,
            },
        );
        state.held.insert(
            "//web1/app/c".into(),
            BTreeMap::from([("//web1/app/c".to_string(), true)]),
        );
        state.sent.insert(
            "//web1/app/d".into(),
            Sent {
                at: 100,
                reported: Severity::CRITICAL,
            },
        );
        store(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), state);
    }

    #[test]
    fn a_damaged_file_is_named_and_read_as_no_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flap.json");
        std::fs::write(&path, "{not json").unwrap();
        let error = load(&path).unwrap_err();
        assert!(
            error.contains("flap.json` is not a flap state file"),
            "{error}"
        );
    }
}
