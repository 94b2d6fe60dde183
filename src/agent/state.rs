//! The agent's previous state: loaded at start (or, with the database down
//! at start, in the background and reconciled once it answers, SPEC §14),
//! restored into the fault set with the alerts kept at the last clean stop,
//! and the open alerts a clean stop keeps.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::Agent;
use crate::db::{Db, Error as DbError, Fault, OpenAlert};
use crate::fault;
use crate::scheduler;
use crate::severity::Severity;

/// What the previous run left: its faults and the open alerts a clean stop
/// kept.
pub(super) type Stored = (Vec<Fault>, Vec<OpenAlert>);

/// Reads what the previous run of agent `name` left.
pub(super) async fn load_previous(db: Arc<dyn Db>, name: String) -> Result<Stored, DbError> {
    let previous = db.get_faults(&name).await?;
    let kept = db.open_alerts(&name).await?;
    Ok((previous, kept))
}

/// The first heartbeat and the previous state (stored faults, alerts kept
/// at the last clean stop), or empty and "unloaded" when the database does
/// not answer: the agent then runs from an empty state and reconciles once
/// it answers (SPEC §14), rather than exiting and leaving the host
/// unmonitored while the database is down.
pub(super) async fn start_state(
    db: &Arc<dyn Db>,
    name: &str,
    now: i64,
) -> (Vec<Fault>, Vec<OpenAlert>, bool) {
    let stored = match db.heartbeat(name, now).await {
        Ok(()) => load_previous(Arc::clone(db), name.to_owned()).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok((previous, kept)) => (previous, kept, false),
        Err(e) => {
            error!(
                error = %e,
                "cannot reach the database at startup; running the checks and alerts without \
                 the previous state (an alert sent before this start may be sent again) until it answers"
            );
            (Vec::new(), Vec::new(), true)
        }
    }
}

impl Agent<'_> {
    /// Seeds counters, open alerts and the fault set from stored faults.
    pub(super) fn restore(&mut self, previous: Vec<Fault>) {
        let base = self.config.agent.base_interval;
        for fault in previous {
            let check = fault::check_of(&fault.name).to_string();
            let state = self.states.entry(check).or_default();
            state.counter = state.counter.max(fault.attempts);
            state.monitor_runs = state.monitor_runs.max(fault.monitor_runs);
            if fault.severity >= Severity::ERROR {
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "epoch seconds are far below 2^52"
                )]
                let tick = scheduler::splayed_tick_at(fault.updated as f64, base, self.splay);
                state.last_failure = Some(state.last_failure.map_or(tick, |t| t.max(tick)));
            }
            if fault.triggered {
                self.opened.insert(fault.name.clone());
            }
            self.fleet
                .restored(&self.config.agent.name, &fault.name, fault.triggered);
            self.faults.insert(fault.name.clone(), fault);
        }
    }

    /// While the previous state is not loaded (SPEC §14): takes the answer of
    /// the attempt in flight if it came, and otherwise starts the next one.
    /// Never waits: the tick's checks do not wait for a database that is down.
    pub(super) async fn catch_up_previous(&mut self) {
        if !self.unloaded {
            return;
        }
        if let Some(attempt) = self.loading.take_if(|attempt| attempt.is_finished()) {
            match attempt.await {
                Ok(Ok((previous, kept))) => {
                    self.reconcile(previous, kept);
                    return;
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot load the previous state yet; running without it");
                }
                Err(e) => error!(error = %e, "loading the previous state failed"),
            }
        }
        if self.loading.is_none() {
            let db = Arc::clone(&self.db);
            let name = self.config.agent.name.clone();
            self.loading = Some(tokio::spawn(load_previous(db, name)));
        }
    }

    /// Folds the previous run's state, loaded late, into what this run
    /// found meanwhile (SPEC §14), then lets the tick write the whole set.
    ///
    /// This run's findings win, except for what an alert sent before the
    /// start tells: an earlier fault still critical with the same message
    /// counts as triggered (not sent again); one whose alert is open and
    /// whose check this run finds less than critical for now keeps its
    /// earlier record until the check runs again, so that its escalation
    /// back to the same message sends nothing either; one whose check has
    /// not run yet is restored as at a normal start. Every earlier open
    /// alert is remembered, so that it is resolved once its check runs
    /// clean. The agent's own `AGENT#...` faults are this run's.
    pub(super) fn reconcile(&mut self, previous: Vec<Fault>, kept: Vec<OpenAlert>) {
        let own = format!("{}#", self.config.agent.name);
        let mut earlier: Vec<(Fault, bool)> = Vec::new();
        for fault in previous {
            let open = fault.triggered;
            earlier.push((fault, open));
        }
        let clear_kept = !kept.is_empty();
        for alert in kept {
            if earlier.iter().any(|(f, _)| f.name == alert.fault.name) {
                continue;
            }
            let check = fault::check_of(&alert.fault.name).to_string();
            self.routes.entry(check).or_insert(alert.alerter);
            earlier.push((alert.fault, true));
        }
        let mut restored = Vec::new();
        let mut open_alerts = 0usize;
        for (fault, open) in earlier {
            if fault.name.starts_with(&own) {
                continue;
            }
            if open {
                self.opened.insert(fault.name.clone());
                open_alerts += 1;
            }
            let check = fault::check_of(&fault.name).to_string();
            let Some(current) = self.faults.get_mut(&fault.name) else {
                if !self.states.contains_key(&check) {
                    // Its check has not run in this run yet.
                    restored.push(fault);
                }
                continue;
            };
            let state = self.states.entry(check).or_default();
            state.counter = state.counter.max(fault.attempts);
            state.monitor_runs = state.monitor_runs.max(fault.monitor_runs);
            if current.severity.is_critical() {
                current.since = current.since.min(fault.since);
                if open && fault.message == current.message {
                    current.triggered = true;
                    self.fleet
                        .restored(&self.config.agent.name, &current.name, true);
                }
            } else if open && fault.severity.is_critical() {
                *current = fault;
            } else {
                current.since = current.since.min(fault.since);
            }
        }
        self.restore(restored);
        self.unloaded = false;
        if clear_kept {
            self.writer.clear_kept();
        }
        info!(
            open_alerts,
            faults = self.faults.len(),
            "the database answers: loaded the previous state; writing the whole state"
        );
    }

    /// Restores the open alerts the last clean stop kept (SPEC §14) as the
    /// stored faults are restored: the plan then leaves a fault that is
    /// still critical with the same message alone, resolves one that cleared
    /// once its check ran again, and one whose check vanished at once. Each
    /// keeps the route it was triggered through until it is resolved. A
    /// stored fault of the same name is newer and wins.
    pub(super) fn restore_kept(&mut self, kept: Vec<OpenAlert>) {
        let mut faults = Vec::new();
        for alert in kept {
            if self.faults.contains_key(&alert.fault.name) {
                continue;
            }
            let check = fault::check_of(&alert.fault.name).to_string();
            self.routes.insert(check, alert.alerter);
            // Open at the receiver even if a newer message's trigger was
            // still pending at the stop (`triggered` false).
            self.opened.insert(alert.fault.name.clone());
            faults.push(alert.fault);
        }
        if !faults.is_empty() {
            info!(
                open_alerts = faults.len(),
                "restoring the open alerts kept at the last stop"
            );
        }
        self.restore(faults);
    }

    /// The alerts that may be open at their receivers (triggered, or whose
    /// resolve is still to be delivered), with their routes: what a clean
    /// stop keeps (SPEC §14). An alert whose fault left the set while its
    /// resolve was under way is kept as a cleared record, as a failed
    /// resolve is (see `alerts::keep_unresolved`).
    pub(super) fn open_alerts(&self, now: i64) -> Vec<OpenAlert> {
        let own = format!("{}#", self.config.agent.name);
        self.opened
            .union(&self.retry_resolves)
            .filter(|name| !name.starts_with(&own))
            .map(|name| OpenAlert {
                fault: self
                    .faults
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| Fault::cleared_unresolved(name, now)),
                alerter: self.routes.get(fault::check_of(name)).cloned().flatten(),
            })
            .collect()
    }
}
