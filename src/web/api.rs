//! `/api/*` (SPEC §13): the CLI's `--json` documents, and the squelch
//! changes (`POST /api/squelches`, `DELETE /api/squelches/<regex>`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Web, auth, json};
use crate::db::{AgentFault, HistoryQuery, HistoryRecord};
use crate::history::{Event, Record};
use crate::meta::Heartbeat;
use crate::squelch::{self, Matcher, Squelch};

/// The history window without `since`: the last 24 hours (as the CLI).
pub(super) const DEFAULT_SINCE: i64 = 86_400;
/// Records without `limit` (as the CLI).
pub(super) const DEFAULT_LIMIT: usize = 100;
/// The most records one request may ask for.
const MAX_LIMIT: usize = 10_000;
/// The most a history `name` regex may compile to (SPEC §17).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// An error answer: a status and one sentence (`{"error": ...}`).
pub(super) struct Failure(pub StatusCode, pub String);

impl Failure {
    fn internal(error: &crate::db::Error) -> Failure {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("database: {}", crate::error::chain(error)),
        )
    }
    fn bad(message: impl Into<String>) -> Failure {
        Failure(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<auth::Refusal> for Failure {
    fn from(refusal: auth::Refusal) -> Failure {
        Failure(refusal.status(), refusal.message().to_owned())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The current faults (of one agent) and the squelches in force.
pub(super) async fn read_faults(
    web: &Web,
    agent: Option<&str>,
    now: i64,
) -> Result<(Vec<AgentFault>, Matcher), Failure> {
    let faults = web
        .db
        .list_faults(agent)
        .await
        .map_err(|e| Failure::internal(&e))?;
    let regexes = web
        .db
        .get_squelches(now)
        .await
        .map_err(|e| Failure::internal(&e))?;
    Ok((faults, Matcher::new(&regexes)))
}

/// The agents and their heartbeats.
pub(super) async fn read_agents(web: &Web) -> Result<Vec<Heartbeat>, Failure> {
    web.db.agents().await.map_err(|e| Failure::internal(&e))
}

/// The squelches in force at `now` (expired ones left out: the web view
/// removes nothing it was not asked to), with the current faults.
pub(super) async fn read_squelches(
    web: &Web,
    now: i64,
) -> Result<(Vec<Squelch>, Vec<AgentFault>), Failure> {
    let mut list = web
        .db
        .get_squelch_details()
        .await
        .map_err(|e| Failure::internal(&e))?;
    list.retain(|s| s.active(now));
    let faults = if list.is_empty() {
        Vec::new()
    } else {
        web.db
            .list_faults(None)
            .await
            .map_err(|e| Failure::internal(&e))?
    };
    Ok((list, faults))
}

/// `/api/history` and `/history`'s filters (the CLI's options).
#[derive(Debug, Default, Deserialize)]
pub(super) struct HistoryFilter {
    pub agent: Option<String>,
    pub name: Option<String>,
    pub since: Option<String>,
    pub limit: Option<usize>,
}

/// The history records `filter` selects, newest first.
pub(super) async fn read_history(
    web: &Web,
    filter: &HistoryFilter,
    now: i64,
) -> Result<Vec<HistoryRecord>, Failure> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let name = nonempty(&filter.name)
        .map(|regex| {
            regex::RegexBuilder::new(&regex)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| Failure::bad(format!("name: invalid regex: {e}")))
        })
        .transpose()?;
    let since = match nonempty(&filter.since) {
        None => DEFAULT_SINCE,
        Some(text) => {
            squelch::parse_duration(&text).map_err(|e| Failure::bad(format!("since: {e}")))?
        }
    };
    let query = HistoryQuery {
        agent: nonempty(&filter.agent),
        name,
        since: now.saturating_sub(since),
        now,
        limit: filter.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
    };
    web.db
        .history(&query)
        .await
        .map_err(|e| Failure::internal(&e))
}

#[derive(Deserialize)]
pub(super) struct AgentFilter {
    agent: Option<String>,
}

pub(super) async fn faults(
    State(web): State<Arc<Web>>,
    Query(filter): Query<AgentFilter>,
) -> Result<Response, Failure> {
    let agent = filter.agent.filter(|a| !a.is_empty());
    let (faults, in_force) = read_faults(&web, agent.as_deref(), now()).await?;
    Ok(Json(json::faults(&faults, &in_force)).into_response())
}

pub(super) async fn agents(State(web): State<Arc<Web>>) -> Result<Response, Failure> {
    Ok(Json(read_agents(&web).await?).into_response())
}

pub(super) async fn squelches(State(web): State<Arc<Web>>) -> Result<Response, Failure> {
    let (list, faults) = read_squelches(&web, now()).await?;
    let counts = json::match_counts(&list, &faults);
    Ok(Json(json::squelches(&list, &counts)).into_response())
}

pub(super) async fn history(
    State(web): State<Arc<Web>>,
    Query(filter): Query<HistoryFilter>,
) -> Result<Response, Failure> {
    Ok(Json(read_history(&web, &filter, now()).await?).into_response())
}

#[derive(Deserialize)]
pub(super) struct PreviewQuery {
    regex: String,
}

/// `/api/preview?regex=`: the current faults a squelch would match (the
/// squelch form's live dry run); an invalid regex is a 400 with the reason.
pub(super) async fn preview(
    State(web): State<Arc<Web>>,
    Query(query): Query<PreviewQuery>,
) -> Result<Response, Failure> {
    let regex = squelch::check_regex(&query.regex).map_err(|e| Failure::bad(e.to_string()))?;
    let (faults, in_force) = read_faults(&web, None, now()).await?;
    let matched: Vec<AgentFault> = faults
        .into_iter()
        .filter(|f| regex.is_match(&f.fault.name))
        .collect();
    Ok(Json(json::faults(&matched, &in_force)).into_response())
}

/// A new squelch as `POST /api/squelches` and the squelch form give it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NewSquelch {
    pub regex: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub permanent: bool,
    /// A duration (`2h`) or, in JSON, a number of seconds.
    #[serde(default)]
    pub expires: Option<serde_json::Value>,
    /// With a bearer token: who (default `api`).
    #[serde(default)]
    pub user: Option<String>,
}

/// Stores a squelch for `user` after the CLI's checks (regex, reason,
/// `squelch:` limits) and records it; returns how many current faults it
/// matches.
pub(super) async fn add(
    web: &Web,
    new: &NewSquelch,
    user: &str,
) -> Result<(Squelch, usize), Failure> {
    let asked = match &new.expires {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => None,
        Some(serde_json::Value::String(text)) => {
            Some(squelch::parse_duration(text.trim()).map_err(|e| Failure::bad(e.to_string()))?)
        }
        Some(serde_json::Value::Number(n)) => {
            Some(n.as_i64().filter(|s| *s > 0).ok_or_else(|| {
                Failure::bad(
                    "expires: give a positive number of seconds or a duration such as `2h`",
                )
            })?)
        }
        Some(_) => return Err(Failure::bad("expires: give a duration such as `2h`")),
    };
    let lifetime = web
        .policy
        .lifetime(new.permanent, asked, &web.config_name)
        .map_err(|e| Failure::bad(e.to_string()))?;
    let now = now();
    let squelch = squelch::new_squelch(&new.regex, &new.reason, user, new.permanent, lifetime, now)
        .map_err(|e| Failure::bad(e.to_string()))?;
    web.db
        .squelch(&squelch)
        .await
        .map_err(|e| Failure::internal(&e))?;
    let mut added = Record::new(now, &web.agent, &squelch.regex, Event::SquelchAdded);
    added.message = Some(squelch.reason.clone());
    added.user = Some(squelch.user.clone());
    record(web, added).await;
    let matched = match (
        web.db.list_faults(None).await,
        squelch::compile(&squelch.regex),
    ) {
        (Ok(faults), Ok(regex)) => faults
            .iter()
            .filter(|f| regex.is_match(&f.fault.name))
            .count(),
        _ => 0,
    };
    Ok((squelch, matched))
}

/// Removes the squelch of exactly `regex` for `user` and records it.
pub(super) async fn remove(web: &Web, regex: &str, user: &str) -> Result<(), Failure> {
    let stored = web
        .db
        .get_squelch_details()
        .await
        .ok()
        .and_then(|list| list.into_iter().find(|s| s.regex == regex));
    if !web
        .db
        .unsquelch(regex)
        .await
        .map_err(|e| Failure::internal(&e))?
    {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no squelch `{}`", squelch::excerpt(regex)),
        ));
    }
    let mut removed = Record::new(now(), &web.agent, regex, Event::SquelchRemoved);
    removed.message = stored.map(|s| s.reason);
    removed.user = Some(user.to_owned());
    record(web, removed).await;
    Ok(())
}

/// Appends a record; a failure is logged, since the change is made.
async fn record(web: &Web, record: Record) {
    if let Err(e) = web.db.append_history(std::slice::from_ref(&record)).await {
        tracing::warn!(
            "cannot record `{}` in the history: {}",
            record.event,
            crate::error::chain(&e)
        );
    }
}

pub(super) async fn add_squelch(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Json(new): Json<NewSquelch>,
) -> Result<Response, Failure> {
    let user = auth::api_user(web.auth.as_ref(), &headers, new.user.as_deref(), now())?;
    let (squelch, matched) = add(&web, &new, &user).await?;
    let counts = [Some(matched)];
    let list = [squelch];
    let body = json::squelches(&list, &counts);
    Ok((StatusCode::CREATED, Json(&body[0])).into_response())
}

pub(super) async fn remove_squelch(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(regex): Path<String>,
) -> Result<Response, Failure> {
    let user = auth::api_user(web.auth.as_ref(), &headers, None, now())?;
    remove(&web, &regex, &user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
