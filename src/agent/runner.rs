//! Running a tick's due checks: bounded, in turns, optionally spread.
//!
//! Owns how checks become tasks: one of `max_concurrency` semaphore slots per
//! check in flight, the order in which they start (`scheduler::take_turns`,
//! or each probe's place in a spread tick), and `Tagged`, the task set that
//! tells which check (or alert) each finished task worked on. A check's task
//! that panics becomes its ERROR fault `checker`; nothing escapes a task.
//! Every output's fault messages are capped (`fault::cap_raw`) before the
//! tick logs or records them.
//! What a check does is `checks::run`'s, except for the `meta:` kind, which
//! reads the database and so is run here (`run_check`, also what `cimaa
//! check` calls): a check kind may not use a backend. Folding a check's
//! output into the fault set is the tick's (`agent::Agent::record`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sentry::SentryFutureExt as _;
use tokio::task::JoinSet;
use tracing::{Instrument as _, error};

use super::{Agent, Clock, Due, Memory, meta_faults, whole};
use crate::checks::meta::{self as meta_kind, MetaCheck};
use crate::checks::{self, CheckDef, CheckKind, CheckOutput, RunContext};
use crate::db::Db;
use crate::fault::{self, RawFault};
use crate::meta::Limits;
use crate::scheduler;
use crate::severity::Severity;

/// What a `meta:` check reads the fleet with.
#[derive(Clone, Copy)]
pub(crate) struct Fleet<'a> {
    /// The shared database; `None` when the caller has none open (a `meta:`
    /// check then reports that as its ERROR).
    pub db: Option<&'a dyn Db>,
    /// Who is asking: the meta-check never reports its own agent.
    pub agent: &'a str,
    /// The agent's base interval, which `warn` and `error` count in.
    pub base_interval: f64,
    /// Where `now` comes from (the agent's clock; the wall clock in the CLI).
    pub clock: Clock,
    /// The meta-check's memory of its peers (`None`: judged by time alone).
    pub memory: Option<&'a Memory>,
}

/// Runs one check once: a `meta:` check over `fleet`, any other through
/// `checks::run`.
///
/// A `meta:` check forks nothing and looks nothing up on PATH: its faults
/// are what `cimaa meta-check` prints, as plugin JSON would give them
/// (`//meta#AGENT`, escalating). A database that fails or does not answer
/// within the check's timeout is a broken monitor, not a dead fleet: the
/// non-escalating ERROR `monitor-database` naming the cause, which pages
/// only after `monitor_retry` runs in a row (one slow read must not page
/// from every meta host).
pub(crate) async fn run_check(
    check: &CheckDef,
    context: &RunContext<'_>,
    fleet: Fleet<'_>,
) -> CheckOutput {
    let (CheckKind::Meta(options), Some(db)) = (&check.kind, fleet.db) else {
        return checks::run(check, context).await;
    };
    let timeout = checks::timeout_of(check, context.default_timeout);
    let limits = limits(options, fleet.base_interval);
    let now = whole(fleet.clock.now());
    let read = meta_faults(
        db,
        fleet.agent,
        limits,
        now,
        fleet.memory,
        options.expect.as_deref(),
    );
    let problem = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(faults)) => {
            return CheckOutput {
                faults: meta_kind::raw_faults(faults),
                ..CheckOutput::default()
            };
        }
        Ok(Err(e)) => format!(
            "meta-check cannot read the database: {}",
            crate::error::chain(&e)
        ),
        Err(_) => format!(
            "meta-check reading the database: timed out after {} s",
            crate::thresholds::format_value(timeout.as_secs_f64())
        ),
    };
    CheckOutput {
        faults: vec![RawFault::monitor("database", problem)],
        ..CheckOutput::default()
    }
}

/// `cimaa meta-check`'s limits for a `meta:` check's options.
fn limits(options: &MetaCheck, base_interval: f64) -> Limits {
    Limits {
        warn_intervals: options.warn_intervals,
        error_intervals: options.error_intervals,
        squelch_minutes: options.squelch_minutes,
        expiring_minutes: options.expiring_minutes,
        max_inactive: options.max_inactive,
        base_interval,
    }
}

impl Agent<'_> {
    /// The checks of `checks` that run at `tick` under `due_rule`.
    pub(super) fn due_checks(
        &self,
        checks: &[Arc<CheckDef>],
        tick: i64,
        due_rule: Due,
    ) -> Vec<Arc<CheckDef>> {
        checks
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
            .collect()
    }

    /// Runs the due checks and hands each output to `done` as it comes.
    ///
    /// A check gets its own task once it holds one of the `max_concurrency`
    /// slots, so a tick of 50,000 probes has at most that many tasks (and
    /// sockets) alive, not 50,000 waiting ones. Checks start in an order
    /// that takes turns between targets (see `scheduler::take_turns`), so one
    /// host with thousands of URLs does not hold every slot while it queues
    /// for its own connection limit (`checks::http`). With `spread_from` (the
    /// tick's start, epoch seconds), probes start at their place in the
    /// interval instead (`scheduler::spread_offset`). Outputs are folded in
    /// as they come, so a tick never holds all of them at once.
    pub(super) async fn run_checks(
        &mut self,
        due: Vec<Arc<CheckDef>>,
        spread_from: Option<f64>,
        done: &mut (dyn FnMut(&mut Self, Arc<CheckDef>, CheckOutput) + Send),
    ) {
        self.probes.begin_tick(due.iter().map(AsRef::as_ref));
        let pending: VecDeque<(Arc<CheckDef>, Option<tokio::time::Instant>)> = match spread_from {
            None => scheduler::take_turns(due)
                .into_iter()
                .map(|c| (c, None))
                .collect(),
            Some(from) => self.spread(due, from),
        };
        // Dependents start once their due dependencies finished (SPEC §11).
        let (mut pending, mut waiting) = self.dependencies.hold_back(pending);
        let mut running: Tagged<Arc<CheckDef>, CheckOutput> = Tagged::new();
        let config_path = Arc::new(self.config.path.clone());
        let agent_name: Arc<str> = Arc::from(self.config.agent.name.as_str());
        let memory = Arc::new(super::memory_of(self.config));
        let base_interval = self.config.agent.base_interval;
        let clock = self.clock;
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
                    let mut output = output.unwrap_or_else(|detail| checker_fault(&check, detail));
                    // Before anything logs or stores them: a plugin's 5 MB
                    // message stays 4 KiB everywhere (SPEC §17).
                    fault::cap_raw(&mut output.faults);
                    for released in waiting.finished(&check.name) {
                        let at = pending.partition_point(|(_, start)| *start <= released.1);
                        pending.insert(at, released);
                    }
                    done(self, check, output);
                }
                slot = slot, if !pending.is_empty() => {
                    let Some((check, _)) = pending.pop_front() else {
                        continue;
                    };
                    let probes = self.probes.clone();
                    let config_path = config_path.clone();
                    let db = Arc::clone(&self.db);
                    let agent_name = Arc::clone(&agent_name);
                    let memory = Arc::clone(&memory);
                    let task_check = check.clone();
                    let telemetry = self.telemetry.clone();
                    let span = tracing::info_span!("check", check = %check.name);
                    let work = async move {
                        // The semaphore is never closed, so `slot` is `Ok`.
                        let _slot = slot;
                        let context = RunContext {
                            config_path: &config_path,
                            default_timeout,
                            probes: &probes,
                        };
                        let fleet = Fleet {
                            db: Some(db.as_ref()),
                            agent: &agent_name,
                            base_interval,
                            clock,
                            memory: memory.as_ref().as_ref(),
                        };
                        let started = tokio::time::Instant::now();
                        let output = run_check(&task_check, &context, fleet).await;
                        if let Some(telemetry) = telemetry {
                            telemetry.check_ran(&task_check.kind, started.elapsed());
                        }
                        output
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
        // The same moment on both clocks: epoch offsets become tokio instants.
        let clock = tokio::time::Instant::now();
        let now = self.clock.now();
        let mut timed: Vec<(f64, Arc<CheckDef>)> = due
            .into_iter()
            .map(|check| {
                let offset = if scheduler::is_probe(&check) {
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
}

/// Spawned tasks, each tagged with what it works on (a check, an alert).
/// A task's panic comes back as its text, so nothing escapes unreported.
pub(super) struct Tagged<K, T> {
    tasks: JoinSet<T>,
    by_task: HashMap<tokio::task::Id, K>,
}

impl<K, T: Send + 'static> Tagged<K, T> {
    pub(super) fn new() -> Self {
        Tagged {
            tasks: JoinSet::new(),
            by_task: HashMap::new(),
        }
    }

    pub(super) fn spawn(&mut self, key: K, work: impl Future<Output = T> + Send + 'static) {
        let handle = self.tasks.spawn(work);
        self.by_task.insert(handle.id(), key);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }

    /// The next task to finish, with its output or the text of its panic.
    pub(super) async fn next(&mut self) -> Option<(K, Result<T, String>)> {
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

/// `max_concurrency`, lowered to what the open-file limit (raised to its
/// hard limit first) allows.
pub(super) fn concurrency(config: &crate::config::Config) -> usize {
    match crate::limits::raise_open_files() {
        Ok(open_files) => {
            let fits = crate::limits::fitting_concurrency(config.agent.max_concurrency, open_files);
            if fits < config.agent.max_concurrency {
                tracing::warn!(
                    max_concurrency = config.agent.max_concurrency,
                    open_files,
                    using = fits,
                    "max_concurrency does not fit the open-file limit; lowering it"
                );
            }
            tracing::debug!(open_files, "raised the open-file limit");
            fits
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            config.agent.max_concurrency
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use async_trait::async_trait;

    use super::*;
    use crate::checks::Probes;
    use crate::db::{
        AgentFault, Error as DbError, Fault, Heartbeat, MemoryDb, Notice, OpenAlert, Squelch,
        StoppedAgent,
    };

    /// A database that fails every call, or never answers the meta-check's.
    struct Sick {
        hang: bool,
    }

    fn sick<T>() -> Result<T, DbError> {
        Err(DbError::Task("disk on fire".into()))
    }

    #[async_trait]
    impl Db for Sick {
        async fn get_faults(&self, _: &str) -> Result<Vec<Fault>, DbError> {
            sick()
        }
        async fn set_faults(&self, _: &str, _: &[Fault], _: i64) -> Result<(), DbError> {
            sick()
        }
        async fn heartbeat(&self, _: &str, _: i64) -> Result<(), DbError> {
            sick()
        }
        async fn list_faults(&self, _: Option<&str>) -> Result<Vec<AgentFault>, DbError> {
            sick()
        }
        async fn agents(&self) -> Result<Vec<Heartbeat>, DbError> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            sick()
        }
        async fn old_agents(&self, _: i64, _: i64) -> Result<Vec<Heartbeat>, DbError> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            sick()
        }
        async fn get_squelch_details(&self) -> Result<Vec<Squelch>, DbError> {
            sick()
        }
        async fn squelch(&self, _: &Squelch) -> Result<(), DbError> {
            sick()
        }
        async fn unsquelch(&self, _: &str) -> Result<bool, DbError> {
            sick()
        }
        async fn remove_agent(&self, _: &str) -> Result<(), DbError> {
            sick()
        }
        async fn stop_agent(&self, _: &str, _: &[OpenAlert], _: i64) -> Result<(), DbError> {
            sick()
        }
        async fn open_alerts(&self, _: &str) -> Result<Vec<OpenAlert>, DbError> {
            sick()
        }
        async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, DbError> {
            sick()
        }
        async fn clear_open_alerts(&self, _: &str) -> Result<(), DbError> {
            sick()
        }
        async fn notices(&self, _: &[String]) -> Result<Vec<Notice>, DbError> {
            sick()
        }
        async fn put_notice(&self, _: &Notice, _: u64) -> Result<bool, DbError> {
            sick()
        }
        async fn heartbeats_of(&self, _: &[String]) -> Result<Vec<Heartbeat>, DbError> {
            sick()
        }

        async fn append_history(&self, _: &[crate::db::HistoryRecord]) -> Result<(), DbError> {
            sick()
        }

        async fn history(
            &self,
            _: &crate::db::HistoryQuery,
        ) -> Result<Vec<crate::db::HistoryRecord>, DbError> {
            sick()
        }
    }

    fn meta_check(timeout: Option<Duration>) -> CheckDef {
        let mut check = CheckDef::broken("//meta".into(), Path::new("/c/meta.yaml"), String::new());
        check.kind = CheckKind::Meta(MetaCheck::default());
        check.timeout = timeout;
        check
    }

    async fn run_meta(check: &CheckDef, db: &dyn Db) -> Vec<RawFault> {
        let probes = Probes::new();
        let context = RunContext {
            config_path: Path::new("/c/agent.yaml"),
            default_timeout: Duration::from_secs(42),
            probes: &probes,
        };
        let fleet = Fleet {
            db: Some(db),
            agent: "web1",
            base_interval: 60.0,
            clock: Clock::system(),
            memory: None,
        };
        run_check(check, &context, fleet).await.faults
    }

    fn monitor_error(message: &str) -> Vec<RawFault> {
        vec![RawFault::monitor("database", message)]
    }

    // See: #22
    #[tokio::test]
    async fn a_meta_check_reports_what_meta_check_prints_as_escalating_faults() {
        let db = MemoryDb::default();
        let now = whole(Clock::system().now());
        db.heartbeat("web1", now - 1000).await.unwrap();
        db.heartbeat("web2", now - 1000).await.unwrap();
        db.heartbeat("web3", now - 200).await.unwrap();

        let faults = run_meta(&meta_check(None), &db).await;

        let shown: Vec<(Option<&str>, Severity, bool)> = faults
            .iter()
            .map(|f| (f.name.as_deref(), f.severity, f.escalates))
            .collect();
        assert_eq!(
            shown,
            [
                (Some("web2"), Severity::ERROR, true),
                (Some("web3"), Severity::WARNING, true)
            ]
        );
        assert!(
            faults
                .iter()
                .all(|f| f.message.starts_with("Inactive agent")),
            "{faults:?}"
        );
    }

    // See: #22
    #[tokio::test]
    async fn a_database_error_is_a_broken_monitor_naming_the_cause() {
        let faults = run_meta(&meta_check(None), &Sick { hang: false }).await;
        let cause = crate::error::chain(&DbError::Task("disk on fire".into()));
        assert!(cause.contains("disk on fire"), "{cause}");
        assert_eq!(
            faults,
            monitor_error(&format!("meta-check cannot read the database: {cause}"))
        );
    }

    // See: #22
    #[tokio::test(start_paused = true)]
    async fn a_database_that_does_not_answer_is_bounded_by_the_check_timeout() {
        let check = meta_check(Some(Duration::from_secs(3)));
        let faults = run_meta(&check, &Sick { hang: true }).await;
        assert_eq!(
            faults,
            monitor_error("meta-check reading the database: timed out after 3 s")
        );
    }

    // See: #22
    #[tokio::test]
    async fn a_meta_check_without_a_database_says_so() {
        let check = meta_check(None);
        let probes = Probes::new();
        let context = RunContext {
            config_path: Path::new("/c/agent.yaml"),
            default_timeout: Duration::from_secs(42),
            probes: &probes,
        };
        let fleet = Fleet {
            db: None,
            agent: "web1",
            base_interval: 60.0,
            clock: Clock::system(),
            memory: None,
        };
        assert_eq!(
            run_check(&check, &context, fleet).await.faults,
            monitor_error("meta-check: no database to read")
        );
    }
}
