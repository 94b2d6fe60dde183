//! One notification per incident, fleet-wide (issue #11, SPEC §10).
//!
//! In process: several agents (`agent::run`) share one memory database on
//! a paused clock, each with its own recording alerter, all running the
//! same absolute-named `socket:` check answered by one plugin the test
//! sets. The agents tick at the same instants, so their claims race for
//! real through the database's compare-and-swap; a scenario of many
//! minutes runs in milliseconds. Killing an agent is aborting its task: no
//! deregistration, its heartbeat stops, as with SIGKILL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cimaa::agent::{self, Backends, Clock, Mode};
use cimaa::alerters::{self, Alerter, Alerters};
use cimaa::config::{Config, load_agent_config};
use cimaa::db::{
    AgentFacts, AgentFault, Db, Error as DbError, Fault, Heartbeat, MemoryDb, Notice, OpenAlert,
    SkippedRow, Squelch, StoppedAgent,
};
use cimaa::signals::Control;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The test clock's start: a tick boundary (2100-01-01T00:00:00Z).
const START: f64 = 4_102_444_800.0;
/// The agents' base interval, seconds.
const BASE: u64 = 60;

const CRITICAL: &str = r#"{"faults": [{"severity": "CRITICAL", "message": "web down"}]}"#;
const PASSING: &str = r#"{"faults": []}"#;

/// `(action, name, message)` as an alerter got it.
type Event = (String, String, String);

fn event(action: &str, name: &str, message: &str) -> Event {
    (action.into(), name.into(), message.into())
}

/// The plugin every agent's check asks: answers each connection with the
/// current reply.
struct Plugin {
    path: PathBuf,
    reply: Arc<Mutex<String>>,
}

impl Plugin {
    fn serve(path: PathBuf, reply: &str) -> Plugin {
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let reply = Arc::new(Mutex::new(reply.to_string()));
        let shared = reply.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = shared.lock().unwrap().clone();
                stream.write_all(answer.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
        });
        Plugin { path, reply }
    }

    fn answer(&self, reply: &str) {
        *self.reply.lock().unwrap() = reply.to_string();
    }
}

/// An alerter that records what it delivered; it can hang.
#[derive(Default)]
struct RecordingAlerter {
    delivered: Mutex<Vec<Event>>,
    calls: Mutex<u32>,
    hang: Mutex<bool>,
}

impl RecordingAlerter {
    async fn call(&self, action: &str, name: &str, message: &str) -> Result<(), alerters::Error> {
        *self.calls.lock().unwrap() += 1;
        if *self.hang.lock().unwrap() {
            std::future::pending::<()>().await;
        }
        self.delivered
            .lock()
            .unwrap()
            .push(event(action, name, message));
        Ok(())
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

/// The memory database the fleet shares, and what the test breaks.
#[derive(Default)]
struct Shared {
    inner: MemoryDb,
    /// Notice requests of every agent.
    notice_requests: AtomicUsize,
    /// The notice calls of every agent fail (an outage on that path).
    broken: AtomicBool,
}

impl Shared {
    fn requests(&self) -> usize {
        self.notice_requests.load(Ordering::SeqCst)
    }
}

/// One agent's connection to the shared database: counts its notice
/// requests; every call fails while `down` (this agent is cut off).
struct CountingDb {
    shared: Arc<Shared>,
    inner: Arc<Shared>,
    down: Arc<AtomicBool>,
}

impl CountingDb {
    fn up(&self) -> Result<(), DbError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(DbError::Task("the test cuts this agent off".into()));
        }
        Ok(())
    }

    fn notice_call(&self) -> Result<(), DbError> {
        self.up()?;
        self.shared.notice_requests.fetch_add(1, Ordering::SeqCst);
        if self.shared.broken.load(Ordering::SeqCst) {
            return Err(DbError::Task("the test breaks notices".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Db for CountingDb {
    async fn get_faults(&self, agent: &str) -> Result<Vec<Fault>, DbError> {
        self.up()?;
        self.inner.inner.get_faults(agent).await
    }

    async fn set_faults(&self, agent: &str, faults: &[Fault], now: i64) -> Result<(), DbError> {
        self.up()?;
        self.inner.inner.set_faults(agent, faults, now).await
    }

    async fn heartbeat(&self, agent: &str, now: i64) -> Result<(), DbError> {
        self.up()?;
        self.inner.inner.heartbeat(agent, now).await
    }

    fn set_facts(&self, agent: &str, facts: AgentFacts) {
        self.inner.inner.set_facts(agent, facts);
    }

    async fn list_faults(&self, agent: Option<&str>) -> Result<Vec<AgentFault>, DbError> {
        self.up()?;
        self.inner.inner.list_faults(agent).await
    }

    async fn agents(&self) -> Result<Vec<Heartbeat>, DbError> {
        self.up()?;
        self.inner.inner.agents().await
    }

    async fn old_agents(&self, age: i64, now: i64) -> Result<Vec<Heartbeat>, DbError> {
        self.up()?;
        self.inner.inner.old_agents(age, now).await
    }

    async fn get_squelch_details(&self) -> Result<Vec<Squelch>, DbError> {
        self.up()?;
        self.inner.inner.get_squelch_details().await
    }

    async fn squelch(&self, squelch: &Squelch) -> Result<(), DbError> {
        self.up()?;
        self.inner.inner.squelch(squelch).await
    }

    async fn unsquelch(&self, regex: &str) -> Result<bool, DbError> {
        self.up()?;
        self.inner.inner.unsquelch(regex).await
    }

    async fn remove_agent(&self, agent: &str) -> Result<(), DbError> {
        self.up()?;
        self.inner.inner.remove_agent(agent).await
    }

    async fn stop_agent(&self, agent: &str, open: &[OpenAlert], now: i64) -> Result<(), DbError> {
        self.up()?;
        self.inner.inner.stop_agent(agent, open, now).await
    }

    async fn open_alerts(&self, agent: &str) -> Result<Vec<OpenAlert>, DbError> {
        self.up()?;
        self.inner.inner.open_alerts(agent).await
    }

    async fn stopped_agents(&self) -> Result<Vec<StoppedAgent>, DbError> {
        self.up()?;
        self.inner.inner.stopped_agents().await
    }

    async fn clear_open_alerts(&self, agent: &str) -> Result<(), DbError> {
        self.up()?;
        self.inner.inner.clear_open_alerts(agent).await
    }

    async fn notices(&self, names: &[String]) -> Result<Vec<Notice>, DbError> {
        self.notice_call()?;
        self.inner.inner.notices(names).await
    }

    async fn put_notice(&self, notice: &Notice, expected: u64) -> Result<bool, DbError> {
        self.notice_call()?;
        self.inner.inner.put_notice(notice, expected).await
    }

    async fn heartbeats_of(&self, agents: &[String]) -> Result<Vec<Heartbeat>, DbError> {
        self.notice_call()?;
        self.inner.inner.heartbeats_of(agents).await
    }

    async fn append_history(&self, records: &[cimaa::db::HistoryRecord]) -> Result<(), DbError> {
        self.inner.inner.append_history(records).await
    }

    async fn history(
        &self,
        query: &cimaa::db::HistoryQuery,
    ) -> Result<Vec<cimaa::db::HistoryRecord>, DbError> {
        self.inner.inner.history(query).await
    }

    fn skipped_rows(&self) -> Vec<SkippedRow> {
        self.inner.inner.skipped_rows()
    }
}

/// One running agent of the fleet.
struct Member {
    alerter: Arc<RecordingAlerter>,
    /// Cuts this agent off the database while set.
    down: Arc<AtomicBool>,
    controls: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
    /// The agent's directory: `checks.d/`, `agent.yaml`.
    dir: PathBuf,
}

/// Agents `a0`, `a1`, ... on one memory database and one test clock.
struct Fleet {
    dir: TempDir,
    db: Arc<Shared>,
    clock: Clock,
    plugin: Plugin,
    /// What every agent's own check (`//AGENT/own/disk`) reports.
    own: Plugin,
    members: Vec<Member>,
}

impl Fleet {
    /// `n` agents running check `//web` (plus `check_extra` lines) with
    /// `agent_extra` lines under `agent:` and `top_extra` at the top level.
    fn start(n: usize, check_extra: &str, agent_extra: &str, top_extra: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Plugin::serve(dir.path().join("web.sock"), CRITICAL);
        let own = Plugin::serve(dir.path().join("disk.sock"), PASSING);
        let mut fleet = Fleet {
            db: Arc::new(Shared::default()),
            clock: Clock::tokio_from(START),
            plugin,
            own,
            members: Vec::new(),
            dir,
        };
        for i in 0..n {
            let member = fleet.spawn(&format!("a{i}"), check_extra, agent_extra, top_extra);
            fleet.members.push(member);
        }
        fleet
    }

    fn spawn(&self, name: &str, check_extra: &str, agent_extra: &str, top_extra: &str) -> Member {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(dir.join("checks.d")).unwrap();
        std::fs::write(
            dir.join("checks.d/web.yaml"),
            format!(
                "//web:\n  socket: unix:{}\n  retry: 0\n{check_extra}",
                self.plugin.path.display()
            ),
        )
        .unwrap();
        // Also a check of this agent's own (relative name).
        std::fs::write(
            dir.join("checks.d/own.yaml"),
            format!(
                "disk:\n  socket: unix:{}\n  retry: 0\n",
                self.own.path.display()
            ),
        )
        .unwrap();
        self.run(name, agent_extra, top_extra)
    }

    /// Starts agent `name` with only these check files (`(file, text)`).
    fn spawn_with_checks(&self, name: &str, files: &[(&str, &str)], top_extra: &str) -> Member {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(dir.join("checks.d")).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join("checks.d").join(file), text).unwrap();
        }
        self.run(name, "", top_extra)
    }

    /// Starts agent `name` again on the check files it has.
    fn spawn_existing(&self, name: &str) -> Member {
        self.run(name, "", "")
    }

    /// Starts agent `name` again with `top_extra`, cut off from the
    /// database from its start.
    fn spawn_existing_cut_off(&self, name: &str, top_extra: &str) -> Member {
        self.start_agent(name, "", top_extra, true)
    }

    fn run(&self, name: &str, agent_extra: &str, top_extra: &str) -> Member {
        self.start_agent(name, agent_extra, top_extra, false)
    }

    fn start_agent(&self, name: &str, agent_extra: &str, top_extra: &str, cut_off: bool) -> Member {
        let dir = self.dir.path().join(name);
        let path = dir.join("agent.yaml");
        std::fs::write(
            &path,
            format!(
                "agent:\n  name: {name}\n  directory: checks.d\n  base_interval: {BASE}\n  splay: 0\n  alert_timeout: 10\n  state_dir: state\n{agent_extra}database:\n  type: memory\nalerter:\n  type: file\n  path: alerts.jsonl\n{top_extra}"
            ),
        )
        .unwrap();
        let config: &'static Config = Box::leak(Box::new(load_agent_config(&path).unwrap()));
        let alerter = Arc::new(RecordingAlerter::default());
        let down = Arc::new(AtomicBool::new(cut_off));
        let db: Arc<dyn Db> = Arc::new(CountingDb {
            shared: self.db.clone(),
            inner: self.db.clone(),
            down: down.clone(),
        });
        let backends = Backends {
            db,
            alerters: Arc::new(Alerters::single(alerter.clone())),
            sink: None,
        };
        let (controls, receiver) = mpsc::unbounded_channel();
        let clock = self.clock;
        let task = tokio::spawn(async move {
            agent::run(config, backends, clock, Mode::Forever, receiver)
                .await
                .unwrap();
        });
        Member {
            alerter,
            down,
            controls,
            task,
            dir,
        }
    }

    /// Every event delivered by any agent, sorted.
    fn delivered(&self) -> Vec<Event> {
        let mut all: Vec<Event> = self
            .members
            .iter()
            .flat_map(|m| m.alerter.delivered.lock().unwrap().clone())
            .collect();
        all.sort();
        all
    }

    /// Which agents delivered something.
    fn deliverers(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| {
                !self.members[*i]
                    .alerter
                    .delivered
                    .lock()
                    .unwrap()
                    .is_empty()
            })
            .collect()
    }

    /// Lets the test clock run to `secs` after `START`.
    async fn at(&self, secs: u64) {
        let now = self.clock.now();
        #[expect(clippy::cast_precision_loss, reason = "small test offsets")]
        let target = START + secs as f64;
        if target > now {
            tokio::time::sleep(Duration::from_secs_f64(target - now)).await;
        }
    }

    /// Changes what agent `i`'s `//web` check reports: its own plugin.
    fn answer_alone(&self, i: usize, reply: &str) -> Plugin {
        let plugin = Plugin::serve(self.dir.path().join(format!("own{i}.sock")), reply);
        std::fs::write(
            self.members[i].dir.join("checks.d/web.yaml"),
            format!(
                "//web:\n  socket: unix:{}\n  retry: 0\n",
                plugin.path.display()
            ),
        )
        .unwrap();
        plugin
    }

    /// Stops every agent (SIGTERM) and waits for them.
    async fn stop(self) {
        for member in &self.members {
            let _ = member.controls.send(Control::Shutdown);
        }
        for member in self.members {
            let _ = member.task.await;
        }
    }
}

// See: #11
#[tokio::test(start_paused = true)]
async fn four_agents_deliver_one_trigger_and_one_resolve() {
    let fleet = Fleet::start(4, "", "", "");
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [event("trigger", "//web", "web down")]);
    // Steady: nothing more while it stays critical.
    fleet.at(4 * BASE + BASE / 2).await;
    assert_eq!(fleet.delivered().len(), 1);
    fleet.plugin.answer(PASSING);
    fleet.at(6 * BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        [
            event("resolve", "//web", ""),
            event("trigger", "//web", "web down")
        ]
    );
    assert!(
        fleet
            .db
            .inner
            .notices(&["//web".into()])
            .await
            .unwrap()
            .is_empty(),
        "the resolved notice is removed"
    );
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_new_incident_after_a_resolve_is_triggered_once_again() {
    let fleet = Fleet::start(4, "", "", "");
    fleet.at(BASE + BASE / 2).await;
    fleet.plugin.answer(PASSING);
    fleet.at(2 * BASE + BASE / 2).await;
    fleet.plugin.answer(CRITICAL);
    fleet.at(3 * BASE + BASE / 2).await;
    let triggers = fleet
        .delivered()
        .into_iter()
        .filter(|e| e.0 == "trigger")
        .count();
    assert_eq!(triggers, 2);
    assert_eq!(fleet.delivered().len(), 3);
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_changed_message_is_one_new_trigger() {
    let fleet = Fleet::start(4, "", "", "");
    fleet.at(BASE + BASE / 2).await;
    fleet
        .plugin
        .answer(r#"{"faults": [{"severity": "CRITICAL", "message": "web very down"}]}"#);
    fleet.at(3 * BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        [
            event("trigger", "//web", "web down"),
            event("trigger", "//web", "web very down"),
        ]
    );
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn per_agent_notify_keeps_one_trigger_per_agent() {
    let fleet = Fleet::start(4, "  notify: per_agent\n", "", "");
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        vec![event("trigger", "//web", "web down"); 4]
    );
    fleet.plugin.answer(PASSING);
    fleet.at(2 * BASE + BASE / 2).await;
    assert_eq!(fleet.delivered().len(), 8);
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn no_resolve_while_another_holder_still_finds_it_critical() {
    let fleet = Fleet::start(2, "", "", "");
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered().len(), 1);
    // a0 clears; a1 still finds it critical.
    let _own = fleet.answer_alone(0, PASSING);
    fleet.at(4 * BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [event("trigger", "//web", "web down")]);
    // a1 clears too: one resolve.
    fleet.plugin.answer(PASSING);
    fleet.at(5 * BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        [
            event("resolve", "//web", ""),
            event("trigger", "//web", "web down")
        ]
    );
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_claimer_killed_while_its_alerter_hangs_is_replaced_within_two_base_intervals() {
    let fleet = Fleet::start(4, "", "", "");
    for member in &fleet.members {
        *member.alerter.hang.lock().unwrap() = true;
    }
    fleet.at(BASE + 1).await;
    let claimers: Vec<usize> = (0..4)
        .filter(|i| *fleet.members[*i].alerter.calls.lock().unwrap() > 0)
        .collect();
    assert_eq!(claimers.len(), 1, "one agent claimed the trigger");
    let claimer = claimers[0];
    // SIGKILL: no deregistration, the heartbeat just stops.
    fleet.members[claimer].task.abort();
    for member in &fleet.members {
        *member.alerter.hang.lock().unwrap() = false;
    }
    // Killed at BASE + 1: another delivers by 3 * BASE + 1 (here by the
    // next tick after the claim expired, 2 * BASE).
    fleet.at(2 * BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [event("trigger", "//web", "web down")]);
    let by = fleet.deliverers();
    assert_ne!(by, [claimer]);
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_holder_that_dies_stops_holding_and_a_watcher_resolves() {
    let fleet = Fleet::start(2, "", "", "alerting:\n  holder_timeout: 2\n");
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered().len(), 1);
    // a0 clears and watches; a1, still critical, dies without deregistering.
    let _own = fleet.answer_alone(0, PASSING);
    fleet.at(2 * BASE + BASE / 2).await;
    fleet.members[1].task.abort();
    assert_eq!(fleet.delivered().len(), 1);
    // a1's last heartbeat (tick 2) is older than 2 base intervals from tick 5 on.
    fleet.at(6 * BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        [
            event("resolve", "//web", ""),
            event("trigger", "//web", "web down")
        ]
    );
    fleet.stop().await;
}

// See: #11. The holder dies alone: no other agent ever found the fault,
// so nobody watches its notice; the agent running the meta-check (and not
// the check) resolves it once the holder is stale.
#[tokio::test(start_paused = true)]
async fn an_incident_whose_only_holder_dies_is_resolved_by_a_meta_check_agent() {
    let top = "alerting:\n  holder_timeout: 2\n";
    let mut fleet = Fleet::start(1, "", "", top);
    let meta = "//meta:\n  meta: {warn: 20, error: 30}\n  retry: 0\n";
    let watcher = fleet.spawn_with_checks("a1", &[("meta.yaml", meta)], top);
    fleet.members.push(watcher);
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [event("trigger", "//web", "web down")]);
    fleet.members[0].task.abort();
    // a0's last heartbeat (tick 1) is older than 2 base intervals from tick 4 on.
    fleet.at(6 * BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        [
            event("resolve", "//web", ""),
            event("trigger", "//web", "web down")
        ]
    );
    assert_eq!(
        *fleet.members[1].alerter.delivered.lock().unwrap(),
        [event("resolve", "//web", "")]
    );
    // Read once per stale period: nothing more later.
    fleet.at(12 * BASE + BASE / 2).await;
    assert_eq!(fleet.delivered().len(), 2);
    fleet.stop().await;
}

// See: #11. The meta-check agent runs the check too but finds it only a
// WARNING: it does not hold the incident, so it still watches the dead
// holder's fault and resolves it.
#[tokio::test(start_paused = true)]
async fn an_incident_whose_only_holder_dies_is_resolved_by_an_agent_that_sees_it_as_a_warning() {
    let top = "alerting:\n  holder_timeout: 2\n";
    let mut fleet = Fleet::start(1, "", "", top);
    let warning = Plugin::serve(
        fleet.dir.path().join("warning.sock"),
        r#"{"faults": [{"severity": "WARNING", "message": "web slow"}]}"#,
    );
    let meta = "//meta:\n  meta: {warn: 20, error: 30}\n  retry: 0\n";
    let web = format!(
        "//web:\n  socket: unix:{}\n  retry: 0\n",
        warning.path.display()
    );
    let watcher = fleet.spawn_with_checks("a1", &[("meta.yaml", meta), ("web.yaml", &web)], top);
    fleet.members.push(watcher);
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [event("trigger", "//web", "web down")]);
    fleet.members[0].task.abort();
    fleet.at(6 * BASE + BASE / 2).await;
    assert_eq!(
        *fleet.members[1].alerter.delivered.lock().unwrap(),
        [event("resolve", "//web", "")]
    );
    fleet.stop().await;
}

// See: #11. The dead holder was not alone: a live agent still finds the
// fault critical, so the sweep resolves nothing.
#[tokio::test(start_paused = true)]
async fn a_dead_holder_with_a_live_co_holder_is_not_resolved_by_the_sweep() {
    let top = "alerting:\n  holder_timeout: 2\n";
    let mut fleet = Fleet::start(2, "", "", top);
    let meta = "//meta:\n  meta: {warn: 20, error: 30}\n  retry: 0\n";
    let watcher = fleet.spawn_with_checks("a2", &[("meta.yaml", meta)], top);
    fleet.members.push(watcher);
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [event("trigger", "//web", "web down")]);
    fleet.members[0].task.abort();
    fleet.at(8 * BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [event("trigger", "//web", "web down")]);
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_fault_held_and_delivered_costs_no_notice_request() {
    let fleet = Fleet::start(4, "", "", "");
    // Agents that found the claim in flight at tick 1 look again at tick 2.
    fleet.at(2 * BASE + BASE / 2).await;
    let after_trigger = fleet.db.requests();
    assert!(after_trigger > 0);
    fleet.at(6 * BASE + BASE / 2).await;
    assert_eq!(fleet.db.requests(), after_trigger, "steady state");
    assert_eq!(fleet.delivered().len(), 1);
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn with_notices_unreadable_own_faults_still_alert_and_the_fleet_fault_pages_once_later() {
    let fleet = Fleet::start(4, "", "", "");
    fleet.db.broken.store(true, Ordering::SeqCst);
    fleet
        .own
        .answer(r#"{"faults": [{"severity": "CRITICAL", "message": "disk full"}]}"#);
    fleet.at(2 * BASE + BASE / 2).await;
    let own: Vec<Event> = (0..4)
        .map(|i| event("trigger", &format!("//a{i}/own/disk"), "disk full"))
        .collect();
    let mut want = own.clone();
    want.sort();
    assert_eq!(
        fleet.delivered(),
        want,
        "own faults alert, the fleet fault waits"
    );
    fleet.db.broken.store(false, Ordering::SeqCst);
    fleet.at(4 * BASE + BASE / 2).await;
    want.push(event("trigger", "//web", "web down"));
    want.sort();
    assert_eq!(fleet.delivered(), want);
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_holder_restarted_cleanly_does_not_page_again() {
    let mut fleet = Fleet::start(2, "", "", "");
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered().len(), 1);
    let first = fleet.members.remove(0);
    let _ = first.controls.send(Control::Shutdown);
    let _ = first.task.await;
    let again = fleet.spawn("a0", "", "", "");
    fleet.members.push(again);
    fleet.at(4 * BASE + BASE / 2).await;
    let mut all = first.alerter.delivered.lock().unwrap().clone();
    all.extend(fleet.delivered());
    assert_eq!(all, [event("trigger", "//web", "web down")]);
    fleet.stop().await;
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_holder_restarted_after_the_incident_was_resolved_triggers_anew() {
    // a1 clears and resolves (a0, stopped, holds nothing); a0 comes back
    // still finding it critical: a new incident, one new trigger.
    let mut fleet = Fleet::start(2, "", "", "");
    fleet.at(BASE + BASE / 2).await;
    let first = fleet.members.remove(0);
    let _ = first.controls.send(Control::Shutdown);
    let _ = first.task.await;
    fleet.plugin.answer(PASSING);
    fleet.at(2 * BASE + BASE / 2).await;
    let still = Plugin::serve(fleet.dir.path().join("critical.sock"), CRITICAL);
    std::fs::write(
        first.dir.join("checks.d/web.yaml"),
        format!(
            "//web:\n  socket: unix:{}\n  retry: 0\n",
            still.path.display()
        ),
    )
    .unwrap();
    let again = fleet.spawn_existing("a0");
    fleet.members.push(again);
    fleet.at(3 * BASE + BASE / 2).await;
    let mut all = first.alerter.delivered.lock().unwrap().clone();
    all.extend(fleet.delivered());
    all.sort();
    assert_eq!(
        all,
        [
            event("resolve", "//web", ""),
            event("trigger", "//web", "web down"),
            event("trigger", "//web", "web down"),
        ]
    );
    fleet.stop().await;
}

/// The real binary: agents as processes sharing one SQLite file, each in
/// its own directory with its own alerter, all running `//web`, a command
/// that is CRITICAL (with the flag file's text as message) while the
/// agent's flag file `flag` exists.
mod processes {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use tempfile::TempDir;

    use crate::fake_http::{FakeHttp, Reply};
    use crate::util::{age, read_json_lines, wait_for};

    /// Base interval of the agents, seconds.
    const BASE: f64 = 1.0;
    const DOWN: &str = "CRITICAL - web down";

    /// One agent process.
    struct Agent {
        dir: PathBuf,
        child: Option<Child>,
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    struct Fleet {
        /// Holds the agents' directories and the database.
        _dir: TempDir,
        agents: Vec<Agent>,
        /// Environment of every agent process.
        vars: Vec<(&'static str, String)>,
    }

    /// A database the fleet shares: its `database:` section (given the
    /// fleet's directory) and the agents' environment.
    struct Shared {
        section: Box<dyn Fn(&Path) -> String>,
        vars: Vec<(&'static str, String)>,
    }

    fn sqlite() -> Shared {
        Shared {
            section: Box::new(|dir: &Path| {
                format!(
                    "database:\n  type: sqlite\n  path: {}\n",
                    dir.join("cimaa.db").display()
                )
            }),
            vars: Vec::new(),
        }
    }

    impl Fleet {
        /// `n` agents on one SQLite file; `alerter(dir)` gives each one's
        /// `alerter:` section; `check_extra` goes under `//web`,
        /// `agent_extra` under `agent:`.
        fn start(
            n: usize,
            alerter: &dyn Fn(&Path) -> String,
            check_extra: &str,
            agent_extra: &str,
        ) -> Fleet {
            Fleet::start_on(&sqlite(), n, alerter, check_extra, agent_extra)
        }

        /// `start` on the database `shared`.
        fn start_on(
            shared: &Shared,
            n: usize,
            alerter: &dyn Fn(&Path) -> String,
            check_extra: &str,
            agent_extra: &str,
        ) -> Fleet {
            let dir = tempfile::tempdir().unwrap();
            let database = (shared.section)(dir.path());
            let mut agents = Vec::new();
            for i in 0..n {
                let home = dir.path().join(format!("a{i}"));
                fs::create_dir_all(home.join("checks.d")).unwrap();
                let flag = home.join("flag");
                let check = home.join("checks.d/web.yaml");
                fs::write(
                    &check,
                    format!(
                        "//web:\n  command: test -f {flag} && head -n 1 {flag} && exit 2; echo OK\n  retry: 0\n{check_extra}",
                        flag = flag.display()
                    ),
                )
                .unwrap();
                age(&check);
                let base = if agent_extra.contains("base_interval:") {
                    String::new()
                } else {
                    format!("  base_interval: {BASE}\n")
                };
                fs::write(
                    home.join("agent.yaml"),
                    format!(
                        "agent:\n  name: a{i}\n  directory: checks.d\n{base}  splay: 0\n{agent_extra}{database}{alerter}",
                        alerter = alerter(&home),
                    ),
                )
                .unwrap();
                agents.push(Agent {
                    dir: home,
                    child: None,
                });
            }
            let mut fleet = Fleet {
                _dir: dir,
                agents,
                vars: shared.vars.clone(),
            };
            for i in 0..n {
                fleet.run(i);
            }
            fleet
        }

        fn run(&mut self, i: usize) {
            let vars = self.vars.clone();
            let agent = &mut self.agents[i];
            let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
                .args(["-c", "agent.yaml", "agent"])
                .current_dir(&agent.dir)
                .env_remove("RUST_LOG")
                .envs(vars.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            agent.child = Some(child);
        }

        /// Makes `//web` CRITICAL with `message` (or clean: `None`) for agent `i`.
        fn set(&self, i: usize, message: Option<&str>) {
            let flag = self.agents[i].dir.join("flag");
            match message {
                Some(message) => fs::write(flag, format!("{message}\n")).unwrap(),
                None => {
                    let _ = fs::remove_file(flag);
                }
            }
        }

        fn set_all(&self, message: Option<&str>) {
            for i in 0..self.agents.len() {
                self.set(i, message);
            }
        }

        /// Every agent's file alerter events, as `(action, name, message)`, sorted.
        fn file_events(&self) -> Vec<(String, String, String)> {
            let mut all: Vec<_> = self
                .agents
                .iter()
                .flat_map(|a| crate::util::events(&read_json_lines(&a.dir.join("alerts.jsonl"))))
                .collect();
            all.sort();
            all
        }

        /// Lines the command alerters wrote (`ACTION NAME MESSAGE`), sorted.
        fn command_lines(&self) -> Vec<String> {
            let mut all: Vec<String> = self
                .agents
                .iter()
                .flat_map(|a| {
                    fs::read_to_string(a.dir.join("delivered.log"))
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            all.sort();
            all
        }

        /// SIGKILLs agent `i`.
        fn kill(&mut self, i: usize) {
            if let Some(mut child) = self.agents[i].child.take() {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
    }

    fn file_alerter(_: &Path) -> String {
        "alerter:\n  type: file\n  path: alerts.jsonl\n".to_owned()
    }

    /// Lets a few more ticks pass, for duplicates to show.
    fn settle() {
        std::thread::sleep(Duration::from_secs_f64(4.0 * BASE));
    }

    fn ev(action: &str, message: &str) -> (String, String, String) {
        (action.into(), "//web".into(), message.into())
    }

    const LIMIT: Duration = Duration::from_secs(15);

    // See: #11
    #[test]
    fn four_agents_on_one_sqlite_file_page_once_per_transition() {
        let fleet = Fleet::start(4, &file_alerter, "", "");
        fleet.set_all(Some(DOWN));
        wait_for("a trigger", LIMIT, || !fleet.file_events().is_empty());
        settle();
        assert_eq!(fleet.file_events(), [ev("trigger", DOWN)]);
        fleet.set_all(None);
        wait_for("a resolve", LIMIT, || fleet.file_events().len() > 1);
        settle();
        assert_eq!(
            fleet.file_events(),
            [ev("resolve", ""), ev("trigger", DOWN)]
        );
    }

    /// Fresh tables on the test DynamoDB server, or `None` to skip (see
    /// `dynamodb::endpoint`).
    fn dynamodb() -> Option<Shared> {
        let endpoint = crate::dynamodb::endpoint()?;
        let prefix = crate::dynamodb::unique_prefix();
        let vars: Vec<(&'static str, String)> = vec![
            ("AWS_ACCESS_KEY_ID", "cimaa-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "cimaa-test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ];
        let section = move |_: &Path| {
            format!(
                "database:\n  type: dynamodb\n  region: us-east-1\n  prefix: {prefix}\n  endpoint_url: {endpoint}\n"
            )
        };
        let setup = tempfile::tempdir().unwrap();
        fs::write(
            setup.path().join("agent.yaml"),
            format!(
                "agent:\n  name: setup\n  directory: .\n{}alerter:\n  type: file\n  path: alerts.jsonl\n",
                section(setup.path())
            ),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", "agent.yaml", "setup-db"])
            .current_dir(setup.path())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        crate::util::assert_success(&output);
        Some(Shared {
            section: Box::new(section),
            vars,
        })
    }

    // See: #11
    #[test]
    fn four_agents_on_dynamodb_page_once_per_transition() {
        let Some(shared) = dynamodb() else { return };
        let fleet = Fleet::start_on(&shared, 4, &file_alerter, "", "");
        fleet.set_all(Some(DOWN));
        wait_for("a trigger", LIMIT, || !fleet.file_events().is_empty());
        settle();
        assert_eq!(fleet.file_events(), [ev("trigger", DOWN)]);
        fleet.set_all(None);
        wait_for("a resolve", LIMIT, || fleet.file_events().len() > 1);
        settle();
        assert_eq!(
            fleet.file_events(),
            [ev("resolve", ""), ev("trigger", DOWN)]
        );
    }

    // See: #11
    #[test]
    fn a_changed_message_is_one_new_trigger_across_the_fleet() {
        let fleet = Fleet::start(4, &file_alerter, "", "");
        fleet.set_all(Some(DOWN));
        wait_for("a trigger", LIMIT, || !fleet.file_events().is_empty());
        fleet.set_all(Some("CRITICAL - web on fire"));
        wait_for("a second trigger", LIMIT, || fleet.file_events().len() > 1);
        settle();
        assert_eq!(
            fleet.file_events(),
            [ev("trigger", DOWN), ev("trigger", "CRITICAL - web on fire")]
        );
    }

    // See: #11
    #[test]
    fn per_agent_notify_pages_from_every_agent() {
        let fleet = Fleet::start(4, &file_alerter, "  notify: per_agent\n", "");
        fleet.set_all(Some(DOWN));
        wait_for("four triggers", LIMIT, || fleet.file_events().len() >= 4);
        settle();
        assert_eq!(fleet.file_events(), vec![ev("trigger", DOWN); 4]);
    }

    // See: #11
    #[test]
    fn no_resolve_until_the_last_holder_clears() {
        let fleet = Fleet::start(2, &file_alerter, "", "");
        fleet.set_all(Some(DOWN));
        wait_for("a trigger", LIMIT, || !fleet.file_events().is_empty());
        settle();
        fleet.set(0, None);
        settle();
        assert_eq!(fleet.file_events(), [ev("trigger", DOWN)]);
        fleet.set(1, None);
        wait_for("a resolve", LIMIT, || fleet.file_events().len() > 1);
        settle();
        assert_eq!(
            fleet.file_events(),
            [ev("resolve", ""), ev("trigger", DOWN)]
        );
    }

    /// A command alerter appending `ACTION NAME MESSAGE` to `delivered.log`;
    /// while `hang` exists in its directory it first waits (writing its
    /// pid to `calling`).
    fn command_alerter(_: &Path) -> String {
        "alerter:\n  type: command\n  command: echo $$ > calling; while test -f hang; do sleep 0.05; done; echo \"$CIMAA_ACTION $CIMAA_NAME $CIMAA_MESSAGE\" >> delivered.log\n".to_owned()
    }

    // See: #11
    #[test]
    fn four_agents_with_command_alerters_page_once_per_transition() {
        let fleet = Fleet::start(4, &command_alerter, "", "");
        fleet.set_all(Some(DOWN));
        wait_for("a trigger", LIMIT, || !fleet.command_lines().is_empty());
        settle();
        assert_eq!(fleet.command_lines(), [format!("trigger //web {DOWN}")]);
        fleet.set_all(None);
        wait_for("a resolve", LIMIT, || fleet.command_lines().len() > 1);
        settle();
        assert_eq!(
            fleet.command_lines(),
            ["resolve //web ".to_owned(), format!("trigger //web {DOWN}")]
        );
    }

    // See: #11
    #[test]
    fn a_claimer_killed_while_its_command_alerter_hangs_is_replaced_within_two_base_intervals() {
        // A claim holds off the others for `alert_timeout` plus one
        // database call (half a base interval): 2 s here.
        let base = 2.0;
        let mut fleet = Fleet::start(
            4,
            &command_alerter,
            "",
            "  base_interval: 2\n  alert_timeout: 1\n",
        );
        for agent in &fleet.agents {
            fs::write(agent.dir.join("hang"), "").unwrap();
        }
        fleet.set_all(Some(DOWN));
        let mut claimer = None;
        wait_for("an alerter call", LIMIT, || {
            claimer = (0..4).find(|i| fleet.agents[*i].dir.join("calling").exists());
            claimer.is_some()
        });
        let claimer = claimer.unwrap();
        fleet.kill(claimer);
        let killed = Instant::now();
        // Its alerter is orphaned, still hanging: end it without delivering.
        let calling = fs::read_to_string(fleet.agents[claimer].dir.join("calling")).unwrap();
        let _ = Command::new("kill").args(["-9", calling.trim()]).status();
        for (i, agent) in fleet.agents.iter().enumerate() {
            if i != claimer {
                fs::remove_file(agent.dir.join("hang")).unwrap();
            }
        }
        wait_for("another agent's delivery", LIMIT, || {
            !fleet.command_lines().is_empty()
        });
        let took = killed.elapsed().as_secs_f64();
        // Two base intervals, plus two seconds for a loaded machine.
        assert!(
            took <= 2.0 * base + 2.0,
            "delivered {took:.1}s after the kill"
        );
        settle();
        assert_eq!(fleet.command_lines(), [format!("trigger //web {DOWN}")]);
        assert!(
            !fleet.agents[claimer].dir.join("delivered.log").exists(),
            "the killed claimer delivered nothing"
        );
    }

    // See: #11
    #[test]
    fn a_failing_primary_falls_back_once_for_the_whole_fleet() {
        let alerter = |_: &Path| {
            "alerter:\n  type: command\n  command: exit 3\n  fallback: log\nalerters:\n  log:\n    type: file\n    path: alerts.jsonl\n"
                .to_owned()
        };
        let fleet = Fleet::start(4, &alerter, "", "");
        fleet.set_all(Some(DOWN));
        wait_for("a trigger", LIMIT, || !fleet.file_events().is_empty());
        settle();
        assert_eq!(fleet.file_events(), [ev("trigger", DOWN)]);
        fleet.set_all(None);
        wait_for("a resolve", LIMIT, || fleet.file_events().len() > 1);
        settle();
        assert_eq!(
            fleet.file_events(),
            [ev("resolve", ""), ev("trigger", DOWN)]
        );
    }

    // See: #11
    #[test]
    fn forget_closes_the_incident_so_a_returning_holder_pages_anew() {
        let mut fleet = Fleet::start(2, &file_alerter, "", "");
        fleet.set_all(Some(DOWN));
        wait_for("a trigger", LIMIT, || !fleet.file_events().is_empty());
        settle();
        fleet.kill(0);
        fleet.kill(1);
        // Stale past `forget`'s and the live-peer threshold (5 intervals).
        std::thread::sleep(Duration::from_secs_f64(6.0 * BASE));
        let output = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", "agent.yaml", "forget", "a0"])
            .current_dir(&fleet.agents[0].dir)
            .output()
            .unwrap();
        crate::util::assert_success(&output);
        assert_eq!(
            fleet.file_events(),
            [ev("resolve", ""), ev("trigger", DOWN)]
        );
        // a1 comes back still finding it critical: a new incident.
        fleet.run(1);
        wait_for("a new trigger", LIMIT, || fleet.file_events().len() > 2);
        settle();
        assert_eq!(
            fleet.file_events(),
            [ev("resolve", ""), ev("trigger", DOWN), ev("trigger", DOWN)]
        );
    }

    // See: #11
    #[test]
    fn four_agents_with_slack_post_once_per_transition() {
        let slack = FakeHttp::start(Reply::slack_ok());
        let url = slack.url("/api/chat.postMessage");
        let alerter = move |_: &Path| {
            format!(
                "alerter:\n  type: slack\n  token: xoxb-test\n  channel: '#ops'\n  url: {url}\n"
            )
        };
        let fleet = Fleet::start(4, &alerter, "", "");
        let texts = || -> Vec<String> {
            let mut texts: Vec<String> = slack
                .requests()
                .iter()
                .map(|r| {
                    let body: Value = r.json();
                    body["text"].as_str().unwrap_or_default().to_owned()
                })
                .collect();
            texts.sort();
            texts
        };
        fleet.set_all(Some(DOWN));
        wait_for("a Slack post", LIMIT, || !slack.requests().is_empty());
        settle();
        assert_eq!(texts().len(), 1, "{:?}", texts());
        assert!(texts()[0].starts_with("Alert: "), "{:?}", texts());
        fleet.set_all(None);
        wait_for("a second Slack post", LIMIT, || slack.requests().len() > 1);
        settle();
        let texts = texts();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(
            texts[0].starts_with("Alert: ") && texts[1].starts_with("Clear: "),
            "{texts:?}"
        );
    }
}

// See: #11
#[tokio::test(start_paused = true)]
async fn a_holder_cut_off_while_the_incident_was_resolved_triggers_anew_when_back() {
    let fleet = Fleet::start(2, "", "", "alerting:\n  holder_timeout: 2\n");
    fleet.at(BASE + BASE / 2).await;
    assert_eq!(fleet.delivered().len(), 1);
    // a1 loses the database; a0 clears and, a1 being stale, resolves.
    fleet.members[1].down.store(true, Ordering::SeqCst);
    let _own = fleet.answer_alone(0, PASSING);
    fleet.at(5 * BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        [
            event("resolve", "//web", ""),
            event("trigger", "//web", "web down")
        ]
    );
    // a1 is back, still finding it critical: a new incident.
    fleet.members[1].down.store(false, Ordering::SeqCst);
    fleet.at(7 * BASE + BASE / 2).await;
    assert_eq!(
        fleet.delivered(),
        [
            event("resolve", "//web", ""),
            event("trigger", "//web", "web down"),
            event("trigger", "//web", "web down")
        ]
    );
    fleet.stop().await;
}

// See: #11. A `per_agent` alert whose check file is removed while the
// alert is open is resolved by its agent, although nothing says any more
// that it was not a fleet fault.
#[test]
fn a_per_agent_alert_of_a_removed_check_is_resolved() {
    use crate::util::{Env, events};
    let env = Env::new();
    env.write_check(
        "shared.yaml",
        "//shared/down:\n  command: echo 'CRITICAL - down'; exit 2\n  retry: 0\n  notify: per_agent\n",
    );
    env.once();
    std::fs::remove_file(env.path("checks.d/shared.yaml")).unwrap();
    env.once();
    assert_eq!(
        events(&env.alerts()),
        [
            crate::util::event("trigger", "//shared/down", "CRITICAL - down"),
            crate::util::event("resolve", "//shared/down", ""),
        ]
    );
}

// See: #21, #11. A fleet check that flaps on every holder: its flapping
// alert is one fleet notification like any other, recorded in the notice,
// so no other holder delivers it again once the claim runs out.
#[tokio::test(start_paused = true)]
async fn a_flapping_fleet_check_sends_its_flapping_alert_once_across_the_fleet() {
    let fleet = Fleet::start(3, "", "", "");
    // Critical on odd ticks, clean on even ones: flapping from the 9th run.
    for tick in 1..=16 {
        fleet
            .plugin
            .answer(if tick % 2 == 1 { CRITICAL } else { PASSING });
        fleet.at(tick * BASE + BASE / 2).await;
    }
    let flapping: Vec<Event> = fleet
        .delivered()
        .into_iter()
        .filter(|e| e.2.starts_with("flapping:"))
        .collect();
    assert_eq!(
        flapping,
        [event(
            "trigger",
            "//web",
            "flapping: 9 state changes in the last 21 runs"
        )]
    );
    // Before it: four incidents, each one trigger and one resolve.
    let others = fleet.delivered().len() - flapping.len();
    assert_eq!(others, 8);
    fleet.stop().await;
}

// See: #21, SPEC §14. An agent started while the database is down keeps
// what it knows of the alerts it sent (the `renotify` memory) until it has
// loaded its previous state: a drifting message is not re-sent early.
#[tokio::test(start_paused = true)]
async fn a_start_without_the_database_keeps_the_renotify_memory() {
    let drifted = |n: u32| {
        format!(r#"{{"faults": [{{"severity": "CRITICAL", "message": "web down {n}"}}]}}"#)
    };
    // `renotify` lands in the file alerter's section, which ends the file.
    let renotify = "  renotify: 1h\n";
    let mut fleet = Fleet::start(1, "  notify: per_agent\n", "", renotify);
    fleet.plugin.answer(&drifted(1));
    fleet.at(BASE + BASE / 2).await;
    fleet.plugin.answer(&drifted(2));
    fleet.at(2 * BASE + BASE / 2).await;
    let first = fleet.members.remove(0);
    let _ = first.controls.send(Control::Shutdown);
    let _ = first.task.await;
    assert_eq!(
        *first.alerter.delivered.lock().unwrap(),
        [event("trigger", "//web", "web down 1")]
    );
    let again = fleet.spawn_existing_cut_off("a0", renotify);
    fleet.plugin.answer(&drifted(3));
    fleet.at(3 * BASE + BASE / 2).await;
    again.down.store(false, Ordering::SeqCst);
    fleet.members.push(again);
    fleet.at(5 * BASE + BASE / 2).await;
    assert_eq!(fleet.delivered(), [], "re-sent within the renotify hour");
    fleet.stop().await;
}

// See: #21, SPEC §11. A fleet fault whose message drifts with its value is
// re-sent once per `renotify` across the fleet, not once per change.
#[tokio::test(start_paused = true)]
async fn a_drifting_fleet_fault_is_re_sent_once_per_renotify_across_the_fleet() {
    let value =
        |n: u32| format!(r#"{{"faults": [{{"severity": "CRITICAL", "message": "{n} > 1000"}}]}}"#);
    // `renotify` lands in the file alerter's section, which ends the file.
    let fleet = Fleet::start(3, "", "", "  renotify: 10m\n");
    for tick in 1..=12 {
        fleet.plugin.answer(&value(1000 + tick));
        fleet.at(u64::from(tick) * BASE + BASE / 2).await;
    }
    // Sent at the first tick, then at the first change ten minutes later.
    assert_eq!(
        fleet.delivered(),
        [
            event("trigger", "//web", "1001 > 1000"),
            event("trigger", "//web", "1011 > 1000"),
        ]
    );
    fleet.stop().await;
}

// See: #21, SPEC §11. A fleet check that stops flapping while critical is
// re-triggered with its current message at once, as a per-agent check is:
// its flapping alert is no message churn, so `renotify` does not hold the
// message that follows it.
#[tokio::test(start_paused = true)]
async fn a_fleet_check_that_stops_flapping_while_critical_is_re_triggered_at_once() {
    let fleet = Fleet::start(1, "", "", "  renotify: 1h\n");
    // Critical on odd ticks, clean on even ones: flapping from the 9th run;
    // then critical for good (the flapping alert's hour is not over).
    for tick in 1..=40 {
        let critical = tick > 16 || tick % 2 == 1;
        fleet
            .plugin
            .answer(if critical { CRITICAL } else { PASSING });
        fleet.at(tick * BASE + BASE / 2).await;
    }
    // In the order sent: four incidents (a trigger and a resolve each) first.
    let delivered = fleet.members[0].alerter.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 10, "{delivered:?}");
    assert_eq!(
        delivered[8..],
        [
            event(
                "trigger",
                "//web",
                "flapping: 9 state changes in the last 21 runs"
            ),
            event("trigger", "//web", "web down"),
        ],
        "{delivered:?}"
    );
    fleet.stop().await;
}
