//! One notification per incident, fleet-wide (SPEC §10): the I/O around
//! `notice`'s transitions.
//!
//! Issue #11: placeholder hooks, filled in by the fleet helper.

use super::Agent;
use crate::fault::Action;

impl Agent<'_> {
    /// Takes this tick's planned actions; returns those this agent delivers.
    /// Fleet faults' triggers and resolves go through their notices: only
    /// a won claim is delivered here.
    pub(super) async fn claim_fleet(&mut self, actions: Vec<Action>, _now: i64) -> Vec<Action> {
        actions
    }

    /// After a delivery: true when `action` was a fleet notification, whose
    /// outcome is recorded here (in its notice and this agent's state).
    pub(super) async fn fleet_delivered(
        &mut self,
        _action: &Action,
        _delivered: bool,
        _now: i64,
    ) -> bool {
        false
    }
}
