//! The `postgres` backend against a real PostgreSQL server (scripts/test.sh
//! starts a private one): an agent paging through it, the password kept
//! out of every output, an unreachable server, an outage under a running
//! agent. The contract suite (tests/db_contract.rs) runs on it too.
//! See: #13
//!
//! Every test works in a database of its own, created here. Without
//! `CIMAA_TEST_POSTGRES_URL` the tests skip, except under `CI`, where they
//! fail.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cimaa::db::{Db, PostgresConfig, PostgresDb};
use cimaa::env;

use crate::util::{AGENT, Env, assert_success, check_name, event, events, stderr, stdout};

/// True under CI (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var(env::CI).is_ok_and(|ci| !matches!(ci.trim(), "" | "0" | "false"))
}

/// The URL of the test server's admin database; `None` skips, but under
/// `CI` a missing URL fails the test.
pub(crate) fn server_url() -> Option<String> {
    match std::env::var(env::TEST_POSTGRES_URL) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!(
            "`{}` is not set, but `CI` is: the postgres tests must run in CI; \
             run them through scripts/test.sh, which starts a PostgreSQL server",
            env::TEST_POSTGRES_URL
        ),
        _ => {
            eprintln!(
                "skipped: set `{}` (scripts/test.sh starts a server) to run the postgres tests",
                env::TEST_POSTGRES_URL
            );
            None
        }
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let base = head.rsplit_once('/').map_or(head, |(base, _)| base);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// Creates an empty database no other test (or earlier run) uses and
/// returns its URL, or `None` to skip.
pub(crate) async fn fresh_database() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = server_url()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "t{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = driver.await;
    Some(with_database(&admin, &name))
}

/// The options of a handle on `url`.
pub(crate) fn config(url: &str) -> PostgresConfig {
    PostgresConfig {
        url: url.to_owned(),
        pool: 4,
        history: cimaa::history::HistoryConfig::default(),
    }
}

/// A handle on a fresh, empty database (its tables created), or `None`.
pub(crate) async fn test_db() -> Option<PostgresDb> {
    let url = fresh_database().await?;
    let db = PostgresDb::open(&config(&url)).expect("open the test database");
    db.setup(None).await.expect("create the tables");
    Some(db)
}

/// Two handles (two pools, as two agents) on one fresh database.
pub(crate) async fn test_db_pair() -> Option<(PostgresDb, PostgresDb)> {
    let url = fresh_database().await?;
    let one = PostgresDb::open(&config(&url)).expect("open the test database");
    one.setup(None).await.expect("create the tables");
    let two = PostgresDb::open(&config(&url)).expect("open the test database");
    Some((one, two))
}

// ---------------------------------------------------------------- the binary

/// An agent on the PostgreSQL database `url`, a file alerter, checks every
/// `base_interval` seconds.
fn postgres_agent(url: &str, base_interval: f64) -> Env {
    let env = Env::bare();
    std::fs::create_dir_all(env.path("checks.d")).unwrap();
    env.write(
        "agent.yaml",
        &format!(
            "agent:\n  name: {AGENT}\n  directory: checks.d\n  state_dir: state\n  base_interval: {base_interval}\n\
             database:\n  type: postgres\n  url: \"{url}\"\n  pool: 2\n\
             alerter:\n  type: file\n  path: alerts.jsonl\n"
        ),
    );
    env
}

/// `url` with `password` in its user part.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

/// A password the tests look for in every output.
const PASSWORD: &str = "hunter2-never-shown";

fn all_output(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

/// A 127.0.0.1 port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `agent --once` on PostgreSQL pages a failing check, and `faults --json`
/// (another process, another connection) shows it as triggered. The
/// password in the URL (the test server trusts any) appears nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_on_postgres_pages_a_failing_check_and_faults_shows_it() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let env = postgres_agent(&with_password(&url, PASSWORD), 60.0);
    let output = env.cimaa(&["setup-db"]);
    assert_success(&output);
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n",
    );
    let output = env.once();
    assert!(!all_output(&output).contains(PASSWORD));
    let down = check_name("app", "down");
    assert_eq!(
        events(&env.alerts()),
        vec![event("trigger", &down, "CRITICAL - down")]
    );
    let faults = env.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["name"], down.as_str());
    assert_eq!(faults[0]["triggered"], true);
    let db = PostgresDb::open(&config(&url)).unwrap();
    let agents = db.agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].name, AGENT);
}

/// `validate` and `validate --healthchecks` show the URL without its
/// password.
#[tokio::test(flavor = "multi_thread")]
async fn validate_shows_the_url_without_its_password() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let env = postgres_agent(&with_password(&url, PASSWORD), 60.0);
    for args in [&["validate"][..], &["validate", "--healthchecks"]] {
        let output = env.cimaa(args);
        assert_success(&output);
        let text = all_output(&output);
        assert!(!text.contains(PASSWORD), "{args:?}:\n{text}");
    }
    let output = env.cimaa(&["validate", "--healthchecks"]);
    let shown = with_password(&url, "***");
    assert!(
        stdout(&output).contains(&format!("ok: database (postgres `{shown}`)")),
        "{}",
        stdout(&output)
    );
}

/// A URL `validate` refuses is quoted without its password.
#[test]
fn a_refused_url_is_quoted_without_its_password() {
    let env = postgres_agent(&format!("mysql://cimaa:{PASSWORD}@db.example/cimaa"), 60.0);
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let text = all_output(&output);
    assert!(text.contains("cimaa:***@db.example"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

/// `cimaa faults` against a server that does not answer exits 1 within
/// 10 s, naming the server without the password.
#[test]
fn faults_against_an_unreachable_server_fails_fast_without_the_password() {
    let url = format!(
        "postgres://cimaa:{PASSWORD}@127.0.0.1:{}/cimaa",
        closed_port()
    );
    let env = postgres_agent(&url, 60.0);
    let started = Instant::now();
    let output = env.cimaa(&["faults"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(1), "{}", all_output(&output));
    let text = all_output(&output);
    assert!(text.contains("cimaa:***@127.0.0.1"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

/// `$PGPASSWORD` is the password when the URL has none, and is not shown.
#[tokio::test(flavor = "multi_thread")]
async fn pgpassword_is_used_and_never_shown() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let env = postgres_agent(&url, 60.0);
    let output = env.cimaa_with_env(&["validate", "--healthchecks"], &[("PGPASSWORD", PASSWORD)]);
    assert_success(&output);
    assert!(!all_output(&output).contains(PASSWORD));
}

// ---------------------------------------------------------------- outage

/// A TCP proxy in front of the test server, which the outage test cuts
/// (every connection dropped, the port closed) and restores on the same
/// port: an outage of "the server" without stopping the one the other
/// tests share.
struct Proxy {
    port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free port; runs on the test's runtime.
    fn start(target: std::net::SocketAddr) -> Proxy {
        let mut proxy = Proxy {
            port: closed_port(),
            target,
            task: None,
        };
        proxy.restore();
        proxy
    }

    fn restore(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], self.port)))
            .unwrap();
        let listener = socket.listen(64).unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropped with the task: every connection goes with it.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// The test server's address, from its URL.
fn server_address(url: &str) -> std::net::SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        tokio_postgres::config::Host::Unix(path) => {
            panic!("the test server is not on TCP: {}", path.display())
        }
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().unwrap()
}

/// `url` reached through the proxy on `port`.
fn through(url: &str, port: u16) -> String {
    let address = server_address(url);
    url.replace(&address.to_string(), &format!("127.0.0.1:{port}"))
}

async fn eventually(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real agent keeps checking and alerting while the server is gone,
/// and writes its full state once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_rides_out_a_postgres_outage() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let mut proxy = Proxy::start(server_address(&url));
    let env = postgres_agent(&through(&url, proxy.port), 1.0);
    assert_success(&env.cimaa(&["setup-db"]));
    let flag = |name: &str| env.path(name).display().to_string();
    env.write_check(
        "app.yaml",
        &format!(
            "a:\n  command: \"if [ -e {a} ]; then echo 'CRITICAL - a'; exit 2; fi; echo OK\"\n  retry: 0\n\
             b:\n  command: \"if [ -e {b} ]; then echo 'CRITICAL - b'; exit 2; fi; echo OK\"\n  retry: 0\n",
            a = flag("a-down"),
            b = flag("b-down"),
        ),
    );
    env.write("a-down", "");
    let (a, b) = (check_name("app", "a"), check_name("app", "b"));
    let log = std::fs::File::create(env.path("agent.log")).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.config())
        .arg("agent")
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Read directly, not through the proxy.
    let db = PostgresDb::open(&config(&url)).unwrap();
    let names = async |db: &PostgresDb| -> Option<Vec<(String, bool)>> {
        let faults = db.get_faults(AGENT).await.ok()?;
        Some(faults.into_iter().map(|f| (f.name, f.triggered)).collect())
    };
    eventually(
        "fault `a` stored as triggered",
        Duration::from_secs(20),
        async || names(&db).await == Some(vec![(a.clone(), true)]),
    )
    .await;

    proxy.cut();
    std::fs::remove_file(env.path("a-down")).unwrap();
    env.write("b-down", "");
    // Checks and alerts go on without the database.
    let mut expected = vec![
        event("resolve", &a, ""),
        event("trigger", &a, "CRITICAL - a"),
        event("trigger", &b, "CRITICAL - b"),
    ];
    expected.sort();
    eventually(
        "alerts during the outage",
        Duration::from_secs(30),
        async || {
            let mut sent = events(&env.alerts());
            sent.sort();
            sent == expected
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.try_wait().unwrap().is_none(), "the agent died");
    assert_eq!(
        names(&db).await,
        Some(vec![(a.clone(), true)]),
        "nothing was written during the outage"
    );

    let back = chrono::Utc::now().timestamp();
    proxy.restore();
    eventually(
        "the full state written after the outage",
        Duration::from_secs(30),
        async || {
            let heartbeat_fresh = db
                .agents()
                .await
                .is_ok_and(|agents| agents.iter().any(|h| h.name == AGENT && h.updated >= back));
            heartbeat_fresh && names(&db).await == Some(vec![(b.clone(), true)])
        },
    )
    .await;

    let pid = agent.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = agent.wait().unwrap();
    let log = std::fs::read_to_string(env.path("agent.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("cannot write faults to the database"),
        "the outage was not reported:\n{log}"
    );
    assert!(!log.contains(PASSWORD));
    assert!(
        db.get_faults(AGENT).await.unwrap().is_empty(),
        "deregistered"
    );
}

/// `validate --healthchecks` as a user who may only read names the
/// privileges it lacks, and exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn healthchecks_name_the_privileges_a_read_only_user_lacks() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let owner = PostgresDb::open(&config(&url)).unwrap();
    owner.setup(None).await.unwrap();
    let role = format!("reader_{}", url.rsplit('/').next().unwrap());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    let (_, host) = url.split_once('@').unwrap();
    let env = postgres_agent(&format!("postgres://{role}@{host}"), 60.0);
    let output = env.cimaa(&["validate", "--healthchecks"]);
    assert_eq!(output.status.code(), Some(1), "{}", all_output(&output));
    let text = stderr(&output);
    assert!(
        text.contains("faults (INSERT, UPDATE, DELETE)")
            && text.contains("history (INSERT, DELETE)")
            && text.contains("sequence history_id_seq (USAGE)"),
        "{text}"
    );
}

// See: #13. SPEC §15: a tick's faults and its history records are one
// transaction: when the server refuses a record (a NUL byte, which a text
// column cannot hold), the faults are not written either, and the write
// says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_history_record_leaves_the_ticks_faults_unwritten() {
    let Some(db) = test_db().await else {
        return;
    };
    let disk = crate::db_contract::fault("//web1/app/disk");
    let mut refused = cimaa::history::Record::new(
        100,
        "web1",
        "//web1/app/disk",
        cimaa::history::Event::Triggered,
    );
    refused.message = Some("a\0b".into());

    let written = db
        .write_tick("web1", std::slice::from_ref(&disk), 100, &[refused])
        .await;

    assert!(
        matches!(written, Err(cimaa::db::TickWriteError::Faults(_))),
        "{written:?}"
    );
    assert_eq!(db.get_faults("web1").await.unwrap(), []);
    assert!(db.agents().await.unwrap().is_empty());
}

/// The faults and open alerts tables of schema version 2 (before
/// `flapping`), with a row each.
const VERSION_2_FAULTS: &str = r#"
CREATE TABLE cimaa_schema (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO cimaa_schema VALUES (1, 2);
CREATE TABLE faults (
    agent TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    severity BIGINT NOT NULL,
    message TEXT NOT NULL,
    since BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    triggered BOOLEAN NOT NULL,
    escalates BOOLEAN NOT NULL,
    attempts BIGINT NOT NULL,
    monitor_runs BIGINT NOT NULL DEFAULT 0,
    storm BOOLEAN NOT NULL DEFAULT FALSE,
    suppressed_by TEXT NULL,
    held BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (agent, name)
);
INSERT INTO faults VALUES ('web1', '//web1/app/disk', 40, '//web1/app/disk is failing', 100, 100,
    FALSE, TRUE, 1, 0, FALSE, NULL, FALSE);
CREATE TABLE open_alerts (
    agent TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    severity BIGINT NOT NULL,
    message TEXT NOT NULL,
    since BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    triggered BOOLEAN NOT NULL,
    escalates BOOLEAN NOT NULL,
    attempts BIGINT NOT NULL,
    monitor_runs BIGINT NOT NULL,
    alerter TEXT NULL,
    stopped BIGINT NOT NULL,
    storm BOOLEAN NOT NULL DEFAULT FALSE,
    suppressed_by TEXT NULL,
    held BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (agent, name)
);
INSERT INTO open_alerts VALUES ('web2', '//web1/app/disk', 40, '//web1/app/disk is failing', 100,
    100, FALSE, TRUE, 1, 0, NULL, 30, FALSE, NULL, FALSE);
"#;

// See: #17, #21. An agent of this release opening a database an older
// one created adds `flapping` and keeps the rows; an older agent still
// writes (it names its columns).
#[tokio::test(flavor = "multi_thread")]
async fn a_version_2_database_keeps_its_faults_and_gains_flapping() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client.batch_execute(VERSION_2_FAULTS).await.unwrap();

    let db = PostgresDb::open(&config(&url)).unwrap();
    let disk = crate::db_contract::fault("//web1/app/disk");
    assert_eq!(
        db.get_faults("web1").await.unwrap(),
        std::slice::from_ref(&disk)
    );
    let kept = db.open_alerts("web2").await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].fault, disk);
    let flapping = cimaa::db::Fault {
        flapping: true,
        updated: 160,
        ..disk.clone()
    };
    db.set_faults("web1", std::slice::from_ref(&flapping), 160)
        .await
        .unwrap();
    assert_eq!(db.get_faults("web1").await.unwrap(), [flapping]);
    let version: i32 = client
        .query_one("SELECT version FROM cimaa_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 3);

    client
        .batch_execute(
            "INSERT INTO faults (agent, name, severity, message, since, updated, triggered,
                 escalates, attempts, monitor_runs, storm, suppressed_by, held)
             VALUES ('web3', 'x', 40, 'm', 1, 1, FALSE, TRUE, 0, 0, FALSE, NULL, TRUE)",
        )
        .await
        .unwrap();
    let old_agents = &db.get_faults("web3").await.unwrap()[0];
    assert!(old_agents.held && !old_agents.flapping);
    drop(client);
    let _ = driver.await;
}
