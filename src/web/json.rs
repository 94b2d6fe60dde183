//! The JSON documents `cimaa faults|squelches --json` print and the web
//! view's `/api/faults` and `/api/squelches` return (SPEC §1, §13): one
//! builder each, so that the two never drift apart.

use serde::Serialize;

use crate::db::AgentFault;
use crate::squelch::{self, Matcher, Squelch};

/// One fault of `faults --json` and `/api/faults`.
#[derive(Serialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the documented fields of `faults --json` (SPEC §1)"
)]
pub(crate) struct FaultJson<'a> {
    pub agent: &'a str,
    pub name: &'a str,
    pub severity: i64,
    pub message: &'a str,
    pub since: i64,
    pub updated: i64,
    pub triggered: bool,
    pub escalates: bool,
    pub attempts: u32,
    /// Part of an alert storm: folded into `AGENT#storm`, not paged on its own.
    pub storm: bool,
    /// The full name of the failing dependency (or `AGENT#dns`) that keeps
    /// the fault from paging (SPEC §11); null when none.
    pub suppressed_by: Option<&'a str>,
    /// A squelch in force matches the name, so the fault does not page.
    pub squelched: bool,
    /// Its trigger waits for the end of its alerter's quiet hours (SPEC §11).
    pub held: bool,
    /// Its check is flapping: one flapping alert speaks for its faults
    /// (SPEC §11).
    pub flapping: bool,
}

/// The faults as `faults --json` shows them, `in_force` marking the
/// squelched ones.
pub(crate) fn faults<'a>(faults: &'a [AgentFault], in_force: &Matcher) -> Vec<FaultJson<'a>> {
    faults
        .iter()
        .map(|AgentFault { agent, fault }| FaultJson {
            agent,
            name: &fault.name,
            severity: fault.severity.0,
            message: &fault.message,
            since: fault.since,
            updated: fault.updated,
            triggered: fault.triggered,
            escalates: fault.escalates,
            attempts: fault.attempts,
            storm: fault.storm,
            suppressed_by: fault.suppressed_by.as_deref(),
            squelched: in_force.matches(&fault.name),
            held: fault.held,
            flapping: fault.flapping,
        })
        .collect()
}

/// One squelch of `squelches --json` and `/api/squelches`.
#[derive(Serialize)]
pub(crate) struct SquelchJson<'a> {
    pub regex: &'a str,
    pub reason: &'a str,
    pub user: &'a str,
    pub time: i64,
    pub permanent: bool,
    pub expires: Option<i64>,
    /// Current faults it matches, any severity on any agent; null for a
    /// stored regex that does not compile (the agents ignore it).
    pub matches: Option<usize>,
}

/// How many of `faults` each squelch matches (`None`: its regex does not
/// compile).
pub(crate) fn match_counts(list: &[Squelch], faults: &[AgentFault]) -> Vec<Option<usize>> {
    list.iter()
        .map(|s| {
            let regex = squelch::compile(&s.regex).ok()?;
            Some(
                faults
                    .iter()
                    .filter(|f| regex.is_match(&f.fault.name))
                    .count(),
            )
        })
        .collect()
}

/// The squelches as `squelches --json` shows them, with `counts` from
/// `match_counts`.
pub(crate) fn squelches<'a>(list: &'a [Squelch], counts: &[Option<usize>]) -> Vec<SquelchJson<'a>> {
    list.iter()
        .zip(counts)
        .map(|(s, matches)| SquelchJson {
            regex: &s.regex,
            reason: &s.reason,
            user: &s.user,
            time: s.time,
            permanent: s.permanent,
            expires: s.expires,
            matches: *matches,
        })
        .collect()
}
