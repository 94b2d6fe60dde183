//! `cimaa web` in a real browser (SPEC §13, issue #17): Debian's chromium,
//! headless, driven through chromedriver's W3C WebDriver HTTP API. The test
//! command installs both (`chromium`, `chromium-driver`); a missing one fails
//! the test naming the package, never skips it.
//!
//! The WebDriver calls are plain JSON over the reqwest client the tests
//! already build: a handful of endpoints, so no driver crate (and its
//! second HTTP stack) is compiled for them.
//!
//! `CIMAA_SCREENSHOTS=DIR` makes the screenshot test write
//! `web-overview.png` and `web-faults.png` into DIR (`docs/` holds the ones
//! the README shows).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cimaa::db::{Db, Fault, SqliteDb};
use cimaa::severity::Severity;
use serde_json::{Value, json};

use crate::db_contract::fault;
use crate::util::{Env, assert_success, check_name};
use crate::web::WebServer;

const TOKEN: &str = "tok-Secret-4711";

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver with one headless chromium session; both end when dropped.
struct Browser {
    driver: Child,
    session: String,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port of 127.0.0.1 and opens a session
    /// of a `width`×`height` headless chromium with an empty profile.
    fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run chromedriver ({e}): Debian's chromium and chromium-driver packages are needed (scripts/test.sh installs them)"
                )
            });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::new();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            session: String::new(),
            runtime,
            client,
            profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while browser
            .call("GET", &format!("{base}/status"), None)
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {base}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The flags keep chromium off the network it cannot reach here
        // (background updates, sync) and out of a sandbox a test user
        // (root in CI) cannot enter.
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    format!("--user-data-dir={}", browser.profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let answer = browser
            .call("POST", &format!("{base}/session"), Some(&capabilities))
            .unwrap_or_else(|e| panic!("no chromium session: {e}"));
        browser.session = format!("{base}/session/{}", answer["sessionId"].as_str().unwrap());
        browser
    }

    /// One WebDriver call: the answer's `value`, or its error as text.
    fn call(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
        self.runtime.block_on(async {
            let mut request = self.client.request(method.parse().unwrap(), url);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let ok = response.status().is_success();
            let text = response.text().await.map_err(|e| e.to_string())?;
            let mut answer: Value =
                serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            if ok {
                Ok(answer["value"].take())
            } else {
                Err(text)
            }
        })
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.call(method, &format!("{}{path}", self.session), body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// The first element matching a CSS selector.
    fn find(&self, css: &str) -> String {
        let answer = self.session_call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        answer[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {answer}"))
            .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    /// The rendered text of the first element matching `css`.
    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        let answer = self.session_call("GET", &format!("/element/{element}/text"), None);
        answer.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` in the page and returns what it returns.
    fn execute(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits until `css`'s text contains `wanted`, failing after `limit`.
    fn wait_for_text(&self, css: &str, wanted: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            let text = self.text(css);
            if text.contains(wanted) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "`{wanted}` did not appear in {css} within {limit:?}; it reads:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the viewport.
    fn screenshot(&self) -> Vec<u8> {
        let answer = self.session_call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(answer.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &self.session, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An env whose agent has run once with two failing checks; pages refresh
/// every 2 s (the web view's shortest interval).
fn fleet_env(web: &str) -> Env {
    let env = Env::new();
    env.configure(
        &format!("alerter:\n  type: file\n  path: alerts.jsonl\n{web}"),
        "  base_interval: 2\n",
    );
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\nslow:\n  command: echo 'WARNING - slow'; exit 1\n  retry: 0\n",
    );
    assert_success(&env.once());
    env
}

/// Writes `faults` as `agent`'s current faults, with a heartbeat, into the
/// env's database (as that agent's own tick would).
fn store_faults(env: &Env, agent: &str, faults: &[Fault]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
        let now = chrono::Utc::now().timestamp();
        db.heartbeat(agent, now).await.unwrap();
        db.set_faults(agent, faults, now).await.unwrap();
    });
}

fn fault_of(agent: &str, name: &str, severity: Severity, message: &str, age: i64) -> Fault {
    let since = chrono::Utc::now().timestamp() - age;
    Fault {
        severity,
        message: message.to_owned(),
        since,
        updated: since,
        triggered: true,
        ..fault(&format!("//{agent}/{name}"))
    }
}

#[test]
fn the_overview_shows_the_fleets_faults_in_a_browser() {
    let env = fleet_env("");
    let server = WebServer::start(&env, &[]);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("{}/", server.base));
    let live = browser.text("#live");
    assert!(live.contains(&check_name("app", "down")), "{live}");
    assert!(live.contains("CRITICAL - down"), "{live}");
    assert!(browser.text("header").contains("read-only"));
    browser.goto(&format!("{}/faults", server.base));
    let faults = browser.text("#live");
    assert!(faults.contains(&check_name("app", "down")), "{faults}");
    assert!(faults.contains(&check_name("app", "slow")), "{faults}");
}

#[test]
fn a_squelch_added_through_the_browser_form_previews_its_matches_and_is_stored() {
    let env = fleet_env("web:\n  token: tok-Secret-4711\n");
    let server = WebServer::start(&env, &[]);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("{}/login", server.base));
    browser.type_into("input[name=user]", "ann");
    browser.type_into("input[name=token]", TOKEN);
    browser.click("form.login button[type=submit]");
    assert!(browser.text("header").contains("ann"));
    browser.goto(&format!("{}/squelches", server.base));
    browser.type_into("#regex", "app/do");
    browser.wait_for_text(
        "#preview",
        "would squelch 1 current fault",
        Duration::from_secs(10),
    );
    assert!(
        browser
            .text("#preview")
            .contains(&check_name("app", "down"))
    );
    browser.type_into("input[name=reason]", "deploying");
    browser.type_into("input[name=expires]", "30m");
    browser.click("#add-squelch button[type=submit]");
    assert!(browser.url().ends_with("/squelches"), "{}", browser.url());
    browser.wait_for_text("#live", "app/do", Duration::from_secs(5));
    let output = env.cimaa(&["squelches", "--json"]);
    assert_success(&output);
    let stored: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stored.as_array().unwrap().len(), 1, "{stored}");
    assert_eq!(stored[0]["regex"], "app/do");
    assert_eq!(stored[0]["user"], "ann");
    assert_eq!(stored[0]["reason"], "deploying");
}

#[test]
fn the_faults_page_shows_a_new_fault_without_navigating() {
    let env = fleet_env("");
    let server = WebServer::start(&env, &[]);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("{}/faults", server.base));
    browser.execute("window.cimaaTestMark = 'still here'; return null;");
    assert!(!browser.text("#live").contains("//web-7/disk"));
    store_faults(
        &env,
        "web-7",
        &[fault_of(
            "web-7",
            "disk",
            Severity::CRITICAL,
            "DISK CRITICAL - / 97% full",
            5,
        )],
    );
    browser.wait_for_text("#live", "//web-7/disk", Duration::from_secs(15));
    assert_eq!(
        browser.execute("return window.cimaaTestMark || null;"),
        "still here",
        "the page was reloaded or navigated instead of refreshed in place"
    );
    assert!(browser.text("#updated").starts_with("updated "));
}

/// A fleet that looks like a morning's work: several agents, every
/// severity, a storm, a flapping check, a dependency's suppression, a
/// squelch; for the screenshots in docs/.
fn seed_fleet(env: &Env) {
    let mut web = vec![
        fault_of(
            "web-1",
            "nginx/http",
            Severity::CRITICAL,
            "HTTP CRITICAL - 502 Bad Gateway - 0.012 second response time",
            540,
        ),
        fault_of(
            "web-1",
            "disk/root",
            Severity::WARNING,
            "DISK WARNING - free space: / 2104 MB (11%)",
            7200,
        ),
    ];
    web[1].triggered = false;
    store_faults(env, "web-1", &web);
    let mut upstream = fault_of(
        "web-2",
        "app/upstream",
        Severity::CRITICAL,
        "connection refused to 10.0.4.17:8080",
        480,
    );
    upstream.suppressed_by = Some("//web-2/net/gateway".into());
    upstream.triggered = false;
    store_faults(
        env,
        "web-2",
        &[
            fault_of(
                "web-2",
                "net/gateway",
                Severity::CRITICAL,
                "PING CRITICAL - Packet loss = 100%",
                500,
            ),
            upstream,
        ],
    );
    let mut flapping = fault_of(
        "db-1",
        "postgres/connections",
        Severity::WARNING,
        "POSTGRES_CONNECTION WARNING: 182 of 200 connections",
        300,
    );
    flapping.flapping = true;
    store_faults(
        env,
        "db-1",
        &[
            fault_of(
                "db-1",
                "postgres/replication",
                Severity::ERROR,
                "replication lag 412 s > 300 s",
                1260,
            ),
            flapping,
        ],
    );
    let mut held = fault_of(
        "batch-3",
        "cron/nightly-export",
        Severity::ERROR,
        "last success 26 h ago",
        3600,
    );
    held.held = true;
    store_faults(env, "batch-3", &[held]);
    store_faults(env, "cache-1", &[]);
    assert_success(&env.cimaa(&[
        "squelch",
        "batch-.*/cron",
        "export job moved to the new cluster",
        "--expires",
        "4h",
    ]));
}

#[test]
fn the_overview_and_faults_pages_render_to_screenshots() {
    let env = fleet_env("");
    seed_fleet(&env);
    let server = WebServer::start(&env, &[]);
    let browser = Browser::start(1280, 860);
    let keep = std::env::var_os("CIMAA_SCREENSHOTS").map(std::path::PathBuf::from);
    for (path, file, shown) in [
        ("/", "web-overview.png", "//web-1/nginx/http"),
        ("/faults", "web-faults.png", "//web-2/app/upstream"),
    ] {
        browser.goto(&format!("{}{path}", server.base));
        assert!(browser.text("#live").contains(shown), "{path}");
        let png = browser.screenshot();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{path}: not a PNG");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert!(width >= 1000, "{path}: {width} px wide");
        if let Some(dir) = &keep {
            std::fs::write(dir.join(file), &png).unwrap();
        }
    }
}
