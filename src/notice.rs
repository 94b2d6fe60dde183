//! One notification per incident, fleet-wide (SPEC §10): the shared record
//! of a fleet fault's notifications, pure.
//!
//! A *fleet fault* is a fault of a check with an absolute name (`//...`)
//! whose `notify` is not `per_agent`. Every agent that finds one CRITICAL
//! registers in its `Notice` (a record in the shared database, one per
//! fault name); the notice says which messages the fleet has delivered for
//! the open incident and which delivery is in flight (`Claim`). Backends
//! store notices with one compare-and-swap (`Db::put_notice`: write if the
//! stored version is the one read), so every decision here is made on a
//! value read from the database and applied with a conditional write; no
//! agent is a leader. The transitions (join, leave, claim, take over an
//! expired claim, record a delivery) are functions of this module, with
//! table-driven tests; the agent's `fleet` part does the I/O around them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// How many delivered messages of one incident a notice remembers.
pub(crate) const DELIVERED_CAP: usize = 16;

/// The shared notification record of one fleet fault.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The fleet fault's full name (`//CHECK` or `//CHECK#NAME`).
    pub name: String,
    /// Agents that hold the fault CRITICAL (registered in this record).
    /// A holder whose heartbeat is gone or older than
    /// `alerting.holder_timeout` base intervals holds nothing.
    pub holders: BTreeSet<String>,
    /// Messages delivered (triggered) for the open incident, oldest first,
    /// at most `DELIVERED_CAP`; empty when nothing is open at the receivers.
    pub delivered: Vec<String>,
    /// The delivery in flight.
    pub claim: Option<Claim>,
    /// The last trigger delivered for the open incident: when (on the
    /// deliverer's clock) and the severity its check reported. Holds back a
    /// drifting message from every holder for `renotify` (SPEC §11).
    pub sent: Option<LastSent>,
    /// Bumped by every write; 0: not stored. `Db::put_notice` writes only
    /// over the version it was given.
    pub version: u64,
}

/// The last trigger delivered for a fleet fault's incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSent {
    /// Epoch seconds.
    pub at: i64,
    /// The severity the deliverer's check reported, before escalation.
    pub reported: Severity,
}

/// What a holder asks of `renotify` when its message is new to the
/// incident: its alerter's `renotify` seconds and the severity its check
/// reported this run (`None`: not reported by a check, always sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Churn {
    pub(crate) renotify: i64,
    pub(crate) reported: Option<Severity>,
}

/// A delivery one agent has taken on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The agent delivering.
    pub agent: String,
    /// What it delivers.
    pub action: Pending,
    /// Epoch second from which another holder may take the delivery over
    /// (the claimer is presumed dead): the claim's time plus
    /// `alert_timeout` plus the database budget, rounded up.
    pub until: i64,
}

/// The notification a claim delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    Trigger { message: String },
    Resolve,
}

impl Notice {
    /// A record not stored yet.
    #[must_use]
    pub fn new(name: &str) -> Notice {
        Notice {
            name: name.to_owned(),
            ..Notice::default()
        }
    }

    /// Whether storing this record means removing it: nobody holds it,
    /// nothing is open and nothing is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.holders.is_empty() && self.delivered.is_empty() && self.claim.is_none()
    }
}

/// What a transition decides: the record to write over the version read
/// (`None`: nothing changes, no write), and what the agent does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Step<T> {
    pub(crate) write: Option<Notice>,
    pub(crate) then: T,
}

/// What an agent that finds the fault CRITICAL does after joining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// Its message is delivered already for this incident: nothing to send.
    Sent,
    /// Another agent's claim is in flight: look again next tick.
    Wait,
    /// It claimed the trigger: deliver it, then `record`.
    Deliver,
}

/// What an agent that no longer holds the fault does (it cleared, got
/// squelched, or its check vanished), and what a watcher does each tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Left {
    /// Nothing of this incident is open, or another agent is resolving it
    /// and nothing is left to watch: done.
    Done,
    /// Live holders remain (or another agent's claim is in flight): read
    /// the notice again next tick, to resolve once the last holder is gone.
    Watch,
    /// It claimed the resolve: deliver it, then `record`.
    Deliver,
}

/// The times a decision on a notice needs, all on this agent's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clock {
    /// When this agent first saw the notice's current claim (`now` when
    /// it has none, or sees it for the first time).
    pub seen: i64,
    /// Now, in epoch seconds.
    pub now: i64,
    /// When a claim this agent made now would end.
    pub until: i64,
}

/// Whether the fault `name` can be a fleet fault of agent `agent`: its
/// check's name is absolute (`//...`), not one of the agent's own
/// (`//AGENT/STEM/KEY`, SPEC §3); `AGENT#...` faults never are. Whether
/// it is one also depends on its check's `notify`.
#[must_use]
pub(crate) fn is_absolute(agent: &str, name: &str) -> bool {
    name.starts_with("//")
        && !name
            .strip_prefix("//")
            .and_then(|rest| rest.strip_prefix(agent))
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether a holder whose heartbeat is `heartbeat` (`None`: no heartbeat,
/// e.g. deregistered) still holds at `now`: its heartbeat is at most
/// `timeout` seconds old (`alerting.holder_timeout` base intervals).
#[must_use]
pub(crate) fn is_live(heartbeat: Option<i64>, now: i64, timeout: i64) -> bool {
    heartbeat.is_some_and(|updated| now - updated <= timeout)
}

/// Whether a claim is still in force at `now` (its claimer may still be
/// delivering), judged on this agent's own clock, never on the claimer's
/// (SPEC §14: clocks are not trusted): a claim lasts, from `seen` (when
/// this agent first saw it), as long as a claim this agent made now would
/// (until `until`: one alerter call and one database call). A claimer
/// whose clock runs ahead or behind is neither taken over early nor
/// believed for long; a broken record's `until` does not matter.
fn in_force(seen: i64, now: i64, until: i64) -> bool {
    now - seen < (until - now).max(1)
}

/// `agent` finds the fault CRITICAL with `message`: registers as a holder,
/// and decides whether to deliver.
///
/// Another agent's claim in force makes it wait when that claim is a
/// resolve (the incident is closing; a trigger after it is a new one) or
/// when its message is not delivered yet. A message already delivered for
/// this incident (`fault::same_alert`) is not sent again. Otherwise it
/// claims the trigger until `until` (an expired claim, whoever made it, is
/// taken over: its claimer is presumed dead).
#[must_use]
pub(crate) fn join(
    notice: &Notice,
    agent: &str,
    message: &str,
    churn: Churn,
    clock: Clock,
) -> Step<Joined> {
    let Clock { seen, now, until } = clock;
    let mut next = notice.clone();
    let mut changed = next.holders.insert(agent.to_owned());
    if next
        .claim
        .as_ref()
        .is_some_and(|_| !in_force(seen, now, until))
    {
        next.claim = None;
        changed = true;
    }
    let sent = next
        .delivered
        .iter()
        .any(|old| crate::fault::same_alert(old, message));
    // A new message of an incident already notified waits for `renotify`
    // (SPEC §11), whichever holder's check drifted.
    let churning = !sent
        && !next.delivered.is_empty()
        && next.sent.is_some_and(|last| {
            let last = crate::renotify::Sent {
                at: last.at,
                reported: last.reported,
            };
            !crate::renotify::due(Some(last), churn.reported, now, churn.renotify)
        });
    let other = next.claim.as_ref().filter(|c| c.agent != agent);
    let then = match other.map(|c| &c.action) {
        Some(Pending::Resolve) => Joined::Wait,
        Some(Pending::Trigger { .. }) if !sent => Joined::Wait,
        _ if sent => Joined::Sent,
        _ if churning => Joined::Wait,
        _ => {
            next.claim = Some(Claim {
                agent: agent.to_owned(),
                action: Pending::Trigger {
                    message: message.to_owned(),
                },
                until,
            });
            changed = true;
            Joined::Deliver
        }
    };
    Step {
        write: changed.then_some(next),
        then,
    }
}

/// `agent` does not hold the fault (any more): removes it from the
/// holders, and decides whether the incident is to be resolved.
///
/// `live` says whether another holder still holds (`is_live` on its
/// heartbeat). While a live holder remains, the agent watches. With none
/// left: a notice with nothing delivered is cleaned up (stale holders and
/// an expired claim dropped, deleted when empty); one with deliveries is
/// resolved by claiming the resolve until `until`, unless another agent's
/// claim is in force (then watch: should that claimer die, its claim
/// expires and a watcher takes it over). Writes only what changes, so a
/// watcher that finds nothing new costs no write.
#[must_use]
pub(crate) fn leave(
    notice: &Notice,
    agent: &str,
    live: &dyn Fn(&str) -> bool,
    clock: Clock,
) -> Step<Left> {
    let Clock { seen, now, until } = clock;
    let mut next = notice.clone();
    next.holders.remove(agent);
    let live_holders = next.holders.iter().any(|holder| live(holder));
    let other_in_force = next
        .claim
        .as_ref()
        .is_some_and(|c| c.agent != agent && in_force(seen, now, until));
    let then = if live_holders {
        Left::Watch
    } else if next.delivered.is_empty() {
        next.holders.clear();
        if !other_in_force {
            next.claim = None;
        }
        if other_in_force {
            Left::Watch
        } else {
            Left::Done
        }
    } else if other_in_force {
        Left::Watch
    } else {
        next.holders.clear();
        next.claim = Some(Claim {
            agent: agent.to_owned(),
            action: Pending::Resolve,
            until,
        });
        Left::Deliver
    };
    Step {
        write: (next != *notice).then_some(next),
        then,
    }
}

/// The record after `agent` delivered `action` (`delivered`: when, and the
/// severity its check reported) or gave up on it (`None`): `None` when the claim is no longer its own (taken over after
/// it expired: the new claimer records), so nothing is written over it.
///
/// A delivered trigger adds its message to `delivered` (the oldest dropped
/// past `DELIVERED_CAP`), keeps the agent a holder and becomes the
/// incident's last send (`renotify`); a delivered resolve
/// closes the incident (`delivered` emptied; agents that joined meanwhile
/// stay holders and trigger anew). Either way the claim is cleared, so a
/// failed delivery is tried again next tick by whichever holder claims it.
#[must_use]
pub(crate) fn record(
    notice: &Notice,
    agent: &str,
    action: &Pending,
    delivered: Option<LastSent>,
) -> Option<Notice> {
    let claim = notice.claim.as_ref()?;
    if claim.agent != agent || claim.action != *action {
        return None;
    }
    let mut next = notice.clone();
    next.claim = None;
    if let Some(sent) = delivered {
        match action {
            Pending::Trigger { message } => {
                next.sent = Some(sent);
                if !next
                    .delivered
                    .iter()
                    .any(|old| crate::fault::same_alert(old, message))
                {
                    next.delivered.push(message.clone());
                }
                let excess = next.delivered.len().saturating_sub(DELIVERED_CAP);
                next.delivered.drain(..excess);
                next.holders.insert(agent.to_owned());
            }
            Pending::Resolve => {
                next.delivered.clear();
                next.sent = None;
            }
        }
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1000;
    const UNTIL: i64 = 1030;

    /// The clock of the tables: a claim whose `until` is past was first
    /// seen a whole claim's length ago (expired on our clock), any other
    /// one just now.
    fn clock_for(read: &Notice) -> Clock {
        let expired = read.claim.as_ref().is_some_and(|c| c.until <= NOW);
        Clock {
            seen: if expired { NOW - (UNTIL - NOW) } else { NOW },
            now: NOW,
            until: UNTIL,
        }
    }

    /// A stored notice: holders, delivered messages, claim, version 3.
    fn notice(holders: &[&str], delivered: &[&str], claim: Option<Claim>) -> Notice {
        Notice {
            name: "//web".into(),
            holders: holders.iter().map(|h| (*h).to_owned()).collect(),
            delivered: delivered.iter().map(|m| (*m).to_owned()).collect(),
            claim,
            sent: None,
            version: 3,
        }
    }

    /// A claim of `agent`'s trigger with `message`, in force until `until`.
    fn trigger(agent: &str, message: &str, until: i64) -> Option<Claim> {
        claim(
            agent,
            Pending::Trigger {
                message: message.into(),
            },
            until,
        )
    }

    /// A claim of `agent`'s resolve, in force until `until`.
    fn resolve(agent: &str, until: i64) -> Option<Claim> {
        claim(agent, Pending::Resolve, until)
    }

    fn claim(agent: &str, action: Pending, until: i64) -> Option<Claim> {
        (!agent.is_empty()).then(|| Claim {
            agent: agent.into(),
            action,
            until,
        })
    }

    #[test]
    fn join_table() {
        // What, the notice read, agent a's message, what a does, the record written.
        let cases: Vec<(&str, Notice, &str, Joined, Option<Notice>)> = vec![
            (
                "the first to find it claims the trigger",
                Notice::new("//web"),
                "down",
                Joined::Deliver,
                Some(Notice {
                    name: "//web".into(),
                    holders: ["a".to_owned()].into(),
                    claim: trigger("a", "down", UNTIL),
                    ..Notice::default()
                }),
            ),
            (
                "a message delivered already: register, send nothing",
                notice(&["b"], &["down"], None),
                "down",
                Joined::Sent,
                Some(notice(&["a", "b"], &["down"], None)),
            ),
            (
                "registered with its message delivered: no write",
                notice(&["a", "b"], &["down"], None),
                "down",
                Joined::Sent,
                None,
            ),
            (
                "the same alert but for its age counts as delivered",
                notice(&["b"], &["Inactive agent (no heartbeat for 3m)"], None),
                "Inactive agent (no heartbeat for 4m)",
                Joined::Sent,
                Some(notice(
                    &["a", "b"],
                    &["Inactive agent (no heartbeat for 3m)"],
                    None,
                )),
            ),
            (
                "an older message of the incident is not sent again",
                notice(&["b"], &["down", "slow"], None),
                "down",
                Joined::Sent,
                Some(notice(&["a", "b"], &["down", "slow"], None)),
            ),
            (
                "a changed message is a new trigger",
                notice(&["a", "b"], &["down"], None),
                "slow",
                Joined::Deliver,
                Some(notice(&["a", "b"], &["down"], trigger("a", "slow", UNTIL))),
            ),
        ];
        for (what, read, message, then, write) in cases {
            let step = join(&read, "a", message, Churn::default(), clock_for(&read));
            assert_eq!(step, Step { write, then }, "{what}");
        }
    }

    #[test]
    fn join_with_claims_table() {
        let cases: Vec<(&str, Notice, &str, Joined, Option<Notice>)> = vec![
            (
                "another agent's claim in force: wait",
                notice(&["b"], &[], trigger("b", "down", NOW + 1)),
                "down",
                Joined::Wait,
                Some(notice(&["a", "b"], &[], trigger("b", "down", NOW + 1))),
            ),
            (
                "a fresh claim ending far ahead (a clock ahead) is waited for",
                notice(&["a", "b"], &[], trigger("b", "down", i64::MAX)),
                "down",
                Joined::Wait,
                None,
            ),
            (
                "a claim expires at its `until`",
                notice(&["a", "b"], &[], trigger("b", "down", NOW)),
                "down",
                Joined::Deliver,
                Some(notice(&["a", "b"], &[], trigger("a", "down", UNTIL))),
            ),
            (
                "waiting and registered: no write",
                notice(&["a", "b"], &[], trigger("b", "down", NOW + 5)),
                "down",
                Joined::Wait,
                None,
            ),
            (
                "an expired claim is taken over",
                notice(&["a", "b"], &[], trigger("b", "down", NOW - 1)),
                "down",
                Joined::Deliver,
                Some(notice(&["a", "b"], &[], trigger("a", "down", UNTIL))),
            ),
            (
                "a resolve in flight: wait, even with the message delivered",
                notice(&[], &["down"], resolve("b", NOW + 5)),
                "down",
                Joined::Wait,
                Some(notice(&["a"], &["down"], resolve("b", NOW + 5))),
            ),
            (
                "an expired resolve claim is dropped: the message counts as delivered",
                notice(&[], &["down"], resolve("b", NOW - 1)),
                "down",
                Joined::Sent,
                Some(notice(&["a"], &["down"], None)),
            ),
            (
                "another's trigger in flight with ours delivered: sent",
                notice(&["b"], &["down"], trigger("b", "slow", NOW + 5)),
                "down",
                Joined::Sent,
                Some(notice(
                    &["a", "b"],
                    &["down"],
                    trigger("b", "slow", NOW + 5),
                )),
            ),
            (
                "its own claim left from before a restart is claimed again",
                notice(&["a"], &[], trigger("a", "down", NOW + 5)),
                "down",
                Joined::Deliver,
                Some(notice(&["a"], &[], trigger("a", "down", UNTIL))),
            ),
        ];
        for (what, read, message, then, write) in cases {
            let step = join(&read, "a", message, Churn::default(), clock_for(&read));
            assert_eq!(step, Step { write, then }, "{what}");
        }
    }

    /// SPEC §14: a claim is judged on this agent's clock, from when it
    /// first saw it, whatever the claimer's clock wrote in `until`.
    #[test]
    fn a_claim_lasts_our_own_claims_length_from_when_we_first_saw_it() {
        let lease = UNTIL - NOW;
        // until: the claimer's clock far ahead, far behind, in step.
        for until in [NOW + 3600, NOW - 3600, NOW + lease] {
            let read = notice(&["a", "b"], &[], trigger("b", "down", until));
            for (age, then) in [
                (0, Joined::Wait),
                (lease - 1, Joined::Wait),
                (lease, Joined::Deliver),
            ] {
                let clock = Clock {
                    seen: NOW - age,
                    now: NOW,
                    until: UNTIL,
                };
                let step = join(&read, "a", "down", Churn::default(), clock);
                assert_eq!(step.then, then, "until {until}, seen {age} s ago");
            }
        }
    }

    #[test]
    fn leave_table() {
        // b's heartbeat is fresh, c's stale, d has none.
        let live = |holder: &str| {
            let heartbeat = match holder {
                "b" => Some(NOW - 10),
                "c" => Some(NOW - 400),
                _ => None,
            };
            is_live(heartbeat, NOW, 300)
        };
        let cases: Vec<(&str, Notice, Left, Option<Notice>)> = vec![
            (
                "a live holder remains: leave and watch",
                notice(&["a", "b"], &["down"], None),
                Left::Watch,
                Some(notice(&["b"], &["down"], None)),
            ),
            (
                "watching while the holder lives: no write",
                notice(&["b"], &["down"], None),
                Left::Watch,
                None,
            ),
            (
                "the last holder claims the resolve",
                notice(&["a"], &["down"], None),
                Left::Deliver,
                Some(notice(&[], &["down"], resolve("a", UNTIL))),
            ),
            (
                "stale and deregistered holders hold nothing",
                notice(&["a", "c", "d"], &["down"], None),
                Left::Deliver,
                Some(notice(&[], &["down"], resolve("a", UNTIL))),
            ),
            (
                "a watcher resolves once the last holder is stale",
                notice(&["c"], &["down", "slow"], None),
                Left::Deliver,
                Some(notice(&[], &["down", "slow"], resolve("a", UNTIL))),
            ),
            (
                "another agent resolving: watch",
                notice(&["a"], &["down"], resolve("b", NOW + 5)),
                Left::Watch,
                Some(notice(&[], &["down"], resolve("b", NOW + 5))),
            ),
            (
                "a fresh resolve claim from a clock far ahead: watch",
                notice(&[], &["down"], resolve("b", NOW + 3600)),
                Left::Watch,
                None,
            ),
            (
                "an expired resolve claim is taken over",
                notice(&[], &["down"], resolve("b", NOW - 1)),
                Left::Deliver,
                Some(notice(&[], &["down"], resolve("a", UNTIL))),
            ),
            (
                "a dead claimer's trigger with the last holder leaving: cleaned up",
                notice(&["a", "c"], &[], trigger("c", "down", NOW - 1)),
                Left::Done,
                Some(Notice {
                    name: "//web".into(),
                    version: 3,
                    ..Notice::default()
                }),
            ),
            (
                "nothing delivered, a trigger in flight: watch",
                notice(&["a", "c"], &[], trigger("c", "down", NOW + 5)),
                Left::Watch,
                Some(notice(&[], &[], trigger("c", "down", NOW + 5))),
            ),
            (
                "an absent notice: done, nothing written",
                Notice::new("//web"),
                Left::Done,
                None,
            ),
        ];
        for (what, read, then, write) in cases {
            let step = leave(&read, "a", &live, clock_for(&read));
            assert_eq!(step, Step { write, then }, "{what}");
        }
    }

    #[test]
    fn record_table() {
        let down = Pending::Trigger {
            message: "down".into(),
        };
        let many: Vec<String> = (0..DELIVERED_CAP).map(|i| format!("m{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut kept: Vec<&str> = many[1..].to_vec();
        kept.push("down");
        let cases: Vec<(&str, Notice, Pending, bool, Option<Notice>)> = vec![
            (
                "a delivered trigger is recorded and its claim cleared",
                notice(&["b"], &[], trigger("a", "down", UNTIL)),
                down.clone(),
                true,
                Some(notice(&["a", "b"], &["down"], None)),
            ),
            (
                "a failed trigger releases the claim, records nothing",
                notice(&["a", "b"], &[], trigger("a", "down", UNTIL)),
                down.clone(),
                false,
                Some(notice(&["a", "b"], &[], None)),
            ),
            (
                "a claim taken over is not written over",
                notice(&["a", "b"], &[], trigger("b", "down", UNTIL)),
                down.clone(),
                true,
                None,
            ),
            (
                "a claim gone (notice resolved and removed) writes nothing",
                Notice::new("//web"),
                down.clone(),
                true,
                None,
            ),
            (
                "a claim for another action is not ours to record",
                notice(&["a"], &[], trigger("a", "slow", UNTIL)),
                down.clone(),
                true,
                None,
            ),
            (
                "a delivered resolve closes the incident; newcomers stay holders",
                notice(&["b"], &["down", "slow"], resolve("a", UNTIL)),
                Pending::Resolve,
                true,
                Some(notice(&["b"], &[], None)),
            ),
            (
                "a failed resolve keeps the incident open",
                notice(&[], &["down"], resolve("a", UNTIL)),
                Pending::Resolve,
                false,
                Some(notice(&[], &["down"], None)),
            ),
            (
                "the oldest message goes past the cap",
                notice(&["a"], &many, trigger("a", "down", UNTIL)),
                down.clone(),
                true,
                Some(notice(&["a"], &kept, None)),
            ),
        ];
        for (what, read, action, delivered, want) in cases {
            let sent = delivered.then_some(LastSent {
                at: NOW,
                reported: Severity::CRITICAL,
            });
            // The last send is shown apart (`the_last_send_...`).
            let got = record(&read, "a", &action, sent).map(|n| Notice { sent: None, ..n });
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn the_last_send_is_kept_for_the_incident_and_cleared_by_its_resolve() {
        let sent = LastSent {
            at: NOW,
            reported: Severity::ERROR,
        };
        let down = Pending::Trigger {
            message: "down".into(),
        };
        let read = notice(&["a"], &[], trigger("a", "down", UNTIL));
        let triggered = record(&read, "a", &down, Some(sent)).unwrap();
        assert_eq!(triggered.sent, Some(sent));
        let failed = record(&read, "a", &down, None).unwrap();
        assert_eq!(failed.sent, None);
        let closing = Notice {
            claim: resolve("a", UNTIL),
            ..triggered
        };
        let resolved = record(&closing, "a", &Pending::Resolve, Some(sent)).unwrap();
        assert_eq!(resolved.sent, None);
    }

    /// SPEC §11: a message new to a notified incident waits for the
    /// `renotify` of the joiner's alerter since the incident's last send,
    /// unless the reported severity changed.
    #[test]
    fn a_drifting_message_waits_for_renotify_across_holders() {
        let sent = LastSent {
            at: NOW - 600,
            reported: Severity::CRITICAL,
        };
        let read = Notice {
            sent: Some(sent),
            ..notice(&["b"], &["1200 > 1000"], None)
        };
        let churn = |renotify, reported| Churn { renotify, reported };
        let cases = [
            (
                "within renotify",
                churn(3600, Some(Severity::CRITICAL)),
                Joined::Wait,
            ),
            (
                "renotify passed",
                churn(600, Some(Severity::CRITICAL)),
                Joined::Deliver,
            ),
            (
                "renotify 0: every change",
                churn(0, Some(Severity::CRITICAL)),
                Joined::Deliver,
            ),
            (
                "the severity changed",
                churn(3600, Some(Severity::ERROR)),
                Joined::Deliver,
            ),
            (
                "not reported by a check",
                churn(3600, None),
                Joined::Deliver,
            ),
        ];
        for (what, churn, then) in cases {
            let step = join(&read, "a", "1300 > 1000", churn, clock_for(&read));
            assert_eq!(step.then, then, "{what}");
        }
        // A message already delivered is sent, whatever renotify says.
        let step = join(
            &read,
            "a",
            "1200 > 1000",
            churn(3600, None),
            clock_for(&read),
        );
        assert_eq!(step.then, Joined::Sent);
    }

    #[test]
    fn absolute_names() {
        let cases = [
            ("//meta", true),
            ("//meta#web2", true),
            ("//web/health", true),
            ("//web1/app/disk", false),
            ("//web1/app/", false),
            ("//web10/app/disk", true),
            ("web1#alerts", false),
            ("web1#storm", false),
        ];
        for (name, absolute) in cases {
            assert_eq!(is_absolute("web1", name), absolute, "{name}");
        }
    }

    #[test]
    fn liveness() {
        let cases = [
            ("fresh", Some(990), true),
            ("exactly the timeout old", Some(700), true),
            ("older than the timeout", Some(699), false),
            ("no heartbeat (deregistered)", None, false),
            ("ahead of this clock", Some(1100), true),
        ];
        for (what, heartbeat, live) in cases {
            assert_eq!(is_live(heartbeat, 1000, 300), live, "{what}");
        }
    }

    #[test]
    fn a_resolved_empty_record_is_removed() {
        let written = record(
            &notice(&[], &["down"], resolve("a", UNTIL)),
            "a",
            &Pending::Resolve,
            Some(LastSent {
                at: NOW,
                reported: Severity::CRITICAL,
            }),
        );
        assert!(written.is_some_and(|n| n.is_empty()));
    }
}
