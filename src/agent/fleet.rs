//! One notification per incident, fleet-wide (SPEC §10): the I/O around
//! `notice`'s transitions.
//!
//! A fleet fault (absolute name `//...`, its check's `notify` not
//! `per_agent`) is notified by the fleet, not by each agent: this agent's
//! planned trigger of one becomes a *join* of its notice, a planned resolve
//! a *leave*, and only a claim this agent wins is delivered (through its
//! own alerter route, fallbacks included: the claim covers the chain).
//! Every decision is made on the notice as read and written with
//! `Db::put_notice` over the version read; losing the race means reading
//! again and deciding again (`ATTEMPTS` times, then next tick).
//!
//! Costs: a fault held and delivered costs nothing per tick (its fault is
//! `triggered`, so the plan has nothing for it). Requests are made only
//! for what changes, for faults waiting on another agent's claim (read
//! each tick, to take an expired claim over) and for *watched* notices
//! (left while live holders remained: read each tick, to resolve once the
//! last one is stale or gone), all in one batched `notices` read and one
//! `heartbeats_of` per tick.
//!
//! A database error on this path delivers nothing for the fleet faults
//! concerned this tick; they are tried again next tick (a trigger stays
//! untriggered, a resolve is retried, a delivery whose record failed is
//! recorded next tick). This agent's own faults are delivered as usual
//! meanwhile, and no fleet notification is delivered without a claim, so
//! an outage never pages twice; the meta-check's `monitor-database` reports
//! the outage itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tracing::{debug, info, warn};

use super::Agent;
use super::store::db_budget;
use crate::checks::Notify;
use crate::db::{Claim, Error as DbError, Notice, Pending};
use crate::fault::{self, Action};
use crate::notice::{self, Churn, Joined, LastSent, Left, Step};

/// Reads and conditional writes of one notice per tick before giving up
/// on it until the next tick (other agents kept winning the race).
const ATTEMPTS: usize = 3;

/// Most newly dead agents whose faults one sweep reads (a `get_faults`
/// each): a zone going dark is taken in over a few meta-check runs rather
/// than in one burst of reads.
const DEAD_READS: usize = 10;

/// This agent's part in the fleet's notices.
#[derive(Debug, Default)]
pub(super) struct FleetState {
    /// Notices this agent left while live holders remained (or a claim of
    /// another agent was in force): read once per tick until resolved.
    watching: BTreeSet<String>,
    /// Deliveries claimed this tick, by fault name.
    claimed: BTreeMap<String, Pending>,
    /// Deliveries made whose record could not be written (database error):
    /// recorded next tick, before the claim expires and another agent
    /// delivers again. The flag: delivered (else failed).
    unrecorded: BTreeMap<String, (Pending, Option<LastSent>)>,
    /// Fleet faults restored as triggered from a previous run: joined again
    /// on the next tick, since the incident may have been resolved while
    /// this agent was away.
    rejoin: BTreeSet<String>,
    /// Since when the database has not answered this agent (its heartbeat
    /// ages meanwhile).
    unreachable_since: Option<i64>,
    /// Every fleet fault this agent holds as triggered is to be joined
    /// again: it was away long enough for the others to count it out.
    rejoin_all: bool,
    /// Each claim of another agent this agent waits on or watches, with
    /// when (on its own clock) it first saw it: claims expire on this
    /// agent's clock, never on the claimer's (`notice::Clock`).
    seen_claims: HashMap<String, (Claim, i64)>,
    /// Agents a sweep found stale (`sweep_dead_holders`), with the
    /// heartbeat time at which their faults were read: read once per
    /// stale period, forgotten when the agent beats again or is gone.
    dead: BTreeMap<String, i64>,
}

impl FleetState {
    /// Notes a fault of `agent` restored from a previous run; only absolute
    /// names can be fleet faults (whether its check's `notify` makes it one
    /// is known once the check directory is scanned).
    pub(super) fn restored(&mut self, agent: &str, name: &str, triggered: bool) {
        if triggered && notice::is_absolute(agent, name) {
            self.rejoin.insert(name.to_owned());
        }
    }

    /// Notes whether the database answered this tick's first call, at
    /// `now`. After an outage long enough (`stale_after` seconds) for this
    /// agent's heartbeat to be stale to the others, they may have resolved
    /// incidents it still holds: it joins them all again (which costs a
    /// read, and sends nothing for an incident still open).
    pub(super) fn database_answered(&mut self, answered: bool, now: i64, stale_after: i64) {
        match (answered, self.unreachable_since) {
            (false, None) => self.unreachable_since = Some(now),
            (true, Some(since)) => {
                self.unreachable_since = None;
                if now - since >= stale_after {
                    self.rejoin_all = true;
                }
            }
            _ => {}
        }
    }

    /// The notices this agent watches (their routes are kept for the
    /// resolve).
    pub(super) fn watching(&self) -> &BTreeSet<String> {
        &self.watching
    }
}

/// What this agent wants of one notice this tick.
#[derive(Clone, Debug)]
enum Intent {
    /// It finds the fault CRITICAL with this message.
    Join(String),
    /// It does not hold it (any more).
    Leave,
}

/// What came of an intent.
#[derive(Clone, Copy, Debug)]
enum Decision {
    Joined(Joined),
    Left(Left),
}

/// Heartbeats read this tick: `None` for an agent without one.
type Beats = HashMap<String, Option<i64>>;

pub(super) fn name_of(action: &Action) -> &str {
    match action {
        Action::Trigger { name, .. } | Action::Resolve { name } => name,
    }
}

impl Agent<'_> {
    /// Whether `name` is a fleet fault (SPEC §10): a fault of a check with
    /// an absolute name that does not say `notify: per_agent`.
    pub(super) fn is_fleet(&self, name: &str) -> bool {
        notice::is_absolute(&self.config.agent.name, name)
            && self
                .notifies
                .get(fault::check_of(name))
                .copied()
                .unwrap_or_default()
                == Notify::Fleet
    }

    /// Until when a claim made now holds off the other agents: one alerter
    /// call (`alert_timeout`) plus one database call to record it, from
    /// this instant, rounded up to the next second.
    fn claim_until(&self) -> i64 {
        let alert = self.config.agent.alert_timeout.as_secs_f64();
        let record = db_budget(self.config.agent.base_interval).as_secs_f64();
        #[expect(clippy::cast_possible_truncation, reason = "epoch seconds fit in i64")]
        let until = (self.clock.now() + alert + record).ceil() as i64;
        until
    }

    /// Seconds after which a holder's heartbeat is too old for it to hold.
    pub(super) fn holder_timeout(&self) -> i64 {
        let secs = f64::from(self.config.alerting.holder_timeout) * self.config.agent.base_interval;
        #[expect(clippy::cast_possible_truncation, reason = "seconds, far below 2^53")]
        let secs = secs.ceil() as i64;
        secs
    }

    /// The sweep for incidents whose only holder died (SPEC §10), run by
    /// an agent on the ticks its meta-check ran: reads the agents stale for
    /// `alerting.holder_timeout` (one `old_agents`), and the stored faults
    /// of each one newly stale (at most `DEAD_READS` per sweep, once per
    /// stale period); the critical fleet faults among them that this agent
    /// does not itself hold or watch are watched from now on. Watching is
    /// what a holder that cleared does: the notice is read in this tick's
    /// fleet step, and with no live holder left, the resolve is claimed and
    /// delivered by one of the sweeping agents (the claim decides which),
    /// through this agent's route for the check, its default alerter when
    /// it does not run the check. A notice that records no open incident
    /// (nothing delivered, a `per_agent` check) is dropped at once.
    ///
    /// A database error skips the rest of the sweep: it is tried again at
    /// the next meta-check run.
    pub(super) async fn sweep_dead_holders(&mut self, now: i64) {
        let stale = match self.db.old_agents(self.holder_timeout(), now).await {
            Ok(stale) => stale,
            Err(e) => {
                warn!(error = %e, "cannot read the stale agents; looking for incidents they held at the next meta-check run");
                return;
            }
        };
        let me = self.config.agent.name.clone();
        let stale: BTreeMap<String, i64> = stale
            .into_iter()
            .filter(|heartbeat| heartbeat.name != me)
            .map(|heartbeat| (heartbeat.name, heartbeat.updated))
            .collect();
        self.fleet
            .dead
            .retain(|agent, updated| stale.get(agent) == Some(updated));
        let newly: Vec<(String, i64)> = stale
            .into_iter()
            .filter(|(agent, _)| !self.fleet.dead.contains_key(agent))
            .take(DEAD_READS)
            .collect();
        for (agent, updated) in newly {
            let faults = match self.db.get_faults(&agent).await {
                Ok(faults) => faults,
                Err(e) => {
                    warn!(agent = %agent, error = %e, "cannot read a stale agent's faults; trying again at the next meta-check run");
                    return;
                }
            };
            for fault in faults {
                let name = fault.name;
                // A fault seen here only as a WARNING is not held here.
                let known_here = self
                    .faults
                    .get(&name)
                    .is_some_and(|here| here.triggered || here.severity.is_critical())
                    || self.opened.contains(&name)
                    || self
                        .notifies
                        .get(fault::check_of(&name))
                        .is_some_and(|notify| *notify != Notify::Fleet);
                if fault.severity.is_critical()
                    && notice::is_absolute(&agent, &name)
                    && !known_here
                    && self.fleet.watching.insert(name.clone())
                {
                    info!(fault = %name, holder = %agent, "a stale agent held this fleet fault; watching it until no live agent does");
                }
            }
            self.fleet.dead.insert(agent, updated);
        }
    }

    /// Takes this tick's planned actions; returns those this agent delivers.
    /// Fleet faults' triggers and resolves go through their notices: only
    /// a won claim is delivered here.
    pub(super) async fn claim_fleet(&mut self, actions: Vec<Action>, now: i64) -> Vec<Action> {
        // A claim of an earlier tick whose delivery never came back (it
        // should not happen): left to expire, and another holder delivers.
        for (name, pending) in std::mem::take(&mut self.fleet.claimed) {
            warn!(fault = %name, claim = ?pending, "a claimed fleet notification was not delivered; its claim expires");
        }
        let (fleet, mut deliver): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|action| self.is_fleet(name_of(action)));
        let mut intents = self.intents(&fleet);
        let mut names: BTreeSet<String> = intents.keys().cloned().collect();
        names.extend(self.fleet.unrecorded.keys().cloned());
        if names.is_empty() {
            return deliver;
        }
        let names: Vec<String> = names.into_iter().collect();
        let mut read: BTreeMap<String, Notice> = match self.db.notices(&names).await {
            Ok(notices) => notices.into_iter().map(|n| (n.name.clone(), n)).collect(),
            Err(e) => {
                warn!(error = %e, faults = names.len(), "cannot read the fleet's notices; delivering nothing for fleet faults this tick, trying again next tick");
                for (name, intent) in intents {
                    self.not_now(&name, &intent);
                }
                return deliver;
            }
        };
        // A planned resolve of a vanished check whose `notify` is no longer
        // known and that no notice records was this agent's own alert (a
        // `per_agent` check, e.g. restored after a restart): resolved as
        // such, never lost. At worst an incident the fleet closed already
        // gets one more resolve.
        let orphans: Vec<String> = fleet
            .iter()
            .filter_map(|action| match action {
                Action::Resolve { name }
                    if !self.notifies.contains_key(fault::check_of(name))
                        && !self.fleet.watching.contains(name)
                        && !read.contains_key(name) =>
                {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        for name in orphans {
            intents.remove(&name);
            deliver.push(Action::Resolve { name });
        }
        for name in &names {
            read.entry(name.clone())
                .or_insert_with(|| Notice::new(name));
        }
        self.record_unrecorded(&mut read).await;

        // One read of the heartbeats of every holder a leave must judge.
        let me = self.config.agent.name.clone();
        let mut beats = Beats::new();
        let holders: BTreeSet<String> = intents
            .iter()
            .filter(|(_, intent)| matches!(intent, Intent::Leave))
            .filter_map(|(name, _)| read.get(name))
            .flat_map(|notice| notice.holders.iter())
            .filter(|holder| **holder != me)
            .cloned()
            .collect();
        let mut beats_ok = true;
        if let Err(e) = self.know_beats(holders, &mut beats).await {
            warn!(error = %e, "cannot read the heartbeats of fleet faults' holders; resolving none this tick");
            beats_ok = false;
        }

        // SPEC §6: the fleet's part of the tick waits on the database for
        // one call's budget in all; what is left is decided next tick.
        let deadline = tokio::time::Instant::now() + db_budget(self.config.agent.base_interval);
        let mut seen_claims = std::mem::take(&mut self.fleet.seen_claims);
        seen_claims.retain(|name, _| intents.contains_key(name));
        for (name, intent) in intents {
            if matches!(intent, Intent::Leave) && !beats_ok
                || tokio::time::Instant::now() >= deadline
            {
                self.not_now(&name, &intent);
                continue;
            }
            let notice = read.remove(&name).unwrap_or_else(|| Notice::new(&name));
            let decided = self
                .decide(&name, &intent, notice, &mut beats, &mut seen_claims, now)
                .await;
            match decided {
                Ok(Some(decision)) => {
                    if let Some(action) = self.apply(&name, &intent, decision) {
                        deliver.push(action);
                    }
                }
                Ok(None) => {
                    debug!(fault = %name, "lost the race for a fleet notice {ATTEMPTS} times; trying again next tick");
                    self.not_now(&name, &intent);
                }
                Err(e) => {
                    warn!(fault = %name, error = %e, "cannot update the fleet notice; trying again next tick");
                    self.not_now(&name, &intent);
                }
            }
        }
        self.fleet.seen_claims = seen_claims;
        deliver
    }

    /// What this agent wants of which notices this tick: its planned
    /// fleet actions, the faults to join again, the notices it watches.
    fn intents(&mut self, fleet: &[Action]) -> BTreeMap<String, Intent> {
        let mut intents: BTreeMap<String, Intent> = BTreeMap::new();
        for action in fleet {
            let intent = match action {
                Action::Trigger { message, .. } => Intent::Join(message.clone()),
                Action::Resolve { .. } => Intent::Leave,
            };
            intents.insert(name_of(action).to_owned(), intent);
        }
        if std::mem::take(&mut self.fleet.rejoin_all) {
            let held = self.faults.values().filter(|f| f.triggered);
            let held: Vec<String> = held.map(|f| f.name.clone()).collect();
            for name in held {
                if self.is_fleet(&name) {
                    self.fleet.rejoin.insert(name);
                }
            }
        }
        for name in std::mem::take(&mut self.fleet.rejoin) {
            let Some(fault) = self.faults.get(&name) else {
                continue;
            };
            // Not critical any more, or squelched: the plan resolves it.
            if !self.is_fleet(&name)
                || !fault.triggered
                || !fault.severity.is_critical()
                || self.squelches.matches(&name)
            {
                continue;
            }
            intents
                .entry(name)
                .or_insert_with(|| Intent::Join(fault.message.clone()));
        }
        for name in &self.fleet.watching {
            intents.entry(name.clone()).or_insert(Intent::Leave);
        }
        intents
    }

    /// A decision could not be made this tick: make sure it is tried again.
    fn not_now(&mut self, name: &str, intent: &Intent) {
        match intent {
            // A trigger that is not `triggered` is planned again; a fault
            // being rejoined is rejoined again.
            Intent::Join(_) => {
                if self.faults.get(name).is_some_and(|f| f.triggered) {
                    self.fleet.rejoin.insert(name.to_owned());
                }
            }
            // A watched notice stays watched; a planned resolve is retried
            // whether or not its check runs next tick.
            Intent::Leave => {
                if !self.fleet.watching.contains(name) {
                    self.retry_resolves.insert(name.to_owned());
                }
            }
        }
    }

    /// Reads the heartbeats of those of `agents` not read yet this tick.
    async fn know_beats(
        &self,
        agents: impl IntoIterator<Item = String>,
        beats: &mut Beats,
    ) -> Result<(), DbError> {
        let missing: Vec<String> = agents
            .into_iter()
            .filter(|agent| !beats.contains_key(agent))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let found = self.db.heartbeats_of(&missing).await?;
        for agent in missing {
            beats.insert(agent, None);
        }
        for heartbeat in found {
            beats.insert(heartbeat.name, Some(heartbeat.updated));
        }
        Ok(())
    }

    /// Reads one notice again (after losing a race for it).
    async fn read_notice(&self, name: &str) -> Result<Notice, DbError> {
        let notices = self.db.notices(&[name.to_owned()]).await?;
        Ok(notices
            .into_iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| Notice::new(name)))
    }

    /// Writes `next` over `read`'s version; on success returns what is
    /// stored now (for later decisions this tick without reading again).
    async fn put(&self, next: &Notice, read: &Notice) -> Result<Option<Notice>, DbError> {
        if !self.db.put_notice(next, read.version).await? {
            return Ok(None);
        }
        if next.is_empty() {
            return Ok(Some(Notice::new(&next.name)));
        }
        let mut stored = next.clone();
        stored.version = read.version + 1;
        Ok(Some(stored))
    }

    /// Decides `intent` on `notice` and writes the outcome; `None` after
    /// losing the race `ATTEMPTS` times.
    async fn decide(
        &self,
        name: &str,
        intent: &Intent,
        mut notice: Notice,
        beats: &mut Beats,
        seen_claims: &mut HashMap<String, (Claim, i64)>,
        now: i64,
    ) -> Result<Option<Decision>, DbError> {
        let me = &self.config.agent.name;
        let timeout = self.holder_timeout();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                notice = self.read_notice(name).await?;
            }
            let seen = match &notice.claim {
                None => {
                    seen_claims.remove(name);
                    now
                }
                Some(claim) => match seen_claims.get(name) {
                    Some((known, at)) if known == claim => *at,
                    _ => {
                        seen_claims.insert(name.to_owned(), (claim.clone(), now));
                        now
                    }
                },
            };
            let clock = notice::Clock {
                seen,
                now,
                until: self.claim_until(),
            };
            let step = match intent {
                Intent::Join(message) => {
                    // A flapping alert is always sent, as it is per agent.
                    let reported = if self.is_flapping_alert(name, message) {
                        None
                    } else {
                        self.noise_reported(name)
                    };
                    let churn = Churn {
                        renotify: self.renotify_of(name),
                        reported,
                    };
                    let Step { write, then } = notice::join(&notice, me, message, churn, clock);
                    Step {
                        write,
                        then: Decision::Joined(then),
                    }
                }
                Intent::Leave => {
                    let holders = notice.holders.iter().filter(|h| *h != me).cloned();
                    self.know_beats(holders.collect::<Vec<_>>(), beats).await?;
                    let live = |holder: &str| {
                        notice::is_live(beats.get(holder).copied().flatten(), now, timeout)
                    };
                    let Step { write, then } = notice::leave(&notice, me, &live, clock);
                    Step {
                        write,
                        then: Decision::Left(then),
                    }
                }
            };
            let Some(next) = step.write else {
                return Ok(Some(step.then));
            };
            if self.put(&next, &notice).await?.is_some() {
                return Ok(Some(step.then));
            }
            debug!(fault = %name, "another agent wrote the fleet notice first; reading it again");
        }
        Ok(None)
    }

    /// Applies a decision to this agent's state; the action to deliver
    /// when it claimed one.
    fn apply(&mut self, name: &str, intent: &Intent, decision: Decision) -> Option<Action> {
        match (intent, decision) {
            (Intent::Join(_), Decision::Joined(Joined::Sent)) => {
                debug!(fault = %name, "fleet fault already notified for this incident");
                self.set_fleet_triggered(name, true);
                self.opened.insert(name.to_owned());
                self.fleet.watching.remove(name);
                None
            }
            (Intent::Join(_), Decision::Joined(Joined::Wait)) => {
                debug!(fault = %name, "another agent is delivering this fleet fault's notification; looking again next tick");
                // A holder: a resolve is planned for it once it clears.
                self.set_fleet_triggered(name, false);
                self.opened.insert(name.to_owned());
                self.fleet.watching.remove(name);
                None
            }
            (Intent::Join(message), Decision::Joined(Joined::Deliver)) => {
                let pending = Pending::Trigger {
                    message: message.clone(),
                };
                self.fleet.claimed.insert(name.to_owned(), pending);
                self.opened.insert(name.to_owned());
                self.fleet.watching.remove(name);
                Some(Action::Trigger {
                    name: name.to_owned(),
                    message: message.clone(),
                })
            }
            (_, Decision::Left(left)) => {
                self.set_fleet_triggered(name, false);
                self.retry_resolves.remove(name);
                match left {
                    Left::Done => {
                        self.opened.remove(name);
                        self.fleet.watching.remove(name);
                        None
                    }
                    Left::Watch => {
                        if self.fleet.watching.insert(name.to_owned()) {
                            debug!(fault = %name, "left the fleet fault; other holders remain, watching it");
                        }
                        self.opened.remove(name);
                        None
                    }
                    Left::Deliver => {
                        // Kept open until the resolve is recorded.
                        self.fleet.watching.remove(name);
                        self.fleet.claimed.insert(name.to_owned(), Pending::Resolve);
                        Some(Action::Resolve {
                            name: name.to_owned(),
                        })
                    }
                }
            }
            (Intent::Leave, Decision::Joined(_)) => None,
        }
    }

    fn set_fleet_triggered(&mut self, name: &str, triggered: bool) {
        if let Some(fault) = self.faults.get_mut(name) {
            fault.triggered = triggered;
        }
    }

    /// Records the deliveries whose record failed earlier, on the notices
    /// just read (updated in place).
    async fn record_unrecorded(&mut self, read: &mut BTreeMap<String, Notice>) {
        for (name, (pending, delivered)) in std::mem::take(&mut self.fleet.unrecorded) {
            let notice = read.remove(&name).unwrap_or_else(|| Notice::new(&name));
            match self.record_notice(notice, &pending, delivered).await {
                Ok(Some(stored)) => {
                    read.insert(name, stored);
                }
                Ok(None) => {
                    debug!(fault = %name, "the fleet notice keeps changing; recording next tick");
                    self.fleet.unrecorded.insert(name, (pending, delivered));
                }
                Err(e) => {
                    warn!(fault = %name, error = %e, "cannot record a fleet notification yet; trying again next tick");
                    self.fleet.unrecorded.insert(name, (pending, delivered));
                }
            }
        }
    }

    /// Records a delivery (or its failure) in the notice read as `notice`;
    /// returns the notice as stored afterwards, `None` after losing the race
    /// `ATTEMPTS` times (only this agent writes over its own claim, but
    /// holders joining meanwhile change the record too).
    async fn record_notice(
        &self,
        mut notice: Notice,
        pending: &Pending,
        delivered: Option<LastSent>,
    ) -> Result<Option<Notice>, DbError> {
        let me = &self.config.agent.name;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                notice = self.read_notice(&notice.name).await?;
            }
            let Some(next) = notice::record(&notice, me, pending, delivered) else {
                // Taken over after the claim expired: the new claimer records.
                debug!(fault = %notice.name, "the claim was taken over; not recording over it");
                return Ok(Some(notice));
            };
            if let Some(stored) = self.put(&next, &notice).await? {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }

    /// After a delivery: true when `action` was a fleet notification, whose
    /// outcome is recorded here (in its notice and this agent's state).
    /// `refused`: every alerter refused the event as invalid (not resent
    /// until its message changes, SPEC §5: the fleet records it as handled).
    pub(super) async fn fleet_delivered(
        &mut self,
        action: &Action,
        delivered: bool,
        refused: bool,
        now: i64,
    ) -> bool {
        let name = name_of(action);
        let Some(pending) = self.fleet.claimed.remove(name) else {
            return false;
        };
        // The flapping alert holds nothing back under `renotify`: the
        // message that follows it goes out at once, as it does per agent.
        let flapping = matches!(action, Action::Trigger { name, message }
            if self.is_flapping_alert(name, message));
        let handled =
            (delivered || (refused && matches!(pending, Pending::Trigger { .. }))).then(|| {
                LastSent {
                    at: if flapping { 0 } else { now },
                    reported: self
                        .noise_reported(name)
                        .or_else(|| self.faults.get(name).map(|fault| fault.severity))
                        .unwrap_or(crate::severity::Severity::CRITICAL),
                }
            });
        let recorded = match self.read_notice(name).await {
            Ok(notice) => self.record_notice(notice, &pending, handled).await,
            Err(e) => Err(e),
        };
        match recorded {
            Ok(Some(_)) => {}
            Ok(None) => {
                debug!(fault = %name, "the fleet notice keeps changing; recording next tick");
                self.fleet
                    .unrecorded
                    .insert(name.to_owned(), (pending.clone(), handled));
            }
            Err(e) => {
                warn!(fault = %name, error = %e, "cannot record the fleet notification; recording it next tick");
                self.fleet
                    .unrecorded
                    .insert(name.to_owned(), (pending.clone(), handled));
            }
        }
        match pending {
            Pending::Trigger { .. } => {
                if delivered {
                    info!(fault = %name, "fleet alert triggered");
                }
                self.set_fleet_triggered(name, handled.is_some());
            }
            Pending::Resolve => {
                self.opened.remove(name);
                if delivered {
                    info!(fault = %name, "fleet alert resolved");
                } else {
                    // Resolved later by this agent (or a holder that joins).
                    self.fleet.watching.insert(name.to_owned());
                }
            }
        }
        true
    }
}
