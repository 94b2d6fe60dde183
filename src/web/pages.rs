//! The server-rendered pages (SPEC §13), written with maud (which escapes
//! every value it is given: a plugin's `<script>` is shown, never run).
//!
//! Every page works without JavaScript (read-only, and the squelch forms
//! post as plain forms); with it, the `#live` part of each page is fetched
//! again every base interval and swapped in place, and the squelch form
//! previews the faults its regex matches as it is typed.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::api::{self, Failure, HistoryFilter, NewSquelch};
use super::{Web, auth};
use crate::db::{AgentFault, HistoryRecord};
use crate::severity::Severity;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("live.js");
/// Heartbeats older than this many base intervals mark an agent inactive
/// (the meta-check's default `-w`).
const INACTIVE_INTERVALS: f64 = 2.0;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A page's failure: the status and the sentence, as a page.
pub(super) struct PageFailure(Failure);

impl From<Failure> for PageFailure {
    fn from(failure: Failure) -> Self {
        PageFailure(failure)
    }
}

impl IntoResponse for PageFailure {
    fn into_response(self) -> Response {
        let Failure(status, message) = self.0;
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "cimaa: " (status.as_u16()) } style { (PreEscaped(STYLE)) } }
                body { main { p.error { (message) } p { a href="/" { "Overview" } } } }
            }
        };
        (status, body).into_response()
    }
}

type Page = Result<Markup, PageFailure>;

/// Who is looking: a login (with its CSRF token), anyone, or read-only.
enum Viewer {
    ReadOnly,
    Anonymous,
    LoggedIn { user: String, csrf: String },
}

impl Viewer {
    fn of(web: &Web, headers: &HeaderMap) -> Viewer {
        let Some(keys) = web.auth.as_ref() else {
            return Viewer::ReadOnly;
        };
        match auth::session_of(Some(keys), headers, now()) {
            Some(session) => Viewer::LoggedIn {
                csrf: keys.csrf(&session),
                user: session.user,
            },
            None => Viewer::Anonymous,
        }
    }
}

/// `90s`, `12m`, `3h`, `2d`.
pub(super) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Seconds without a heartbeat after which an agent shows as inactive.
fn stale_after(web: &Web) -> i64 {
    std::time::Duration::try_from_secs_f64(web.base_interval * INACTIVE_INTERVALS)
        .map_or(i64::MAX, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn severity_class(severity: Severity) -> &'static str {
    match severity {
        s if s >= Severity::CRITICAL => "sev-critical",
        s if s >= Severity::ERROR => "sev-error",
        s if s >= Severity::WARNING => "sev-warning",
        _ => "sev-info",
    }
}

fn layout(web: &Web, viewer: &Viewer, title: &str, current: &str, body: &Markup) -> Markup {
    let refresh = std::time::Duration::try_from_secs_f64(web.base_interval)
        .unwrap_or(std::time::Duration::from_mins(1))
        .clamp(
            std::time::Duration::from_secs(2),
            std::time::Duration::from_mins(10),
        );
    let refresh_ms = refresh.as_millis();
    let refresh_seconds = i64::try_from(refresh.as_secs()).unwrap_or(600);
    let nav = [
        ("/", "Overview"),
        ("/faults", "Faults"),
        ("/agents", "Agents"),
        ("/squelches", "Squelches"),
        ("/history", "History"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "cimaa: " (title) }
                style { (PreEscaped(STYLE)) }
            }
            body data-refresh-ms=(refresh_ms) {
                header {
                    strong.brand { "cimaa" }
                    nav {
                        @for (href, label) in nav {
                            a href=(href) class=[(href == current).then_some("current")] { (label) }
                        }
                    }
                    span.who {
                        @match viewer {
                            Viewer::ReadOnly => span.readonly title="no web.token or $CIMAA_WEB_TOKEN is configured" { "read-only" },
                            Viewer::Anonymous => a href="/login" { "log in" },
                            Viewer::LoggedIn { user, csrf } => {
                                (user) " "
                                form.inline method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" { "log out" }
                                }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer { "refreshes every " (age(refresh_seconds)) " with JavaScript on; " span #updated { } }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

fn fault_table(faults: &[&AgentFault], squelched: &dyn Fn(&str) -> bool, now: i64) -> Markup {
    html! {
        div.scroll {
            table.dense {
                thead { tr { th { "Severity" } th { "Agent" } th { "Name" } th { "Message" } th { "Since" } th { "State" } } }
                tbody {
                    @for AgentFault { agent, fault } in faults {
                        tr class=(severity_class(fault.severity)) {
                            td.sev { (fault.severity.label()) }
                            td { a href={ "/faults?agent=" (urlencode(agent)) } { (agent) } }
                            td.name { a href={ "/fault?name=" (urlencode(&fault.name)) } { (fault.name) } }
                            td.msg { (fault.message) }
                            td.num title=(fault.since) { (age(now - fault.since)) }
                            td.flags {
                                @if !fault.triggered { span.flag { "soft " (fault.attempts) } }
                                @if squelched(&fault.name) { span.flag.squelched { "squelched" } }
                                @if let Some(by) = &fault.suppressed_by { span.flag title="suppressed by a failing dependency" { "suppressed by " (by) } }
                                @if fault.held { span.flag title="held until its alerter's quiet hours end" { "held" } }
                                @if fault.storm { span.flag.storm { "storm" } }
                                @if fault.flapping { span.flag title="its check is flapping: one flapping alert speaks for it" { "flapping" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn counts(faults: &[AgentFault]) -> [(&'static str, &'static str, usize); 4] {
    let count = |lo: Severity, hi: Option<Severity>| {
        faults
            .iter()
            .filter(|f| f.fault.severity >= lo && hi.is_none_or(|hi| f.fault.severity < hi))
            .count()
    };
    [
        ("critical", "sev-critical", count(Severity::CRITICAL, None)),
        (
            "error",
            "sev-error",
            count(Severity::ERROR, Some(Severity::CRITICAL)),
        ),
        (
            "warning",
            "sev-warning",
            count(Severity::WARNING, Some(Severity::ERROR)),
        ),
        (
            "info",
            "sev-info",
            count(Severity(i64::MIN), Some(Severity::WARNING)),
        ),
    ]
}

pub(super) async fn overview(State(web): State<Arc<Web>>, headers: HeaderMap) -> Page {
    let now = now();
    let (mut faults, in_force) = api::read_faults(&web, None, now).await?;
    let agents = api::read_agents(&web).await?;
    let (squelches, _) = api::read_squelches(&web, now).await?;
    let stale = stale_after(&web);
    let mut inactive: Vec<_> = agents.iter().filter(|a| now - a.updated > stale).collect();
    inactive.sort_by_key(|a| a.updated);
    sort_faults(&mut faults, "severity");
    let storms: Vec<&AgentFault> = faults
        .iter()
        .filter(|f| f.fault.name.ends_with("#storm"))
        .collect();
    let loud: Vec<&AgentFault> = faults
        .iter()
        .filter(|f| f.fault.severity >= Severity::ERROR)
        .take(50)
        .collect();
    let body = html! {
        div #live {
            div.cards {
                @for (label, class, n) in counts(&faults) {
                    a.card class=(class) href={ "/faults?severity=" (label) } { span.n { (n) } " " (label) }
                }
                a.card href="/agents" { span.n { (agents.len()) } " agents, " (inactive.len()) " inactive" }
                a.card href="/squelches" { span.n { (squelches.len()) } @if squelches.len() == 1 { " squelch" } @else { " squelches" } }
            }
            @if !inactive.is_empty() {
                h2 { "Inactive agents" }
                table.dense { tbody { @for a in &inactive { tr.sev-error { td { (a.name) } td.num { "heartbeat " (age(now - a.updated)) " ago" } } } } }
            }
            @if !storms.is_empty() {
                h2 { "Open storms" }
                (fault_table(&storms, &|n| in_force.matches(n), now))
            }
            h2 { "Errors and criticals" }
            @if loud.is_empty() { p.ok { "No error or critical fault." } }
            @else { (fault_table(&loud, &|n| in_force.matches(n), now)) }
            @if !squelches.is_empty() {
                h2 { "Squelches in force" }
                ul { @for s in &squelches { li { code { (s.regex) } " — " (s.reason) " (" (s.user) ")" } } }
            }
        }
    };
    let viewer = Viewer::of(&web, &headers);
    Ok(layout(&web, &viewer, "Overview", "/", &body))
}

fn sort_faults(faults: &mut [AgentFault], by: &str) {
    match by {
        "agent" => faults.sort_by(|a, b| (&a.agent, &a.fault.name).cmp(&(&b.agent, &b.fault.name))),
        "name" => faults.sort_by(|a, b| (&a.fault.name, &a.agent).cmp(&(&b.fault.name, &b.agent))),
        "since" => faults.sort_by_key(|f| std::cmp::Reverse(f.fault.since)),
        _ => faults.sort_by(|a, b| {
            b.fault
                .severity
                .cmp(&a.fault.severity)
                .then_with(|| a.fault.since.cmp(&b.fault.since))
                .then_with(|| a.fault.name.cmp(&b.fault.name))
        }),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FaultFilter {
    agent: Option<String>,
    severity: Option<String>,
    q: Option<String>,
    sort: Option<String>,
}

pub(super) async fn faults(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(filter): Query<FaultFilter>,
) -> Page {
    let now = now();
    let agent = filter.agent.as_deref().filter(|a| !a.is_empty());
    let (mut faults, in_force) = api::read_faults(&web, agent, now).await?;
    let min = filter
        .severity
        .as_deref()
        .and_then(Severity::from_name)
        .unwrap_or(Severity(i64::MIN));
    let q = filter.q.as_deref().unwrap_or("").to_lowercase();
    faults.retain(|f| {
        f.fault.severity >= min
            && (q.is_empty()
                || f.fault.name.to_lowercase().contains(&q)
                || f.fault.message.to_lowercase().contains(&q))
    });
    let sort = filter.sort.as_deref().unwrap_or("severity");
    sort_faults(&mut faults, sort);
    let shown: Vec<&AgentFault> = faults.iter().collect();
    let body = html! {
        form.filters method="get" action="/faults" {
            input type="search" name="q" placeholder="text in name or message" value=[filter.q.as_deref()];
            input type="text" name="agent" placeholder="agent" value=[agent];
            select name="severity" {
                @for s in ["", "info", "warning", "error", "critical"] {
                    option value=(s) selected[filter.severity.as_deref().unwrap_or("") == s] { @if s.is_empty() { "any severity" } @else { (s) " and up" } }
                }
            }
            select name="sort" {
                @for s in ["severity", "since", "agent", "name"] {
                    option value=(s) selected[sort == s] { "by " (s) }
                }
            }
            button type="submit" { "Filter" }
        }
        div #live {
            p.count { (shown.len()) " faults" }
            (fault_table(&shown, &|n| in_force.matches(n), now))
        }
    };
    let viewer = Viewer::of(&web, &headers);
    Ok(layout(&web, &viewer, "Faults", "/faults", &body))
}

#[derive(Debug, Deserialize)]
pub(super) struct FaultName {
    name: String,
}

/// One fault name: where it is failing now, and its history.
pub(super) async fn fault(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(query): Query<FaultName>,
) -> Page {
    let now = now();
    let (mut faults, in_force) = api::read_faults(&web, None, now).await?;
    faults.retain(|f| f.fault.name == query.name);
    let filter = HistoryFilter {
        name: Some(format!("^{}$", regex::escape(&query.name))),
        since: Some("30d".into()),
        ..HistoryFilter::default()
    };
    let records = api::read_history(&web, &filter, now).await?;
    let shown: Vec<&AgentFault> = faults.iter().collect();
    let body = html! {
        div #live {
            h2 { "Now" }
            @if shown.is_empty() { p.ok { "Not failing on any agent." } }
            @else { (fault_table(&shown, &|n| in_force.matches(n), now)) }
            h2 { "History (30 days)" }
            (history_table(&records, now))
        }
    };
    let viewer = Viewer::of(&web, &headers);
    Ok(layout(&web, &viewer, &query.name, "", &body))
}

pub(super) async fn agents(State(web): State<Arc<Web>>, headers: HeaderMap) -> Page {
    let now = now();
    let mut agents = api::read_agents(&web).await?;
    let stale = stale_after(&web);
    agents.sort_by(|a, b| {
        let (ia, ib) = (now - a.updated > stale, now - b.updated > stale);
        ib.cmp(&ia).then_with(|| a.name.cmp(&b.name))
    });
    let body = html! {
        div #live {
            div.scroll { table.dense {
                thead { tr { th { "Agent" } th { "Heartbeat" } th { "Version" } th { "Checks" } } }
                tbody {
                    @for a in &agents {
                        @let inactive = now - a.updated > stale;
                        tr class=[inactive.then_some("sev-error")] {
                            td { a href={ "/faults?agent=" (urlencode(&a.name)) } { (a.name) } }
                            td.num { (age(now - a.updated)) " ago" @if inactive { " (inactive)" } }
                            td { (a.version.as_deref().unwrap_or("")) }
                            td.num { @if let Some(n) = a.checks { (n) } }
                        }
                    }
                }
            } }
        }
    };
    let viewer = Viewer::of(&web, &headers);
    Ok(layout(&web, &viewer, "Agents", "/agents", &body))
}

fn squelch_kind(s: &crate::squelch::Squelch, now: i64) -> String {
    match (s.permanent, s.expires) {
        (true, _) => "permanent".into(),
        (false, Some(at)) => format!("expires in {}", age(at - now)),
        (false, None) => "until removed".into(),
    }
}

async fn squelch_page(web: &Web, viewer: &Viewer, message: Option<&str>) -> Page {
    let now = now();
    let (list, faults) = api::read_squelches(web, now).await?;
    let counts = super::json::match_counts(&list, &faults);
    let body = html! {
        @if let Some(message) = message { p.error { (message) } }
        @match viewer {
            Viewer::ReadOnly => p.note { "Read-only: no web.token or $CIMAA_WEB_TOKEN is configured, so squelches are changed with `cimaa squelch` only." },
            Viewer::Anonymous => p.note { a href="/login" { "Log in" } " to add or remove squelches." },
            Viewer::LoggedIn { csrf, .. } => {
                form #add-squelch.squelch method="post" action="/squelches" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Regex " input #regex type="text" name="regex" required placeholder="web-.*/disk" autocomplete="off"; }
                    label { "Reason " input type="text" name="reason" required placeholder="why (shown to whoever wonders)"; }
                    label { "Expires " input type="text" name="expires" placeholder="2h"; }
                    label { input type="checkbox" name="permanent"; " permanent" }
                    button type="submit" { "Add squelch" }
                }
                div #preview.preview { }
            }
        }
        div #live {
            @if list.is_empty() { p { "No squelches." } }
            @else {
                div.scroll { table.dense {
                    thead { tr { th { "Regex" } th { "User" } th { "Set" } th { "Kind" } th { "Matches" } th { "Reason" } th { } } }
                    tbody {
                        @for (s, n) in list.iter().zip(&counts) {
                            tr {
                                td.name { code { (s.regex) } }
                                td { (s.user) }
                                td.num { (age(now - s.time)) " ago" }
                                td { (squelch_kind(s, now)) }
                                td.num { @match n { Some(n) => (n), None => "-" } }
                                td.msg { (s.reason) }
                                td {
                                    @if let Viewer::LoggedIn { csrf, .. } = viewer {
                                        form.inline method="post" action="/squelches/remove" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="regex" value=(s.regex);
                                            button type="submit" { "remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(layout(web, viewer, "Squelches", "/squelches", &body))
}

pub(super) async fn squelches(State(web): State<Arc<Web>>, headers: HeaderMap) -> Page {
    let viewer = Viewer::of(&web, &headers);
    squelch_page(&web, &viewer, None).await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SquelchForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    regex: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    permanent: Option<String>,
}

/// A form change refused or failed: the squelch page with the reason.
async fn form_failure(web: &Web, headers: &HeaderMap, failure: Failure) -> Response {
    let viewer = Viewer::of(web, headers);
    match squelch_page(web, &viewer, Some(&failure.1)).await {
        Ok(page) => (failure.0, page).into_response(),
        Err(page) => page.into_response(),
    }
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

pub(super) async fn add_squelch(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<SquelchForm>,
) -> Response {
    let user = match auth::form_user(web.auth.as_ref(), &headers, form.csrf.as_deref(), now()) {
        Ok(user) => user,
        Err(refusal) => return form_failure(&web, &headers, refusal.into()).await,
    };
    let new = NewSquelch {
        regex: form.regex,
        reason: form.reason,
        permanent: form.permanent.is_some(),
        expires: form.expires.map(serde_json::Value::String),
        user: None,
    };
    match api::add(&web, &new, &user).await {
        Ok(_) => see_other("/squelches"),
        Err(failure) => form_failure(&web, &headers, failure).await,
    }
}

pub(super) async fn remove_squelch(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<SquelchForm>,
) -> Response {
    let user = match auth::form_user(web.auth.as_ref(), &headers, form.csrf.as_deref(), now()) {
        Ok(user) => user,
        Err(refusal) => return form_failure(&web, &headers, refusal.into()).await,
    };
    match api::remove(&web, &form.regex, &user).await {
        Ok(()) => see_other("/squelches"),
        Err(failure) => form_failure(&web, &headers, failure).await,
    }
}

fn history_table(records: &[HistoryRecord], now: i64) -> Markup {
    html! {
        @if records.is_empty() { p { "No history records." } }
        @else {
            div.scroll { table.dense {
                thead { tr { th { "When" } th { "Agent" } th { "Name" } th { "Event" } th { "Message" } th { "By" } } }
                tbody {
                    @for r in records {
                        tr class=[r.severity.map(severity_class)] {
                            td.num title=(r.time) { (age(now - r.time)) " ago" }
                            td { (r.agent) }
                            td.name { a href={ "/fault?name=" (urlencode(&r.name)) } { (r.name) } }
                            td { (r.event.to_string()) }
                            td.msg { @if let Some(s) = r.severity { (s.label()) ": " } (r.message.as_deref().unwrap_or("")) }
                            td { (r.user.as_deref().unwrap_or("")) " " (r.alerter.as_deref().unwrap_or("")) " " (r.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
        }
    }
}

pub(super) async fn history(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(filter): Query<HistoryFilter>,
) -> Page {
    let now = now();
    let records = api::read_history(&web, &filter, now).await?;
    let body = html! {
        form.filters method="get" action="/history" {
            input type="text" name="agent" placeholder="agent" value=[filter.agent.as_deref()];
            input type="text" name="name" placeholder="name regex" value=[filter.name.as_deref()];
            input type="text" name="since" placeholder="24h" value=[filter.since.as_deref()];
            input type="number" name="limit" placeholder="100" value=[filter.limit];
            button type="submit" { "Filter" }
        }
        div #live { (history_table(&records, now)) }
    };
    let viewer = Viewer::of(&web, &headers);
    Ok(layout(&web, &viewer, "History", "/history", &body))
}

pub(super) async fn login_form(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let viewer = Viewer::of(&web, &headers);
    let Some(keys) = web.auth.as_ref() else {
        let body = html! { p.note { "Read-only: no web.token or $CIMAA_WEB_TOKEN is configured, so there is nothing to log in to." } };
        return layout(&web, &viewer, "Log in", "", &body).into_response();
    };
    let nonce = auth::nonce();
    let body = html! {
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(keys.login_csrf(&nonce));
            label { "Name " input type="text" name="user" required autocomplete="username"; }
            label { "Token " input type="password" name="token" required autocomplete="current-password"; }
            button type="submit" { "Log in" }
        }
    };
    (
        [(
            SET_COOKIE,
            auth::set_cookie(auth::LOGIN_COOKIE, &nonce, 3600),
        )],
        layout(&web, &viewer, "Log in", "", &body),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    token: String,
}

pub(super) async fn login(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(keys) = web.auth.as_ref() else {
        return PageFailure(auth::Refusal::ReadOnly.into()).into_response();
    };
    if !keys.login_csrf_ok(auth::cookie(&headers, auth::LOGIN_COOKIE), &form.csrf) {
        return PageFailure(auth::Refusal::BadCsrf.into()).into_response();
    }
    if !keys.is_token(&form.token) {
        tracing::warn!(user = %form.user.chars().take(64).collect::<String>(), "web: a login with a wrong token");
        return PageFailure(Failure(StatusCode::UNAUTHORIZED, "wrong token".into()))
            .into_response();
    }
    let Some(cookie) = keys.session_cookie(&form.user, now()) else {
        return PageFailure(Failure(
            StatusCode::BAD_REQUEST,
            "give a name (at most 64 characters): it is the user of the squelches you set".into(),
        ))
        .into_response();
    };
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/".to_owned()),
            (
                SET_COOKIE,
                auth::set_cookie(auth::SESSION_COOKIE, &cookie, 12 * 3600),
            ),
        ],
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LogoutForm {
    #[serde(default)]
    csrf: Option<String>,
}

pub(super) async fn logout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Err(refusal) = auth::form_user(web.auth.as_ref(), &headers, form.csrf.as_deref(), now())
    {
        return PageFailure(refusal.into()).into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/".to_owned()),
            (SET_COOKIE, auth::set_cookie(auth::SESSION_COOKIE, "", 0)),
        ],
    )
        .into_response()
}
