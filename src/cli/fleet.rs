//! Fleet upkeep: `meta-check`, `forget` and `setup-db`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinSet;

use super::table::relative;
use super::{Printer, open_db};
use crate::agent;
use crate::alerters::{self, Alerters, Event};
use crate::config::{self, Config, Scope};
use crate::db::{self, Db, Fault, OpenAlert};
use crate::error::{CliError, ExitStatus};
use crate::fault;
use crate::meta;

#[derive(Serialize)]
struct MetaOutput {
    faults: Vec<meta::MetaFault>,
}

/// `cimaa meta-check`: the meta-check's JSON, judged with this agent's
/// memory of its peers (shared with its `meta:` checks) and, with
/// `--expect FILE`, the agents that never reported.
pub(super) async fn meta_check(
    config: &Config,
    limits: meta::Limits,
    expect: Option<&Path>,
) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    let memory = agent::memory_of(config);
    let faults = agent::meta_faults(
        db.as_ref(),
        &config.agent.name,
        limits,
        now,
        memory.as_ref(),
        expect,
    )
    .await
    .map_err(CliError::failure)?;
    Printer::line(&serde_json::to_string(&MetaOutput { faults }).map_err(CliError::failure)?);
    Ok(ExitStatus::Success)
}

pub(super) async fn setup_db(
    config: &Config,
    capacity: Option<db::Capacity>,
) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    db.setup(capacity).await.map_err(CliError::failure)?;
    Ok(ExitStatus::Success)
}

/// Base intervals (of this configuration) within which a heartbeat counts
/// as fresh: the meta-check's default `-w`, after which it calls an agent
/// inactive.
const FRESH_INTERVALS: f64 = 2.0;

/// `cimaa forget AGENT` (SPEC §16): for a host that will not come back,
/// resolves the agent's open alerts (those kept at a clean stop and the
/// triggered faults it left) through this configuration's alerters, each by
/// its check's route, and removes everything the agent left in the database.
///
/// An agent whose heartbeat is fresh is refused: it is running (or a typo
/// named a live agent), and it would write its faults back at its next tick
/// anyway. Alerts whose resolve fails are kept, as a clean stop keeps them,
/// so the next `forget` tries them again; the command then exits 1 naming
/// them.
pub(super) async fn forget(config: &Config, agent: &str) -> Result<ExitStatus, CliError> {
    let db = open_db(config).await?;
    let now = chrono::Utc::now().timestamp();
    let heartbeat = db
        .agents()
        .await
        .map_err(CliError::failure)?
        .into_iter()
        .find(|heartbeat| heartbeat.name == agent);
    #[expect(
        clippy::cast_possible_truncation,
        reason = "whole seconds of sane intervals"
    )]
    let fresh = (FRESH_INTERVALS * config.agent.base_interval).ceil() as i64;
    if let Some(heartbeat) = &heartbeat
        && now - heartbeat.updated < fresh
    {
        return Err(CliError::failure(format!(
            "agent `{agent}` wrote its heartbeat {}, so it is running: stop it first (a clean stop keeps its open alerts for `forget`); nothing was changed",
            relative(now - heartbeat.updated)
        )));
    }
    let faults = db.get_faults(agent).await.map_err(CliError::failure)?;
    let kept = db.open_alerts(agent).await.map_err(CliError::failure)?;
    if heartbeat.is_none() && faults.is_empty() && kept.is_empty() {
        return Err(CliError::failure(format!(
            "the database knows no agent `{agent}` (no heartbeat, faults or open alerts); `cimaa agents` lists the known ones"
        )));
    }
    // Stopped when it stopped cleanly, else at its last heartbeat: the time
    // kept with any alert that cannot be resolved now.
    let stopped = db
        .stopped_agents()
        .await
        .map_err(CliError::failure)?
        .into_iter()
        .find(|stopped| stopped.name == agent)
        .map(|stopped| stopped.stopped)
        .or(heartbeat.map(|heartbeat| heartbeat.updated))
        .unwrap_or(now);
    let mut open = alerts_to_resolve(config, agent, &faults, kept);
    // A fleet fault (`//meta#web2`) that a live peer still holds is one
    // incident: resolving it here would close the page while the peer
    // still sees the trouble (and, its alert triggered, never re-sends it).
    let live_intervals = f64::from(config.alerting.holder_timeout);
    let held = held_by_live_peers(
        db.as_ref(),
        agent,
        live_intervals * config.agent.base_interval,
        now,
    )
    .await
    .map_err(CliError::failure)?;
    open.retain(|alert| {
        let keep = !held.contains(&alert.fault.name);
        if !keep {
            Printer::line(&format!(
                "left `{}` open: a live agent still holds it",
                alert.fault.name
            ));
        }
        keep
    });
    let context = alerters::Context {
        agent: config.agent.name.clone(),
        alert_timeout: config.agent.alert_timeout,
    };
    let alerters =
        Alerters::build(&config.alerter, &config.alerters, &context).map_err(CliError::failure)?;
    let failed = resolve_all(Arc::new(alerters), &open, config.agent.alert_timeout).await;
    let resolved: Vec<String> = open
        .iter()
        .map(|alert| alert.fault.name.clone())
        .filter(|name| !failed.contains_key(name))
        .collect();
    close_notices(db.as_ref(), agent, &resolved).await;
    let left: Vec<OpenAlert> = open
        .iter()
        .filter(|alert| failed.contains_key(&alert.fault.name))
        .cloned()
        .collect();
    // With nothing left this removes everything; else it keeps what failed.
    db.stop_agent(agent, &left, stopped)
        .await
        .map_err(CliError::failure)?;
    if left.is_empty() {
        Printer::line(&format!(
            "forgot agent `{agent}`: resolved {} and removed what it left in the database",
            count(open.len(), "open alert")
        ));
        return Ok(ExitStatus::Success);
    }
    let names: Vec<String> = failed
        .iter()
        .map(|(name, error)| format!("`{name}` ({error})"))
        .collect();
    Err(CliError::failure(format!(
        "could not resolve {} of agent `{agent}`: {}; they are kept for the next `cimaa forget {agent}`, the rest of the agent is removed",
        count(left.len(), "open alert"),
        names.join("; ")
    )))
}

/// After `forget` resolved these alerts, closes their fleet notices (SPEC
/// §10): the incident is over at the receivers, so the next agent that
/// finds the fault CRITICAL triggers a new one instead of taking it for
/// delivered. A notice written meanwhile (by a live agent) is left to it.
async fn close_notices(db: &dyn Db, agent: &str, resolved: &[String]) {
    if resolved.is_empty() {
        return;
    }
    let notices = match db.notices(resolved).await {
        Ok(notices) => notices,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the fleet notices of the resolved alerts; the fleet may take them for still open");
            return;
        }
    };
    for notice in notices {
        let mut closed = notice.clone();
        closed.holders.remove(agent);
        closed.delivered.clear();
        closed.claim = None;
        match db.put_notice(&closed, notice.version).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(fault = %notice.name, "the fleet notice changed meanwhile; left to the agents that hold it");
            }
            Err(e) => {
                tracing::warn!(fault = %notice.name, error = %e, "cannot close the fleet notice");
            }
        }
    }
}

/// Names of the fleet faults (absolute check names not under
/// `//AGENT/`) that an agent other than `agent`, with a heartbeat younger
/// than `live_for` seconds (`alerting.holder_timeout` base intervals, as
/// the fleet judges holders), holds triggered or critical.
async fn held_by_live_peers(
    db: &dyn Db,
    agent: &str,
    live_for: f64,
    now: i64,
) -> Result<HashSet<String>, crate::db::Error> {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "whole seconds of sane intervals"
    )]
    let live_secs = live_for.ceil() as i64;
    let live: HashSet<String> = db
        .agents()
        .await?
        .into_iter()
        .filter(|heartbeat| heartbeat.name != agent && now - heartbeat.updated < live_secs)
        .map(|heartbeat| heartbeat.name)
        .collect();
    let own = format!("//{agent}/");
    Ok(db
        .list_faults(None)
        .await?
        .into_iter()
        .filter(|held| {
            live.contains(&held.agent)
                && (held.fault.triggered || held.fault.severity.is_critical())
                && held.fault.name.starts_with("//")
                && !held.fault.name.starts_with(&own)
        })
        .map(|held| held.fault.name)
        .collect())
}

/// `1 fault`, `3 faults`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The alerts `forget` resolves, by name: the agent's triggered faults
/// (what a killed agent left) and the alerts its last clean stop kept; a
/// kept alert brings the route it was triggered through. A fault's route is
/// its check's `alerter:` as this configuration's check directory names it
/// for that agent (a fleet deploys the same check files); a check not found
/// there routes to `default`; an alert storm to the alerter it was for.
fn alerts_to_resolve(
    config: &Config,
    agent: &str,
    faults: &[Fault],
    kept: Vec<OpenAlert>,
) -> Vec<OpenAlert> {
    let mut open: BTreeMap<String, OpenAlert> = BTreeMap::new();
    let triggered: Vec<&Fault> = faults.iter().filter(|f| f.triggered).collect();
    let missing_route = triggered
        .iter()
        .any(|f| !kept.iter().any(|k| k.fault.name == f.name));
    let routes = if missing_route {
        check_routes(config, agent)
    } else {
        HashMap::new()
    };
    for fault in triggered {
        // A storm fault (`AGENT#storm-NAME`) went through the alerter it names.
        let alerter = crate::storm::route_of(agent, &fault.name).map_or_else(
            || routes.get(fault::check_of(&fault.name)).cloned().flatten(),
            |route| route.0,
        );
        open.insert(
            fault.name.clone(),
            OpenAlert {
                fault: fault.clone(),
                alerter,
            },
        );
    }
    for alert in kept {
        open.insert(alert.fault.name.clone(), alert);
    }
    open.into_values().collect()
}

/// Each check's `alerter:` in this configuration's check directory, the
/// checks named as `agent` names them; empty when the folder is unreadable.
fn check_routes(config: &Config, agent: &str) -> HashMap<String, Option<String>> {
    let scope = Scope {
        agent: agent.to_owned(),
        alerters: config.alerter_names(),
    };
    match config::load_check_dir(&scope, &config.agent.directory) {
        Ok(checks) => checks
            .into_iter()
            .map(|check| (check.name, check.alerter))
            .collect(),
        Err(error) => {
            eprintln!(
                "warning: cannot read the check directory `{}` ({error}): every fault of the agent is resolved through `default`",
                config.agent.directory.display()
            );
            HashMap::new()
        }
    }
}

/// Resolves `open` concurrently, each along its route's alerter chain
/// within `alert_timeout`; prints each resolve delivered and returns the
/// failures: fault name → what each alerter said. A route this
/// configuration does not have goes to `default`, with a warning.
async fn resolve_all(
    alerters: Arc<Alerters>,
    open: &[OpenAlert],
    alert_timeout: std::time::Duration,
) -> BTreeMap<String, String> {
    let deadline = tokio::time::Instant::now() + alert_timeout;
    let mut tasks = JoinSet::new();
    for alert in open {
        let mut route = alert.alerter.clone();
        if let Some(name) = &route
            && alerters.chain(Some(name)).first() != Some(name)
        {
            eprintln!(
                "warning: alerter `{name}` of `{}` is not configured here; resolving it through `{}`",
                alert.fault.name,
                alerters::DEFAULT
            );
            route = None;
        }
        let alerters = Arc::clone(&alerters);
        let name = alert.fault.name.clone();
        tasks.spawn(async move {
            let delivery = alerters
                .deliver(route.as_deref(), Event::Resolve { name: &name }, deadline)
                .await;
            let outcome = delivery.delivered_by.ok_or_else(|| {
                delivery
                    .failures
                    .iter()
                    .map(|(alerter, error)| format!("{alerter}: {}", crate::error::chain(error)))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            (name, outcome)
        });
    }
    let mut resolved = BTreeMap::new();
    let mut failed = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(alerter))) => {
                resolved.insert(name, alerter);
            }
            Ok((name, Err(error))) => {
                failed.insert(name, error);
            }
            // A panicking alerter: its alert is counted as failed below.
            Err(error) => eprintln!("warning: a resolve failed: {error}"),
        }
    }
    for alert in open {
        let name = &alert.fault.name;
        if !resolved.contains_key(name) && !failed.contains_key(name) {
            failed.insert(name.clone(), "the resolve did not finish".to_owned());
        }
    }
    for (name, alerter) in &resolved {
        Printer::line(&format!("resolved `{name}` through `{alerter}`"));
    }
    failed
}
