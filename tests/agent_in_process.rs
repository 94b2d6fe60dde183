//! The agent loop in process, on a paused clock: `agent::run` with a memory
//! database, a recording alerter and a recording sink, as mini-redis tests
//! its server.
//!
//! Checks are `socket:` probes answered by a server task in the test's own
//! runtime with plugin JSON the test sets (SPEC §4). Loopback writes are
//! visible at once, so a check completes without wall time passing, and the
//! paused tokio clock (which the agent's `Clock` follows) jumps from timer
//! to timer: a scenario of many minutes runs in milliseconds. What only a
//! process can show (signals, process groups, plugins, exit codes, the CLI)
//! stays in the binary-driven modules.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cimaa::agent::{self, Backends, Clock, Mode};
use cimaa::alerters::{self, Alerter, Alerters};
use cimaa::config::{Config, load_agent_config};
use cimaa::db::{Db, Fault, MemoryDb, Squelch};
use cimaa::severity::Severity;
use cimaa::signals::Control;
use cimaa::sinks::{MetricRecord, SendError, Sink};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::util::{AGENT, check_name, event};

/// The test clock's start: 2100-01-01T00:00:00Z, a tick boundary for any
/// whole-minute base interval, and later than any real file's mtime, so
/// check files written by a test are never "being written" (`SETTLE`).
const START: f64 = 4_102_444_800.0;

/// `{"faults": [{"severity": SEVERITY, "message": MESSAGE}]}`.
fn fault_json(severity: &str, message: &str) -> String {
    format!(r#"{{"faults": [{{"severity": "{severity}", "message": "{message}"}}]}}"#)
}

const PASSING: &str = r#"{"faults": []}"#;

/// A plugin socket: answers every connection with the current reply and
/// records when (epoch seconds on the test clock) it was asked.
#[derive(Clone)]
struct Plugin {
    path: PathBuf,
    state: Arc<Mutex<PluginState>>,
}

struct PluginState {
    reply: String,
    runs: Vec<f64>,
}

impl Plugin {
    fn serve(path: PathBuf, clock: Clock, reply: &str) -> Plugin {
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let state = Arc::new(Mutex::new(PluginState {
            reply: reply.to_string(),
            runs: Vec::new(),
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let reply = {
                    let mut state = shared.lock().unwrap();
                    state.runs.push(clock.now());
                    state.reply.clone()
                };
                stream.write_all(reply.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
        });
        Plugin { path, state }
    }

    fn answer(&self, reply: &str) {
        self.state.lock().unwrap().reply = reply.to_string();
    }

    /// When the plugin ran, as tick numbers of `base_interval`.
    fn ticks(&self, base_interval: f64) -> Vec<i64> {
        self.state
            .lock()
            .unwrap()
            .runs
            .iter()
            .map(|at| cimaa::scheduler::tick_at(*at, base_interval))
            .collect()
    }

    fn runs(&self) -> Vec<f64> {
        self.state.lock().unwrap().runs.clone()
    }
}

/// An alerter that records what it delivered; it can fail, refuse or hang.
#[derive(Default)]
struct RecordingAlerter {
    state: Mutex<AlerterState>,
}

#[derive(Default)]
struct AlerterState {
    delivered: Vec<(String, String, String)>,
    calls: u32,
    /// Fail this many more calls (retryable).
    failures: u32,
    /// Refuse every event as invalid (permanent).
    refuse: bool,
    /// Never answer.
    hang: bool,
}

impl RecordingAlerter {
    async fn call(&self, action: &str, name: &str, message: &str) -> Result<(), alerters::Error> {
        let outcome = {
            let mut state = self.state.lock().unwrap();
            state.calls += 1;
            if state.hang {
                None
            } else if state.refuse {
                Some(Err(alerters::Error::Refused("test refuses".into())))
            } else if state.failures > 0 {
                state.failures -= 1;
                Some(Err(alerters::Error::Http("test fails".into())))
            } else {
                state
                    .delivered
                    .push((action.into(), name.into(), message.into()));
                Some(Ok(()))
            }
        };
        match outcome {
            Some(outcome) => outcome,
            None => std::future::pending().await,
        }
    }

    fn delivered(&self) -> Vec<(String, String, String)> {
        self.state.lock().unwrap().delivered.clone()
    }

    fn calls(&self) -> u32 {
        self.state.lock().unwrap().calls
    }

    fn set(&self, change: impl FnOnce(&mut AlerterState)) {
        change(&mut self.state.lock().unwrap());
    }
}

#[async_trait]
impl Alerter for RecordingAlerter {
    async fn trigger(&self, name: &str, message: &str) -> Result<(), alerters::Error> {
        self.call("trigger", name, message).await
    }

    async fn resolve(&self, name: &str) -> Result<(), alerters::Error> {
        self.call("resolve", name, "").await
    }
}

/// A sink that keeps every record it is sent.
#[derive(Default)]
struct RecordingSink {
    records: Mutex<Vec<MetricRecord>>,
}

#[async_trait]
impl Sink for RecordingSink {
    async fn send(&self, batch: &[MetricRecord]) -> Result<(), SendError> {
        self.records.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

/// One agent's configuration, fakes and test clock.
struct Setup {
    dir: TempDir,
    config: Config,
    clock: Clock,
    db: Arc<MemoryDb>,
    alerter: Arc<RecordingAlerter>,
    sink: Arc<RecordingSink>,
}

impl Setup {
    /// An agent with base interval 60, no splay, and `extra_agent` lines under `agent:`,
    /// its clock at `START + offset`.
    fn new(extra_agent: &str, offset: f64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("checks.d")).unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(
            &path,
            format!(
                "agent:\n  name: {AGENT}\n  directory: checks.d\n  base_interval: 60\n  splay: 0\n  state_dir: state\n{extra_agent}database:\n  type: memory\nalerter:\n  type: file\n  path: alerts.jsonl\n"
            ),
        )
        .unwrap();
        Setup {
            config: load_agent_config(&path).unwrap(),
            dir,
            clock: Clock::tokio_from(START + offset),
            db: Arc::new(MemoryDb::default()),
            alerter: Arc::new(RecordingAlerter::default()),
            sink: Arc::new(RecordingSink::default()),
        }
    }

    /// Appends `lines` to the agent's configuration, which ends with the
    /// file alerter's section (so indented lines extend it), and loads it.
    fn extend_config(&mut self, lines: &str) {
        let path = self.dir.path().join("agent.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(lines);
        std::fs::write(&path, text).unwrap();
        self.config = load_agent_config(&path).unwrap();
    }

    /// A plugin socket named `name` answering `reply`.
    fn plugin(&self, name: &str, reply: &str) -> Plugin {
        Plugin::serve(
            self.dir.path().join(format!("{name}.sock")),
            self.clock,
            reply,
        )
    }

    /// Writes `checks.d/app.yaml` with check `probe` asking `plugin`, plus
    /// `extra` lines; returns the check's name.
    fn probe(&self, plugin: &Plugin, extra: &str) -> String {
        self.write_check(
            "app.yaml",
            &format!("probe:\n  socket: unix:{}\n{extra}", plugin.path.display()),
        );
        check_name("app", "probe")
    }

    fn write_check(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join("checks.d").join(file), text).unwrap();
    }

    fn remove_check(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join("checks.d").join(file)).unwrap();
    }

    fn backends(&self) -> Backends {
        Backends {
            db: self.db.clone(),
            alerters: Arc::new(Alerters::single(self.alerter.clone())),
            sink: Some((self.sink.clone(), 1000)),
        }
    }

    /// Runs the agent in `mode` to its end.
    async fn run(&self, mode: Mode) {
        let (_controls, receiver) = mpsc::unbounded_channel();
        agent::run(&self.config, self.backends(), self.clock, mode, receiver)
            .await
            .unwrap();
    }

    /// One `--once` run, then a minute passes (as between two invocations).
    async fn once(&self) {
        self.run(Mode::Once).await;
        tokio::time::sleep(Duration::from_mins(1)).await;
    }

    /// The agent running until stopped.
    fn start(&self) -> Running {
        let (controls, receiver) = mpsc::unbounded_channel();
        let (config, backends, clock) = (self.config.clone(), self.backends(), self.clock);
        let task = tokio::spawn(async move {
            agent::run(&config, backends, clock, Mode::Forever, receiver).await
        });
        Running { controls, task }
    }

    /// Sleeps until `seconds` after `START` on the test clock.
    async fn at(&self, seconds: f64) {
        let wait = START + seconds - self.clock.now();
        assert!(wait >= 0.0, "{seconds} s after start has passed");
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }

    async fn faults(&self) -> Vec<Fault> {
        self.db.get_faults(AGENT).await.unwrap()
    }

    async fn fault(&self, name: &str) -> Option<Fault> {
        self.faults().await.into_iter().find(|f| f.name == name)
    }

    async fn squelch(&self, regex: &str, expires: Option<i64>) {
        #[expect(clippy::cast_possible_truncation, reason = "epoch seconds")]
        let now = self.clock.now() as i64;
        let squelch = Squelch {
            regex: regex.into(),
            reason: "test".into(),
            user: "ann".into(),
            time: now,
            permanent: false,
            expires,
        };
        self.db.squelch(&squelch).await.unwrap();
    }
}

/// An agent in `Mode::Forever`.
struct Running {
    controls: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<Result<(), agent::Error>>,
}

impl Running {
    fn send(&self, control: Control) {
        self.controls.send(control).unwrap();
    }

    async fn stop(self) {
        self.send(Control::Shutdown);
        self.task.await.unwrap().unwrap();
    }
}

fn severity_and_message(fault: Option<Fault>) -> Option<(Severity, String)> {
    fault.map(|f| (f.severity, f.message))
}

// Retries and escalation (SPEC §5).

#[tokio::test(start_paused = true)]
async fn a_failing_check_retries_then_alerts_once_and_resolves_when_it_passes() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("error", "down"));
    let name = setup.probe(&plugin, "  retry: 3\n");
    for n in 1..=3 {
        setup.once().await;
        assert_eq!(
            severity_and_message(setup.fault(&name).await),
            Some((Severity::ERROR, format!("down ({n} of 4)")))
        );
        assert!(setup.alerter.delivered().is_empty(), "soft errors page");
    }
    setup.once().await;
    setup.once().await;
    assert_eq!(
        setup.fault(&name).await.unwrap().severity,
        Severity::CRITICAL
    );
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
    plugin.answer(PASSING);
    setup.once().await;
    assert!(setup.fault(&name).await.is_none());
    assert_eq!(
        setup.alerter.delivered(),
        [event("trigger", &name, "down"), event("resolve", &name, "")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_keeps_the_failure_counter_and_since() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("error", "down"));
    let name = setup.probe(&plugin, "  retry: 3\n");
    setup.once().await;
    let first = setup.fault(&name).await.unwrap();
    setup.once().await;
    let second = setup.fault(&name).await.unwrap();
    assert_eq!(second.attempts, 2);
    assert_eq!(second.since, first.since);
    assert_eq!(second.updated, first.updated + 60);
    assert_eq!(second.message, "down (2 of 4)");
}

#[tokio::test(start_paused = true)]
async fn retry_zero_alerts_on_the_first_failure() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("error", "down"));
    let name = setup.probe(&plugin, "  retry: 0\n");
    setup.once().await;
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
}

#[tokio::test(start_paused = true)]
async fn a_critical_fault_pages_at_once_under_its_name() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin(
        "p",
        r#"{"faults": [{"name": "db", "severity": "critical", "message": "db down"}]}"#,
    );
    let name = setup.probe(&plugin, "");
    setup.once().await;
    setup.once().await;
    assert_eq!(
        setup.alerter.delivered(),
        [event("trigger", &format!("{name}#db"), "db down")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_changed_message_of_a_critical_fault_pages_again() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", "");
    let name = setup.probe(&plugin, "");
    for message in ["first", "first", "second"] {
        plugin.answer(&fault_json("critical", message));
        setup.once().await;
    }
    assert_eq!(
        setup.alerter.delivered(),
        [
            event("trigger", &name, "first"),
            event("trigger", &name, "second")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_warning_is_stored_but_never_pages() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("warning", "slow"));
    let name = setup.probe(&plugin, "  retry: 0\n");
    for _ in 0..3 {
        setup.once().await;
    }
    assert_eq!(
        severity_and_message(setup.fault(&name).await),
        Some((Severity::WARNING, "slow".into()))
    );
    assert_eq!(setup.alerter.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn thresholds_turn_metrics_into_faults_and_clear_is_sticky() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", "");
    let name = setup.probe(
        &plugin,
        "  retry: 5\n  thresholds: |\n    speed warning > 50 error > 70 critical > 110 clear < 60\n    temp ? warning > 1\n",
    );
    let speed = format!("{name}#speed");
    let cases = [
        ("55", Some((Severity::WARNING, "55 > 50"))),
        ("99", Some((Severity::ERROR, "99 > 70 (1 of 6)"))),
        ("65", Some((Severity::ERROR, "65 not clear < 60 (2 of 6)"))),
        ("120", Some((Severity::CRITICAL, "120 > 110"))),
        ("59", Some((Severity::WARNING, "59 > 50"))),
        ("40", None),
    ];
    for (value, want) in cases {
        plugin.answer(&format!(
            r#"{{"faults": [], "metrics": [{{"name": "speed", "value": {value}, "units": "rpm"}}]}}"#
        ));
        setup.once().await;
        assert_eq!(
            severity_and_message(setup.fault(&speed).await),
            want.map(|(s, m)| (s, m.to_string())),
            "speed {value}"
        );
        assert!(
            setup.fault(&format!("{name}#temp")).await.is_none(),
            "temp is optional"
        );
    }
    let records = setup.sink.records.lock().unwrap().clone();
    assert_eq!(records.len(), 6);
    assert_eq!(records[1].name, speed);
    assert!((records[1].value - 99.0).abs() < f64::EPSILON);
    assert_eq!(records[1].units, "rpm");
    // Without a timestamp of its own, a metric has its run's time.
    assert_eq!(records[1].timestamp.timestamp(), 4_102_444_860);
}

// Scheduling (SPEC §5): aligned ticks, intervals, retry intervals.

#[tokio::test(start_paused = true)]
async fn count_runs_aligned_ticks_and_an_interval_five_check_twice_in_ten() {
    // Starting 17.25 s into a tick: the first tick is the next boundary.
    let setup = Setup::new("", 17.25);
    let plugin = setup.plugin("p", PASSING);
    setup.probe(&plugin, "  interval: 5\n");
    setup.run(Mode::Count(10)).await;
    let first = cimaa::scheduler::tick_at(START, 60.0) + 1;
    // Ticks first..first+9 hold the multiples of five first+4 and first+9.
    assert_eq!(plugin.ticks(60.0), [first + 4, first + 9]);
    for at in plugin.runs() {
        assert!(
            (at - START) % 60.0 < 0.01,
            "ran {} s into a tick",
            at % 60.0
        );
    }
    assert!((setup.clock.now() - (START + 600.0)).abs() < 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_failing_check_runs_every_retry_interval_then_back_on_its_interval() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("error", "down"));
    setup.probe(&plugin, "  interval: 5\n  retry_interval: 2\n  retry: 9\n");
    let first = cimaa::scheduler::tick_at(START, 60.0);
    let agent = setup.start();
    // Due on tick first+5 (a multiple of 5), then every 2nd tick while failing.
    setup.at(9.5 * 60.0).await;
    assert_eq!(
        plugin.ticks(60.0),
        [first + 5, first + 7, first + 9],
        "retries every retry_interval"
    );
    plugin.answer(PASSING);
    setup.at(21.5 * 60.0).await;
    assert_eq!(
        plugin.ticks(60.0),
        [
            first + 5,
            first + 7,
            first + 9,
            first + 11,
            first + 15,
            first + 20
        ],
        "back to every 5th tick once it passes"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_check_file_dropped_in_alerts_and_its_removal_resolves() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let agent = setup.start();
    setup.at(90.0).await;
    assert!(setup.faults().await.is_empty());
    let name = setup.probe(&plugin, "  retry: 0\n");
    setup.at(150.0).await;
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
    setup.remove_check("app.yaml");
    setup.at(210.0).await;
    assert_eq!(
        setup.alerter.delivered(),
        [event("trigger", &name, "down"), event("resolve", &name, "")]
    );
    assert!(setup.faults().await.is_empty());
    agent.stop().await;
}

// See: #18
#[tokio::test(start_paused = true)]
async fn a_check_file_that_becomes_a_dangling_symlink_keeps_its_checks_and_open_alert() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let name = setup.probe(&plugin, "  retry: 0\n");
    let agent = setup.start();
    setup.at(90.0).await;
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
    let path = setup.dir.path().join("checks.d/app.yaml");
    setup.remove_check("app.yaml");
    std::os::unix::fs::symlink("/nowhere/app.yaml", &path).unwrap();
    setup.at(150.0).await;
    // The check still runs from its last good version: no resolve, and the
    // file's own CRITICAL says why it cannot be read.
    let file_fault = format!("//{AGENT}/app/");
    let message = format!(
        "error parsing {}: a dangling symlink to `/nowhere/app.yaml`",
        path.display()
    );
    assert_eq!(
        setup.alerter.delivered(),
        [
            event("trigger", &name, "down"),
            event("trigger", &file_fault, &message)
        ]
    );
    assert_eq!(plugin.runs().len(), 2);
    assert_eq!(
        setup.fault(&name).await.map(|f| f.severity),
        Some(Severity::CRITICAL)
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn removing_a_check_between_runs_resolves_its_alert_and_drops_its_faults() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let name = setup.probe(&plugin, "");
    setup.once().await;
    setup.remove_check("app.yaml");
    setup.once().await;
    assert!(setup.faults().await.is_empty());
    assert_eq!(
        setup.alerter.delivered(),
        [event("trigger", &name, "down"), event("resolve", &name, "")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_applies_a_removed_check_before_the_next_tick() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let name = setup.probe(&plugin, "");
    let agent = setup.start();
    setup.at(70.0).await;
    setup.remove_check("app.yaml");
    agent.send(Control::Reload);
    setup.at(80.0).await;
    assert_eq!(
        setup.alerter.delivered(),
        [event("trigger", &name, "down"), event("resolve", &name, "")]
    );
    assert!(setup.faults().await.is_empty());
    assert_eq!(plugin.runs().len(), 1, "a rescan runs no check");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_removes_this_agent_from_the_database() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    setup.probe(&plugin, "");
    let agent = setup.start();
    setup.at(90.0).await;
    assert_eq!(setup.faults().await.len(), 1);
    agent.stop().await;
    assert!(setup.faults().await.is_empty());
    assert!(setup.db.agents().await.unwrap().is_empty());
}

// Squelches (SPEC §5).

#[tokio::test(start_paused = true)]
async fn a_squelched_fault_is_stored_but_not_alerted_until_unsquelched() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let name = setup.probe(&plugin, "");
    setup.squelch("app/pro+be", None).await;
    setup.once().await;
    setup.once().await;
    assert!(setup.alerter.delivered().is_empty());
    let fault = setup.fault(&name).await.unwrap();
    assert_eq!(
        (fault.severity, fault.triggered),
        (Severity::CRITICAL, false)
    );
    assert!(setup.db.unsquelch("app/pro+be").await.unwrap());
    setup.once().await;
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
}

#[tokio::test(start_paused = true)]
async fn a_triggered_alert_that_becomes_squelched_is_resolved() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let name = setup.probe(&plugin, "");
    setup.once().await;
    setup.squelch("probe", None).await;
    setup.once().await;
    assert_eq!(
        setup.alerter.delivered(),
        [event("trigger", &name, "down"), event("resolve", &name, "")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_squelch_stops_matching_when_it_expires() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let name = setup.probe(&plugin, "");
    let agent = setup.start();
    #[expect(clippy::cast_possible_truncation, reason = "epoch seconds")]
    let expires = (START + 150.0) as i64;
    setup.squelch("probe", Some(expires)).await;
    setup.at(150.0).await;
    assert!(
        setup.alerter.delivered().is_empty(),
        "squelched at tick 1 and 2"
    );
    setup.at(190.0).await;
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
    agent.stop().await;
}

// Alert failures (SPEC §5: `AGENT#alerts`).

#[tokio::test(start_paused = true)]
async fn a_failing_alerter_is_reported_and_retried_until_it_delivers() {
    let setup = Setup::new("", 0.0);
    setup.alerter.set(|a| a.failures = 2);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    let name = setup.probe(&plugin, "");
    let alerts = format!("{AGENT}#alerts");
    for _ in 0..2 {
        setup.once().await;
        assert_eq!(
            severity_and_message(setup.fault(&alerts).await),
            Some((
                Severity::CRITICAL,
                "Failed to send alert information (1/1)".into()
            ))
        );
        assert!(setup.alerter.delivered().is_empty());
    }
    setup.once().await;
    assert!(
        setup.fault(&alerts).await.is_none(),
        "AGENT#alerts clears once alerts get through"
    );
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
    assert!(setup.fault(&name).await.unwrap().triggered);
}

#[tokio::test(start_paused = true)]
async fn the_agent_never_pages_about_its_own_alert_failures() {
    let setup = Setup::new("", 0.0);
    setup.alerter.set(|a| a.failures = 100);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    setup.probe(&plugin, "");
    for _ in 0..3 {
        setup.once().await;
    }
    // Only the check's trigger was attempted, never one for AGENT#alerts.
    assert_eq!(setup.alerter.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_alerter_is_cut_off_by_alert_timeout() {
    let setup = Setup::new("  alert_timeout: 0.5\n", 0.0);
    setup.alerter.set(|a| a.hang = true);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    setup.probe(&plugin, "");
    let started = tokio::time::Instant::now();
    setup.run(Mode::Once).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        setup
            .fault(&format!("{AGENT}#alerts"))
            .await
            .unwrap()
            .message,
        "Failed to send alert information (1/1)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_alert_is_not_resent_until_its_message_changes() {
    let setup = Setup::new("", 0.0);
    setup.alerter.set(|a| a.refuse = true);
    let plugin = setup.plugin("p", &fault_json("critical", "first"));
    setup.probe(&plugin, "");
    setup.once().await;
    setup.once().await;
    assert_eq!(setup.alerter.calls(), 1);
    plugin.answer(&fault_json("critical", "second"));
    setup.once().await;
    assert_eq!(setup.alerter.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_resolve_is_retried_on_the_next_tick_without_a_run() {
    let setup = Setup::new("", 0.0);
    let plugin = setup.plugin("p", &fault_json("critical", "down"));
    // Due on ticks 5 and 10 (from START) while passing, every tick while failing.
    let name = setup.probe(&plugin, "  interval: 5\n");
    let agent = setup.start();
    setup.at(330.0).await;
    assert_eq!(setup.alerter.delivered(), [event("trigger", &name, "down")]);
    plugin.answer(PASSING);
    setup.alerter.set(|a| a.failures = 1);
    setup.at(390.0).await;
    assert!(setup.fault(&format!("{AGENT}#alerts")).await.is_some());
    setup.at(450.0).await;
    assert_eq!(plugin.runs().len(), 2, "the check did not run on tick 7");
    assert_eq!(
        setup.alerter.delivered(),
        [event("trigger", &name, "down"), event("resolve", &name, "")]
    );
    assert!(setup.fault(&format!("{AGENT}#alerts")).await.is_none());
    // The placeholder kept for the undelivered resolve goes with the
    // check's next run.
    setup.at(630.0).await;
    assert!(setup.faults().await.is_empty());
    agent.stop().await;
}

/// A plugin reply of `n` named CRITICAL faults.
fn critical_faults(n: usize) -> String {
    let faults: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name": "f{i:02}", "severity": "CRITICAL", "message": "down"}}"#))
        .collect();
    format!(r#"{{"faults": [{}]}}"#, faults.join(", "))
}

// See: #21, SPEC §12. An open storm whose re-send falls in its alerter's
// quiet hours waits like any trigger, and says so once in the history.
#[tokio::test(start_paused = true)]
async fn a_storm_re_send_held_by_quiet_hours_is_recorded_as_held_once() {
    let mut setup = Setup::new("", 0.0);
    // 2100-01-01 is a Friday: quiet from the third minute on.
    setup.extend_config("  quiet_hours: {timezone: UTC, windows: [\"Fri 00:03-23:00\"]}\n");
    let plugin = setup.plugin("p", &critical_faults(12));
    setup.probe(&plugin, "  retry: 0\n");
    let running = setup.start();
    setup.at(90.0).await;
    let storm = format!("{AGENT}#storm");
    let delivered = setup.alerter.delivered();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].1, storm);
    // One member clears: the changed count is due for a re-send after ten
    // base intervals, inside the window.
    plugin.answer(&critical_faults(11));
    setup.at(16.0 * 60.0 + 30.0).await;
    assert!(setup.fault(&storm).await.unwrap().held);
    running.stop().await;
    assert_eq!(setup.alerter.delivered().len(), 1);
    #[expect(clippy::cast_possible_truncation, reason = "epoch seconds")]
    let now = setup.clock.now() as i64;
    let query = cimaa::history::Query::recent(0, now, 1000);
    let held: Vec<_> = setup
        .db
        .history(&query)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name == storm && r.event == cimaa::history::Event::Held)
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
}
