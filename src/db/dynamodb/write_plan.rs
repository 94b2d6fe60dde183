//! What `set_faults` writes: the cache of what this process last wrote for
//! each agent, the plan of writes that turns it into the new fault set, and
//! sending those writes in BatchWriteItem calls.
//!
//! # Cost
//! `set_faults` keeps what this process last wrote for each agent and
//! rewrites only the items that changed, plus the heartbeat. It reads the
//! stored items only when it has no such record: on its first call, or after a
//! failed call (a failure forgets the record, so the next call compares with
//! what is really stored and rewrites whatever is missing). The record assumes
//! this process is the only writer of its agent's items, which is how agents
//! work. In steady state a tick therefore costs one write request (the
//! heartbeat) and one scan of the small squelch table.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;
use tracing::debug;

use super::api::Write;
use super::item::{ALERTS_AGENT, fault_item, fault_key, heartbeat_item, marker_item};
use super::{DynamoDb, RETRIES};
use crate::db::{AgentFacts, Error, Fault};

/// BatchWriteItem takes at most 25 requests.
const BATCH_LIMIT: usize = 25;

/// What this process last wrote (or read) for one agent.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Written {
    /// The agent's fault items as stored, by name.
    pub faults: BTreeMap<String, Fault>,
    /// The stored alert marker (the `AGENT#alerts` fault), if any.
    pub marker: Option<Fault>,
    /// Names of the agent's stored items that are malformed: replaced or
    /// deleted by the next write.
    pub malformed: BTreeSet<String>,
    /// The stored marker is malformed: the next write replaces or deletes it.
    pub marker_malformed: bool,
}

impl Written {
    /// The record of `agent` once `faults` are stored: its marker is its
    /// `AGENT#alerts` fault.
    pub(super) fn of(agent: &str, faults: Vec<Fault>) -> Written {
        let alerts = format!("{agent}#alerts");
        Written {
            marker: faults.iter().find(|fault| fault.name == alerts).cloned(),
            faults: faults
                .into_iter()
                .map(|fault| (fault.name.clone(), fault))
                .collect(),
            malformed: BTreeSet::new(),
            marker_malformed: false,
        }
    }
}

/// Per agent, what this process last wrote; see the module doc.
#[derive(Debug, Default)]
pub(super) struct WriteCache {
    agents: Mutex<HashMap<String, Written>>,
}

impl WriteCache {
    /// Every change under the lock is one map operation, so a poisoned lock
    /// is taken over.
    fn agents(&self) -> MutexGuard<'_, HashMap<String, Written>> {
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the record of `agent` out: until it is put back, a failure (or a
    /// dropped call) leaves none, so the next call reads what is stored.
    pub(super) fn take(&self, agent: &str) -> Option<Written> {
        self.agents().remove(agent)
    }

    /// Forgets the record of `agent`: its items are about to change behind it.
    pub(super) fn forget(&self, agent: &str) {
        self.agents().remove(agent);
    }

    /// Records what is now stored for `agent`.
    pub(super) fn put(&self, agent: &str, written: Written) {
        self.agents().insert(agent.to_owned(), written);
    }
}

/// The writes that turn `before` into `after` plus a heartbeat at `now`
/// recording `facts`: the heartbeat first, then changed faults, removed
/// faults and the marker when the agent's `AGENT#alerts` fault differs
/// from it. The facts ride on the heartbeat written anyway, so they cost no
/// write of their own.
pub(super) fn plan_writes(
    agent: &str,
    before: &Written,
    after: &[Fault],
    now: i64,
    facts: &AgentFacts,
) -> Vec<Write> {
    let mut writes = vec![Write::Put(heartbeat_item(agent, now, facts))];
    writes.extend(
        after
            .iter()
            .filter(|fault| before.faults.get(&fault.name) != Some(*fault))
            .map(|fault| Write::Put(fault_item(agent, fault))),
    );
    let kept: HashSet<&str> = after.iter().map(|fault| fault.name.as_str()).collect();
    writes.extend(
        before
            .faults
            .keys()
            .chain(&before.malformed)
            .filter(|name| !kept.contains(name.as_str()))
            .map(|name| Write::Delete(fault_key(agent, name))),
    );
    // A malformed item whose name is kept is not in `before.faults`, so the
    // puts above already rewrite it.
    let alerts = format!("{agent}#alerts");
    let marker = after.iter().find(|fault| fault.name == alerts);
    if before.marker_malformed || marker != before.marker.as_ref() {
        writes.push(match marker {
            Some(fault) => Write::Put(marker_item(agent, fault)),
            None => Write::Delete(fault_key(ALERTS_AGENT, agent)),
        });
    }
    writes
}

impl DynamoDb {
    /// Writes to the faults table in BatchWriteItem calls of at most 25,
    /// resending unprocessed items with backoff.
    pub(super) async fn write_all(
        &self,
        writes: Vec<Write>,
        deadline: Instant,
    ) -> Result<(), Error> {
        self.write_all_to(&self.faults_table, writes, deadline)
            .await
    }

    /// `write_all` into `table`.
    pub(super) async fn write_all_to(
        &self,
        table: &str,
        writes: Vec<Write>,
        deadline: Instant,
    ) -> Result<(), Error> {
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            let mut pending: Vec<Write> = writes.by_ref().take(BATCH_LIMIT).collect();
            let mut rounds = RETRIES.start(Some(deadline));
            loop {
                let unprocessed = self
                    .retrying("BatchWriteItem", table, deadline, || {
                        self.api.batch_write(table, pending.clone())
                    })
                    .await?;
                if unprocessed.is_empty() {
                    break;
                }
                let round = rounds.attempt();
                let Some(delay) = rounds.next_delay() else {
                    return Err(Error::Unprocessed {
                        table: table.to_owned(),
                        items: unprocessed.len(),
                        attempts: round,
                    });
                };
                debug!(
                    table,
                    unprocessed = unprocessed.len(),
                    "dynamodb left items unprocessed; resending"
                );
                tokio::time::sleep(delay).await;
                pending = unprocessed;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::Severity;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn fault(name: &str, message: &str) -> Fault {
        Fault {
            name: name.to_owned(),
            severity: Severity::ERROR,
            message: message.to_owned(),
            since: 100,
            updated: 100,
            triggered: false,
            escalates: true,
            attempts: 1,
            monitor_runs: 0,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        }
    }

    #[test]
    fn an_unchanged_fault_set_plans_only_the_heartbeat() {
        let faults = vec![fault("disk", "full"), fault("web1#alerts", "down")];
        let before = Written::of("web1", faults.clone());

        let writes = plan_writes("web1", &before, &faults, 160, &AgentFacts::default());

        assert_eq!(
            writes,
            [Write::Put(heartbeat_item(
                "web1",
                160,
                &AgentFacts::default()
            ))]
        );
    }

    // See: #16
    #[test]
    fn facts_ride_on_the_one_heartbeat_write_of_a_steady_tick() {
        let faults = vec![fault("disk", "full")];
        let before = Written::of("web1", faults.clone());
        let facts = AgentFacts {
            version: Some("1.2.3".to_owned()),
            checks: Some(12),
        };

        let writes = plan_writes("web1", &before, &faults, 160, &facts);

        let [Write::Put(heartbeat)] = writes.as_slice() else {
            panic!("one heartbeat put expected, got {writes:?}");
        };
        assert_eq!(
            heartbeat.get("version"),
            Some(&AttributeValue::S("1.2.3".to_owned()))
        );
        assert_eq!(
            heartbeat.get("checks"),
            Some(&AttributeValue::N("12".to_owned()))
        );
    }

    #[test]
    fn changed_removed_faults_and_the_marker_are_planned_after_the_heartbeat() {
        let before = Written::of(
            "web1",
            vec![
                fault("disk", "full"),
                fault("load", "high"),
                fault("web1#alerts", "down"),
            ],
        );
        let after = [fault("disk", "fuller")];

        let writes = plan_writes("web1", &before, &after, 160, &AgentFacts::default());

        assert_eq!(
            writes,
            [
                Write::Put(heartbeat_item("web1", 160, &AgentFacts::default())),
                Write::Put(fault_item("web1", &after[0])),
                Write::Delete(fault_key("web1", "load")),
                Write::Delete(fault_key("web1", "web1#alerts")),
                Write::Delete(fault_key(ALERTS_AGENT, "web1")),
            ]
        );
    }

    #[test]
    fn a_new_alerts_fault_puts_the_marker() {
        let alerts = fault("web1#alerts", "down");

        let writes = plan_writes(
            "web1",
            &Written::default(),
            std::slice::from_ref(&alerts),
            100,
            &AgentFacts::default(),
        );

        assert_eq!(writes.len(), 3);
        assert_eq!(writes[2], Write::Put(marker_item("web1", &alerts)));
    }

    #[test]
    fn a_taken_record_is_gone_until_put_back() {
        let cache = WriteCache::default();
        cache.put("web1", Written::of("web1", vec![fault("disk", "full")]));

        assert!(cache.take("web1").is_some());
        assert_eq!(cache.take("web1"), None);
    }
}
