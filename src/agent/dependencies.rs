//! Dependencies between checks on the agent (SPEC §11 `depends_on`, and
//! SPEC §14's `AGENT#dns` suppression of the probes it stopped).
//!
//! The rules are `dependency`'s (pure); this part does the I/O around them:
//! - after each scan, `resolve` gives every check its dependencies; a check
//!   whose `depends_on` names a check this agent does not have, or closes a
//!   cycle, becomes a broken check reporting the CRITICAL
//!   `error loading check PATH [KEY]: depends_on: ... at line N` (SPEC §3:
//!   the agent keeps running). `cimaa check` and `cimaa validate` use the
//!   same resolution;
//! - the runner holds a due check back until its due local dependencies
//!   have finished (`Waiting`), so a dependency is judged on its result in
//!   the same tick;
//! - absolute dependencies (`//...`) are judged on the fleet's notices
//!   (SPEC §10): one `Db::notices` read of only the dependency names and
//!   one `heartbeats_of` for their holders, started with the tick and run
//!   beside its checks (`start_fleet_read`). A notice lists the agents that
//!   hold the fault CRITICAL: an absolute dependency counts as failing while
//!   a live agent other than this one holds it (an ERROR still in its
//!   retries, or a `notify: per_agent` check, has no notice), or while this
//!   agent's own faults of that check are ERROR or CRITICAL. When the read
//!   fails, the last answer stands;
//! - after the tick's runs, `apply_dependencies` stores each dependent's
//!   `suppressed_by` (`dependency::decide`) and notes a `suppressed`
//!   history record when a fault becomes suppressed. `fault::plan` does not
//!   trigger a suppressed fault and keeps its open alert open.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::Agent;
use crate::checks::{CheckDef, CheckKind};
use crate::db::{Db, Error as DbError};
use crate::dependency::{self, Declared, Problem, Target};
use crate::history::Event;
use crate::notice;

/// Every check's resolved dependencies (only checks that have some).
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Dependencies of each check, by full name, in the order written.
    pub targets: HashMap<String, Vec<Target>>,
    /// The configuration error of each check whose `depends_on` is wrong:
    /// its `error loading check PATH [KEY]: depends_on: ...` message.
    pub problems: HashMap<String, String>,
}

impl Resolved {
    /// The absolute names depended on, sorted.
    fn absolute(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self
            .targets
            .values()
            .flatten()
            .filter_map(|t| match t {
                Target::Absolute(name) => Some(name.as_str()),
                Target::Local(_) => None,
            })
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }
}

/// The stem of a check's file.
fn stem_of(check: &CheckDef) -> String {
    check
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Resolves the `depends_on` of `checks` against one another (SPEC §11).
#[must_use]
pub(crate) fn resolve(agent: &str, checks: &[&CheckDef]) -> Resolved {
    if checks.iter().all(|c| c.depends_on.is_empty()) {
        return Resolved::default();
    }
    let stems: Vec<String> = checks.iter().map(|c| stem_of(c)).collect();
    let declared: Vec<Declared> = checks
        .iter()
        .zip(&stems)
        .map(|(check, stem)| Declared {
            name: &check.name,
            stem,
            depends_on: &check.depends_on,
        })
        .collect();
    let mut resolved = Resolved::default();
    for ((check, stem), outcome) in checks
        .iter()
        .zip(&stems)
        .zip(dependency::resolve(agent, &declared))
    {
        match outcome {
            Ok(targets) if targets.is_empty() => {}
            Ok(targets) => {
                resolved.targets.insert(check.name.clone(), targets);
            }
            Err(problem) => {
                let message = problem_message(agent, check, stem, &problem);
                resolved.problems.insert(check.name.clone(), message);
            }
        }
    }
    resolved
}

/// `error loading check PATH [KEY]: depends_on: PROBLEM at line N`, as an
/// invalid entry's error reads (SPEC §3).
fn problem_message(agent: &str, check: &CheckDef, stem: &str, problem: &Problem) -> String {
    let prefix = format!("//{agent}/{stem}/");
    let key = check.name.strip_prefix(&prefix).unwrap_or(&check.name);
    let line = check
        .depends_on_line
        .map(|line| format!(" at line {line}"))
        .unwrap_or_default();
    format!(
        "error loading check {} [{key}]: depends_on: {problem}{line}",
        check.file.display()
    )
}

/// The host a probe resolves, as the resolver notes it (lower case, no
/// trailing dot); `None` for command and meta checks.
fn host_of(check: &CheckDef) -> Option<String> {
    let host = match &check.kind {
        CheckKind::Http(http) => http.url.host_str()?.to_owned(),
        CheckKind::Tcp(target) | CheckKind::Socket(crate::checks::socket::Target::Tcp(target)) => {
            target.host.clone()
        }
        _ => return None,
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// The agent's dependency state.
#[derive(Debug, Default)]
pub(super) struct State {
    /// The current checks' dependencies.
    resolved: Resolved,
    /// Absolute dependencies failing on a live agent, as last read.
    fleet_failing: BTreeSet<String>,
}

/// Held checks by name: how many of their dependencies are unfinished,
/// and the check with what the runner keeps with it.
type Held<T> = HashMap<String, (usize, Option<(Arc<CheckDef>, T)>)>;

/// Due checks held back until their due local dependencies have finished.
pub(super) struct Waiting<T> {
    /// Each held check, with how many of its dependencies are unfinished.
    held: Held<T>,
    /// The held dependents of each due check.
    dependents: HashMap<String, Vec<String>>,
}

impl<T> Waiting<T> {
    /// The checks that `name`'s end releases.
    pub(super) fn finished(&mut self, name: &str) -> Vec<(Arc<CheckDef>, T)> {
        let Some(dependents) = self.dependents.remove(name) else {
            return Vec::new();
        };
        let mut released = Vec::new();
        for dependent in dependents {
            if let Some((count, item)) = self.held.get_mut(&dependent) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    released.extend(item.take());
                    self.held.remove(&dependent);
                }
            }
        }
        released
    }
}

impl State {
    /// Splits a tick's start order: the checks that may start now, and
    /// those held until their due local dependencies finish. Costs nothing
    /// when no check has a dependency.
    pub(super) fn hold_back<T>(
        &self,
        pending: VecDeque<(Arc<CheckDef>, T)>,
    ) -> (VecDeque<(Arc<CheckDef>, T)>, Waiting<T>) {
        let mut waiting = Waiting {
            held: HashMap::new(),
            dependents: HashMap::new(),
        };
        if self.resolved.targets.is_empty() {
            return (pending, waiting);
        }
        let due: HashSet<String> = pending.iter().map(|(c, _)| c.name.clone()).collect();
        let mut ready = VecDeque::with_capacity(pending.len());
        for (check, extra) in pending {
            let waits_on: Vec<&str> = self
                .resolved
                .targets
                .get(&check.name)
                .into_iter()
                .flatten()
                .filter_map(|t| match t {
                    Target::Local(name) if due.contains(name) => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            if waits_on.is_empty() {
                ready.push_back((check, extra));
                continue;
            }
            for name in &waits_on {
                waiting
                    .dependents
                    .entry((*name).to_owned())
                    .or_default()
                    .push(check.name.clone());
            }
            waiting
                .held
                .insert(check.name.clone(), (waits_on.len(), Some((check, extra))));
        }
        (ready, waiting)
    }
}

/// The absolute names among `names` that a live agent other than `me`
/// holds CRITICAL, from their notices (SPEC §10): one batched read of the
/// names, one of their holders' heartbeats.
async fn read_fleet(
    db: Arc<dyn Db>,
    names: Vec<String>,
    me: String,
    now: i64,
    holder_timeout: i64,
) -> Result<BTreeSet<String>, DbError> {
    let notices = db.notices(&names).await?;
    let holders: BTreeSet<&String> = notices
        .iter()
        .flat_map(|n| &n.holders)
        .filter(|holder| **holder != me)
        .collect();
    if holders.is_empty() {
        return Ok(BTreeSet::new());
    }
    let holders: Vec<String> = holders.into_iter().cloned().collect();
    let live: HashSet<String> = db
        .heartbeats_of(&holders)
        .await?
        .into_iter()
        .filter(|beat| notice::is_live(Some(beat.updated), now, holder_timeout))
        .map(|beat| beat.name)
        .collect();
    Ok(notices
        .into_iter()
        .filter(|n| n.holders.iter().any(|holder| live.contains(holder)))
        .map(|n| n.name)
        .collect())
}

/// The fleet read of a tick, running beside its checks.
pub(super) type FleetRead = Option<JoinHandle<Result<BTreeSet<String>, DbError>>>;

impl Agent<'_> {
    /// Resolves the scanned checks' dependencies and replaces each check
    /// whose `depends_on` is wrong by its broken check (SPEC §3).
    pub(super) fn with_dependencies(&mut self, checks: Vec<Arc<CheckDef>>) -> Vec<Arc<CheckDef>> {
        let refs: Vec<&CheckDef> = checks.iter().map(AsRef::as_ref).collect();
        let resolved = resolve(&self.config.agent.name, &refs);
        let checks = if resolved.problems.is_empty() {
            checks
        } else {
            checks
                .into_iter()
                .map(|check| match resolved.problems.get(&check.name) {
                    Some(message) => Arc::new(CheckDef::broken(
                        check.name.clone(),
                        &check.file,
                        message.clone(),
                    )),
                    None => check,
                })
                .collect()
        };
        self.dependencies.resolved = resolved;
        checks
    }

    /// Starts this tick's read of the absolute dependencies, if there are
    /// any (one per tick, never one per check).
    pub(super) fn start_fleet_read(&self, now: i64) -> FleetRead {
        let names = self.dependencies.resolved.absolute();
        if names.is_empty() {
            return None;
        }
        Some(tokio::spawn(read_fleet(
            Arc::clone(&self.db),
            names,
            self.config.agent.name.clone(),
            now,
            self.holder_timeout(),
        )))
    }

    /// Whether `check` has an ERROR or CRITICAL fault here now.
    fn failing_here(&self, check: &str) -> bool {
        self.faults
            .range(check.to_owned()..format!("{check}$"))
            .filter(|(name, _)| name.as_str() == check || name.starts_with(&format!("{check}#")))
            .any(|(_, fault)| fault.severity >= crate::severity::Severity::ERROR)
    }

    /// The dependencies of `check` failing now: relative ones by this
    /// agent's faults, absolute ones by the fleet's (read this tick).
    pub(super) fn failing_dependencies(&self, check: &str) -> Vec<String> {
        let mut failing = Vec::new();
        for target in self
            .dependencies
            .resolved
            .targets
            .get(check)
            .into_iter()
            .flatten()
        {
            let name = target.name();
            let fails = self.failing_here(name)
                || (matches!(target, Target::Absolute(_))
                    && self.dependencies.fleet_failing.contains(name));
            if fails {
                failing.push(name.to_owned());
            }
        }
        failing
    }

    /// After the tick's runs: stores which failing dependency (or
    /// `AGENT#dns`, for a probe whose host did not resolve in an outage,
    /// `dns_unresolved`) suppresses each check's faults.
    pub(super) async fn apply_dependencies(
        &mut self,
        checks: &[Arc<CheckDef>],
        ran: &HashSet<String>,
        fleet: FleetRead,
        dns_unresolved: &BTreeSet<String>,
        now: i64,
    ) {
        if let Some(read) = fleet {
            match read.await {
                Ok(Ok(failing)) => self.dependencies.fleet_failing = failing,
                Ok(Err(e)) => {
                    warn!(error = %crate::error::chain(&e), "cannot read the fleet's faults of absolute dependencies; keeping the last answer");
                }
                Err(e) => warn!(error = %e, "reading absolute dependencies failed"),
            }
        }
        let dns = format!("{}#dns", self.config.agent.name);
        // The checks to decide for: those with dependencies, probes stopped
        // by a DNS outage, and those whose faults are suppressed now.
        let mut candidates: BTreeSet<String> =
            self.dependencies.resolved.targets.keys().cloned().collect();
        let mut stopped_by_dns: HashSet<&str> = HashSet::new();
        if !dns_unresolved.is_empty() {
            for check in checks {
                if ran.contains(&check.name)
                    && host_of(check).is_some_and(|host| dns_unresolved.contains(&host))
                {
                    stopped_by_dns.insert(&check.name);
                    candidates.insert(check.name.clone());
                }
            }
        }
        candidates.extend(
            self.faults
                .values()
                .filter(|f| f.suppressed_by.is_some())
                .map(|f| crate::fault::check_of(&f.name).to_owned()),
        );
        for check in candidates {
            let mut failing = self.failing_dependencies(&check);
            if stopped_by_dns.contains(check.as_str()) {
                failing.push(dns.clone());
            }
            let failing: Vec<&str> = failing.iter().map(String::as_str).collect();
            self.suppress(&check, ran.contains(&check), &failing, now);
        }
    }

    /// Applies `dependency::decide` to every fault of `check`.
    fn suppress(&mut self, check: &str, ran: bool, failing: &[&str], now: i64) {
        let names: Vec<String> = self
            .faults
            .range(check.to_owned()..format!("{check}$"))
            .map(|(name, _)| name.clone())
            .filter(|name| name == check || name.starts_with(&format!("{check}#")))
            .collect();
        for name in names {
            let Some(fault) = self.faults.get_mut(&name) else {
                continue;
            };
            let decided = dependency::decide(fault.suppressed_by.as_deref(), ran, failing);
            if decided == fault.suppressed_by {
                continue;
            }
            fault.updated = now;
            fault.suppressed_by.clone_from(&decided);
            let (severity, message) = (fault.severity, fault.message.clone());
            if let Some(by) = decided {
                info!(fault = %name, suppressed_by = %by, "fault suppressed by a failing dependency");
                let record = self.note(now, &name, Event::Suppressed);
                record.severity = Some(severity);
                record.message = Some(message);
                record.detail = Some(format!("suppressed by {by}"));
            } else {
                debug!(fault = %name, "fault no longer suppressed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn check(name: &str, file: &str, depends_on: &[&str], line: Option<usize>) -> CheckDef {
        let mut check = CheckDef::broken(name.into(), Path::new(file), String::new());
        check.kind = CheckKind::Command("true".into());
        check.depends_on = depends_on.iter().map(|s| (*s).to_owned()).collect();
        check.depends_on_line = line;
        check
    }

    #[test]
    fn a_wrong_name_is_an_error_naming_file_key_and_line() {
        let a = check("//web1/app/a", "/c/app.yaml", &["gw"], Some(3));
        let b = check("//web1/net/gw", "/c/net.yaml", &[], None);
        let resolved = resolve("web1", &[&a, &b]);
        assert_eq!(
            resolved.problems.get("//web1/app/a").map(String::as_str),
            Some(
                "error loading check /c/app.yaml [a]: depends_on: no check `gw` on this agent (a relative name is `KEY` of the same file or `STEM/KEY`; an absolute one starts with `//`) at line 3"
            )
        );
    }

    #[test]
    fn dependents_wait_for_their_due_dependencies_only() {
        let gw = Arc::new(check("//web1/net/gw", "/c/net.yaml", &[], None));
        let app = Arc::new(check("//web1/app/a", "/c/app.yaml", &["net/gw"], None));
        let other = Arc::new(check("//web1/app/b", "/c/app.yaml", &["net/gw"], None));
        let mut state = State::default();
        let refs = [gw.as_ref(), app.as_ref(), other.as_ref()];
        state.resolved = resolve("web1", &refs);

        let pending: VecDeque<_> = [(app.clone(), ()), (gw.clone(), ()), (other.clone(), ())]
            .into_iter()
            .collect();
        let (ready, mut waiting) = state.hold_back(pending);
        let names = |items: Vec<(Arc<CheckDef>, ())>| -> Vec<String> {
            items.into_iter().map(|(c, ())| c.name.clone()).collect()
        };
        assert_eq!(names(ready.into_iter().collect()), ["//web1/net/gw"]);
        assert_eq!(
            names(waiting.finished("//web1/net/gw")),
            ["//web1/app/a", "//web1/app/b"]
        );
        assert!(waiting.finished("//web1/net/gw").is_empty());

        // The dependency not due: nothing waits.
        let pending: VecDeque<_> = [(app.clone(), ())].into_iter().collect();
        let (ready, _) = state.hold_back(pending);
        assert_eq!(ready.len(), 1);
    }
}
