//! The shared database under hostile contents and faults (issue #18): rows
//! other agents (or people) wrote malformed, a database file deleted under a
//! running agent, a lock held by another process. Against the real binary
//! and a `SQLite` file the test writes into with plain SQL.

use std::fs::{self, File};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cimaa::agent::{self, Backends, Clock, Mode};
use cimaa::alerters::{self, Alerters};
use cimaa::config::load_agent_config;
use cimaa::db::{
    AgentFault, Db, Error as DbError, Fault, Heartbeat, MemoryDb, Notice, OpenAlert, SqliteDb,
    Squelch, StoppedAgent,
};
use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::util::{AGENT, Env, assert_success, check_name, stderr, stdout, wait_for};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

use crate::db_contract::fault;

/// The env's database file, its schema created by a first `--once`.
fn database(env: &Env) -> Connection {
    env.once();
    Connection::open(env.path("cimaa.db")).unwrap()
}

/// Stores a well-formed fault of a peer through the backend.
fn store_peer_fault(env: &Env, agent: &str, name: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = SqliteDb::open(&env.path("cimaa.db")).await.unwrap();
        db.set_faults(agent, &[fault(name)], now()).await.unwrap();
    });
}

/// Inserts a fault row of `agent` with `severity` and `attempts` as SQL.
fn insert_fault(db: &Connection, agent: &str, name: &str, severity: &str, attempts: &str) {
    db.execute_batch(&format!(
        "INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts)
         VALUES ('{agent}', {name}, {severity}, 'm', 100, 100, 0, 1, {attempts})"
    ))
    .unwrap();
}

fn json(output: &std::process::Output) -> Vec<Value> {
    match serde_json::from_slice(&output.stdout).unwrap() {
        Value::Array(items) => items,
        other => panic!("not an array: {other}"),
    }
}

// See: #18
#[test]
fn faults_prints_the_good_rows_and_warns_about_each_malformed_one() {
    let env = Env::new();
    let db = database(&env);
    store_peer_fault(&env, "web1", "disk");
    insert_fault(&db, "web2", "'text-severity'", "'high'", "0");
    insert_fault(&db, "web2", "'real-severity'", "40.5", "0");
    insert_fault(&db, "web2", "x'00ff'", "40", "0");
    insert_fault(&db, "web2", "'huge-attempts'", "40", "9223372036854775807");

    let output = env.cimaa(&["faults", "--json"]);

    assert_success(&output);
    let names: Vec<String> = json(&output)
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["disk"]);
    let warnings = stderr(&output);
    for key in [
        "web2/text-severity",
        "web2/real-severity",
        "web2/x'00ff'",
        "web2/huge-attempts",
    ] {
        assert!(
            warnings.contains(&format!("table `faults` key `{key}`")),
            "{key} in {warnings}"
        );
    }
    // The table output too.
    let table = env.cimaa(&["faults"]);
    assert_success(&table);
    assert!(stdout(&table).contains("disk"));
}

// See: #18
#[test]
fn squelches_prints_the_good_rows_and_warns_about_a_malformed_one() {
    let env = Env::new();
    let db = database(&env);
    assert_success(&env.cimaa(&["squelch", "web1", "deploying"]));
    db.execute_batch(&format!(
        "INSERT INTO squelches VALUES (x'2e2a', 'blob regex', 'ops', {}, 1, NULL);
         INSERT INTO squelches VALUES ('text-time', 'r', 'ops', 'yesterday', 1, NULL);",
        now()
    ))
    .unwrap();

    let output = env.cimaa(&["squelches", "--json"]);

    assert_success(&output);
    let regexes: Vec<String> = json(&output)
        .iter()
        .map(|s| s["regex"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(regexes, ["web1"]);
    let warnings = stderr(&output);
    assert!(
        warnings.contains("table `squelches` key `x'2e2a'`"),
        "{warnings}"
    );
    assert!(
        warnings.contains("table `squelches` key `text-time`: column `time` holds text"),
        "{warnings}"
    );
}

// See: #18
#[test]
fn meta_check_and_agents_report_the_good_rows_despite_malformed_ones() {
    let env = Env::new();
    let db = database(&env);
    db.execute_batch(
        "INSERT INTO heartbeats (agent, updated) VALUES ('old-peer', 100);
         INSERT INTO heartbeats (agent, updated) VALUES ('bad-peer', 'soon');
         INSERT INTO squelches VALUES ('sq', 'r', 'ops', 'noon', 0, NULL);",
    )
    .unwrap();

    let meta = env.cimaa(&["meta-check"]);
    let agents = env.cimaa(&["agents", "--json"]);

    assert_success(&meta);
    // A WARNING in its plugin JSON, not stderr: as a check, stderr would be
    // the ERROR `monitor-stderr`.
    assert_eq!(stderr(&meta), "");
    let report: Value = serde_json::from_slice(&meta.stdout).unwrap();
    let faults = report["faults"].as_array().unwrap();
    assert!(faults.iter().any(|f| f["name"] == "old-peer"), "{report}");
    let database = faults.iter().find(|f| f["name"] == "database").unwrap();
    assert_eq!(database["severity"], 30, "{report}");
    let message = database["message"].as_str().unwrap();
    assert!(
        message.contains("table `heartbeats` key `bad-peer`"),
        "{message}"
    );
    assert!(message.contains("table `squelches` key `sq`"), "{message}");
    assert_success(&agents);
    let names: Vec<String> = json(&agents)
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["old-peer", AGENT]);
}

// See: #18
#[test]
fn an_agent_starts_despite_a_malformed_row_among_its_own_faults_and_reports_it() {
    let env = Env::new();
    let db = database(&env);
    insert_fault(&db, AGENT, "'app/broken'", "'high'", "0");

    let first = env.cimaa(&["agent", "--once"]);

    assert_success(&first);
    let database_fault = format!("{AGENT}#database");
    let stored = env.fault(&database_fault).expect("AGENT#database stored");
    assert_eq!(stored["severity"], 30);
    assert!(
        stored["message"]
            .as_str()
            .unwrap()
            .contains(&format!("table `faults` key `{AGENT}/app/broken`")),
        "{stored}"
    );
    // The agent's own set replaced the row: the next run finds none.
    env.once();
    assert_eq!(env.fault(&database_fault), None);
    assert!(env.alerts().is_empty(), "AGENT# faults are never alerted");
}

// See: #18
#[test]
fn a_malformed_squelch_leaves_the_other_squelches_in_force() {
    let env = Env::new();
    let db = database(&env);
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n",
    );
    assert_success(&env.cimaa(&["squelch", "app/", "deploying"]));
    db.execute_batch("INSERT INTO squelches VALUES (x'00', 'r', 'ops', 1, 1, NULL);")
        .unwrap();

    env.once();

    assert!(env.alerts().is_empty(), "{:?}", env.alerts());
    let stored = env.fault(&format!("{AGENT}#database")).unwrap();
    assert!(
        stored["message"]
            .as_str()
            .unwrap()
            .contains("table `squelches` key `x'00'`"),
        "{stored}"
    );
    assert_eq!(
        env.fault(&check_name("app", "down")).unwrap()["triggered"],
        false
    );
}

// See: #18
#[test]
fn a_dropped_squelches_table_is_created_again() {
    let env = Env::new();
    let db = database(&env);
    db.execute_batch("DROP TABLE squelches;").unwrap();

    let output = env.cimaa(&["squelches", "--json"]);

    assert_success(&output);
    assert!(json(&output).is_empty());
    env.once();
    assert_success(&env.cimaa(&["squelch", "web1", "deploying"]));
}

/// A long-running agent process; killed when dropped.
struct Running {
    child: Child,
}

impl Running {
    fn start(env: &Env) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", &env.config().display().to_string(), "agent"])
            .current_dir(env.path("."))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(File::create(env.path("agent.log")).unwrap())
            .spawn()
            .unwrap();
        Running { child }
    }

    fn terminate(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// Waits for the exit; how long it took.
    fn wait(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < limit,
                "agent did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_names(env: &Env) -> Vec<String> {
    let output = env.cimaa(&["agents", "--json"]);
    assert_success(&output);
    json(&output)
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

/// An agent at base_interval 1 whose one check appends the time it ran to `runs`.
fn ticking_agent() -> Env {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  base_interval: 1\n",
    );
    let runs = env.path("runs").display().to_string();
    env.write_check(
        "app.yaml",
        &format!("ran:\n  command: date +%s.%N >> {runs}; echo 'CRITICAL - down'; exit 2\n"),
    );
    env
}

/// When the check ran, in epoch seconds.
fn runs(env: &Env) -> Vec<f64> {
    fs::read_to_string(env.path("runs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
}

// See: #18
#[test]
fn a_deleted_database_file_is_created_again_with_the_agents_state() {
    let env = ticking_agent();
    let mut agent = Running::start(&env);
    let name = check_name("app", "ran");
    wait_for("the first write", Duration::from_secs(10), || {
        env.path("cimaa.db").exists() && agent_names(&env) == [AGENT]
    });

    for file in ["cimaa.db", "cimaa.db-wal", "cimaa.db-shm"] {
        let _ = fs::remove_file(env.path(file));
    }

    wait_for("the state in a new file", Duration::from_secs(10), || {
        env.path("cimaa.db").exists() && agent_names(&env) == [AGENT] && env.fault(&name).is_some()
    });
    agent.terminate();
    agent.wait(Duration::from_secs(10));
    let log = fs::read_to_string(env.path("agent.log")).unwrap();
    assert!(log.contains("deleted or replaced"), "{log}");
}

// See: #18
#[test]
fn a_locked_database_does_not_stall_the_ticks() {
    let env = ticking_agent();
    let mut agent = Running::start(&env);
    wait_for("two runs", Duration::from_secs(10), || {
        runs(&env).len() >= 2
    });

    let lock = Connection::open(env.path("cimaa.db")).unwrap();
    // The agent may be writing at this moment: wait for it, don't fail.
    lock.busy_timeout(Duration::from_secs(5)).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let locked_at = runs(&env).len();
    std::thread::sleep(Duration::from_secs(5));
    let during: Vec<f64> = runs(&env)[locked_at..].to_vec();
    lock.execute_batch("COMMIT;").unwrap();

    // Five seconds at base_interval 1 are four or five ticks; a tick that
    // waited for the lock (5 s before #18) would leave a gap of seconds.
    // The bounds leave room for a loaded machine.
    assert!(during.len() >= 3, "runs while locked: {during:?}");
    let gaps: Vec<f64> = during.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|gap| *gap < 3.0), "gaps: {gaps:?}");
    agent.terminate();
    agent.wait(Duration::from_secs(10));
}

// See: #18
#[test]
fn sigterm_under_a_held_lock_deregisters_once_it_is_released_within_10_s() {
    let env = ticking_agent();
    let mut agent = Running::start(&env);
    wait_for("the first write", Duration::from_secs(10), || {
        agent_names(&env) == [AGENT]
    });

    let lock = Connection::open(env.path("cimaa.db")).unwrap();
    // The agent may be writing at this moment: wait for it, don't fail.
    lock.busy_timeout(Duration::from_secs(5)).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    // Let a tick's write get stuck behind the lock first.
    std::thread::sleep(Duration::from_millis(1500));
    agent.terminate();
    let terminated = Instant::now();
    // Released after one 5 s attempt would have given up (and the process
    // exited), but well within the 7 s the agent keeps retrying.
    std::thread::sleep(Duration::from_millis(5600));
    lock.execute_batch("COMMIT;").unwrap();

    agent.wait(Duration::from_secs(10));
    let took = terminated.elapsed();
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    assert!(
        agent_names(&env).is_empty(),
        "the heartbeat was left behind"
    );
}

/// A memory database whose first `set_faults` takes `SLOW_WRITE`; records
/// each write's `now` and whether two were ever in flight at once.
#[derive(Default)]
struct SlowDb {
    inner: MemoryDb,
    writes: Mutex<Vec<i64>>,
    in_flight: AtomicU32,
    overlapped: AtomicBool,
}

/// Counts a write out of flight when dropped.
struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

const SLOW_WRITE: Duration = Duration::from_secs(150);

#[async_trait]
impl Db for SlowDb {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, DbError> {
        self.inner.get_faults(agent).await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), DbError> {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlapped.store(true, Ordering::SeqCst);
        }
        // Also when the call is given up (dropped) while sleeping.
        let _in_flight = InFlight(&self.in_flight);
        let first = {
            let mut writes = self.writes.lock().unwrap();
            writes.push(now);
            writes.len() == 1
        };
        if first {
            tokio::time::sleep(SLOW_WRITE).await;
        }
        self.inner.set_faults(agent, faults, now).await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), DbError> {
        self.inner.heartbeat(agent, now).await
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, DbError> {
        self.inner.list_faults(agent).await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, DbError> {
        self.inner.agents().await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
        self.inner.old_agents(age, now).await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, DbError> {
        self.inner.get_squelch_details().await
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), DbError> {
        self.inner.squelch(squelch).await
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, DbError> {
        self.inner.unsquelch(regex).await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), DbError> {
        self.inner.remove_agent(agent).await
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), DbError> {
        self.inner.stop_agent(agent, open, now).await
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, DbError> {
        self.inner.open_alerts(agent).await
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, DbError> {
        self.inner.stopped_agents().await
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), DbError> {
        self.inner.clear_open_alerts(agent).await
    }

    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, DbError> {
        self.inner.notices(names).await
    }

    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, DbError> {
        self.inner.put_notice(notice, expected).await
    }

    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, DbError> {
        self.inner.heartbeats_of(agents).await
    }

    async fn append_history(&self, records: &[cimaa::db::HistoryRecord]) -> Result<(), DbError> {
        self.inner.append_history(records).await
    }

    async fn history(
        &self,
        query: &cimaa::db::HistoryQuery,
    ) -> Result<Vec<cimaa::db::HistoryRecord>, DbError> {
        self.inner.history(query).await
    }
}

// See: #18
#[tokio::test(start_paused = true)]
async fn a_hanging_write_delays_no_tick_and_is_given_up_within_half_an_interval() {
    // 2100-01-01T00:00:00Z, a tick boundary; later than any file's mtime.
    const START: f64 = 4_102_444_800.0;
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("checks.d")).unwrap();
    let path = dir.path().join("agent.yaml");
    fs::write(
        &path,
        format!(
            "agent:\n  name: {AGENT}\n  directory: checks.d\n  base_interval: 60\n  splay: 0\n  state_dir: state\ndatabase:\n  type: memory\nalerter:\n  type: file\n  path: alerts.jsonl\n"
        ),
    )
    .unwrap();
    let config = load_agent_config(&path).unwrap();
    let db = Arc::new(SlowDb::default());
    let backends = Backends {
        db: db.clone(),
        alerters: Arc::new(
            Alerters::build(
                &config.alerter,
                &config.alerters,
                &alerters::Context {
                    agent: AGENT.to_owned(),
                    alert_timeout: config.agent.alert_timeout,
                },
            )
            .unwrap(),
        ),
        sink: None,
    };
    let (_controls, receiver) = mpsc::unbounded_channel();

    agent::run(
        &config,
        backends,
        Clock::tokio_from(START),
        Mode::Count(5),
        receiver,
    )
    .await
    .unwrap();

    // Ticks at 60..300 s, each on time though the first write hangs: it is
    // given up after 30 s, so no two writes overlap and the next carries
    // the full state.
    #[expect(clippy::cast_possible_truncation, reason = "a whole epoch second")]
    let start = START as i64;
    let writes: Vec<i64> = db
        .writes
        .lock()
        .unwrap()
        .iter()
        .map(|now| now - start)
        .collect();
    assert_eq!(writes, [60, 120, 180, 240, 300]);
    assert_eq!(
        db.agents().await.unwrap()[0].updated - start,
        300,
        "the last state is written before the run ends"
    );
    assert!(
        !db.overlapped.load(Ordering::SeqCst),
        "two writes were in flight at once"
    );
}

// See: #11. A notice a broken or newer agent left malformed is read as
// empty at its stored version (0 when that is unreadable too) and logged:
// the agent that finds its fleet fault CRITICAL claims over it, delivers
// once and leaves a well-formed record.
#[test]
fn an_agent_replaces_a_malformed_notice_of_its_fleet_fault_and_delivers_once() {
    for (version, record) in [
        ("3", r#"'{"holders": "web9", "delivered": 1}'"#),
        ("'seven'", "x'00'"),
    ] {
        let env = Env::new();
        let db = database(&env);
        db.execute_batch(&format!(
            "INSERT INTO notices VALUES ('//web', {version}, {record});"
        ))
        .unwrap();
        env.write_check(
            "web.yaml",
            "//web:\n  command: echo web down; exit 2\n  retry: 0\n",
        );

        let run = env.cimaa(&["agent", "--once"]);

        assert_success(&run);
        let triggers: Vec<(String, String, String)> = crate::util::events(&env.alerts());
        assert_eq!(
            triggers,
            [crate::util::event("trigger", "//web", "web down")],
            "{version}"
        );
        let (stored, json): (i64, String) = db
            .query_row(
                "SELECT version, record FROM notices WHERE name = '//web'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        let record: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(record["holders"], serde_json::json!([AGENT]), "{json}");
        assert_eq!(
            record["delivered"],
            serde_json::json!(["web down"]),
            "{json}"
        );
        assert!(stored > 1, "written over the malformed row: {stored}");
    }
}
