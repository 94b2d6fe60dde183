//! The daemon: ticks, runs due checks, keeps fault state, alerts, stores.
//!
//! Owns the tick loop (`run`), the per-check state (failure counter, last
//! failure), the current fault set and the record of alerts that may be open.
//! Pure decisions live in `scheduler` (when), `fault` (what state, which
//! alerts); this module does the I/O around them: the check directory scan,
//! running checks concurrently (bounded by a semaphore and each check's
//! timeout), delivering alerts within `alert_timeout`, writing the database
//! and feeding the metric buffer (whose drops become the WARNING
//! `AGENT#metrics`). State is loaded from the database on start,
//! so separate `--once` processes behave like one long-running agent.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use sentry::SentryFutureExt as _;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument as _, debug, error, info, warn};

use crate::alerters::{Alerters, Event};
use crate::checks::{self, CheckOutput, Probes, RunContext};
use crate::config::{CheckDef, CheckKind, Config, Scope, load};
use crate::db::{Db, Fault};
use crate::fault::RawFault;
use crate::fault::{self, Action};
use crate::limits;
use crate::scheduler;
use crate::severity::Severity;
use crate::signals::Control;
use crate::sinks::{MetricBuffer, MetricRecord, Sink};
use crate::squelch::Matcher;

/// How long a check file must be unchanged before its parse error is reported.
const SETTLE: Duration = Duration::from_secs(3);
/// How long a normal exit waits for queued metrics.
const METRICS_FLUSH: Duration = Duration::from_secs(5);
/// On a signal, metrics and deregistration share SPEC §9's 10 s budget.
const SIGNAL_METRICS_FLUSH: Duration = Duration::from_secs(2);
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

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
    #[error("cannot reach the database at startup")]
    Database(#[source] crate::db::Error),
}

/// Per-check scheduling and escalation state.
#[derive(Clone, Debug, Default)]
struct CheckState {
    counter: u32,
    last_failure: Option<i64>,
}

/// A cached check file.
struct CachedFile {
    modified: SystemTime,
    len: u64,
    checks: Vec<Arc<CheckDef>>,
}

/// The check directory, rescanned every tick; unchanged files are not re-read.
pub(crate) struct CheckDirectory {
    scope: Scope,
    directory: PathBuf,
    files: HashMap<PathBuf, CachedFile>,
}

impl CheckDirectory {
    pub(crate) fn new(scope: Scope, directory: &Path) -> Self {
        CheckDirectory {
            scope,
            directory: directory.to_path_buf(),
            files: HashMap::new(),
        }
    }

    /// The current checks. A file whose parse fails while it was modified
    /// within `SETTLE` keeps its previous checks (or none) until the next
    /// scan, so a file caught mid-write never pages.
    pub(crate) fn scan(&mut self, now: SystemTime) -> Vec<Arc<CheckDef>> {
        let paths = match load::check_files(&self.directory) {
            Ok(paths) => paths,
            Err(e) => {
                warn!(directory = %self.directory.display(), error = %e, "cannot read the check directory");
                let mut checks: Vec<Arc<CheckDef>> = self
                    .files
                    .values()
                    .flat_map(|f| f.checks.iter().cloned())
                    .collect();
                checks.push(Arc::new(CheckDef::broken(
                    format!("//{}/", self.scope.agent),
                    &self.directory,
                    format!(
                        "cannot read check directory {}: {e}",
                        self.directory.display()
                    ),
                )));
                return checks;
            }
        };
        self.files.retain(|path, _| paths.contains(path));
        // Stat every file; parse the new and changed ones, in parallel.
        let stamped: Vec<(PathBuf, SystemTime, u64)> = paths
            .into_iter()
            .filter_map(|path| {
                let meta = std::fs::metadata(&path).ok()?;
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                Some((path, modified, meta.len()))
            })
            .collect();
        let changed: Vec<&Path> = stamped
            .iter()
            .filter(|(path, modified, len)| {
                self.files
                    .get(path)
                    .is_none_or(|cached| cached.modified != *modified || cached.len != *len)
            })
            .map(|(path, _, _)| path.as_path())
            .collect();
        let mut parsed: HashMap<PathBuf, Vec<CheckDef>> =
            load::load_check_files(&self.scope, &changed)
                .into_iter()
                .zip(&changed)
                .map(|(checks, path)| (path.to_path_buf(), checks))
                .collect();
        let mut checks = Vec::new();
        for (path, modified, len) in stamped {
            let Some(definitions) = parsed.remove(&path) else {
                if let Some(cached) = self.files.get(&path) {
                    checks.extend(cached.checks.iter().cloned());
                }
                continue;
            };
            // Not `into_iter().map(Arc::new).collect()`: that reuses the
            // definitions' allocation (in-place collect) and so keeps a
            // definition's size per check alive for a pointer's worth.
            let mut loaded = Vec::with_capacity(definitions.len());
            loaded.extend(definitions.into_iter().map(Arc::new));
            let fresh =
                now.duration_since(modified).is_ok_and(|age| age < SETTLE) || modified > now;
            let broken = loaded
                .iter()
                .any(|c| matches!(c.kind, crate::config::CheckKind::Broken(_)));
            if broken && fresh {
                debug!(file = %path.display(), "check file changed just now and does not load; waiting for the next scan");
                if let Some(previous) = self.files.get(&path) {
                    checks.extend(previous.checks.iter().cloned());
                }
                continue;
            }
            checks.extend(loaded.iter().cloned());
            self.files.insert(
                path,
                CachedFile {
                    modified,
                    len,
                    checks: loaded,
                },
            );
        }
        checks
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[expect(clippy::cast_possible_truncation, reason = "epoch seconds fit in i64")]
fn whole(seconds: f64) -> i64 {
    seconds.floor() as i64
}

/// The running agent's state.
struct Agent<'a> {
    config: &'a Config,
    db: Arc<dyn Db>,
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
/// `controls` carries signals (see `signals`); tests send their own. On
/// shutdown the agent stops at once (running plugin groups are killed) and
/// removes its heartbeat and faults from the database; after `--once` or
/// `--count` it never deregisters.
///
/// # Errors
/// When the database cannot be reached at startup.
pub async fn run(
    config: &Config,
    backends: Backends,
    mode: Mode,
    mut controls: mpsc::UnboundedReceiver<Control>,
) -> Result<(), Error> {
    let name = config.agent.name.clone();
    let concurrency = match limits::raise_open_files() {
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
    };
    let now = unix_now();
    backends
        .db
        .heartbeat(&name, whole(now))
        .await
        .map_err(Error::Database)?;
    let previous = backends
        .db
        .get_faults(&name)
        .await
        .map_err(Error::Database)?;
    let (metrics, drain) = match backends.sink {
        Some((sink, size)) => {
            let (buffer, task) = MetricBuffer::spawn(sink, size);
            (Some(buffer), Some(task))
        }
        None => (None, None),
    };
    let mut agent = Agent {
        config,
        db: backends.db,
        alerters: backends.alerters,
        metrics,
        dropped_seen: 0,
        dropped_in_fault: 0,
        directory: CheckDirectory::new(config.scope(), &config.agent.directory),
        routes: HashMap::new(),
        states: HashMap::new(),
        faults: BTreeMap::new(),
        opened: BTreeSet::new(),
        retry_resolves: BTreeSet::new(),
        squelches: Matcher::default(),
        semaphore: Arc::new(Semaphore::new(concurrency)),
        concurrency,
        probes: Arc::new(Probes::new()),
    };
    agent.restore(previous);
    info!(agent = %name, directory = %config.agent.directory.display(), "agent started");

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
    if signalled {
        info!(agent = %name, "shutting down: removing this agent from the database");
        let removal = agent.db.remove_agent(&name);
        match tokio::time::timeout(DEREGISTER_TIMEOUT, removal).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "cannot remove this agent from the database"),
            Err(_) => error!("removing this agent from the database timed out"),
        }
    }
    Ok(())
}

impl Agent<'_> {
    /// Seeds counters, open alerts and the fault set from stored faults.
    fn restore(&mut self, previous: Vec<Fault>) {
        let base = self.config.agent.base_interval;
        for fault in previous {
            let check = fault::check_of(&fault.name).to_string();
            let state = self.states.entry(check).or_default();
            state.counter = state.counter.max(fault.attempts);
            if fault.severity >= Severity::ERROR {
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "epoch seconds are far below 2^52"
                )]
                let tick = scheduler::tick_at(fault.updated as f64, base);
                state.last_failure = Some(state.last_failure.map_or(tick, |t| t.max(tick)));
            }
            if fault.triggered {
                self.opened.insert(fault.name.clone());
            }
            self.faults.insert(fault.name.clone(), fault);
        }
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
            let tick = scheduler::tick_at(unix_now(), base);
            return tokio::select! {
                () = self.tick(tick, Due::All) => false,
                _ = stop.wait_for(|stopped| *stopped) => true,
            };
        }
        let mut done = 0u64;
        let mut next = scheduler::tick_at(unix_now(), base) + 1;
        loop {
            let wait = (scheduler::tick_start(next, base) - unix_now()).max(0.0);
            let reloading = tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(wait)) => false,
                _ = stop.wait_for(|stopped| *stopped) => return true,
                () = reload.notified() => true,
            };
            if reloading {
                info!("SIGHUP: rescanning the check directory");
                let current = scheduler::tick_at(unix_now(), base);
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
            let current = scheduler::tick_at(unix_now(), base);
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
        let started = unix_now();
        let checks = self.directory.scan(SystemTime::now());
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
        let probes = due.iter().filter(|c| is_probe(c)).count();
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
                agent.record(&check, output, tick, whole(unix_now()), &mut metrics);
                ran.insert(check.name.clone());
            },
        )
        .await;
        let now = whole(unix_now());
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

        let faults: Vec<Fault> = self.faults.values().cloned().collect();
        if let Err(e) = self
            .db
            .set_faults(&self.config.agent.name, &faults, now)
            .await
        {
            error!(error = %e, "cannot write faults to the database; the next tick writes the full state again");
        }
        let took = unix_now() - started;
        info!(
            tick,
            checks = checks.len(),
            ran = ran.len(),
            faults = faults.len(),
            took_secs = took,
            "tick done"
        );
    }

    /// Runs the due checks and hands each output to `done` as it comes.
    ///
    /// A check gets its own task once it holds one of the `max_concurrency`
    /// slots, so a tick of 50,000 probes has at most that many tasks (and
    /// sockets) alive, not 50,000 waiting ones. Checks start in an order
    /// that takes turns between targets (see `take_turns`), so one host
    /// with thousands of URLs does not hold every slot while it queues for
    /// its own connection limit (`checks::http`). With `spread_from` (the
    /// tick's start, epoch seconds), probes start at their place in the
    /// interval instead (`scheduler::spread_offset`). Outputs are folded in
    /// as they come, so a tick never holds all of them at once.
    async fn run_checks(
        &mut self,
        due: Vec<Arc<CheckDef>>,
        spread_from: Option<f64>,
        done: &mut (dyn FnMut(&mut Self, Arc<CheckDef>, CheckOutput) + Send),
    ) {
        self.probes.begin_tick(due.iter().map(AsRef::as_ref));
        let mut pending: VecDeque<(Arc<CheckDef>, Option<tokio::time::Instant>)> = match spread_from
        {
            None => take_turns(due).into_iter().map(|c| (c, None)).collect(),
            Some(from) => self.spread(due, from),
        };
        let mut running: Tagged<Arc<CheckDef>, CheckOutput> = Tagged::new();
        let config_path = Arc::new(self.config.path.clone());
        let sentry_enabled = sentry::Hub::current()
            .client()
            .is_some_and(|c| c.is_enabled());
        let default_timeout = self.config.agent.timeout;
        loop {
            let next_start = pending.front().and_then(|(_, start)| *start);
            let semaphore = self.semaphore.clone();
            let slot = async move {
                if let Some(start) = next_start {
                    tokio::time::sleep_until(start).await;
                }
                semaphore.acquire_owned().await
            };
            tokio::select! {
                biased;
                Some((check, output)) = running.next(), if !running.is_empty() => {
                    let output = output.unwrap_or_else(|detail| checker_fault(&check, detail));
                    done(self, check, output);
                }
                slot = slot, if !pending.is_empty() => {
                    let Some((check, _)) = pending.pop_front() else {
                        continue;
                    };
                    let probes = self.probes.clone();
                    let config_path = config_path.clone();
                    let task_check = check.clone();
                    let span = tracing::info_span!("check", check = %check.name);
                    let work = async move {
                        // The semaphore is never closed, so `slot` is `Ok`.
                        let _slot = slot;
                        let context = RunContext {
                            config_path: &config_path,
                            default_timeout,
                            probes: &probes,
                        };
                        checks::run(&task_check, &context).await
                    }
                    .instrument(span);
                    if sentry_enabled {
                        // Its own Hub, so Sentry events (panics included) carry the check's name.
                        let hub = Arc::new(sentry::Hub::new_from_top(sentry::Hub::current()));
                        let name = check.name.clone();
                        hub.configure_scope(|scope| scope.set_tag("check", name));
                        running.spawn(check, work.bind_hub(hub));
                    } else {
                        running.spawn(check, work);
                    }
                }
                else => break,
            }
        }
    }

    /// Due checks in the order of their start in a spread tick: probes at
    /// their offset in the interval, command checks at once.
    fn spread(
        &self,
        due: Vec<Arc<CheckDef>>,
        from: f64,
    ) -> VecDeque<(Arc<CheckDef>, Option<tokio::time::Instant>)> {
        let base = self.config.agent.base_interval;
        let default_timeout = self.config.agent.timeout;
        let clock = tokio::time::Instant::now();
        let now = unix_now();
        let mut timed: Vec<(f64, Arc<CheckDef>)> = due
            .into_iter()
            .map(|check| {
                let offset = if is_probe(&check) {
                    let timeout = checks::timeout_of(&check, default_timeout).as_secs_f64();
                    scheduler::spread_offset(&check.name, base, timeout)
                } else {
                    0.0
                };
                (from + offset, check)
            })
            .collect();
        timed.sort_by(|a, b| a.0.total_cmp(&b.0));
        timed
            .into_iter()
            .map(|(at, check)| {
                let start = clock + Duration::from_secs_f64((at - now).max(0.0));
                (check, Some(start))
            })
            .collect()
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
        for fault in &output.faults {
            if fault.severity >= Severity::ERROR {
                info!(check = %check.name, severity = %fault.severity, fault = fault.name.as_deref().unwrap_or(""), detail = %fault.message, "check fault");
            }
        }
        let state = self.states.entry(check.name.clone()).or_default();
        let failing = fault::is_failing(&output.faults);
        let (counter, escalated) = fault::escalate(check.retry, state.counter, output.faults);
        state.counter = counter;
        state.last_failure = failing.then_some(tick);
        let records = fault::records(&check.name, escalated, counter, &self.faults, now);
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

    /// Reads the squelches once per tick; keeps the last set when that fails.
    async fn refresh_squelches(&mut self, now: i64) {
        match self.db.get_squelches(now).await {
            Ok(regexes) => {
                let (matcher, invalid) = Matcher::new(&regexes);
                for regex in invalid {
                    warn!(regex = %regex, "ignoring a stored squelch that is not a valid regex");
                }
                self.squelches = matcher;
            }
            Err(e) => {
                warn!(error = %e, kept = self.squelches.len(), "cannot read squelches; using the last known set");
            }
        }
    }

    /// Plans and delivers this tick's alerts; records `AGENT#alerts`.
    async fn alert(&mut self, ran: &HashSet<String>, alive: &HashSet<String>, now: i64) {
        let actions = {
            let squelches = &self.squelches;
            let is_squelched = |name: &str| squelches.matches(name);
            let tick = fault::Tick {
                agent: &self.config.agent.name,
                ran,
                alive,
                opened: &self.opened,
                retry_resolves: &self.retry_resolves,
                squelched: &is_squelched,
            };
            fault::plan(&mut self.faults, &tick)
        };
        let total = actions.len();
        let mut failures = 0usize;
        for (action, outcome) in self.deliver(actions).await {
            match (action, outcome) {
                (Action::Trigger { name, .. }, Ok(())) => {
                    info!(fault = %name, "alert triggered");
                    self.set_triggered(&name, true);
                    self.opened.insert(name);
                }
                (Action::Trigger { name, .. }, Err(failure)) => {
                    failures += 1;
                    error!(fault = %name, error = %failure.text, "cannot send alert");
                    // A refused event is not resent until its message changes.
                    self.set_triggered(&name, failure.permanent);
                }
                (Action::Resolve { name }, Ok(())) => {
                    info!(fault = %name, "alert resolved");
                    self.set_triggered(&name, false);
                    self.opened.remove(&name);
                    self.retry_resolves.remove(&name);
                }
                (Action::Resolve { name }, Err(failure)) => {
                    failures += 1;
                    error!(fault = %name, error = %failure.text, "cannot resolve alert");
                    self.keep_unresolved(&name, now);
                    self.retry_resolves.insert(name);
                }
            }
        }
        let alerts = format!("{}#alerts", self.config.agent.name);
        if failures == 0 {
            self.faults.remove(&alerts);
        } else {
            let message = format!("Failed to send alert information ({failures}/{total})");
            let since = self.faults.get(&alerts).map_or(now, |f| f.since);
            self.faults.insert(
                alerts.clone(),
                Fault {
                    name: alerts,
                    severity: Severity::CRITICAL,
                    message,
                    since,
                    updated: now,
                    triggered: false,
                    escalates: false,
                    attempts: 0,
                },
            );
        }
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
        let since = self.faults.get(&name).map_or(now, |f| f.since);
        self.faults.insert(
            name.clone(),
            Fault {
                name,
                severity: Severity::WARNING,
                message: format!(
                    "Dropped {} metrics because the buffer was full",
                    self.dropped_in_fault
                ),
                since,
                updated: now,
                triggered: false,
                escalates: false,
                attempts: 0,
            },
        );
    }

    fn set_triggered(&mut self, name: &str, triggered: bool) {
        if let Some(fault) = self.faults.get_mut(name) {
            fault.triggered = triggered;
        }
    }

    /// Keeps a record of an alert whose resolve has not been delivered, so a
    /// restarted agent (or the next `--once` run) still resolves it.
    fn keep_unresolved(&mut self, name: &str, now: i64) {
        if let Some(fault) = self.faults.get_mut(name) {
            if !fault.severity.is_critical() {
                fault.triggered = true;
            }
            return;
        }
        self.faults.insert(
            name.to_string(),
            Fault {
                name: name.to_string(),
                severity: Severity::INFO,
                message: "cleared; resolve not delivered yet".into(),
                since: now,
                updated: now,
                triggered: true,
                escalates: false,
                attempts: 0,
            },
        );
    }

    /// Delivers alerts concurrently, all bounded by one `alert_timeout`;
    /// each goes along its check's alerter chain (fallbacks).
    async fn deliver(&self, actions: Vec<Action>) -> Vec<(Action, Result<(), Failure>)> {
        let deadline = tokio::time::Instant::now() + self.config.agent.alert_timeout;
        let mut tasks = Tagged::new();
        for action in actions {
            let alerters = self.alerters.clone();
            let name = match &action {
                Action::Trigger { name, .. } | Action::Resolve { name } => name,
            };
            let route = self.routes.get(fault::check_of(name)).cloned().flatten();
            let task_action = action.clone();
            tasks.spawn(action, async move {
                let event = match &task_action {
                    Action::Trigger { name, message } => Event::Trigger { name, message },
                    Action::Resolve { name } => Event::Resolve { name },
                };
                let delivery = alerters.deliver(route.as_deref(), event, deadline).await;
                for (alerter, error) in &delivery.failures {
                    warn!(alerter = %alerter, error = %crate::error::chain(error), "alerter failed");
                }
                if delivery.delivered_by.is_some() {
                    return Ok(());
                }
                Err(Failure {
                    permanent: !delivery.failures.is_empty()
                        && delivery.failures.iter().all(|(_, e)| e.is_permanent()),
                    text: delivery
                        .failures
                        .iter()
                        .map(|(alerter, e)| format!("{alerter}: {}", crate::error::chain(e)))
                        .collect::<Vec<_>>()
                        .join("; "),
                })
            });
        }
        let mut outcomes = Vec::new();
        while let Some((action, outcome)) = tasks.next().await {
            let outcome = outcome.unwrap_or_else(|text| {
                Err(Failure {
                    permanent: false,
                    text,
                })
            });
            outcomes.push((action, outcome));
        }
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        outcomes
    }
}

/// The checks in an order that takes turns between targets: the first
/// check of every target, then the second of every target, and so on
/// (targets in order of first appearance; checks without a shared target
/// each count as their own).
fn take_turns(checks: Vec<Arc<CheckDef>>) -> Vec<Arc<CheckDef>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut queues: Vec<VecDeque<Arc<CheckDef>>> = Vec::new();
    let total = checks.len();
    for check in checks {
        let fresh = queues.len();
        let queue =
            checks::target_key(&check).map_or(fresh, |key| *index.entry(key).or_insert(fresh));
        if queue == fresh {
            queues.push(VecDeque::new());
        }
        queues[queue].push_back(check);
    }
    let mut ordered = Vec::with_capacity(total);
    while ordered.len() < total {
        for queue in &mut queues {
            ordered.extend(queue.pop_front());
        }
        queues.retain(|q| !q.is_empty());
    }
    ordered
}

/// Whether a check is an in-process probe (spread in crowded ticks).
fn is_probe(check: &CheckDef) -> bool {
    matches!(
        check.kind,
        CheckKind::Http(_) | CheckKind::Tcp(_) | CheckKind::Socket(_)
    )
}

/// Spawned tasks, each tagged with what it works on (a check, an alert).
/// A task's panic comes back as its text, so nothing escapes unreported.
struct Tagged<K, T> {
    tasks: JoinSet<T>,
    by_task: HashMap<tokio::task::Id, K>,
}

impl<K, T: Send + 'static> Tagged<K, T> {
    fn new() -> Self {
        Tagged {
            tasks: JoinSet::new(),
            by_task: HashMap::new(),
        }
    }

    fn spawn(&mut self, key: K, work: impl Future<Output = T> + Send + 'static) {
        let handle = self.tasks.spawn(work);
        self.by_task.insert(handle.id(), key);
    }

    fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }

    /// The next task to finish, with its output or the text of its panic.
    async fn next(&mut self) -> Option<(K, Result<T, String>)> {
        loop {
            let (id, outcome) = match self.tasks.join_next_with_id().await? {
                Ok((id, output)) => (id, Ok(output)),
                Err(e) => (e.id(), Err(panic_text(e))),
            };
            if let Some(key) = self.by_task.remove(&id) {
                return Some((key, outcome));
            }
        }
    }
}

/// A check whose task panicked: its ERROR fault `checker`, logged (and so
/// reported to Sentry when configured).
fn checker_fault(check: &CheckDef, detail: String) -> CheckOutput {
    error!(check = %check.name, tags.check = %check.name, error = %detail, "check failed inside the agent");
    CheckOutput {
        faults: vec![RawFault {
            name: Some("checker".into()),
            severity: Severity::ERROR,
            message: detail,
            escalates: true,
        }],
        ..CheckOutput::default()
    }
}

/// Why one alert was not delivered.
struct Failure {
    permanent: bool,
    text: String,
}

fn panic_text(error: tokio::task::JoinError) -> String {
    if error.is_cancelled() {
        return "check was cancelled".into();
    }
    let payload = error.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("panic: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::http::HttpCheck;

    fn probe(name: &str, url: &str) -> Arc<CheckDef> {
        let mut check = CheckDef::broken(name.into(), Path::new("/c/web.yaml"), String::new());
        check.kind = CheckKind::Http(Box::new(HttpCheck::new(url.parse().unwrap())));
        Arc::new(check)
    }

    #[test]
    fn a_tick_takes_turns_between_targets() {
        let checks = vec![
            probe("a1", "http://a/1"),
            probe("a2", "http://a/2"),
            probe("a3", "http://a:80/3"),
            probe("b1", "http://b/1"),
            Arc::new(CheckDef::broken("x".into(), Path::new("/c"), String::new())),
            probe("b2", "https://b/2"),
        ];
        let order: Vec<String> = take_turns(checks).iter().map(|c| c.name.clone()).collect();
        assert_eq!(order, ["a1", "b1", "x", "b2", "a2", "a3"]);
    }
}
