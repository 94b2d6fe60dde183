//! Alerting: this tick's alert plan delivered, and `AGENT#alerts`.
//!
//! Owns the squelch set read each tick, the delivery of the plan that
//! `fault::plan` makes (triggers and resolves, concurrently, all within one
//! `alert_timeout`, each along its check's alerter chain), what a delivery's
//! outcome does to the fault set (triggered flags, open alerts, resolves to
//! retry), the CRITICAL `AGENT#alerts` fault that counts failures and the
//! WARNING `AGENT#squelches` for stored squelches that are ignored. How an
//! alert reaches a receiver is the alerters' business; which agent of the
//! fleet delivers a fleet fault's alert is `fleet`'s (SPEC §10): the plan
//! goes through its claims first, and the outcomes of what it claimed are
//! recorded there.

use std::collections::HashSet;

use tracing::{error, info, warn};

use super::Agent;
use super::history::Attempts;
use super::runner::Tagged;
use crate::alerters::Event;
use crate::db::Fault;
use crate::fault::{self, Action};
use crate::severity::Severity;
use crate::squelch::Matcher;

/// Why one alert was not delivered.
struct DeliveryFailure {
    /// Every alerter refused the event as invalid: resending cannot help.
    permanent: bool,
    /// Each alerter's error, `alerter: error; ...`.
    text: String,
}

impl Agent<'_> {
    /// Reads the squelches once per tick; keeps the last set when that fails.
    /// Whether the read succeeded also tells the fleet part whether this
    /// agent was cut off from the database (`FleetState::database_answered`).
    ///
    /// An unchanged list is not compiled again. A regex that is invalid or
    /// too large (SPEC §17) is ignored: logged once when it appears, and
    /// reported as the WARNING `AGENT#squelches` while it is stored.
    pub(super) async fn refresh_squelches(&mut self, now: i64) {
        let read = self.squelches_in_force(now).await;
        // The heartbeat was last written up to a tick before the first
        // failed read: an outage a tick shorter may have made it stale.
        #[expect(clippy::cast_possible_truncation, reason = "seconds, far below 2^53")]
        let base = self.config.agent.base_interval.ceil() as i64;
        let stale_after = (self.holder_timeout() - base).max(0);
        self.fleet.database_answered(read.is_ok(), now, stale_after);
        match read {
            Ok(regexes) => {
                if !self.squelches.is_built_from(&regexes) {
                    let matcher = Matcher::new(&regexes);
                    let known = self.squelches.rejected();
                    for (regex, why) in matcher.rejected() {
                        if !known.iter().any(|(seen, _)| seen == regex) {
                            // `why` quotes the start of the regex, never all of it.
                            warn!(error = %why, "ignoring a stored squelch");
                        }
                    }
                    self.squelches = matcher;
                }
            }
            Err(e) => {
                warn!(error = %e, kept = self.squelches.len(), "cannot read squelches; using the last known set");
            }
        }
        self.record_rejected_squelches(now);
    }

    /// Records the WARNING `AGENT#squelches` while a stored squelch is
    /// ignored; like every `AGENT#...` fault it is stored, never alerted by
    /// this agent.
    fn record_rejected_squelches(&mut self, now: i64) {
        let name = format!("{}#squelches", self.config.agent.name);
        let rejected = self.squelches.rejected();
        let Some((_, first)) = rejected.first() else {
            self.faults.remove(&name);
            return;
        };
        let message = match rejected.len() {
            1 => format!("Ignoring a stored squelch: {first}"),
            n => format!("Ignoring {n} stored squelches; the first: {first}"),
        };
        self.set_agent_fault(name, Severity::WARNING, message, now);
    }

    /// Appends a history record of this agent's (SPEC §12) at `now`: `name`
    /// is a fault's full name. Written with the tick's state.
    pub(super) fn note(
        &mut self,
        now: i64,
        name: &str,
        event: crate::history::Event,
    ) -> &mut crate::history::Record {
        let record = crate::history::Record::new(now, &self.config.agent.name, name, event);
        self.history.push(record);
        let last = self.history.len() - 1;
        &mut self.history[last]
    }

    /// Plans and delivers this tick's alerts; records `AGENT#alerts`.
    pub(super) async fn alert(&mut self, ran: &HashSet<String>, alive: &HashSet<String>, now: i64) {
        // Until the previous state is loaded (SPEC §14) this agent does not
        // know what it left open: nothing of it is resolved meanwhile.
        if !self.unloaded {
            self.noise_opened();
        }
        self.record_squelched(now);
        let actions = {
            let squelches = &self.squelches;
            let is_squelched = |name: &str| squelches.matches(name);
            let noise = &self.noise;
            let tick = fault::Tick {
                agent: &self.config.agent.name,
                ran,
                alive,
                opened: &self.opened,
                retry_resolves: &self.retry_resolves,
                squelched: &is_squelched,
                flapping: &|check: &str| noise.holds(check),
            };
            fault::plan(&mut self.faults, &tick)
        };
        // SPEC §11: churning triggers wait for `renotify`; flapping alerts.
        let actions = self.noise_actions(actions, now);
        // SPEC §10: a fleet fault's notification is delivered by the one
        // agent that claims it in the shared notice (`fleet.rs`); then more
        // triggers than `alerting.storm_threshold` through one alerter
        // become one `AGENT#storm` (`storm.rs`).
        // SPEC §11: triggers to an alerter in quiet hours wait (`quiet.rs`),
        // before the fleet's claims; so does a storm's own trigger.
        let actions = self.hold_quiet(actions, now);
        let actions = self.claim_fleet(actions, now).await;
        let actions = self.fold_storms(actions, now);
        let actions = self.hold_quiet_storms(actions, now);
        let total = actions.len();
        let mut failures = 0usize;
        for (action, outcome, attempts) in self.deliver(actions).await {
            self.record_delivery(&action, &attempts, now);
            let refused = matches!(&outcome, Err(failure) if failure.permanent);
            // A fleet fault's delivery is recorded in its notice whatever
            // else it is, its flapping alert included (else the claim
            // runs out and another holder delivers it again).
            let fleet = self
                .fleet_delivered(&action, outcome.is_ok(), refused, now)
                .await;
            let flapping = self.flap_delivered(&action, outcome.is_ok(), now);
            if flapping && fleet {
                // The flapping alert leaves the fault untriggered, so its
                // current message goes out when the check is handed back.
                self.set_triggered(super::fleet::name_of(&action), false);
            }
            if flapping || fleet || self.storm_delivered(&action, outcome.is_ok(), now) {
                if let Err(failure) = &outcome {
                    failures += 1;
                    error!(action = ?action, error = %failure.text, "cannot send alert");
                }
                continue;
            }
            match (action, outcome) {
                (Action::Trigger { name, .. }, Ok(())) => {
                    info!(fault = %name, "alert triggered");
                    self.set_triggered(&name, true);
                    self.opened.insert(name);
                }
                (Action::Trigger { name, .. }, Err(failure)) => {
                    failures += 1;
                    error!(fault = %name, error = %failure.text, "cannot send alert");
                    // A refused event is not resent until its message changes.
                    self.set_triggered(&name, failure.permanent);
                }
                (Action::Resolve { name }, Ok(())) => {
                    info!(fault = %name, "alert resolved");
                    self.set_triggered(&name, false);
                    self.opened.remove(&name);
                    self.retry_resolves.remove(&name);
                }
                (Action::Resolve { name }, Err(failure)) => {
                    failures += 1;
                    error!(fault = %name, error = %failure.text, "cannot resolve alert");
                    self.keep_unresolved(&name, now);
                    self.retry_resolves.insert(name);
                }
            }
        }
        let alerts = format!("{}#alerts", self.config.agent.name);
        if failures == 0 {
            self.faults.remove(&alerts);
        } else {
            let message = format!("Failed to send alert information ({failures}/{total})");
            self.set_agent_fault(alerts, Severity::CRITICAL, message, now);
        }
    }

    /// The alerter route of a fault's alert: its check's `alerter:`; for a
    /// storm fault (`AGENT#storm-NAME`), the alerter it stands for.
    pub(super) fn route_of(&self, name: &str) -> Option<String> {
        if let Some(route) = crate::storm::route_of(&self.config.agent.name, name) {
            return route.0;
        }
        self.routes.get(fault::check_of(name)).cloned().flatten()
    }

    fn set_triggered(&mut self, name: &str, triggered: bool) {
        if let Some(fault) = self.faults.get_mut(name) {
            fault.triggered = triggered;
        }
    }

    /// Keeps a record of an alert whose resolve has not been delivered, so a
    /// restarted agent (or the next `--once` run) still resolves it.
    fn keep_unresolved(&mut self, name: &str, now: i64) {
        if let Some(fault) = self.faults.get_mut(name) {
            if !fault.severity.is_critical() {
                fault.triggered = true;
            }
            return;
        }
        self.faults
            .insert(name.to_string(), Fault::cleared_unresolved(name, now));
    }

    /// Delivers alerts concurrently, all bounded by one `alert_timeout`;
    /// each goes along its check's alerter chain (fallbacks).
    async fn deliver(
        &self,
        actions: Vec<Action>,
    ) -> Vec<(Action, Result<(), DeliveryFailure>, Attempts)> {
        let deadline = tokio::time::Instant::now() + self.config.agent.alert_timeout;
        let mut tasks = Tagged::new();
        for action in actions {
            let alerters = self.alerters.clone();
            let name = match &action {
                Action::Trigger { name, .. } | Action::Resolve { name } => name,
            };
            let route = self.route_of(name);
            let task_action = action.clone();
            tasks.spawn(action, async move {
                let event = match &task_action {
                    Action::Trigger { name, message } => Event::Trigger { name, message },
                    Action::Resolve { name } => Event::Resolve { name },
                };
                let delivery = alerters.deliver(route.as_deref(), event, deadline).await;
                for (alerter, error) in &delivery.failures {
                    warn!(alerter = %alerter, error = %crate::error::chain(error), "alerter failed");
                }
                // For the history: each alerter tried, in order (SPEC §12).
                let mut attempts: Attempts = delivery
                    .failures
                    .iter()
                    .map(|(alerter, e)| (alerter.clone(), Some(crate::error::chain(e))))
                    .collect();
                attempts.extend(delivery.delivered_by.clone().map(|alerter| (alerter, None)));
                if delivery.delivered_by.is_some() {
                    return (Ok(()), attempts);
                }
                (Err(DeliveryFailure {
                    permanent: !delivery.failures.is_empty()
                        && delivery.failures.iter().all(|(_, e)| e.is_permanent()),
                    text: delivery
                        .failures
                        .iter()
                        .map(|(alerter, e)| format!("{alerter}: {}", crate::error::chain(e)))
                        .collect::<Vec<_>>()
                        .join("; "),
                }), attempts)
            });
        }
        let mut outcomes = Vec::new();
        while let Some((action, outcome)) = tasks.next().await {
            let (outcome, attempts) = outcome.unwrap_or_else(|text| {
                (
                    Err(DeliveryFailure {
                        permanent: false,
                        text,
                    }),
                    Vec::new(),
                )
            });
            outcomes.push((action, outcome, attempts));
        }
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        outcomes
    }
}
