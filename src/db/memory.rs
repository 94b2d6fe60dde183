//! The `memory` backend: a process-local database for tests and demos.
//!
//! Owns one in-process copy of the tables (heartbeats, faults, squelches,
//! the open alerts of stopped agents) behind a `std::sync::Mutex`. Every method takes the lock for a
//! few map operations and never across an `.await`, so the async runtime is
//! never blocked for long (a tokio `Mutex` would only add overhead). The
//! `since`/`updated` bookkeeping is shared with the other backends through
//! `merge_with_stored`. Nothing survives the process.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{
    AgentFacts, AgentFault, Db, Error, FactsLog, Fault, Heartbeat, HistoryConfig, HistoryQuery,
    HistoryRecord, Notice, OpenAlert, Squelch, StoppedAgent, merge_with_stored,
};

/// The most history records a memory database keeps: the oldest go first.
pub(crate) const HISTORY_LIMIT: usize = 100_000;

/// A process-local database; starts empty.
///
/// `BTreeMap`s keep every listing in the order the `Db` contract asks for
/// (agent, then fault name; squelch regex) without sorting on each read.
#[derive(Debug, Default)]
pub struct MemoryDb {
    tables: Mutex<Tables>,
    /// What each agent declared its heartbeats record.
    facts: FactsLog,
    /// The history's retention (SPEC §12).
    history: HistoryConfig,
}

/// The stored state, one map per table.
#[derive(Debug, Default)]
struct Tables {
    /// Agent name → last heartbeat, with the facts it recorded.
    heartbeats: BTreeMap<String, Heartbeat>,
    /// Agent name → fault name → fault.
    faults: BTreeMap<String, BTreeMap<String, Fault>>,
    /// Regex → squelch.
    squelches: BTreeMap<String, Squelch>,
    /// Agent name → (stop time, the open alerts it kept, by fault name).
    kept: BTreeMap<String, (i64, BTreeMap<String, OpenAlert>)>,
    /// Fleet fault name → its notification record (SPEC §10).
    notices: BTreeMap<String, Notice>,
    /// The history, oldest first, at most `HISTORY_LIMIT` records.
    history: VecDeque<HistoryRecord>,
    /// The identities (agent, `Record::id`) of the records `history` holds:
    /// a record appended again is stored once.
    history_ids: HashSet<(String, u64)>,
}

impl MemoryDb {
    /// The same database keeping history records for `history.retention`.
    #[must_use]
    pub fn with_history(mut self, history: HistoryConfig) -> MemoryDb {
        self.history = history;
        self
    }

    /// Locks the tables.
    ///
    /// A panic while the lock was held cannot leave the maps half-written in a
    /// way that breaks the contract: every mutation is a single map insert,
    /// remove or replace. So a poisoned lock is taken over rather than turned
    /// into an error every later call would repeat.
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The heartbeat of `agent` at `now`, with the facts it declared.
    fn heartbeat_at(&self, agent: &str, now: i64) -> Heartbeat {
        let AgentFacts { version, checks } = self.facts.get(agent);
        Heartbeat {
            name: agent.to_owned(),
            updated: now,
            version,
            checks,
        }
    }
}

#[async_trait]
impl Db for MemoryDb {
    async fn append_history(&self, records: &[HistoryRecord]) -> Result<(), Error> {
        let Some(newest) = records.iter().map(|record| record.time).max() else {
            return Ok(());
        };
        let oldest_kept = newest.saturating_sub(self.history.retention);
        let mut tables = self.tables();
        let Tables {
            history,
            history_ids,
            ..
        } = &mut *tables;
        for record in records {
            if let Some(id) = record.id
                && !history_ids.insert((record.agent.clone(), id))
            {
                continue;
            }
            history.push_back(record.clone());
        }
        // Appended in time order as a rule, so the expired are at the front.
        while history
            .front()
            .is_some_and(|record| record.time <= oldest_kept)
            || history.len() > HISTORY_LIMIT
        {
            if let Some(gone) = history.pop_front()
                && let Some(id) = gone.id
            {
                history_ids.remove(&(gone.agent, id));
            }
        }
        Ok(())
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>, Error> {
        let tables = self.tables();
        let mut found: Vec<HistoryRecord> = tables
            .history
            .iter()
            .rev()
            .filter(|record| query.matches(record, self.history.retention))
            // The identity is not read back, as from the other backends.
            .map(|record| HistoryRecord {
                id: None,
                ..record.clone()
            })
            .collect();
        // Stable: records of one second keep the later appended first.
        found.sort_by_key(|record| std::cmp::Reverse(record.time));
        found.truncate(query.limit);
        Ok(found)
    }

    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, Error> {
        Ok(self
            .tables()
            .faults
            .get(agent)
            .map(|faults| faults.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), Error> {
        let mut tables = self.tables();
        let stored: Vec<Fault> = tables
            .faults
            .get(agent)
            .map(|faults| faults.values().cloned().collect())
            .unwrap_or_default();
        let merged: BTreeMap<String, Fault> = merge_with_stored(&stored, faults)
            .into_iter()
            .map(|fault| (fault.name.clone(), fault))
            .collect();
        if merged.is_empty() {
            tables.faults.remove(agent);
        } else {
            tables.faults.insert(agent.to_owned(), merged);
        }
        tables
            .heartbeats
            .insert(agent.to_owned(), self.heartbeat_at(agent, now));
        Ok(())
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), Error> {
        let heartbeat = self.heartbeat_at(agent, now);
        self.tables().heartbeats.insert(agent.to_owned(), heartbeat);
        Ok(())
    }

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.facts.set(agent, facts);
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, Error> {
        let tables = self.tables();
        Ok(tables
            .faults
            .iter()
            .filter(|(name, _)| agent.is_none_or(|agent| agent == name.as_str()))
            .flat_map(|(name, faults)| {
                faults.values().map(|fault| AgentFault {
                    agent: name.clone(),
                    fault: fault.clone(),
                })
            })
            .collect())
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, Error> {
        Ok(self.tables().heartbeats.values().cloned().collect())
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, Error> {
        let cutoff = now.saturating_sub(age);
        Ok(self
            .tables()
            .heartbeats
            .values()
            .filter(|heartbeat| heartbeat.updated < cutoff)
            .cloned()
            .collect())
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, Error> {
        Ok(self.tables().squelches.values().cloned().collect())
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), Error> {
        self.tables()
            .squelches
            .insert(squelch.regex.clone(), squelch.clone());
        Ok(())
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, Error> {
        Ok(self.tables().squelches.remove(regex).is_some())
    }

    async fn remove_expired_squelch(&self, regex: &str, now: i64) -> Result<bool, Error> {
        let mut tables = self.tables();
        let expired = tables
            .squelches
            .get(regex)
            .is_some_and(|squelch| !squelch.active(now));
        Ok(expired && tables.squelches.remove(regex).is_some())
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), Error> {
        let mut tables = self.tables();
        tables.heartbeats.remove(agent);
        tables.faults.remove(agent);
        Ok(())
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), Error> {
        let mut tables = self.tables();
        tables.heartbeats.remove(agent);
        tables.faults.remove(agent);
        if open.is_empty() {
            tables.kept.remove(agent);
        } else {
            let alerts = open
                .iter()
                .map(|alert| (alert.fault.name.clone(), alert.clone()))
                .collect();
            tables.kept.insert(agent.to_owned(), (now, alerts));
        }
        Ok(())
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, Error> {
        Ok(self
            .tables()
            .kept
            .get(agent)
            .map(|(_, alerts)| alerts.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, Error> {
        let tables = self.tables();
        Ok(tables
            .kept
            .iter()
            .filter(|(name, _)| !tables.heartbeats.contains_key(name.as_str()))
            .map(|(name, (stopped, alerts))| StoppedAgent {
                name: name.clone(),
                stopped: *stopped,
                open_alerts: alerts.len(),
            })
            .collect())
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), Error> {
        self.tables().kept.remove(agent);
        Ok(())
    }

    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, Error> {
        // By name and each once, as the other backends answer.
        let names: BTreeSet<&String> = names.iter().collect();
        let tables = self.tables();
        Ok(names
            .into_iter()
            .filter_map(|name| tables.notices.get(name).cloned())
            .collect())
    }

    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, Error> {
        let mut tables = self.tables();
        let stored = tables.notices.get(&notice.name).map_or(0, |n| n.version);
        if stored != expected {
            return Ok(false);
        }
        if notice.is_empty() {
            tables.notices.remove(&notice.name);
        } else {
            let mut written = notice.clone();
            written.version = expected + 1;
            tables.notices.insert(notice.name.clone(), written);
        }
        Ok(true)
    }

    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, Error> {
        let agents: BTreeSet<&String> = agents.iter().collect();
        let tables = self.tables();
        Ok(agents
            .into_iter()
            .filter_map(|agent| tables.heartbeats.get(agent).cloned())
            .collect())
    }
}
