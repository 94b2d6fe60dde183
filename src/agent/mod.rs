//! The daemon: ticks, runs due checks, keeps fault state, alerts, stores.
//!
//! Owns the tick loop (`run`, `ticks`, `tick`), the per-check state (failure
//! counter, last failure), the current fault set and the record of alerts
//! that may be open. Pure decisions live in `scheduler` (when), `fault` (what
//! state, which alerts); this module and its parts do the I/O around them:
//! `check_dir` scans the check directory, `runner` runs due checks
//! concurrently (bounded by a semaphore and each check's timeout), `alerts`
//! delivers alerts within `alert_timeout`; the tick writes the database and
//! feeds the metric buffer (whose drops become the WARNING `AGENT#metrics`).
//! State is loaded from the database on start, so separate `--once`
//! processes behave like one long-running agent; when the database does not
//! answer then, the agent runs from an empty state and reconciles once it
//! does (SPEC §14). Ticks start `agent.splay` seconds after their boundary. A clean stop (SIGTERM)
//! deregisters but keeps the alerts still open (SPEC §14); the next start
//! restores them with the stored faults, so it resolves those that cleared.
//!
//! Time: sleeps, intervals and timeouts are tokio's; every epoch second the
//! agent reads comes from the `Clock` given to `run`, so a test on a paused
//! tokio clock drives the whole loop.

mod alerts;
mod check_dir;
mod clock;
mod meta_check;
mod observations;
mod runner;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

pub use clock::Clock;
pub(crate) use meta_check::meta_faults;
pub(crate) use observations::{Memory, memory_of};
pub(crate) use runner::{Fleet, run_check};

use crate::alerters::Alerters;
use crate::checks::CheckDef;
use crate::checks::{self, CheckOutput, Probes};
use crate::config::{Config, Splay};
use crate::db::{
    AgentFacts, AgentFault, Db, Error as DbError, Fault, Heartbeat, OpenAlert, SkippedRow, Squelch,
    StoppedAgent,
};
use crate::fault;
use crate::limits;
use crate::scheduler;
use crate::severity::Severity;
use crate::signals::Control;
use crate::sinks::{MetricBuffer, MetricRecord, Sink};
use crate::squelch::Matcher;
use check_dir::CheckDirectory;

/// How long a normal exit waits for queued metrics.
const METRICS_FLUSH: Duration = Duration::from_secs(5);
/// How long a normal exit waits for the last database write.
const WRITE_FLUSH: Duration = Duration::from_secs(10);
/// On a signal, metrics and deregistration share SPEC §9's 10 s budget.
const SIGNAL_METRICS_FLUSH: Duration = Duration::from_secs(2);
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(7);
/// Out of `DEREGISTER_TIMEOUT`: the last chance to load a previous state
/// the database never gave (SPEC §14).
const LAST_LOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two attempts to deregister.
const DEREGISTER_PAUSE: Duration = Duration::from_millis(200);
/// The most a database call may take, whatever the base interval.
const DB_CALL_MAX: Duration = Duration::from_secs(10);

/// How many ticks to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Until shut down.
    Forever,
    /// This many aligned ticks, then exit.
    Count(u64),
    /// One tick now, every check due, then exit.
    Once,
}

/// The backends an agent talks to; tests inject fakes.
pub struct Backends {
    pub db: Arc<dyn Db>,
    pub alerters: Arc<Alerters>,
    pub sink: Option<(Arc<dyn Sink>, usize)>,
}

/// Failures that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No longer returned since a database down at start no longer stops
    /// the agent (SPEC §14); kept so that callers' matches stay valid.
    #[error("cannot reach the database at startup")]
    Database(#[source] crate::db::Error),
}

/// Per-check scheduling and escalation state.
#[derive(Clone, Debug, Default)]
struct CheckState {
    counter: u32,
    /// Consecutive runs with a broken monitor (`fault::escalate_run`).
    monitor_runs: u32,
    last_failure: Option<i64>,
}

#[expect(clippy::cast_possible_truncation, reason = "epoch seconds fit in i64")]
fn whole(seconds: f64) -> i64 {
    seconds.floor() as i64
}

/// The running agent's state.
struct Agent<'a> {
    config: &'a Config,
    /// The one source of epoch seconds.
    clock: Clock,
    /// Every call bounded by the tick's budget (see `Bounded`).
    db: Arc<dyn Db>,
    /// Writes the tick's state off its critical path.
    writer: Writer,
    alerters: Arc<Alerters>,
    metrics: Option<MetricBuffer>,
    /// `MetricBuffer::dropped` at the previous tick.
    dropped_seen: u64,
    /// Metrics dropped since `AGENT#metrics` appeared.
    dropped_in_fault: u64,
    directory: CheckDirectory,
    /// Each check's alerter route; kept for vanished checks until their alerts are resolved.
    routes: HashMap<String, Option<String>>,
    states: HashMap<String, CheckState>,
    faults: BTreeMap<String, Fault>,
    /// Faults whose alert may be open at the receiver.
    opened: BTreeSet<String>,
    /// Resolves that failed and are retried next tick.
    retry_resolves: BTreeSet<String>,
    /// Last squelches read (kept when the database cannot be read).
    squelches: Matcher,
    /// One permit per check or probe in flight.
    semaphore: Arc<Semaphore>,
    /// Checks in flight at once (`max_concurrency`, within the open-file limit).
    concurrency: usize,
    /// HTTP clients and per-host limits shared by every probe.
    probes: Arc<Probes>,
    /// Seconds after each tick's start at which the agent starts it.
    splay: f64,
    /// The previous run's state is not loaded yet: the database did not
    /// answer at start (SPEC §14). Nothing is written until it is.
    unloaded: bool,
    /// The attempt in flight to load it.
    loading: Option<JoinHandle<Result<Stored, DbError>>>,
}

/// What the previous run left: its faults and the open alerts a clean stop
/// kept.
type Stored = (Vec<Fault>, Vec<OpenAlert>);

/// Reads what the previous run of agent `name` left.
async fn load_previous(db: Arc<dyn Db>, name: String) -> Result<Stored, DbError> {
    let previous = db.get_faults(&name).await?;
    let kept = db.open_alerts(&name).await?;
    Ok((previous, kept))
}

/// `agent.splay` in seconds: the configured value, or the offset from the
/// agent's name.
fn splay(config: &Config) -> f64 {
    match config.agent.splay {
        Splay::Auto => scheduler::splay_offset(&config.agent.name, config.agent.base_interval),
        Splay::Seconds(secs) => secs,
    }
}

/// Which checks a tick runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    /// Those whose schedule says so.
    Scheduled,
    /// Every check (`--once`).
    All,
    /// None: a rescan (SIGHUP) that only applies added and removed checks.
    Nothing,
}

/// Runs the agent until `mode` says stop or a `Control::Shutdown` arrives.
///
/// `clock` gives every epoch second the agent reads (`Clock::system()` in
/// production). `controls` carries signals (see `signals`); tests send their own. On
/// shutdown the agent stops at once (running plugin groups are killed) and
/// removes its heartbeat and faults from the database, keeping its open
/// alerts for the next start (SPEC §14); after `--once` or `--count` it
/// never deregisters. A start restores the alerts a clean stop kept.
///
/// A database that does not answer at start does not stop it: it runs
/// from an empty state and reconciles once the database answers (SPEC §14).
///
/// # Errors
/// None today: `Error` is kept for the callers' signature.
pub async fn run(
    config: &Config,
    backends: Backends,
    clock: Clock,
    mode: Mode,
    mut controls: mpsc::UnboundedReceiver<Control>,
) -> Result<(), Error> {
    let name = config.agent.name.clone();
    let concurrency = concurrency(config);
    let now = clock.now();
    // The version from the first heartbeat on; the number of checks once the
    // first tick has scanned the directory (SPEC §14).
    backends
        .db
        .set_facts(&name, AgentFacts::of_this_build(None));
    // No call waits longer than the tick can spare (SPEC §6), not even the
    // first: a database down at start must not keep the checks waiting.
    let budget = db_budget(config.agent.base_interval);
    backends.db.limit_waits(budget);
    let db: Arc<dyn Db> = Arc::new(Bounded {
        inner: backends.db,
        budget,
    });
    // An agent whose database is down at start runs from an empty state and
    // reconciles once it answers (SPEC §14), rather than exiting and leaving
    // the host unmonitored while the database is down.
    let (previous, kept, unloaded) = start_state(&db, &name, whole(now)).await;
    let (metrics, drain) = match backends.sink {
        Some((sink, size)) => {
            let (buffer, task) = MetricBuffer::spawn(sink, size);
            (Some(buffer), Some(task))
        }
        None => (None, None),
    };
    let mut agent = Agent {
        config,
        clock,
        // The kept alerts are dropped once a write holds them as faults.
        writer: Writer::spawn(Arc::clone(&db), &name, !kept.is_empty()),
        db,
        alerters: backends.alerters,
        metrics,
        dropped_seen: 0,
        dropped_in_fault: 0,
        directory: CheckDirectory::new(
            config.scope(),
            &config.agent.directory,
            &config.agent.state_dir,
        ),
        routes: HashMap::new(),
        states: HashMap::new(),
        faults: BTreeMap::new(),
        opened: BTreeSet::new(),
        retry_resolves: BTreeSet::new(),
        squelches: Matcher::default(),
        semaphore: Arc::new(Semaphore::new(concurrency)),
        concurrency,
        probes: Arc::new(Probes::with_nameservers(config.agent.resolver.clone())),
        splay: splay(config),
        unloaded,
        loading: None,
    };
    agent.restore(previous);
    agent.restore_kept(kept);
    info!(
        agent = %name,
        directory = %config.agent.directory.display(),
        splay_secs = agent.splay,
        "agent started"
    );
    for warning in &config.warnings {
        warn!(config = %config.path.display(), warning = %warning, "configuration warning");
    }

    let (stop_sender, stop) = watch::channel(false);
    let reload = Arc::new(Notify::new());
    let reload_sender = reload.clone();
    let forward = tokio::spawn(async move {
        while let Some(control) = controls.recv().await {
            match control {
                Control::Shutdown => {
                    let _ = stop_sender.send(true);
                    return;
                }
                Control::Reload => reload_sender.notify_one(),
            }
        }
        // No more signals can come; keep the sender so `stop` never fires.
        std::future::pending::<()>().await;
    });
    let signalled = agent.ticks(mode, stop, &reload).await;
    forward.abort();
    let flush = if signalled {
        SIGNAL_METRICS_FLUSH
    } else {
        METRICS_FLUSH
    };
    if let Some(buffer) = &agent.metrics
        && !buffer.flush(flush).await
    {
        warn!(waiting = buffer.len(), "metrics still queued at exit");
    }
    if let Some(task) = drain {
        task.abort();
    }
    agent.leave(signalled).await;
    Ok(())
}

impl Agent<'_> {
    /// Ends the run: after a signal the write in flight is cancelled and the
    /// agent deregisters, keeping its open alerts (SPEC §9, §14); after
    /// `--once` or `--count` the last write is awaited and nothing removed.
    ///
    /// When the previous state is still not loaded (the database did not
    /// answer since the start), a signal first gives it one last short
    /// chance; without it the agent does not deregister, since removing its
    /// stored faults unread would forget the alerts they know to be open.
    async fn leave(mut self, signalled: bool) {
        let name = self.config.agent.name.clone();
        let mut deregister_within = DEREGISTER_TIMEOUT;
        if signalled && self.unloaded {
            let started = tokio::time::Instant::now();
            let attempt = match self.loading.take() {
                Some(attempt) => attempt,
                None => tokio::spawn(load_previous(Arc::clone(&self.db), name.clone())),
            };
            match tokio::time::timeout(LAST_LOAD_TIMEOUT, attempt).await {
                Ok(Ok(Ok((previous, kept)))) => self.reconcile(previous, kept),
                Ok(Ok(Err(e))) => warn!(error = %e, "cannot load the previous state"),
                Ok(Err(e)) => error!(error = %e, "loading the previous state failed"),
                Err(_) => warn!("loading the previous state timed out"),
            }
            deregister_within = deregister_within.saturating_sub(started.elapsed());
        }
        let open = self.open_alerts(whole(self.clock.now()));
        let unloaded = self.unloaded;
        let Agent {
            db, writer, clock, ..
        } = self;
        if signalled && unloaded {
            writer.cancel();
            error!(
                agent = %name,
                "shutting down without having reached the database: leaving what it holds for this agent as it is"
            );
        } else if signalled {
            writer.cancel();
            info!(
                agent = %name,
                open_alerts = open.len(),
                "shutting down: removing this agent from the database, keeping its open alerts"
            );
            deregister(
                db.as_ref(),
                &name,
                &open,
                whole(clock.now()),
                deregister_within,
            )
            .await;
        } else {
            writer.finish(WRITE_FLUSH).await;
        }
    }
}

/// The first heartbeat and the previous state (stored faults, alerts kept
/// at the last clean stop), or empty and "unloaded" when the database does
/// not answer: the agent then runs from an empty state and reconciles once
/// it answers (SPEC §14), rather than exiting and leaving the host
/// unmonitored while the database is down.
async fn start_state(db: &Arc<dyn Db>, name: &str, now: i64) -> (Vec<Fault>, Vec<OpenAlert>, bool) {
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

/// How long one database call may take: half a base interval, so that the
/// squelch read and the alerts after it stay within the tick (SPEC §6).
fn db_budget(base_interval: f64) -> Duration {
    Duration::try_from_secs_f64(base_interval / 2.0)
        .unwrap_or(DB_CALL_MAX)
        .min(DB_CALL_MAX)
}

/// Removes the agent from the database, keeping its `open` alerts (SPEC
/// §14), trying again (a lock held by another process, a blip) until
/// `within` runs out.
async fn deregister(db: &dyn Db, name: &str, open: &[OpenAlert], now: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match tokio::time::timeout_at(deadline, db.stop_agent(name, open, now)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if tokio::time::Instant::now() + DEREGISTER_PAUSE >= deadline {
            error!(error = %error, attempts, "cannot remove this agent from the database");
            return;
        }
        debug!(error = %error, attempts, "cannot remove this agent from the database yet; trying again");
        tokio::time::sleep(DEREGISTER_PAUSE).await;
    }
}

/// The fault set and time of one write.
type Snapshot = (Vec<Fault>, i64);

/// Writes each tick's fault set off the tick's critical path.
///
/// The tick hands over its newest state and goes on. A write still in flight
/// when the next tick hands over is not doubled: the task writes once more,
/// with the newest state, when it is done (a `watch` keeps only that).
///
/// After a start that restored kept open alerts (SPEC §14), the first write
/// that succeeds is followed by removing the kept record: from then on the
/// alerts are in the stored faults. Until that removal succeeds it is tried
/// again after every write; a start in between restores them once more,
/// which at worst repeats a resolve.
struct Writer {
    db: Arc<dyn Db>,
    agent: String,
    state: watch::Sender<Option<Snapshot>>,
    task: JoinHandle<()>,
    /// The kept open alerts are still to be removed.
    clear_kept: Arc<AtomicBool>,
}

impl Writer {
    fn spawn(db: Arc<dyn Db>, agent: &str, clear_kept: bool) -> Writer {
        let clear_kept = Arc::new(AtomicBool::new(clear_kept));
        let (state, task) =
            Writer::start(Arc::clone(&db), agent.to_owned(), Arc::clone(&clear_kept));
        Writer {
            db,
            agent: agent.to_owned(),
            state,
            task,
            clear_kept,
        }
    }

    fn start(
        db: Arc<dyn Db>,
        agent: String,
        clear_kept: Arc<AtomicBool>,
    ) -> (watch::Sender<Option<Snapshot>>, JoinHandle<()>) {
        let (state, mut receiver) = watch::channel(None::<Snapshot>);
        let task = tokio::spawn(async move {
            // Ends when the sender is gone and the last state is written.
            while receiver.changed().await.is_ok() {
                let Some((faults, now)) = receiver.borrow_and_update().clone() else {
                    continue;
                };
                if let Err(e) = db.set_faults(&agent, &faults, now).await {
                    error!(error = %e, "cannot write faults to the database; the next tick writes the full state again");
                    continue;
                }
                if clear_kept.load(Ordering::SeqCst) {
                    match db.clear_open_alerts(&agent).await {
                        Ok(()) => clear_kept.store(false, Ordering::SeqCst),
                        Err(e) => {
                            warn!(error = %e, "cannot remove the open alerts kept at the last stop; trying again after the next write");
                        }
                    }
                }
            }
        });
        (state, task)
    }

    /// Hands the newest state over; starts the task again if it died.
    fn write(&mut self, faults: Vec<Fault>, now: i64) {
        if self.task.is_finished() {
            error!("the database writer stopped; starting it again");
            (self.state, self.task) = Writer::start(
                Arc::clone(&self.db),
                self.agent.clone(),
                Arc::clone(&self.clear_kept),
            );
        }
        self.state.send_replace(Some((faults, now)));
    }

    /// Waits up to `wait` for the last state to be written.
    async fn finish(self, wait: Duration) {
        let Writer { state, task, .. } = self;
        drop(state);
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "the database writer failed"),
            Err(_) => error!("the last database write did not finish in time"),
        }
    }

    /// Removes the kept open alerts after the next write that succeeds
    /// (they were loaded late, see `Agent::reconcile`).
    fn clear_kept(&self) {
        self.clear_kept.store(true, Ordering::SeqCst);
    }

    /// Cancels the write in flight, if any.
    fn cancel(self) {
        self.task.abort();
    }
}

/// A `Db` whose every call gives up after `budget`: a stuck database costs
/// the tick that much, never more (SPEC §6).
struct Bounded {
    inner: Arc<dyn Db>,
    budget: Duration,
}

impl Bounded {
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        crate::db::within(operation, self.budget, call).await
    }
}

#[async_trait]
impl Db for Bounded {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, DbError> {
        self.call("get_faults", self.inner.get_faults(agent)).await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), DbError> {
        self.call("set_faults", self.inner.set_faults(agent, faults, now))
            .await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), DbError> {
        self.call("heartbeat", self.inner.heartbeat(agent, now))
            .await
    }

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.inner.set_facts(agent, facts);
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, DbError> {
        self.call("list_faults", self.inner.list_faults(agent))
            .await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, DbError> {
        self.call("agents", self.inner.agents()).await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
        self.call("old_agents", self.inner.old_agents(age, now))
            .await
    }

    async fn agents_ahead(&self, lead: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
        self.call("agents_ahead", self.inner.agents_ahead(lead, now))
            .await
    }

    async fn get_squelches(&self, now: i64) -> Result<Vec<String>, DbError> {
        self.call("get_squelches", self.inner.get_squelches(now))
            .await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, DbError> {
        self.call("get_squelch_details", self.inner.get_squelch_details())
            .await
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), DbError> {
        self.call("squelch", self.inner.squelch(squelch)).await
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, DbError> {
        self.call("unsquelch", self.inner.unsquelch(regex)).await
    }

    async fn alert_failures(&self) -> Result<Vec<AgentFault>, DbError> {
        self.call("alert_failures", self.inner.alert_failures())
            .await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), DbError> {
        self.call("remove_agent", self.inner.remove_agent(agent))
            .await
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), DbError> {
        self.call("stop_agent", self.inner.stop_agent(agent, open, now))
            .await
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, DbError> {
        self.call("open_alerts", self.inner.open_alerts(agent))
            .await
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, DbError> {
        self.call("stopped_agents", self.inner.stopped_agents())
            .await
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), DbError> {
        self.call("clear_open_alerts", self.inner.clear_open_alerts(agent))
            .await
    }

    fn skipped_rows(&self) -> Vec<SkippedRow> {
        self.inner.skipped_rows()
    }

    fn limit_waits(&self, budget: Duration) {
        self.inner.limit_waits(budget);
    }
}

/// `max_concurrency`, lowered to what the open-file limit (raised to its
/// hard limit first) allows.
fn concurrency(config: &Config) -> usize {
    match limits::raise_open_files() {
        Ok(open_files) => {
            let fits = limits::fitting_concurrency(config.agent.max_concurrency, open_files);
            if fits < config.agent.max_concurrency {
                warn!(
                    max_concurrency = config.agent.max_concurrency,
                    open_files,
                    using = fits,
                    "max_concurrency does not fit the open-file limit; lowering it"
                );
            }
            debug!(open_files, "raised the open-file limit");
            fits
        }
        Err(e) => {
            warn!(error = %e, "cannot raise the open-file limit");
            config.agent.max_concurrency
        }
    }
}

impl Agent<'_> {
    /// Seeds counters, open alerts and the fault set from stored faults.
    fn restore(&mut self, previous: Vec<Fault>) {
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
            self.faults.insert(fault.name.clone(), fault);
        }
    }

    /// While the previous state is not loaded (SPEC §14): takes the answer of
    /// the attempt in flight if it came, and otherwise starts the next one.
    /// Never waits: the tick's checks do not wait for a database that is down.
    async fn catch_up_previous(&mut self) {
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
    fn reconcile(&mut self, previous: Vec<Fault>, kept: Vec<OpenAlert>) {
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
    fn restore_kept(&mut self, kept: Vec<OpenAlert>) {
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
    fn open_alerts(&self, now: i64) -> Vec<OpenAlert> {
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

    /// Runs ticks until `mode` is done (false) or `stop` fires (true).
    async fn ticks(
        &mut self,
        mode: Mode,
        mut stop: watch::Receiver<bool>,
        reload: &Notify,
    ) -> bool {
        let base = self.config.agent.base_interval;
        if mode == Mode::Once {
            let tick = scheduler::tick_at(self.clock.now(), base);
            return tokio::select! {
                () = self.tick(tick, Due::All) => false,
                _ = stop.wait_for(|stopped| *stopped) => true,
            };
        }
        // Ticks keep their numbers; each starts `splay` seconds after its
        // boundary (SPEC §14), and "the tick in progress" is reckoned on
        // the same shifted clock, so an overrun is judged against the
        // splayed start of the next tick.
        let splay = self.splay;
        let mut done = 0u64;
        let mut next = scheduler::splayed_tick_at(self.clock.now(), base, splay) + 1;
        loop {
            let wait = (scheduler::tick_start(next, base) + splay - self.clock.now()).max(0.0);
            let reloading = tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(wait)) => false,
                _ = stop.wait_for(|stopped| *stopped) => return true,
                () = reload.notified() => true,
            };
            if reloading {
                info!("SIGHUP: rescanning the check directory");
                let current = scheduler::splayed_tick_at(self.clock.now(), base, splay);
                tokio::select! {
                    () = self.tick(current, Due::Nothing) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return true,
                }
                continue;
            }
            tokio::select! {
                () = self.tick(next, Due::Scheduled) => {}
                _ = stop.wait_for(|stopped| *stopped) => return true,
            }
            done += 1;
            if let Mode::Count(count) = mode
                && done >= count
            {
                return false;
            }
            let current = scheduler::splayed_tick_at(self.clock.now(), base, splay);
            if current > next {
                warn!(
                    tick = next,
                    skipped = current - next,
                    "tick overran its interval; skipping to the next boundary"
                );
                next = current + 1;
            } else {
                next += 1;
            }
        }
    }

    /// One tick: scan, run due checks, update faults, alert, store, publish.
    async fn tick(&mut self, tick: i64, due_rule: Due) {
        let started = self.clock.now();
        self.catch_up_previous().await;
        let checks = self.directory.scan(self.clock.system_time()).await;
        let rescan_only = due_rule == Due::Nothing;
        let due: Vec<Arc<CheckDef>> = checks
            .iter()
            .filter(|check| match due_rule {
                Due::All => true,
                Due::Nothing => false,
                Due::Scheduled => {
                    let state = self.states.get(&check.name);
                    scheduler::is_due(
                        tick,
                        check.interval,
                        check.retry_interval,
                        state.and_then(|s| s.last_failure),
                    )
                }
            })
            .cloned()
            .collect();
        // `--once` runs everything at once (SPEC §2); a scheduled tick with
        // more probes than slots spreads them (see `scheduler::spread_offset`).
        let probes = due.iter().filter(|c| scheduler::is_probe(c)).count();
        let spread = due_rule == Due::Scheduled && probes > self.concurrency;
        if spread {
            debug!(
                tick,
                probes, "spreading this tick's probes over the interval"
            );
        }
        debug!(tick, checks = checks.len(), due = due.len(), "tick");
        let mut ran = HashSet::new();
        let mut metrics = Vec::new();
        self.run_checks(
            due,
            spread.then_some(started),
            &mut |agent, check, output| {
                let now = whole(agent.clock.now());
                agent.record(&check, output, tick, now, &mut metrics);
                ran.insert(check.name.clone());
            },
        )
        .await;
        let now = whole(self.clock.now());
        if !rescan_only {
            self.record_dns_outage(now);
        }
        let alive: HashSet<String> = checks.iter().map(|c| c.name.clone()).collect();
        for check in &checks {
            self.routes
                .insert(check.name.clone(), check.alerter.clone());
        }
        let own = format!("{}#", self.config.agent.name);
        self.faults
            .retain(|name, _| name.starts_with(&own) || alive.contains(fault::check_of(name)));
        self.states.retain(|name, _| alive.contains(name));

        self.refresh_squelches(now).await;
        self.alert(&ran, &alive, now).await;
        let (opened, retrying) = (&self.opened, &self.retry_resolves);
        self.routes.retain(|check, _| {
            alive.contains(check)
                || opened
                    .iter()
                    .chain(retrying)
                    .any(|name| fault::check_of(name) == check)
        });

        if let Some(buffer) = &self.metrics {
            buffer.push(metrics);
        }
        if !rescan_only {
            self.record_metric_drops(now);
        }

        self.record_skipped_rows(now);

        // What the heartbeat this write carries says about the agent: the
        // checks it runs, not the placeholders of broken files (SPEC §14).
        let running = checks
            .iter()
            .filter(|check| !matches!(check.kind, checks::CheckKind::Broken(_)))
            .count();
        self.db.set_facts(
            &self.config.agent.name,
            AgentFacts::of_this_build(u64::try_from(running).ok()),
        );
        let faults: Vec<Fault> = self.faults.values().cloned().collect();
        let stored = faults.len();
        if self.unloaded {
            // Writing now would replace the previous run's faults before
            // they are read, losing the alerts they know to be open.
            debug!("the previous state is not loaded yet; not writing");
        } else {
            self.writer.write(faults, now);
        }
        let took = self.clock.now() - started;
        info!(
            tick,
            checks = checks.len(),
            ran = ran.len(),
            faults = stored,
            took_secs = took,
            start_offset_secs =
                started - scheduler::tick_start(tick, self.config.agent.base_interval),
            "tick done"
        );
    }

    /// Folds one check's output into the fault set and the metrics.
    fn record(
        &mut self,
        check: &CheckDef,
        mut output: CheckOutput,
        tick: i64,
        now: i64,
        metrics: &mut Vec<MetricRecord>,
    ) {
        let faults = &self.faults;
        let was_failing = |metric: &str| {
            faults
                .get(&fault::full_name(&check.name, Some(metric)))
                .is_some_and(|f| f.severity >= Severity::ERROR)
        };
        checks::apply_thresholds(check, &mut output, &was_failing);
        if self.metrics.is_some() {
            let run_time: DateTime<Utc> = DateTime::from_timestamp(now, 0).unwrap_or_default();
            metrics.extend(output.metrics.iter().map(|m| MetricRecord {
                timestamp: m.timestamp.unwrap_or(run_time),
                name: fault::full_name(&check.name, Some(&m.name)),
                value: m.value,
                units: m.units.clone(),
            }));
        }
        let state = self.states.entry(check.name.clone()).or_default();
        let failing = fault::is_failing(&output.faults);
        let escalated = fault::escalate_run(
            check.retry,
            state.counter,
            check.monitor_retry,
            state.monitor_runs,
            output.faults,
        );
        state.counter = escalated.counter;
        state.monitor_runs = escalated.monitor_runs;
        state.last_failure = failing.then_some(tick);
        let records = fault::records(
            &check.name,
            escalated.faults,
            escalated.counter,
            escalated.monitor_runs,
            &self.faults,
            now,
        );
        // After escalation: the severity and full name `cimaa faults` shows.
        for record in &records {
            if record.severity.is_critical() {
                warn!(check = %check.name, severity = %record.severity, fault = %record.name, detail = %record.message, "check fault");
            } else if record.severity >= Severity::ERROR {
                info!(check = %check.name, severity = %record.severity, fault = %record.name, detail = %record.message, "check fault");
            }
        }
        // The check's faults are its name and the names after `NAME#`, which
        // sort together (`$` follows `#`): no scan of every fault per check.
        let previous: Vec<String> = self
            .faults
            .range(format!("{}#", check.name)..format!("{}$", check.name))
            .map(|(name, _)| name.clone())
            .collect();
        self.faults.remove(&check.name);
        for name in previous {
            self.faults.remove(&name);
        }
        for record in records {
            self.faults.insert(record.name.clone(), record);
        }
    }

    /// Records the WARNING `AGENT#database` while the latest reads skipped
    /// malformed rows (SPEC §17), naming their tables and keys; clears it when
    /// none are left. Like every `AGENT#...` fault it is stored, never alerted
    /// by this agent.
    fn record_skipped_rows(&mut self, now: i64) {
        let name = format!("{}#database", self.config.agent.name);
        let rows = self.db.skipped_rows();
        if rows.is_empty() {
            if self.faults.remove(&name).is_some() {
                info!("no malformed database rows any more");
            }
            return;
        }
        let message = crate::db::skipped_message(&rows);
        let previous = self.faults.get(&name);
        if previous.is_none_or(|fault| fault.message != message) {
            warn!(rows = %message, "skipping malformed database rows");
        }
        self.set_agent_fault(name, Severity::WARNING, message, now);
    }

    /// Records the ERROR `AGENT#dns` after a tick in which the resolver
    /// failed for every name the probes asked about (SPEC §14), naming the
    /// hosts that could not be resolved; clears it after a tick in which a
    /// name resolved, or no name was asked. Like every `AGENT#...` fault it
    /// is stored, never alerted by this agent.
    fn record_dns_outage(&mut self, now: i64) {
        let name = format!("{}#dns", self.config.agent.name);
        let Some(outage) = self.probes.dns.end_tick() else {
            if self.faults.remove(&name).is_some() {
                info!("the resolver answers again");
            }
            return;
        };
        let message = outage.message();
        if self.faults.get(&name).is_none_or(|f| f.message != message) {
            warn!(detail = %message, "the resolver fails for every name");
        }
        self.set_agent_fault(name, Severity::ERROR, message, now);
    }

    /// Records the WARNING `AGENT#metrics` while the metric buffer dropped
    /// records since the previous tick; clears it after a tick without drops.
    /// Like every `AGENT#...` fault it is stored, never alerted by this agent.
    fn record_metric_drops(&mut self, now: i64) {
        // Without a sink nothing drops, and a fault restored from a run
        // that had one clears.
        let total = self.metrics.as_ref().map_or(0, MetricBuffer::dropped);
        let new = total.saturating_sub(self.dropped_seen);
        self.dropped_seen = total;
        let name = format!("{}#metrics", self.config.agent.name);
        if new == 0 {
            self.dropped_in_fault = 0;
            self.faults.remove(&name);
            return;
        }
        self.dropped_in_fault += new;
        let message = format!(
            "Dropped {} metrics because the buffer was full",
            self.dropped_in_fault
        );
        self.set_agent_fault(name, Severity::WARNING, message, now);
    }

    /// Stores one of this agent's own `AGENT#...` faults, keeping the `since`
    /// of its previous record. Such faults are stored for peers' meta-checks
    /// and never alerted by this agent (SPEC §5).
    fn set_agent_fault(&mut self, name: String, severity: Severity, message: String, now: i64) {
        let since = self.faults.get(&name).map_or(now, |f| f.since);
        self.faults.insert(
            name.clone(),
            Fault {
                name,
                severity,
                message,
                since,
                updated: now,
                triggered: false,
                escalates: false,
                attempts: 0,
                monitor_runs: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::db::MemoryDb;

    /// A memory database whose writes wait for `gate` and record their `now`.
    #[derive(Default)]
    struct GatedDb {
        inner: MemoryDb,
        gate: Notify,
        writes: Mutex<Vec<i64>>,
    }

    #[async_trait]
    impl Db for GatedDb {
        async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, DbError> {
            self.inner.get_faults(agent).await
        }

        async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), DbError> {
            self.writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(now);
            self.gate.notified().await;
            self.inner.set_faults(agent, faults, now).await
        }

        async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), DbError> {
            self.inner.heartbeat(agent, now).await
        }

        fn set_facts(&self, agent: &str, facts: AgentFacts) {
            self.inner.set_facts(agent, facts);
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

        async fn agents_ahead(&self, lead: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
            self.inner.agents_ahead(lead, now).await
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
    }

    // See: #18
    #[tokio::test]
    async fn a_write_in_flight_is_not_doubled_and_the_next_carries_the_newest_state() {
        let db = Arc::new(GatedDb::default());
        let mut writer = Writer::spawn(db.clone(), "web1", false);

        writer.write(Vec::new(), 60);
        tokio::task::yield_now().await;
        writer.write(Vec::new(), 120);
        writer.write(Vec::new(), 180);
        db.gate.notify_one();
        tokio::task::yield_now().await;
        db.gate.notify_one();
        writer.finish(Duration::from_secs(5)).await;

        assert_eq!(*db.writes.lock().unwrap(), [60, 180]);
        assert_eq!(db.inner.agents().await.unwrap()[0].updated, 180);
    }
}
