//! `cimaa web` (SPEC §13): the operator's window over the shared database.
//!
//! Stateless: every request reads the database through the `Db` trait, so
//! any number of hosts may run it; a login is a cookie signed with the
//! configured token, not a server-side session. The only writes are the
//! squelch changes made through it (and their history records).
//!
//! - `json`: the JSON documents shared with the CLI's `--json`;
//! - `api`: `/api/*`;
//! - `auth`: the token, the login cookie and the CSRF tokens;
//! - `pages`: the server-rendered HTML (maud) and its small script.

mod api;
mod auth;
pub(crate) mod json;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::config::{Config, DEFAULT_WEB_LISTEN};
use crate::db::{self, Db};
use crate::error::{CliError, ExitStatus};

/// The environment variable that overrides `web.token`.
pub(crate) const TOKEN_ENV: &str = "CIMAA_WEB_TOKEN";

/// What every handler shares: the database and the few settings it needs.
pub(crate) struct Web {
    pub db: Arc<dyn Db>,
    /// The token changes need; `None`: read-only.
    pub auth: Option<auth::Keys>,
    /// Written as the `agent` of the history records of squelch changes.
    pub agent: String,
    /// Pages refresh themselves this often (seconds).
    pub base_interval: f64,
    pub policy: crate::squelch::Policy,
    /// Names the configuration in a refused squelch's message.
    pub config_name: String,
}

/// The token: `$CIMAA_WEB_TOKEN` when set and not empty, else `web.token`.
fn token(config: &Config, from_env: Option<String>) -> Option<String> {
    from_env
        .filter(|t| !t.is_empty())
        .or_else(|| config.web.token.clone().filter(|t| !t.is_empty()))
}

/// The router over `web` (also what the tests serve).
pub(crate) fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/faults", get(pages::faults))
        .route("/fault", get(pages::fault))
        .route("/agents", get(pages::agents))
        .route("/squelches", get(pages::squelches).post(pages::add_squelch))
        .route("/squelches/remove", post(pages::remove_squelch))
        .route("/history", get(pages::history))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/api/faults", get(api::faults))
        .route("/api/agents", get(api::agents))
        .route("/api/squelches", get(api::squelches).post(api::add_squelch))
        .route(
            "/api/squelches/{regex}",
            axum::routing::delete(api::remove_squelch),
        )
        .route("/api/history", get(api::history))
        .route("/api/preview", get(api::preview))
        .with_state(web)
}

/// `cimaa web`: serves until interrupted.
///
/// # Errors
/// A listen address that does not parse or cannot be bound (exit 2 and 1),
/// an unreachable database (exit 1).
pub(crate) async fn serve(config: &Config, listen: Option<&str>) -> Result<ExitStatus, CliError> {
    let address = listen
        .or(config.web.listen.as_deref())
        .unwrap_or(DEFAULT_WEB_LISTEN);
    let address: std::net::SocketAddr = address.parse().map_err(|e| {
        CliError::usage(format!(
            "web: invalid listen address `{address}` ({e}): give HOST:PORT, such as `{DEFAULT_WEB_LISTEN}`"
        ))
    })?;
    let db = db::build(&config.database)
        .await
        .map_err(CliError::failure)?;
    let token = token(config, std::env::var(TOKEN_ENV).ok());
    let web = Arc::new(Web {
        db,
        auth: token.as_deref().map(auth::Keys::new),
        agent: config.agent.name.clone(),
        base_interval: config.agent.base_interval,
        policy: config.squelch.clone(),
        config_name: format!("`{}`", config.path.display()),
    });
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| CliError::failure(format!("web: cannot listen on {address}: {e}")))?;
    let bound = listener.local_addr().map_err(CliError::failure)?;
    let mode = if web.auth.is_some() {
        "changes need a login"
    } else {
        "read-only: no web.token or $CIMAA_WEB_TOKEN"
    };
    // On stderr, the one line a script starting `cimaa web` waits for.
    eprintln!("cimaa web: listening on http://{bound}/ ({mode})");
    axum::serve(listener, router(web))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(CliError::failure)?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_token_overrides_the_configured_one_unless_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(
            &path,
            "agent: {name: a}\nalerter: {type: file, path: /tmp/x}\nweb: {token: file-token}\n",
        )
        .unwrap();
        let mut config = crate::config::load_agent_config(&path).unwrap();
        assert_eq!(token(&config, Some("env".into())).as_deref(), Some("env"));
        assert_eq!(
            token(&config, Some(String::new())).as_deref(),
            Some("file-token")
        );
        config.web.token = None;
        assert_eq!(token(&config, None), None);
    }
}
