//! Alert storms (SPEC §10): the agent's side of `storm`'s rules.
//!
//! Issue #11: placeholder hooks, filled in by the storm helper.

use super::Agent;
use crate::fault::Action;

impl Agent<'_> {
    /// Folds more than `alerting.storm_threshold` triggers through one
    /// alerter into one `AGENT#storm` trigger.
    pub(super) fn fold_storms(&mut self, actions: Vec<Action>, _now: i64) -> Vec<Action> {
        actions
    }

    /// After a delivery: true when `action` was a storm notification, whose
    /// outcome is recorded here.
    pub(super) fn storm_delivered(
        &mut self,
        _action: &Action,
        _delivered: bool,
        _now: i64,
    ) -> bool {
        false
    }
}
