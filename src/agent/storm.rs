//! Alert storms (SPEC §10): the agent's side of `storm`'s rules.
//!
//! Each tick, after the fleet has taken its faults' notifications
//! (`fleet.rs`), `fold_storms` groups the planned triggers of new critical
//! faults by alerter route, hands each route's facts to `storm::decide` and
//! applies the decision: members are stored `storm: true` (never triggered
//! on their own), the storm fault `AGENT#storm` (`AGENT#storm-NAME` for the
//! named alerter NAME) is stored as a CRITICAL agent fault whose `updated`
//! is its last send, and its trigger or resolve joins the tick's alerts.
//! Stored like any fault, a storm outlives a restart: the restored storm
//! fault is an open alert, and its members, restored or found again, are in
//! it.
//!
//! Never folded: fleet faults (checks with absolute names that do not say
//! `notify: per_agent`: the fleet sends one notification per incident
//! already, and `claim_fleet` decided them before this runs),
//! a changed message of an alert already open at the receiver (not a new
//! fault; it is sent as before), and the agent's other own faults.

use std::collections::{BTreeMap, HashMap};

use tracing::{info, warn};

use super::Agent;
use crate::db::Fault;
use crate::fault::Action;
use crate::severity::Severity;
use crate::storm::{self, Decision, Route, Rules, Send, Storm};

impl Agent<'_> {
    /// Folds more than `alerting.storm_threshold` triggers through one
    /// alerter into one `AGENT#storm` trigger; keeps open storms joined,
    /// re-sent and resolved (`storm::decide`).
    pub(super) fn fold_storms(&mut self, actions: Vec<Action>, now: i64) -> Vec<Action> {
        let agent = self.config.agent.name.clone();
        let own = format!("{agent}#");
        let rules = Rules {
            threshold: self.config.alerting.storm_threshold,
            base_interval: self.config.agent.base_interval,
        };
        let mut routes: BTreeMap<Option<String>, Route> = BTreeMap::new();
        let mut messages: HashMap<String, String> = HashMap::new();
        let mut out = Vec::with_capacity(actions.len());
        for action in actions {
            match action {
                // The storm's own trigger is decided below, from its facts.
                Action::Trigger { name, .. } if storm::route_of(&agent, &name).is_some() => {}
                Action::Trigger { name, message }
                    if !self.is_fleet(&name)
                        && !name.starts_with(&own)
                        && !self.opened.contains(&name) =>
                {
                    let route = self.route_of(&name);
                    routes
                        .entry(route)
                        .or_default()
                        .triggers
                        .insert(name.clone());
                    messages.insert(name, message);
                }
                other => out.push(other),
            }
        }
        for fault in self.faults.values() {
            if !fault.severity.is_critical() {
                continue;
            }
            if let Some(route) = storm::route_of(&agent, &fault.name) {
                routes.entry(route.0).or_default().storm = Some(Storm {
                    since: fault.since,
                    message: fault.message.clone(),
                    updated: fault.updated,
                    triggered: fault.triggered,
                });
            } else if fault.storm {
                let route = self.route_of(&fault.name);
                routes
                    .entry(route)
                    .or_default()
                    .members
                    .insert(fault.name.clone());
            }
        }
        for (route, mut facts) in routes {
            let name = storm::fault_name(&agent, route.as_deref());
            facts.sent = self.opened.contains(&name);
            facts.muted = self.squelches.matches(&name);
            let decision = storm::decide(&facts, rules, now);
            self.apply_storm(&name, facts.storm.is_some(), decision, &messages, &mut out);
        }
        out
    }

    /// Applies one route's decision to the fault set and this tick's alerts.
    fn apply_storm(
        &mut self,
        name: &str,
        was_open: bool,
        decision: Decision,
        messages: &HashMap<String, String>,
        out: &mut Vec<Action>,
    ) {
        for member in &decision.joined {
            if let Some(fault) = self.faults.get_mut(member) {
                fault.storm = true;
                fault.triggered = false;
            }
        }
        for single in decision.individual {
            let message = messages.get(&single).cloned().unwrap_or_default();
            out.push(Action::Trigger {
                name: single,
                message,
            });
        }
        for member in decision.released {
            if let Some(fault) = self.faults.get_mut(&member) {
                fault.storm = false;
                if !self.squelches.matches(&member) {
                    out.push(Action::Trigger {
                        name: member,
                        message: fault.message.clone(),
                    });
                }
            }
        }
        match decision.storm {
            Some(storm) => {
                if !was_open {
                    warn!(
                        fault = %name,
                        faults = decision.joined.len(),
                        "alert storm: folding this tick's new critical faults into one alert"
                    );
                }
                // Held by quiet hours until its trigger is delivered.
                let held = self.faults.get(name).is_some_and(|fault| fault.held);
                self.faults.insert(
                    name.to_owned(),
                    Fault {
                        name: name.to_owned(),
                        severity: Severity::CRITICAL,
                        message: storm.message,
                        since: storm.since,
                        updated: storm.updated,
                        triggered: storm.triggered,
                        escalates: false,
                        attempts: 0,
                        monitor_runs: 0,
                        storm: false,
                        suppressed_by: None,
                        held,
                        flapping: false,
                    },
                );
            }
            None if was_open => {
                info!(fault = %name, "alert storm over: none of its faults is critical any more");
                self.faults.remove(name);
            }
            None => {}
        }
        match decision.send {
            Some(Send::Trigger(message)) => {
                // A new storm supersedes the retried resolve of an old one.
                out.retain(|a| !matches!(a, Action::Resolve { name: n } if n == name));
                out.push(Action::Trigger {
                    name: name.to_owned(),
                    message,
                });
            }
            Some(Send::Resolve) => {
                let resolve = Action::Resolve {
                    name: name.to_owned(),
                };
                if !out.contains(&resolve) {
                    out.push(resolve);
                }
            }
            None => {}
        }
    }

    /// After a delivery: true when `action` was a storm trigger that was
    /// delivered, recorded here. A failed storm trigger and a storm's
    /// resolve go the ordinary way (`alert`): a refused trigger waits for a
    /// new message, a failed one is sent again next tick, a failed resolve
    /// is kept and retried.
    pub(super) fn storm_delivered(&mut self, action: &Action, delivered: bool, _now: i64) -> bool {
        let Action::Trigger { name, message } = action else {
            return false;
        };
        if !delivered || storm::route_of(&self.config.agent.name, name).is_none() {
            return false;
        }
        info!(fault = %name, message = %message, "alert storm notified");
        if let Some(fault) = self.faults.get_mut(name) {
            fault.triggered = true;
            fault.held = false;
        }
        self.opened.insert(name.clone());
        true
    }
}
