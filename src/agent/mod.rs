//! The daemon: ticks, runs due checks, keeps fault state, alerts, stores.
//!
//! Owns the tick loop (`run`, `ticks`, `tick`), the per-check state (failure
//! counter, last failure), the current fault set and the record of alerts
//! that may be open. Pure decisions live in `scheduler` (when), `fault` (what
//! state, which alerts); this module and its parts do the I/O around them:
//! `check_dir` scans the check directory, `runner` runs due checks
//! concurrently (bounded by a semaphore and each check's timeout), `alerts`
//! delivers alerts within `alert_timeout` (`fleet` claims those of fleet
//! faults in the shared notices first), `systemd` tells systemd when the
//! agent is ready and pings its watchdog; the tick writes the database and
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
mod counted;
mod dependencies;
mod flap;
mod fleet;
mod history;
mod meta_check;
mod metrics;
mod observations;
mod quiet;
mod runner;
mod squelches;
mod state;
mod store;
mod storm;
mod systemd;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

pub use clock::Clock;
pub(crate) use dependencies::{Resolved, resolve as resolve_dependencies};
pub(crate) use flap::flap_line;
pub(crate) use meta_check::meta_faults;
pub(crate) use observations::{Memory, memory_of};
pub(crate) use runner::{Fleet, run_check};
pub(crate) use squelches::expire as expire_squelches;

use crate::alerters::Alerters;
use crate::checks::CheckDef;
use crate::checks::{self, CheckOutput, Probes};
use crate::config::{Config, Splay};
use crate::db::{AgentFacts, Db, Error as DbError, Fault};
use crate::fault;

use crate::scheduler;
use crate::severity::Severity;
use crate::signals::Control;
use crate::sinks::{MetricBuffer, MetricRecord, Sink};
use crate::squelch::Matcher;
use check_dir::CheckDirectory;
use state::{Stored, load_previous, start_state};
use store::{Bounded, Writer, db_budget, deregister};

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
    #[error("cannot serve /metrics on `{0}` (agent.metrics_listen)")]
    MetricsListen(std::net::SocketAddr, #[source] std::io::Error),
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
    /// Each check's `notify` (SPEC §10), kept as long as its route.
    notifies: HashMap<String, checks::Notify>,
    /// This agent's part in the fleet's notices (`fleet.rs`).
    fleet: fleet::FleetState,
    /// The checks' dependencies (SPEC §11, `dependencies.rs`).
    dependencies: dependencies::State,
    states: HashMap<String, CheckState>,
    faults: BTreeMap<String, Fault>,
    /// Faults whose alert may be open at the receiver.
    opened: BTreeSet<String>,
    /// Resolves that failed and are retried next tick.
    retry_resolves: BTreeSet<String>,
    /// Last squelches read (kept when the database cannot be read).
    squelches: Matcher,
    /// History records of this tick's changes, not yet handed to the
    /// writer (SPEC §12); appended with `note`.
    history: Vec<crate::history::Record>,
    /// Flap detection and message churn (SPEC §11, `flap.rs`).
    noise: flap::Noise,
    /// What the history recorder remembers between ticks (`history.rs`).
    recorder: history::Recorder,
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
    /// READY=1 and STATUS= lines for systemd (SPEC §16).
    systemd: systemd::Notifier,
    /// The `/metrics` registry (`agent.metrics_listen`, `metrics.rs`).
    telemetry: Option<Arc<metrics::Metrics>>,
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
#[expect(
    clippy::too_many_lines,
    reason = "the Agent literal takes one line per field; the parts live in their own files"
)]
pub async fn run(
    config: &Config,
    backends: Backends,
    clock: Clock,
    mode: Mode,
    mut controls: mpsc::UnboundedReceiver<Control>,
) -> Result<(), Error> {
    let served = metrics::start(config, &backends.alerters).await?;
    let name = config.agent.name.clone();
    let concurrency = runner::concurrency(config);
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
    let db = metrics::counted(db, served.as_ref());
    // An agent whose database is down at start runs from an empty state and
    // reconciles once it answers (SPEC §14), rather than exiting and leaving
    // the host unmonitored while the database is down.
    let (previous, kept, unloaded) = start_state(&db, &name, whole(now)).await;
    let (metrics, drain) = match backends.sink {
        Some((sink, size)) => {
            let (buffer, task) = MetricBuffer::spawn(sink, size);
            metrics::watch_sink(served.as_ref(), &buffer);
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
        notifies: HashMap::new(),
        fleet: fleet::FleetState::default(),
        dependencies: dependencies::State::default(),
        states: HashMap::new(),
        faults: BTreeMap::new(),
        opened: BTreeSet::new(),
        retry_resolves: BTreeSet::new(),
        squelches: Matcher::default(),
        history: history::started(&name, whole(now)),
        noise: flap::Noise::load(config),
        recorder: history::Recorder::default(),
        semaphore: Arc::new(Semaphore::new(concurrency)),
        concurrency,
        probes: Arc::new(Probes::with_nameservers(
            config.agent.resolver.clone(),
            config.agent.connections_per_host,
        )),
        splay: splay(config),
        unloaded,
        loading: None,
        systemd: systemd::Notifier::from_env(),
        telemetry: served.as_ref().map(|served| Arc::clone(&served.metrics)),
    };
    if !unloaded {
        agent.systemd.heartbeat_written();
    }
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
    let signalled = systemd::watched(agent.ticks(mode, stop, &reload)).await;
    agent.systemd.stopping();
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
        if signalled && !unloaded {
            // Written with the deregistration (SPEC §12).
            self.note(
                whole(self.clock.now()),
                &name,
                crate::history::Event::Deregistered,
            );
        }
        let noted = std::mem::take(&mut self.history);
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
            let mut history = writer.cancel();
            history.extend(noted);
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
                &history,
            )
            .await;
        } else {
            writer.queue(noted);
            writer.finish(WRITE_FLUSH).await;
        }
    }
}

impl Agent<'_> {
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
            let now = whole(self.clock.now());
            self.systemd.ticked(next, now, self.faults.len());
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
        let checks = self.with_dependencies(checks);
        let rescan_only = due_rule == Due::Nothing;
        let due = self.due_checks(&checks, tick, due_rule);
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
        let fleet_read = self.start_fleet_read(whole(started));
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
        let dns_unresolved = if rescan_only {
            BTreeSet::new()
        } else {
            self.record_dns_outage(now)
        };
        self.apply_dependencies(&checks, &ran, fleet_read, &dns_unresolved, now)
            .await;
        let alive: HashSet<String> = checks.iter().map(|c| c.name.clone()).collect();
        for check in &checks {
            self.routes
                .insert(check.name.clone(), check.alerter.clone());
            self.notifies.insert(check.name.clone(), check.notify);
        }
        let own = format!("{}#", self.config.agent.name);
        self.faults
            .retain(|name, _| name.starts_with(&own) || alive.contains(fault::check_of(name)));
        self.states.retain(|name, _| alive.contains(name));

        self.refresh_squelches(now).await;
        // SPEC §10: an incident whose only holder died is resolved by the
        // agents that run the meta-check.
        if checks
            .iter()
            .any(|check| check.reads_database() && ran.contains(&check.name))
        {
            self.sweep_dead_holders(now).await;
        }
        self.alert(&ran, &alive, now).await;
        self.save_noise(&alive);
        self.forget_routes(&alive);

        if let Some(buffer) = &self.metrics {
            buffer.push(metrics);
        }
        if !rescan_only {
            self.record_metric_drops(now);
        }
        self.record_history_status(now);

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
        self.mark_flapping(now);
        let faults: Vec<Fault> = self.faults.values().cloned().collect();
        let stored = faults.len();
        if self.unloaded {
            // Writing now would replace the previous run's faults before
            // they are read, losing the alerts they know to be open.
            debug!("the previous state is not loaded yet; not writing");
            self.writer.queue(std::mem::take(&mut self.history));
        } else {
            self.writer
                .write(faults, now, std::mem::take(&mut self.history));
        }
        let took = self.clock.now() - started;
        if let Some(telemetry) = &self.telemetry {
            telemetry.ticked(!rescan_only, took, self.faults.values());
        }
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

    /// Forgets the routes (and `notify`) of vanished checks once none of
    /// their alerts may be open, is retried or watched (`fleet.rs`).
    fn forget_routes(&mut self, alive: &HashSet<String>) {
        let (opened, retrying) = (&self.opened, &self.retry_resolves);
        let watching = self.fleet.watching();
        let keep = |check: &String| {
            alive.contains(check)
                || opened
                    .iter()
                    .chain(retrying)
                    .chain(watching)
                    .any(|name| fault::check_of(name) == check)
        };
        self.routes.retain(|check, _| keep(check));
        self.notifies.retain(|check, _| keep(check));
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
        self.noise.report(&check.name, &output.faults);
        let erroring = history::erroring(&check.name, &output.faults);
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
        self.record_check_changes(&erroring, &records, now);
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
        self.flap_ran(check, now);
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
    /// is stored, never alerted by this agent. Returns the hosts that could
    /// not be resolved, whose probes it suppresses (`dependencies.rs`).
    fn record_dns_outage(&mut self, now: i64) -> BTreeSet<String> {
        let name = format!("{}#dns", self.config.agent.name);
        let Some(outage) = self.probes.dns.end_tick() else {
            if self.faults.remove(&name).is_some() {
                info!("the resolver answers again");
            }
            return BTreeSet::new();
        };
        let message = outage.message();
        if self.faults.get(&name).is_none_or(|f| f.message != message) {
            warn!(detail = %message, "the resolver fails for every name");
        }
        self.set_agent_fault(name, Severity::ERROR, message, now);
        outage.unresolved
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
                storm: false,
                suppressed_by: None,
                held: false,
                flapping: false,
            },
        );
    }
}
