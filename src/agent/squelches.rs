//! The squelch lifecycle's shared step (SPEC §12): expired squelches are
//! removed by the first agent or CLI that reads them, and recorded as
//! `squelch-expired` in the history by the one whose removal took.
//!
//! Used by the agent's squelch read each tick and by the CLI's squelch
//! commands. The removal is conditional (`Db::remove_expired_squelch`): of
//! two readers that both saw a squelch expired, one removes and records it;
//! a squelch set again on the same regex in between (a later expiry, or
//! none) is left in place.

use tracing::{info, warn};

use super::Agent;
use crate::db::{Db, Error as DbError, Squelch};
use crate::history::{Event, Record};
use crate::meta::{self, Limits, MetaFault};
use crate::squelch;

/// The squelches of `stored` still in force at `now`. Each expired one is
/// removed, and recorded with `recorder` as the record's agent when this
/// call's removal took: a record per squelch, at its expiry time, with its
/// regex, reason and user. A failed removal or record is logged and left to
/// the next reader; neither is an error, since an expired squelch is out of
/// force either way.
///
/// The record is appended once, here: for the CLI and the meta-check. The
/// agent queues it with its tick's state instead (`remove_expired`), so an
/// outage between the removal and the record does not lose it.
pub(crate) async fn expire(
    db: &dyn Db,
    stored: Vec<Squelch>,
    recorder: &str,
    now: i64,
) -> Vec<Squelch> {
    let (in_force, records) = remove_expired(db, stored, recorder, now).await;
    if !records.is_empty()
        && let Err(e) = db.append_history(&records).await
    {
        warn!(error = %e, records = records.len(), "cannot record the expired squelches in the history");
    }
    in_force
}

/// The squelches of `stored` still in force at `now`, and the
/// `squelch-expired` records of the expired ones whose removal this call
/// made, for the caller to write.
async fn remove_expired(
    db: &dyn Db,
    stored: Vec<Squelch>,
    recorder: &str,
    now: i64,
) -> (Vec<Squelch>, Vec<Record>) {
    let (expired, in_force) = squelch::split_expired(stored, now);
    let mut records = Vec::new();
    for squelch in expired {
        match db.remove_expired_squelch(&squelch.regex, now).await {
            Ok(true) => {
                info!(regex = %squelch::excerpt(&squelch.regex), user = %squelch.user, "removed an expired squelch");
                records.push(expired_record(&squelch, recorder, now));
            }
            // Another reader removed it first, or it was set again.
            Ok(false) => {}
            Err(e) => {
                warn!(regex = %squelch::excerpt(&squelch.regex), error = %e, "cannot remove an expired squelch; the next reader tries again");
            }
        }
    }
    (in_force, records)
}

/// The `squelch-expired` record of `squelch`, removed by `recorder`: timed
/// at its expiry (when it stopped silencing alerts, however late a reader
/// saw it), else at `now`.
fn expired_record(squelch: &Squelch, recorder: &str, now: i64) -> Record {
    let mut record = Record::new(
        squelch.expires.unwrap_or(now),
        recorder,
        &squelch.regex,
        Event::SquelchExpired,
    );
    record.message = Some(squelch.reason.clone());
    record.user = Some(squelch.user.clone());
    record
}

/// The meta-check's `squelch-expiring-REGEX` WARNINGs (SPEC §12,
/// `meta::expiring_faults`). The fleet's faults are read only when a
/// squelch in force expires within `-x` minutes, so the meta-check's cost
/// grows with squelches about to end, not with the fleet (SPEC §6).
///
/// # Errors
/// When the faults cannot be read.
pub(crate) async fn expiring_faults(
    db: &dyn Db,
    squelches: &[Squelch],
    limits: Limits,
    now: i64,
) -> Result<Vec<MetaFault>, DbError> {
    let within = limits.expiring_minutes.saturating_mul(60);
    let soon = squelches
        .iter()
        .any(|s| s.active(now) && s.expires.is_some_and(|at| at - now <= within));
    if !soon {
        return Ok(Vec::new());
    }
    let faults = db.list_faults(None).await?;
    let critical: Vec<&str> = faults
        .iter()
        .filter(|held| held.fault.severity.is_critical())
        .map(|held| held.fault.name.as_str())
        .collect();
    Ok(meta::expiring_faults(squelches, &critical, limits, now))
}

impl Agent<'_> {
    /// The regexes of the squelches in force at `now`, read once per tick;
    /// expired ones are removed on the way, and their records queued with
    /// the tick's state: written with it, and retried with it after an
    /// outage (SPEC §12).
    ///
    /// # Errors
    /// When the squelches cannot be read (a failed removal is not one).
    pub(super) async fn squelches_in_force(&mut self, now: i64) -> Result<Vec<String>, DbError> {
        let stored = self.db.get_squelch_details().await?;
        let (in_force, records) =
            remove_expired(self.db.as_ref(), stored, &self.config.agent.name, now).await;
        self.history.extend(records);
        Ok(in_force.into_iter().map(|squelch| squelch.regex).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::db::{AgentFault, Fault, Heartbeat, MemoryDb, Notice, OpenAlert, StoppedAgent};

    /// A memory database that keeps what `append_history` is given.
    #[derive(Default)]
    struct Recording {
        inner: MemoryDb,
        history: Mutex<Vec<Record>>,
    }

    #[async_trait]
    impl Db for Recording {
        async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, DbError> {
            self.inner.get_faults(agent).await
        }
        async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), DbError> {
            self.inner.set_faults(agent, faults, now).await
        }
        async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), DbError> {
            self.inner.heartbeat(agent, now).await
        }
        async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, DbError> {
            self.inner.list_faults(agent).await
        }
        async fn agents(&self) -> Result<Vec<Heartbeat>, DbError> {
            self.inner.agents().await
        }
        async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
            self.inner.old_agents(age, now).await
        }
        async fn get_squelch_details(&self) -> Result<Vec<Squelch>, DbError> {
            self.inner.get_squelch_details().await
        }
        async fn squelch(&self, squelch: &Squelch) -> Result<(), DbError> {
            self.inner.squelch(squelch).await
        }
        async fn unsquelch(&self, regex: &str) -> Result<bool, DbError> {
            self.inner.unsquelch(regex).await
        }
        async fn remove_expired_squelch(&self, regex: &str, now: i64) -> Result<bool, DbError> {
            self.inner.remove_expired_squelch(regex, now).await
        }
        async fn remove_agent(&self, agent: &str) -> Result<(), DbError> {
            self.inner.remove_agent(agent).await
        }
        async fn stop_agent(
            &self,
            agent: &str,
            open: &[OpenAlert],
            now: i64,
        ) -> Result<(), DbError> {
            self.inner.stop_agent(agent, open, now).await
        }
        async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, DbError> {
            self.inner.open_alerts(agent).await
        }
        async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, DbError> {
            self.inner.stopped_agents().await
        }
        async fn clear_open_alerts(&self, agent: &str) -> Result<(), DbError> {
            self.inner.clear_open_alerts(agent).await
        }
        async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, DbError> {
            self.inner.notices(names).await
        }
        async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, DbError> {
            self.inner.put_notice(notice, expected).await
        }
        async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, DbError> {
            self.inner.heartbeats_of(agents).await
        }
        async fn append_history(&self, records: &[Record]) -> Result<(), DbError> {
            self.history.lock().unwrap().extend_from_slice(records);
            Ok(())
        }
        async fn history(&self, query: &crate::history::Query) -> Result<Vec<Record>, DbError> {
            self.inner.history(query).await
        }
    }

    fn squelch(regex: &str, expires: Option<i64>) -> Squelch {
        Squelch {
            regex: regex.into(),
            reason: "deploying".into(),
            user: "ann".into(),
            time: 100,
            permanent: false,
            expires,
        }
    }

    #[tokio::test]
    async fn an_expired_squelch_is_removed_and_recorded_once_by_two_readers() {
        let db = Recording::default();
        db.squelch(&squelch("web", Some(1000))).await.unwrap();
        db.squelch(&squelch("db", Some(5000))).await.unwrap();
        db.squelch(&squelch("mail", None)).await.unwrap();
        // Two readers saw the same list before either removed anything.
        let seen = db.get_squelch_details().await.unwrap();
        let first = expire(&db, seen.clone(), "agent1", 2000).await;
        let second = expire(&db, seen, "agent2", 2000).await;
        let regexes = |list: &[Squelch]| list.iter().map(|s| s.regex.clone()).collect::<Vec<_>>();
        assert_eq!(regexes(&first), ["db", "mail"]);
        assert_eq!(regexes(&second), ["db", "mail"]);
        assert_eq!(
            regexes(&db.get_squelch_details().await.unwrap()),
            ["db", "mail"]
        );
        let mut want = Record::new(1000, "agent1", "web", Event::SquelchExpired);
        want.message = Some("deploying".into());
        want.user = Some("ann".into());
        assert_eq!(*db.history.lock().unwrap(), [want]);
    }

    // See: #12. The agent writes the record with its tick's state, which
    // is retried after an outage; appending it here once would lose it.
    #[tokio::test]
    async fn the_agents_removal_returns_the_record_for_its_tick_and_appends_nothing() {
        let db = Recording::default();
        db.squelch(&squelch("web", Some(1000))).await.unwrap();
        let seen = db.get_squelch_details().await.unwrap();
        let (in_force, records) = remove_expired(&db, seen, "agent1", 2000).await;
        assert!(in_force.is_empty());
        assert!(db.get_squelch_details().await.unwrap().is_empty());
        let mut want = Record::new(1000, "agent1", "web", Event::SquelchExpired);
        want.message = Some("deploying".into());
        want.user = Some("ann".into());
        assert_eq!(records, [want]);
        assert!(db.history.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_squelch_set_again_after_the_read_stays() {
        let db = Recording::default();
        db.squelch(&squelch("web", Some(1000))).await.unwrap();
        let seen = db.get_squelch_details().await.unwrap();
        // Extended by its owner between the read and the removal.
        db.squelch(&squelch("web", Some(9000))).await.unwrap();
        let in_force = expire(&db, seen, "agent1", 2000).await;
        assert!(in_force.is_empty());
        assert_eq!(
            db.get_squelch_details().await.unwrap(),
            [squelch("web", Some(9000))]
        );
        assert!(db.history.lock().unwrap().is_empty());
    }
}
