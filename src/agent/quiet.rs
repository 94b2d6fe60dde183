//! Quiet hours (SPEC §11): the agent's side of `quiet`.
//!
//! An alerter with `quiet_hours` delivers nothing during its windows. Each
//! tick, `hold_quiet` takes the plan's triggers of faults whose route starts
//! at such an alerter out of the tick's alerts: the fault is stored
//! `held: true` (untriggered), and a `held` history record is written when
//! it starts waiting. Since a held fault stays untriggered, the plan asks
//! for its trigger again every tick; the first tick after the window's end
//! lets it through with the tick's other triggers, so more of them than
//! `alerting.storm_threshold` become one storm (`storm.rs`). A held fault
//! that clears was never sent: the plan has no resolve for it. Resolves of
//! alerts sent before the window are sent.
//!
//! The hold comes before the fleet's claims (`fleet.rs`): a held trigger of
//! a fleet fault is not claimed until it is released, so a quiet agent
//! never takes the notification from a fleet whose other agents may page;
//! once released it claims as usual and sends nothing when another agent
//! delivered the incident meanwhile. `hold_quiet_storms` holds, after the
//! storms are folded, a storm's own trigger (its alerter is quiet too).
//!
//! Quiet hours belong to the alerter a check routes to; a `fallback` is
//! used only when that alerter fails, never because it is quiet, and then
//! delivers at once: its own quiet hours hold only the alerts of checks
//! routed to it first.

use tracing::info;

use super::Agent;
use crate::alerters::DEFAULT;
use crate::fault::Action;
use crate::history::Event;
use crate::quiet::QuietHours;

impl Agent<'_> {
    /// The quiet hours of the alerter a route starts at (`None`: the
    /// default alerter; an unknown name goes to the default, as delivery
    /// does).
    fn quiet_hours_of(&self, route: Option<&str>) -> Option<&QuietHours> {
        let config = match route {
            Some(name) if name != DEFAULT => self
                .config
                .alerters
                .get(name)
                .unwrap_or(&self.config.alerter),
            _ => &self.config.alerter,
        };
        config.quiet_hours()
    }

    /// The quiet hours of the alerter `name`'s alert goes to, if any.
    fn quiet_hours_for(&self, name: &str) -> Option<&QuietHours> {
        let route = self.route_of(name);
        self.quiet_hours_of(route.as_deref())
    }

    /// Whether the alerter of `name`'s alert is quiet at `now`.
    fn is_quiet_for(&self, name: &str, now: i64) -> bool {
        self.quiet_hours_for(name).is_some_and(|q| q.is_quiet(now))
    }

    /// Holds this tick's planned triggers to alerters in quiet hours;
    /// releases held faults whose alerter delivers again (their trigger is
    /// in this tick's plan) or that no longer wait (cleared, squelched).
    /// Storm faults are left to `hold_quiet_storms`.
    pub(super) fn hold_quiet(&mut self, actions: Vec<Action>, now: i64) -> Vec<Action> {
        let agent = self.config.agent.name.clone();
        let waiting: Vec<String> = self
            .faults
            .values()
            .filter(|f| f.held && crate::storm::route_of(&agent, &f.name).is_none())
            .map(|f| f.name.clone())
            .collect();
        for name in waiting {
            let quiet = self.is_quiet_for(&name, now);
            let squelched = self.squelches.matches(&name);
            if let Some(fault) = self.faults.get_mut(&name)
                && (!quiet || squelched || !fault.severity.is_critical())
            {
                fault.held = false;
                if quiet {
                    info!(fault = %name, "held alert no longer waits: cleared or squelched");
                } else {
                    info!(fault = %name, "quiet hours over: the held alert is released");
                }
            }
        }
        let mut out = Vec::with_capacity(actions.len());
        for action in actions {
            match action {
                Action::Trigger { name, .. }
                    if crate::storm::route_of(&agent, &name).is_none() && self.hold(&name, now) => {
                }
                other => out.push(other),
            }
        }
        out
    }

    /// Holds a storm fault's trigger (`fold_storms` decided it) while its
    /// alerter is quiet; it stays untriggered, so the storm sends it again
    /// once the alerter delivers.
    pub(super) fn hold_quiet_storms(&mut self, actions: Vec<Action>, now: i64) -> Vec<Action> {
        let agent = self.config.agent.name.clone();
        let mut out = Vec::with_capacity(actions.len());
        for action in actions {
            match &action {
                Action::Trigger { name, .. }
                    if crate::storm::route_of(&agent, name).is_some()
                        && self.is_quiet_for(name, now) =>
                {
                    if let Some(fault) = self.faults.get_mut(name) {
                        fault.triggered = false;
                        if !fault.held {
                            fault.held = true;
                            let (severity, message) = (fault.severity, fault.message.clone());
                            info!(fault = %name, "storm alert held: its alerter is in quiet hours");
                            let record = self.note(now, name, Event::Held);
                            record.severity = Some(severity);
                            record.message = Some(message);
                        }
                    }
                }
                _ => out.push(action),
            }
        }
        out
    }

    /// Holds the trigger of `name` if its alerter is quiet at `now`: stores
    /// the fault `held` and, when it starts waiting, says so in the log
    /// and the history. False when the alerter delivers now.
    fn hold(&mut self, name: &str, now: i64) -> bool {
        let Some(quiet) = self.quiet_hours_for(name) else {
            return false;
        };
        let Some(until) = quiet.quiet_until(now) else {
            return false;
        };
        let zone = quiet.zone_name().to_owned();
        let Some(fault) = self.faults.get_mut(name) else {
            return true;
        };
        fault.triggered = false;
        if fault.held {
            return true;
        }
        fault.held = true;
        let (severity, message) = (fault.severity, fault.message.clone());
        info!(fault = %name, until, zone = %zone, "alert held: its alerter is in quiet hours");
        let record = self.note(now, name, Event::Held);
        record.severity = Some(severity);
        record.message = Some(message);
        true
    }
}
