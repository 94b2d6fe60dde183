//! `cimaa web` (SPEC §13, issue #17) against the real binary and a shared
//! SQLite file: the JSON API equals the CLI's `--json`; changes need the
//! token (a login with CSRF tokens, or a bearer header) and a refusal
//! changes nothing; fault text is escaped; no page, response or log line
//! holds the token.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use cimaa::db::{Db, Fault, SqliteDb};
use serde_json::Value;

use crate::db_contract::fault;
use crate::util::{Env, assert_success, check_name};

const TOKEN: &str = "tok-Secret-4711";

/// A running `cimaa web` on a free port of 127.0.0.1; killed when dropped.
pub(crate) struct WebServer {
    child: Child,
    pub(crate) base: String,
    stderr: Arc<Mutex<String>>,
}

impl WebServer {
    /// Starts `cimaa web --listen 127.0.0.1:0` with `vars` and waits for
    /// the address it prints.
    pub(crate) fn start(env: &Env, vars: &[(&str, &str)]) -> WebServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .arg("-c")
            .arg(env.config())
            .args(["web", "--listen", "127.0.0.1:0"])
            .current_dir(env.path(""))
            .env_remove("CIMAA_WEB_TOKEN")
            .envs(vars.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let base = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .map_or_else(
                || panic!("no address in `{first}`"),
                |address| format!("http://{address}"),
            );
        let stderr = Arc::new(Mutex::new(format!("{first}\n")));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&line);
            }
        });
        WebServer {
            child,
            base,
            stderr,
        }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer: status, `Set-Cookie` values, `Location`, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) cookies: Vec<String>,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request (no redirects followed).
pub(crate) fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut builder = client.request(method.parse().unwrap(), url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some((kind, body)) = body {
            builder = builder.header("content-type", kind).body(body);
        }
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        Answer {
            status,
            cookies,
            location,
            body,
        }
    })
}

pub(crate) fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    request("GET", url, headers, None)
}

#[expect(clippy::unnecessary_wraps, reason = "the body argument of `request`")]
fn form(pairs: &[(&str, &str)]) -> Option<(&'static str, String)> {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Some(("application/x-www-form-urlencoded", body))
}

/// Percent-encodes every byte but letters and digits.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of the first `name="csrf" value="..."` in a page.
pub(crate) fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// `name=value` of the Set-Cookie for `name`.
pub(crate) fn cookie(answer: &Answer, name: &str) -> String {
    answer
        .cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map_or_else(
            || panic!("no cookie {name} in {:?}", answer.cookies),
            |c| c.split(';').next().unwrap().to_owned(),
        )
}

/// Logs in as `user`: the session cookie (`cimaa_session=...`).
pub(crate) fn login(server: &WebServer, user: &str) -> String {
    let page = get(&format!("{}/login", server.base), &[]);
    let nonce = cookie(&page, "cimaa_login");
    let answer = request(
        "POST",
        &format!("{}/login", server.base),
        &[("cookie", &nonce)],
        form(&[
            ("csrf", &csrf_of(&page.body)),
            ("user", user),
            ("token", TOKEN),
        ]),
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    cookie(&answer, "cimaa_session")
}

/// An env whose agent has run once with two failing checks.
fn fleet_env(web: &str) -> Env {
    let env = Env::new();
    env.configure(
        &format!("alerter:\n  type: file\n  path: alerts.jsonl\n{web}"),
        "",
    );
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\nslow:\n  command: echo 'WARNING - slow'; exit 1\n  retry: 0\n",
    );
    env.once();
    env
}

fn cli_json(env: &Env, args: &[&str]) -> Value {
    let output = env.cimaa(args);
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

fn squelches(env: &Env) -> Vec<Value> {
    match cli_json(env, &["squelches", "--json"]) {
        Value::Array(items) => items,
        other => panic!("not an array: {other}"),
    }
}

fn add_squelch_through_cli(env: &Env, regex: &str) {
    assert_success(&env.cimaa(&["squelch", regex, "deploying", "--expires", "2h"]));
}

#[test]
fn the_api_returns_what_the_cli_json_prints() {
    let env = fleet_env("");
    add_squelch_through_cli(&env, "app/down");
    let server = WebServer::start(&env, &[]);
    let pairs = [
        ("/api/faults", vec!["faults", "--json"]),
        (
            "/api/faults?agent=test-agent",
            vec!["faults", "--agent", "test-agent", "--json"],
        ),
        ("/api/agents", vec!["agents", "--json"]),
        ("/api/squelches", vec!["squelches", "--json"]),
        ("/api/history", vec!["history", "--json"]),
        (
            "/api/history?name=slow&limit=1",
            vec!["history", "--name", "slow", "--limit", "1", "--json"],
        ),
    ];
    for (path, args) in pairs {
        let answer = get(&format!("{}{path}", server.base), &[]);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(answer.json(), cli_json(&env, &args), "{path}");
    }
    let faults = get(&format!("{}/api/faults", server.base), &[]).json();
    assert_eq!(faults.as_array().unwrap().len(), 2);
    assert_eq!(faults[0]["agent"], "test-agent");
}

#[test]
fn without_a_token_the_web_view_is_read_only_and_refuses_a_change() {
    let env = fleet_env("");
    let server = WebServer::start(&env, &[]);
    let page = get(&format!("{}/squelches", server.base), &[]);
    assert!(page.body.contains("read-only"), "{}", page.body);
    let answer = request(
        "POST",
        &format!("{}/api/squelches", server.base),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Some(("application/json", r#"{"regex":"app","reason":"x"}"#.into())),
    );
    assert_eq!(answer.status, 403);
    assert_eq!(squelches(&env).len(), 0);
}

#[test]
fn a_bearer_token_adds_and_removes_a_squelch() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let answer = request(
        "POST",
        &format!("{}/api/squelches", server.base),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Some((
            "application/json",
            r#"{"regex":"app/(down|slow)","reason":"deploying","permanent":false,"expires":"2h"}"#
                .into(),
        )),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.json()["matches"], 2);
    let stored = squelches(&env);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["user"], "api");
    assert_eq!(stored[0]["regex"], "app/(down|slow)");
    let gone = request(
        "DELETE",
        &format!(
            "{}/api/squelches/{}",
            server.base,
            encode("app/(down|slow)")
        ),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        None,
    );
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(squelches(&env).len(), 0);
    let events: Vec<Value> = match cli_json(&env, &["history", "--name", "app/\\(down", "--json"]) {
        Value::Array(items) => items.into_iter().map(|r| r["event"].clone()).collect(),
        other => panic!("{other}"),
    };
    assert_eq!(events, ["squelch-removed", "squelch-added"]);
}

#[test]
fn a_wrong_bearer_token_is_refused_and_changes_nothing() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    add_squelch_through_cli(&env, "app/down");
    let server = WebServer::start(&env, &[]);
    let add = request(
        "POST",
        &format!("{}/api/squelches", server.base),
        &[("authorization", "Bearer nope")],
        Some(("application/json", r#"{"regex":"app","reason":"x"}"#.into())),
    );
    assert_eq!(add.status, 401);
    let remove = request(
        "DELETE",
        &format!("{}/api/squelches/{}", server.base, encode("app/down")),
        &[],
        None,
    );
    assert_eq!(remove.status, 401);
    let stored = squelches(&env);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["regex"], "app/down");
}

#[test]
fn the_environment_token_enables_changes() {
    let env = fleet_env("");
    let server = WebServer::start(&env, &[("CIMAA_WEB_TOKEN", TOKEN)]);
    let answer = request(
        "POST",
        &format!("{}/api/squelches", server.base),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Some((
            "application/json",
            r#"{"regex":"app/down","reason":"x","user":"ci"}"#.into(),
        )),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(squelches(&env)[0]["user"], "ci");
}

#[test]
fn a_login_without_its_csrf_token_is_refused() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let page = get(&format!("{}/login", server.base), &[]);
    let nonce = cookie(&page, "cimaa_login");
    let answer = request(
        "POST",
        &format!("{}/login", server.base),
        &[("cookie", &nonce)],
        form(&[("user", "ann"), ("token", TOKEN)]),
    );
    assert_eq!(answer.status, 403);
    assert!(answer.cookies.is_empty(), "{:?}", answer.cookies);
}

#[test]
fn a_login_sets_a_strict_http_only_cookie() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let page = get(&format!("{}/login", server.base), &[]);
    let nonce = cookie(&page, "cimaa_login");
    let answer = request(
        "POST",
        &format!("{}/login", server.base),
        &[("cookie", &nonce)],
        form(&[
            ("csrf", &csrf_of(&page.body)),
            ("user", "ann"),
            ("token", TOKEN),
        ]),
    );
    assert_eq!(answer.status, 303);
    let set = answer
        .cookies
        .iter()
        .find(|c| c.starts_with("cimaa_session="))
        .unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
}

#[test]
fn a_wrong_token_at_login_sets_no_cookie() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let page = get(&format!("{}/login", server.base), &[]);
    let nonce = cookie(&page, "cimaa_login");
    let answer = request(
        "POST",
        &format!("{}/login", server.base),
        &[("cookie", &nonce)],
        form(&[
            ("csrf", &csrf_of(&page.body)),
            ("user", "ann"),
            ("token", "guess"),
        ]),
    );
    assert_eq!(answer.status, 401);
    assert!(answer.cookies.is_empty(), "{:?}", answer.cookies);
}

#[test]
fn a_squelch_added_through_the_form_has_the_login_name_as_its_user() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let session = login(&server, "ann");
    let page = get(
        &format!("{}/squelches", server.base),
        &[("cookie", &session)],
    );
    let answer = request(
        "POST",
        &format!("{}/squelches", server.base),
        &[("cookie", &session)],
        form(&[
            ("csrf", &csrf_of(&page.body)),
            ("regex", "app/down"),
            ("reason", "deploying"),
            ("expires", "30m"),
        ]),
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some("/squelches"));
    let stored = squelches(&env);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["user"], "ann");
    assert_eq!(stored[0]["reason"], "deploying");
}

#[test]
fn a_squelch_form_without_the_csrf_token_changes_nothing() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let session = login(&server, "ann");
    let answer = request(
        "POST",
        &format!("{}/squelches", server.base),
        &[("cookie", &session)],
        form(&[("regex", "app/down"), ("reason", "deploying")]),
    );
    assert_eq!(answer.status, 403);
    assert_eq!(squelches(&env).len(), 0);
}

#[test]
fn an_api_call_with_the_cookie_needs_the_csrf_header() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let session = login(&server, "ann");
    let body = || {
        Some((
            "application/json",
            r#"{"regex":"app/down","reason":"x"}"#.to_owned(),
        ))
    };
    let url = format!("{}/api/squelches", server.base);
    let refused = request("POST", &url, &[("cookie", &session)], body());
    assert_eq!(refused.status, 403);
    assert_eq!(squelches(&env).len(), 0);
    let page = get(
        &format!("{}/squelches", server.base),
        &[("cookie", &session)],
    );
    let csrf = csrf_of(&page.body);
    let accepted = request(
        "POST",
        &url,
        &[("cookie", &session), ("x-csrf-token", &csrf)],
        body(),
    );
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    assert_eq!(squelches(&env)[0]["user"], "ann");
}

#[test]
fn a_fault_message_with_a_script_tag_is_shown_escaped() {
    let env = fleet_env("");
    let mut hostile = fault("//peer/app/xss");
    hostile.message = "<script>alert('x')</script>".into();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
        db.set_faults("peer", &[hostile], chrono::Utc::now().timestamp())
            .await
            .unwrap();
    });
    let server = WebServer::start(&env, &[]);
    for path in ["/faults", "/fault?name=%2F%2Fpeer%2Fapp%2Fxss", "/"] {
        let page = get(&format!("{}{path}", server.base), &[]);
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("<script>alert"), "{path}");
        if path != "/" {
            assert!(
                page.body
                    .contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
                "{path}: {}",
                page.body
            );
        }
    }
}

// See: #17, #21. The marker is the stored flag, not a guess from the name.
#[test]
fn the_faults_page_marks_the_faults_stored_flapping() {
    let env = fleet_env("");
    let noisy = Fault {
        flapping: true,
        ..fault("//peer/app/noisy")
    };
    let named_flap = fault("//peer/app/flap");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
        db.set_faults("peer", &[noisy, named_flap], chrono::Utc::now().timestamp())
            .await
            .unwrap();
    });
    let server = WebServer::start(&env, &[]);
    let page = get(&format!("{}/faults", server.base), &[]);
    assert_eq!(page.status, 200);
    let row = |name: &str| {
        page.body
            .split("<tr")
            .find(|row| row.contains(&format!(">{name}<")))
            .unwrap_or_else(|| panic!("no row of {name}: {}", page.body))
            .to_owned()
    };
    assert!(
        row("//peer/app/noisy").contains(">flapping</span>"),
        "{}",
        page.body
    );
    assert!(
        !row("//peer/app/flap").contains(">flapping</span>"),
        "{}",
        page.body
    );
}

#[test]
fn no_page_response_or_log_line_holds_the_token() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let session = login(&server, "ann");
    let name = check_name("app", "down");
    let paths = [
        "/".to_owned(),
        "/faults".to_owned(),
        "/agents".to_owned(),
        "/squelches".to_owned(),
        "/history".to_owned(),
        "/login".to_owned(),
        format!("/fault?name={}", encode(&name)),
        "/api/faults".to_owned(),
        "/api/agents".to_owned(),
        "/api/squelches".to_owned(),
        "/api/history".to_owned(),
    ];
    for path in &paths {
        for headers in [vec![], vec![("cookie", session.as_str())]] {
            let answer = get(&format!("{}{path}", server.base), &headers);
            assert_eq!(answer.status, 200, "{path}");
            assert!(!answer.body.contains(TOKEN), "{path}");
            assert!(!answer.cookies.iter().any(|c| c.contains(TOKEN)), "{path}");
        }
    }
    assert!(!session.contains(TOKEN));
    assert!(!server.stderr().contains(TOKEN), "{}", server.stderr());
}
