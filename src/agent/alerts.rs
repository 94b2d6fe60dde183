//! Alerting: this tick's alert plan delivered, and `AGENT#alerts`.
//!
//! Owns the squelch set read each tick, the delivery of the plan that
//! `fault::plan` makes (triggers and resolves, concurrently, all within one
//! `alert_timeout`, each along its check's alerter chain), what a delivery's
//! outcome does to the fault set (triggered flags, open alerts, resolves to
//! retry) and the CRITICAL `AGENT#alerts` fault that counts failures. How an
//! alert reaches a receiver is the alerters' business.

use std::collections::HashSet;

use tracing::{error, info, warn};

use super::Agent;
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
    pub(super) async fn refresh_squelches(&mut self, now: i64) {
        match self.db.get_squelches(now).await {
            Ok(regexes) => {
                let (matcher, invalid) = Matcher::new(&regexes);
                for regex in invalid {
                    warn!(regex = %regex, "ignoring a stored squelch that is not a valid regex");
                }
                self.squelches = matcher;
            }
            Err(e) => {
                warn!(error = %e, kept = self.squelches.len(), "cannot read squelches; using the last known set");
            }
        }
    }

    /// Plans and delivers this tick's alerts; records `AGENT#alerts`.
    pub(super) async fn alert(&mut self, ran: &HashSet<String>, alive: &HashSet<String>, now: i64) {
        let actions = {
            let squelches = &self.squelches;
            let is_squelched = |name: &str| squelches.matches(name);
            let tick = fault::Tick {
                agent: &self.config.agent.name,
                ran,
                alive,
                opened: &self.opened,
                retry_resolves: &self.retry_resolves,
                squelched: &is_squelched,
            };
            fault::plan(&mut self.faults, &tick)
        };
        let total = actions.len();
        let mut failures = 0usize;
        for (action, outcome) in self.deliver(actions).await {
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
            let since = self.faults.get(&alerts).map_or(now, |f| f.since);
            self.faults.insert(
                alerts.clone(),
                Fault {
                    name: alerts,
                    severity: Severity::CRITICAL,
                    message,
                    since,
                    updated: now,
                    triggered: false,
                    escalates: false,
                    attempts: 0,
                },
            );
        }
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
        self.faults.insert(
            name.to_string(),
            Fault {
                name: name.to_string(),
                severity: Severity::INFO,
                message: "cleared; resolve not delivered yet".into(),
                since: now,
                updated: now,
                triggered: true,
                escalates: false,
                attempts: 0,
            },
        );
    }

    /// Delivers alerts concurrently, all bounded by one `alert_timeout`;
    /// each goes along its check's alerter chain (fallbacks).
    async fn deliver(&self, actions: Vec<Action>) -> Vec<(Action, Result<(), DeliveryFailure>)> {
        let deadline = tokio::time::Instant::now() + self.config.agent.alert_timeout;
        let mut tasks = Tagged::new();
        for action in actions {
            let alerters = self.alerters.clone();
            let name = match &action {
                Action::Trigger { name, .. } | Action::Resolve { name } => name,
            };
            let route = self.routes.get(fault::check_of(name)).cloned().flatten();
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
                if delivery.delivered_by.is_some() {
                    return Ok(());
                }
                Err(DeliveryFailure {
                    permanent: !delivery.failures.is_empty()
                        && delivery.failures.iter().all(|(_, e)| e.is_permanent()),
                    text: delivery
                        .failures
                        .iter()
                        .map(|(alerter, e)| format!("{alerter}: {}", crate::error::chain(e)))
                        .collect::<Vec<_>>()
                        .join("; "),
                })
            });
        }
        let mut outcomes = Vec::new();
        while let Some((action, outcome)) = tasks.next().await {
            let outcome = outcome.unwrap_or_else(|text| {
                Err(DeliveryFailure {
                    permanent: false,
                    text,
                })
            });
            outcomes.push((action, outcome));
        }
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        outcomes
    }
}
