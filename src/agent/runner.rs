//! Running a tick's due checks: bounded, in turns, optionally spread.
//!
//! Owns how checks become tasks: one of `max_concurrency` semaphore slots per
//! check in flight, the order in which they start (`scheduler::take_turns`,
//! or each probe's place in a spread tick), and `Tagged`, the task set that
//! tells which check (or alert) each finished task worked on. A check's task
//! that panics becomes its ERROR fault `checker`; nothing escapes a task.
//! Every output's fault messages are capped (`fault::cap_raw`) before the
//! tick logs or records them.
//! What a check does is `checks::run`'s; folding its output into the fault
//! set is the tick's (`agent::Agent::record`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sentry::SentryFutureExt as _;
use tokio::task::JoinSet;
use tracing::{Instrument as _, error};

use super::Agent;
use crate::checks::CheckDef;
use crate::checks::{self, CheckOutput, RunContext};
use crate::fault::{self, RawFault};
use crate::scheduler;
use crate::severity::Severity;

impl Agent<'_> {
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
        let mut pending: VecDeque<(Arc<CheckDef>, Option<tokio::time::Instant>)> = match spread_from
        {
            None => scheduler::take_turns(due)
                .into_iter()
                .map(|c| (c, None))
                .collect(),
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
                    let mut output = output.unwrap_or_else(|detail| checker_fault(&check, detail));
                    // Before anything logs or stores them: a plugin's 5 MB
                    // message stays 4 KiB everywhere (SPEC §17).
                    fault::cap_raw(&mut output.faults);
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
