//! The `Db` contract (SPEC.md §6): one set of scenarios every backend passes.
//!
//! Each scenario is written once, as an async fn in `scenarios` that takes a
//! `&dyn Db`. `db_contract!(backend, constructor)` turns the whole list into a
//! module of `#[tokio::test]`s for one backend, so a failure names both the
//! backend and the behaviour (`db_contract::sqlite::since_is_kept_...`).
//!
//! A constructor is an expression whose future gives `Option<(Arc<dyn Db>, Guard)>`:
//! a fresh, empty database plus whatever keeps its temporary state alive for
//! the test (a temp dir, ...). `None` skips the backend, for one that needs an
//! outside service which is not configured (`dynamodb` without
//! `CIMAA_TEST_DYNAMODB_ENDPOINT`); under `CI` that constructor panics
//! instead, so CI cannot pass by skipping.
//!
//! Behaviour only one backend has (`sqlite` files shared between agents) is
//! tested below the instantiations, in that backend's own module.

use std::any::Any;
use std::sync::Arc;

use cimaa::db::HistoryQuery;
use cimaa::db::{
    AgentFacts, AgentFault, Claim, Db, Fault, Heartbeat, MemoryDb, Notice, OpenAlert, Pending,
    SqliteDb, Squelch, StoppedAgent,
};
use cimaa::history::{Event, Record};
use cimaa::severity::Severity;
use tempfile::TempDir;

/// Keeps a backend's temporary state alive until the test ends.
type Guard = Box<dyn Any + Send>;

/// Generates one module of tests for one backend.
///
/// Add a scenario by writing its fn in `scenarios` and naming it in the list
/// at the bottom of this macro; every backend then runs it.
///
/// Scenarios in the second list take two clients of one database (two
/// handles on one file, on one table prefix), as two agents are.
macro_rules! db_contract {
    ($backend:ident, $open:expr, $open_pair:expr) => {
        mod $backend {
            use super::*;

            db_contract!(@scenarios $backend, $open;
                set_then_get_returns_the_faults,
                get_faults_of_an_unknown_agent_is_empty,
                set_faults_replaces_the_agents_fault_set,
                since_is_kept_when_a_fault_is_stored_again,
                updated_is_kept_when_the_record_is_unchanged,
                updated_changes_when_the_message_changes,
                set_faults_writes_the_heartbeat,
                heartbeat_alone_does_not_touch_faults,
                faults_of_two_agents_are_independent,
                list_faults_without_agent_returns_every_agent_by_agent_and_name,
                list_faults_with_agent_returns_only_that_agent,
                old_agents_returns_only_stale_heartbeats_with_their_updated,
                old_agents_leaves_out_a_heartbeat_exactly_age_old,
                remove_agent_removes_heartbeat_and_faults_of_that_agent_only,
                squelch_details_round_trip_every_field,
                get_squelches_leaves_out_expired_squelches,
                squelch_with_the_same_regex_replaces_it,
                unsquelch_reports_whether_a_squelch_was_removed,
                remove_expired_squelch_removes_only_a_squelch_still_expired,
                booleans_and_attempts_round_trip,
                monitor_runs_round_trip_and_a_change_is_written,
                severities_round_trip_including_unnamed_levels,
                empty_message_round_trips,
                alert_failures_lists_every_agents_alerts_fault,
                alert_failures_forget_an_agent_whose_alerts_recovered_or_that_left,
                setup_is_idempotent_and_keeps_the_data,
                long_listings_come_back_whole,
                stop_agent_removes_heartbeat_and_faults_and_keeps_the_open_alerts,
                kept_alerts_are_in_no_listing_of_faults_or_agents,
                stop_agent_replaces_what_the_agent_kept_before,
                stop_agent_without_open_alerts_keeps_nothing,
                an_agent_that_started_again_is_not_stopped_until_it_stops_again,
                clear_open_alerts_removes_only_that_agents_kept_alerts,
                open_alerts_of_an_unknown_agent_is_empty,
                many_kept_alerts_come_back_whole,
                heartbeats_record_the_facts_the_agent_declared,
                a_heartbeat_without_declared_facts_records_none,
                declaring_facts_writes_nothing_until_the_next_heartbeat,
                newly_declared_facts_replace_the_old_ones_at_the_next_write,
                a_notice_round_trips_every_field_and_its_version_counts_writes,
                a_put_over_the_current_version_takes_an_expired_claim_over,
                the_winners_delivery_record_ends_the_race,
                a_put_expecting_a_version_that_is_not_stored_writes_nothing,
                an_empty_notice_deletes_the_record,
                an_empty_notice_over_a_stale_version_deletes_nothing,
                notices_leaves_out_absent_names_and_orders_by_name,
                many_notices_come_back_whole,
                notices_are_in_no_listing_of_faults_or_agents,
                heartbeats_of_returns_only_the_existing_ones,
                storm_round_trips_through_set_faults_and_get_faults,
                storm_round_trips_through_stop_agent_and_open_alerts,
                held_suppressed_by_and_flapping_round_trip_and_a_change_is_written,
                held_suppressed_by_and_flapping_round_trip_through_stop_agent,
                history_round_trips_every_field_newest_first,
                history_of_one_second_lists_the_later_appended_first,
                history_appended_again_with_its_identity_is_stored_once,
                a_ticks_write_stores_its_faults_and_its_history_records,
                history_by_agent_leaves_out_the_other_agents,
                history_by_name_searches_the_regex_anywhere,
                history_by_exact_name_finds_only_that_name,
                history_limit_keeps_the_newest,
                history_since_leaves_out_older_records,
                history_past_the_retention_is_left_out,
                history_of_many_days_and_agents_comes_back_whole,
            );
            db_contract!(@pairs $backend, $open_pair;
                two_clients_racing_for_the_same_claim_exactly_one_wins,
                two_clients_racing_over_a_stored_version_exactly_one_wins,
            );
        }
    };
    (@pairs $backend:ident, $open:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let Some((one, two, _guard)) = $open.await else {
                    eprintln!(
                        "skipped: backend `{}` is not available here",
                        stringify!($backend)
                    );
                    return;
                };
                super::pair_scenarios::$scenario(one.as_ref(), two.as_ref()).await;
            }
        )*
    };
    (@scenarios $backend:ident, $open:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                let Some((db, _guard)) = $open.await else {
                    eprintln!(
                        "skipped: backend `{}` is not available here",
                        stringify!($backend)
                    );
                    return;
                };
                super::scenarios::$scenario(db.as_ref()).await;
            }
        )*
    };
}

db_contract!(memory, open_memory(), open_memory_pair());
db_contract!(sqlite, open_sqlite(), open_sqlite_pair());
db_contract!(dynamodb, open_dynamodb(), open_dynamodb_pair());
db_contract!(postgres, open_postgres(), open_postgres_pair());

/// Two clients of one database and what keeps it alive.
type Pair = (Arc<dyn Db>, Arc<dyn Db>, Guard);

/// Nothing to open and nothing to clean up, so no `async fn` is needed.
fn open_memory() -> impl Future<Output = Option<(Arc<dyn Db>, Guard)>> {
    std::future::ready(Some((
        Arc::new(MemoryDb::default()) as Arc<dyn Db>,
        Box::new(()) as Guard,
    )))
}

/// The memory backend is one process's: its clients share the handle.
fn open_memory_pair() -> impl Future<Output = Option<Pair>> {
    let db = Arc::new(MemoryDb::default()) as Arc<dyn Db>;
    std::future::ready(Some((Arc::clone(&db), db, Box::new(()) as Guard)))
}

/// Two handles (two connections) on one fresh file.
async fn open_sqlite_pair() -> Option<Pair> {
    let dir = TempDir::new().expect("create temp dir");
    let path = dir.path().join("cimaa.db");
    let one = SqliteDb::open(&path).await.expect("open sqlite database");
    let two = SqliteDb::open(&path).await.expect("open sqlite database");
    Some((Arc::new(one), Arc::new(two), Box::new(dir)))
}

/// Two handles (two SDK clients) on the same fresh tables.
async fn open_dynamodb_pair() -> Option<Pair> {
    let (one, two) = crate::dynamodb::test_db_pair().await?;
    Some((Arc::new(one), Arc::new(two), Box::new(()) as Guard))
}

/// A fresh database of its own on the PostgreSQL server named by
/// `CIMAA_TEST_POSTGRES_URL` (scripts/test.sh starts one); left behind in
/// the throwaway server.
async fn open_postgres() -> Option<(Arc<dyn Db>, Guard)> {
    let db = crate::postgres::test_db().await?;
    Some((Arc::new(db) as Arc<dyn Db>, Box::new(()) as Guard))
}

/// Two handles (two connection pools) on one fresh database.
async fn open_postgres_pair() -> Option<Pair> {
    let (one, two) = crate::postgres::test_db_pair().await?;
    Some((Arc::new(one), Arc::new(two), Box::new(()) as Guard))
}

/// A fresh file in its own temp dir, which the guard deletes after the test.
async fn open_sqlite() -> Option<(Arc<dyn Db>, Guard)> {
    let dir = TempDir::new().expect("create temp dir");
    let db = SqliteDb::open(&dir.path().join("cimaa.db"))
        .await
        .expect("open sqlite database");
    Some((Arc::new(db), Box::new(dir)))
}

/// Fresh tables under a prefix of their own on the local DynamoDB-compatible
/// server named by `CIMAA_TEST_DYNAMODB_ENDPOINT` (scripts/test.sh starts
/// dynalite); the tables are left behind in the throwaway server.
async fn open_dynamodb() -> Option<(Arc<dyn Db>, Guard)> {
    let db = crate::dynamodb::test_db().await?;
    Some((Arc::new(db) as Arc<dyn Db>, Box::new(()) as Guard))
}

/// An ERROR fault first seen and last changed at 100.
pub(crate) fn fault(name: &str) -> Fault {
    Fault {
        name: name.to_owned(),
        severity: Severity::ERROR,
        message: format!("{name} is failing"),
        since: 100,
        updated: 100,
        triggered: false,
        escalates: true,
        attempts: 1,
        monitor_runs: 0,
        storm: false,
        suppressed_by: None,
        held: false,
        flapping: false,
    }
}

/// The same fault as seen again by a later check run at `now`.
fn seen_again(fault: &Fault, now: i64) -> Fault {
    Fault {
        since: now,
        updated: now,
        ..fault.clone()
    }
}

fn squelch(regex: &str) -> Squelch {
    Squelch {
        regex: regex.to_owned(),
        reason: format!("working on {regex}"),
        user: "alice".to_owned(),
        time: 100,
        permanent: false,
        expires: None,
    }
}

fn heartbeat(name: &str, updated: i64) -> Heartbeat {
    Heartbeat {
        name: name.to_owned(),
        updated,
        version: None,
        checks: None,
    }
}

/// What an agent of version `version` running `checks` checks declares.
fn facts(version: &str, checks: Option<u64>) -> AgentFacts {
    AgentFacts {
        version: Some(version.to_owned()),
        checks,
    }
}

/// The heartbeat of `name` at `updated` recording `facts`.
fn heartbeat_with(name: &str, updated: i64, facts: &AgentFacts) -> Heartbeat {
    Heartbeat {
        version: facts.version.clone(),
        checks: facts.checks,
        ..heartbeat(name, updated)
    }
}

fn agent_fault(agent: &str, fault: Fault) -> AgentFault {
    AgentFault {
        agent: agent.to_owned(),
        fault,
    }
}

/// A triggered CRITICAL alert kept at a stop, routed through `alerter`.
fn open_alert(name: &str, alerter: Option<&str>) -> OpenAlert {
    OpenAlert {
        fault: Fault {
            severity: Severity::CRITICAL,
            triggered: true,
            attempts: 4,
            monitor_runs: 10,
            storm: false,
            ..fault(name)
        },
        alerter: alerter.map(str::to_owned),
    }
}

fn stopped(name: &str, at: i64, open_alerts: usize) -> StoppedAgent {
    StoppedAgent {
        name: name.to_owned(),
        stopped: at,
        open_alerts,
    }
}

/// A notice held by `holders`, with nothing delivered and no claim.
fn notice(name: &str, holders: &[&str]) -> Notice {
    Notice {
        holders: holders.iter().map(|&holder| holder.to_owned()).collect(),
        ..Notice::new(name)
    }
}

/// `notice` with `agent` claiming the trigger of `message` until `until`.
fn claimed(mut notice: Notice, agent: &str, message: &str, until: i64) -> Notice {
    notice.claim = Some(Claim {
        agent: agent.to_owned(),
        action: Pending::Trigger {
            message: message.to_owned(),
        },
        until,
    });
    notice
}

/// `notice` as stored at `version`.
fn at(mut notice: Notice, version: u64) -> Notice {
    notice.version = version;
    notice
}

/// The stored notice of `name`, if any.
async fn stored(db: &dyn Db, name: &str) -> Option<Notice> {
    let mut found = db.notices(&[name.to_owned()]).await.unwrap();
    assert!(found.len() <= 1, "{found:?}");
    found.pop()
}

/// `get_faults` promises no order; compare as sets.
fn by_name(mut faults: Vec<Fault>) -> Vec<Fault> {
    faults.sort_by(|a, b| a.name.cmp(&b.name));
    faults
}

mod scenarios {
    use super::*;

    // See: #16
    pub(super) async fn heartbeats_record_the_facts_the_agent_declared(db: &dyn Db) {
        let declared = facts("1.2.3", Some(12));
        db.set_facts("web1", declared.clone());

        db.heartbeat("web1", 100).await.unwrap();
        assert_eq!(
            db.agents().await.unwrap(),
            [heartbeat_with("web1", 100, &declared)]
        );

        db.set_faults("web1", &[fault("disk")], 160).await.unwrap();
        assert_eq!(
            db.agents().await.unwrap(),
            [heartbeat_with("web1", 160, &declared)]
        );
    }

    // See: #16. zc.cimaa (and an agent of an older cimaa) writes none.
    pub(super) async fn a_heartbeat_without_declared_facts_records_none(db: &dyn Db) {
        db.set_facts("web1", facts("1.2.3", Some(12)));

        db.heartbeat("web1", 100).await.unwrap();
        db.set_faults("web2", &[fault("disk")], 100).await.unwrap();

        assert_eq!(
            db.agents().await.unwrap(),
            [
                heartbeat_with("web1", 100, &facts("1.2.3", Some(12))),
                heartbeat("web2", 100),
            ]
        );
    }

    // See: #16
    pub(super) async fn declaring_facts_writes_nothing_until_the_next_heartbeat(db: &dyn Db) {
        db.heartbeat("web1", 100).await.unwrap();

        db.set_facts("web1", facts("1.2.3", Some(12)));
        db.set_facts("web2", facts("1.2.3", Some(3)));

        assert_eq!(db.agents().await.unwrap(), [heartbeat("web1", 100)]);
    }

    // See: #16. An agent starts knowing its version and learns its number
    // of checks at its first scan; a later scan may find another number.
    pub(super) async fn newly_declared_facts_replace_the_old_ones_at_the_next_write(db: &dyn Db) {
        db.set_facts("web1", facts("1.2.3", None));
        db.heartbeat("web1", 100).await.unwrap();
        assert_eq!(
            db.agents().await.unwrap(),
            [heartbeat_with("web1", 100, &facts("1.2.3", None))]
        );

        db.set_facts("web1", facts("1.2.3", Some(12)));
        db.set_faults("web1", &[], 160).await.unwrap();
        db.set_facts("web1", facts("1.2.4", Some(0)));
        db.set_faults("web1", &[], 220).await.unwrap();

        assert_eq!(
            db.agents().await.unwrap(),
            [heartbeat_with("web1", 220, &facts("1.2.4", Some(0)))]
        );
    }

    pub(super) async fn set_then_get_returns_the_faults(db: &dyn Db) {
        let faults = vec![fault("disk"), fault("load")];

        db.set_faults("web1", &faults, 100).await.unwrap();

        assert_eq!(by_name(db.get_faults("web1").await.unwrap()), faults);
    }

    pub(super) async fn get_faults_of_an_unknown_agent_is_empty(db: &dyn Db) {
        assert_eq!(db.get_faults("nobody").await.unwrap(), vec![]);
    }

    pub(super) async fn set_faults_replaces_the_agents_fault_set(db: &dyn Db) {
        db.set_faults("web1", &[fault("disk"), fault("load")], 100)
            .await
            .unwrap();

        db.set_faults("web1", &[fault("load"), fault("memory")], 160)
            .await
            .unwrap();

        assert_eq!(
            by_name(db.get_faults("web1").await.unwrap()),
            vec![fault("load"), fault("memory")]
        );
    }

    pub(super) async fn since_is_kept_when_a_fault_is_stored_again(db: &dyn Db) {
        let first = fault("disk");
        db.set_faults("web1", std::slice::from_ref(&first), 100)
            .await
            .unwrap();

        db.set_faults("web1", &[seen_again(&first, 160)], 160)
            .await
            .unwrap();

        let stored = db.get_faults("web1").await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].since, 100);
    }

    pub(super) async fn updated_is_kept_when_the_record_is_unchanged(db: &dyn Db) {
        let first = fault("disk");
        db.set_faults("web1", std::slice::from_ref(&first), 100)
            .await
            .unwrap();

        db.set_faults("web1", &[seen_again(&first, 160)], 160)
            .await
            .unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![first]);
    }

    pub(super) async fn updated_changes_when_the_message_changes(db: &dyn Db) {
        let first = fault("disk");
        db.set_faults("web1", std::slice::from_ref(&first), 100)
            .await
            .unwrap();
        let changed = Fault {
            message: "disk is full".to_owned(),
            ..seen_again(&first, 160)
        };

        db.set_faults("web1", std::slice::from_ref(&changed), 160)
            .await
            .unwrap();

        let want = Fault {
            since: 100,
            ..changed
        };
        assert_eq!(db.get_faults("web1").await.unwrap(), vec![want]);
    }

    pub(super) async fn set_faults_writes_the_heartbeat(db: &dyn Db) {
        db.set_faults("web1", &[fault("disk")], 160).await.unwrap();

        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web1", 160)]);
    }

    pub(super) async fn heartbeat_alone_does_not_touch_faults(db: &dyn Db) {
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();

        db.heartbeat("web1", 160).await.unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![fault("disk")]);
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web1", 160)]);
    }

    pub(super) async fn faults_of_two_agents_are_independent(db: &dyn Db) {
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.set_faults("web2", &[fault("disk"), fault("load")], 100)
            .await
            .unwrap();

        db.set_faults("web1", &[], 160).await.unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![]);
        assert_eq!(
            by_name(db.get_faults("web2").await.unwrap()),
            vec![fault("disk"), fault("load")]
        );
    }

    pub(super) async fn list_faults_without_agent_returns_every_agent_by_agent_and_name(
        db: &dyn Db,
    ) {
        db.set_faults("web2", &[fault("load"), fault("disk")], 100)
            .await
            .unwrap();
        db.set_faults("web1", &[fault("memory")], 100)
            .await
            .unwrap();

        assert_eq!(
            db.list_faults(None).await.unwrap(),
            vec![
                agent_fault("web1", fault("memory")),
                agent_fault("web2", fault("disk")),
                agent_fault("web2", fault("load")),
            ]
        );
    }

    pub(super) async fn list_faults_with_agent_returns_only_that_agent(db: &dyn Db) {
        db.set_faults("web1", &[fault("memory")], 100)
            .await
            .unwrap();
        db.set_faults("web2", &[fault("load"), fault("disk")], 100)
            .await
            .unwrap();

        assert_eq!(
            db.list_faults(Some("web2")).await.unwrap(),
            vec![
                agent_fault("web2", fault("disk")),
                agent_fault("web2", fault("load")),
            ]
        );
    }

    pub(super) async fn old_agents_returns_only_stale_heartbeats_with_their_updated(db: &dyn Db) {
        db.heartbeat("web1", 100).await.unwrap();
        db.heartbeat("web2", 500).await.unwrap();
        db.set_faults("web3", &[fault("disk")], 200).await.unwrap();

        let mut old = db.old_agents(300, 600).await.unwrap();

        old.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(old, vec![heartbeat("web1", 100), heartbeat("web3", 200)]);
    }

    pub(super) async fn old_agents_leaves_out_a_heartbeat_exactly_age_old(db: &dyn Db) {
        db.heartbeat("web1", 300).await.unwrap();

        assert_eq!(db.old_agents(300, 600).await.unwrap(), vec![]);
    }

    pub(super) async fn remove_agent_removes_heartbeat_and_faults_of_that_agent_only(db: &dyn Db) {
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.set_faults("web2", &[fault("load")], 100).await.unwrap();

        db.remove_agent("web1").await.unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![]);
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web2", 100)]);
        assert_eq!(
            db.list_faults(None).await.unwrap(),
            vec![agent_fault("web2", fault("load"))]
        );
    }

    pub(super) async fn squelch_details_round_trip_every_field(db: &dyn Db) {
        let forever = Squelch {
            regex: "^db[0-9]+#disk".to_owned(),
            reason: "migrating: new disks on Monday".to_owned(),
            user: "bob".to_owned(),
            time: 1_700_000_000,
            permanent: true,
            expires: None,
        };
        let until = Squelch {
            regex: "web1".to_owned(),
            reason: "deploy".to_owned(),
            user: "alice".to_owned(),
            time: 1_700_000_100,
            permanent: false,
            expires: Some(1_700_003_700),
        };

        db.squelch(&until).await.unwrap();
        db.squelch(&forever).await.unwrap();

        assert_eq!(
            db.get_squelch_details().await.unwrap(),
            vec![forever, until]
        );
    }

    pub(super) async fn get_squelches_leaves_out_expired_squelches(db: &dyn Db) {
        for (regex, expires) in [
            ("expired", Some(200)),
            ("later", Some(500)),
            ("never", None),
        ] {
            db.squelch(&Squelch {
                expires,
                ..squelch(regex)
            })
            .await
            .unwrap();
        }

        let mut active = db.get_squelches(200).await.unwrap();

        active.sort();
        assert_eq!(active, vec!["later", "never"]);
    }

    pub(super) async fn squelch_with_the_same_regex_replaces_it(db: &dyn Db) {
        db.squelch(&squelch("web1")).await.unwrap();
        let replacement = Squelch {
            reason: "still deploying".to_owned(),
            user: "bob".to_owned(),
            time: 200,
            permanent: true,
            expires: Some(900),
            ..squelch("web1")
        };

        db.squelch(&replacement).await.unwrap();

        assert_eq!(db.get_squelch_details().await.unwrap(), vec![replacement]);
    }

    pub(super) async fn unsquelch_reports_whether_a_squelch_was_removed(db: &dyn Db) {
        db.squelch(&squelch("web1")).await.unwrap();

        assert!(db.unsquelch("web1").await.unwrap());
        assert!(!db.unsquelch("web1").await.unwrap());
        assert_eq!(db.get_squelch_details().await.unwrap(), vec![]);
    }

    // See: #12. Conditional: two readers record an expiry once, and a
    // squelch set again meanwhile stays.
    pub(super) async fn remove_expired_squelch_removes_only_a_squelch_still_expired(db: &dyn Db) {
        let until = |regex: &str, expires| Squelch {
            expires,
            ..squelch(regex)
        };
        db.squelch(&until("ended", Some(1000))).await.unwrap();
        db.squelch(&until("later", Some(5000))).await.unwrap();
        db.squelch(&until("open", None)).await.unwrap();

        assert!(db.remove_expired_squelch("ended", 1000).await.unwrap());
        assert!(!db.remove_expired_squelch("ended", 1000).await.unwrap());
        assert!(!db.remove_expired_squelch("later", 1000).await.unwrap());
        assert!(!db.remove_expired_squelch("open", 1000).await.unwrap());
        assert!(!db.remove_expired_squelch("never-set", 1000).await.unwrap());
        let left: Vec<String> = db
            .get_squelch_details()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.regex)
            .collect();
        assert_eq!(left, ["later", "open"]);
    }

    // See: #22
    pub(super) async fn monitor_runs_round_trip_and_a_change_is_written(db: &dyn Db) {
        let runs = |name: &str, monitor_runs| Fault {
            monitor_runs,
            storm: false,
            ..fault(name)
        };
        let first = vec![runs("a", 0), runs("b", 3), runs("c", u32::MAX)];
        db.set_faults("web1", &first, 100).await.unwrap();
        assert_eq!(by_name(db.get_faults("web1").await.unwrap()), first);

        let second = vec![runs("a", 0), runs("b", 4), runs("c", u32::MAX)];
        db.set_faults("web1", &second, 160).await.unwrap();
        let stored = by_name(db.get_faults("web1").await.unwrap());
        let counts: Vec<u32> = stored.iter().map(|f| f.monitor_runs).collect();
        assert_eq!(counts, [0, 4, u32::MAX]);
    }

    pub(super) async fn booleans_and_attempts_round_trip(db: &dyn Db) {
        let faults = vec![
            Fault {
                triggered: true,
                escalates: false,
                attempts: 0,
                ..fault("a")
            },
            Fault {
                triggered: false,
                escalates: true,
                attempts: 7,
                ..fault("b")
            },
            Fault {
                triggered: true,
                escalates: true,
                attempts: u32::MAX,
                ..fault("c")
            },
            Fault {
                triggered: false,
                escalates: false,
                attempts: 1,
                ..fault("d")
            },
        ];

        db.set_faults("web1", &faults, 100).await.unwrap();

        assert_eq!(by_name(db.get_faults("web1").await.unwrap()), faults);
    }

    pub(super) async fn severities_round_trip_including_unnamed_levels(db: &dyn Db) {
        let faults: Vec<Fault> = [
            Severity::INFO,
            Severity::WARNING,
            Severity(45),
            Severity::CRITICAL,
            Severity(60),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, severity)| Fault {
            severity,
            ..fault(&format!("check{i}"))
        })
        .collect();

        db.set_faults("web1", &faults, 100).await.unwrap();

        assert_eq!(by_name(db.get_faults("web1").await.unwrap()), faults);
    }

    pub(super) async fn alert_failures_lists_every_agents_alerts_fault(db: &dyn Db) {
        let failing = |agent: &str| Fault {
            severity: Severity::CRITICAL,
            message: "Failed to send alert information (2/3)".to_owned(),
            escalates: false,
            attempts: 0,
            ..fault(&format!("{agent}#alerts"))
        };
        db.set_faults("web2", &[fault("disk"), failing("web2")], 100)
            .await
            .unwrap();
        db.set_faults("web1", &[failing("web1")], 100)
            .await
            .unwrap();
        db.set_faults("web3", &[fault("web1#alerts")], 100)
            .await
            .unwrap();

        assert_eq!(
            db.alert_failures().await.unwrap(),
            vec![
                agent_fault("web1", failing("web1")),
                agent_fault("web2", failing("web2")),
            ]
        );
    }

    pub(super) async fn alert_failures_forget_an_agent_whose_alerts_recovered_or_that_left(
        db: &dyn Db,
    ) {
        db.set_faults("web1", &[fault("web1#alerts")], 100)
            .await
            .unwrap();
        db.set_faults("web2", &[fault("web2#alerts")], 100)
            .await
            .unwrap();

        db.set_faults("web1", &[fault("disk")], 160).await.unwrap();
        db.remove_agent("web2").await.unwrap();

        assert_eq!(db.alert_failures().await.unwrap(), vec![]);
        assert_eq!(
            db.list_faults(None).await.unwrap(),
            vec![agent_fault("web1", fault("disk"))]
        );
    }

    pub(super) async fn setup_is_idempotent_and_keeps_the_data(db: &dyn Db) {
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.squelch(&squelch("web1")).await.unwrap();

        db.setup(None).await.unwrap();
        db.setup(None).await.unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![fault("disk")]);
        assert_eq!(
            db.get_squelch_details().await.unwrap(),
            vec![squelch("web1")]
        );
    }

    /// More than one page of DynamoDB results (1 MB): listings follow
    /// `LastEvaluatedKey` to the end.
    pub(super) async fn long_listings_come_back_whole(db: &dyn Db) {
        let long = "x".repeat(4000);
        let faults: Vec<Fault> = (0..300)
            .map(|i| Fault {
                message: long.clone(),
                ..fault(&format!("check{i:03}"))
            })
            .collect();
        db.set_faults("web1", &faults, 100).await.unwrap();

        assert_eq!(by_name(db.get_faults("web1").await.unwrap()), faults);
        assert_eq!(db.list_faults(None).await.unwrap().len(), 300);
        assert_eq!(db.list_faults(Some("web1")).await.unwrap().len(), 300);
    }

    pub(super) async fn empty_message_round_trips(db: &dyn Db) {
        let silent = Fault {
            message: String::new(),
            ..fault("disk")
        };

        db.set_faults("web1", std::slice::from_ref(&silent), 100)
            .await
            .unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![silent]);
    }

    // See: #22
    pub(super) async fn stop_agent_removes_heartbeat_and_faults_and_keeps_the_open_alerts(
        db: &dyn Db,
    ) {
        db.set_faults("web1", &[fault("disk"), fault("web1#alerts")], 100)
            .await
            .unwrap();
        db.set_faults("web2", &[fault("load")], 100).await.unwrap();
        let kept = vec![
            open_alert("//web1/app/down", Some("ops")),
            OpenAlert {
                fault: Fault {
                    severity: Severity::INFO,
                    message: String::new(),
                    triggered: false,
                    escalates: false,
                    attempts: 0,
                    monitor_runs: 0,
                    storm: false,
                    ..fault("//web1/app/cleared")
                },
                alerter: None,
            },
        ];

        db.stop_agent("web1", &kept, 500).await.unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![]);
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web2", 100)]);
        let mut want = kept.clone();
        want.sort_by(|a, b| a.fault.name.cmp(&b.fault.name));
        assert_eq!(db.open_alerts("web1").await.unwrap(), want);
        assert_eq!(
            db.stopped_agents().await.unwrap(),
            vec![stopped("web1", 500, 2)]
        );
    }

    pub(super) async fn kept_alerts_are_in_no_listing_of_faults_or_agents(db: &dyn Db) {
        db.set_faults("web2", &[fault("load")], 100).await.unwrap();
        db.stop_agent(
            "web1",
            &[
                open_alert("//web1/app/down", None),
                open_alert("web1#alerts", None),
            ],
            100,
        )
        .await
        .unwrap();

        assert_eq!(
            db.list_faults(None).await.unwrap(),
            vec![agent_fault("web2", fault("load"))]
        );
        assert_eq!(db.list_faults(Some("web1")).await.unwrap(), vec![]);
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web2", 100)]);
        assert_eq!(
            db.old_agents(10, 1000).await.unwrap(),
            vec![heartbeat("web2", 100)]
        );
        assert_eq!(db.alert_failures().await.unwrap(), vec![]);
    }

    pub(super) async fn stop_agent_replaces_what_the_agent_kept_before(db: &dyn Db) {
        db.stop_agent(
            "web1",
            &[open_alert("//web1/a", None), open_alert("//web1/b", None)],
            100,
        )
        .await
        .unwrap();
        db.set_faults("web1", &[fault("disk")], 200).await.unwrap();

        db.stop_agent("web1", &[open_alert("//web1/c", Some("ops"))], 300)
            .await
            .unwrap();

        assert_eq!(
            db.open_alerts("web1").await.unwrap(),
            vec![open_alert("//web1/c", Some("ops"))]
        );
        assert_eq!(
            db.stopped_agents().await.unwrap(),
            vec![stopped("web1", 300, 1)]
        );
        assert_eq!(db.get_faults("web1").await.unwrap(), vec![]);
    }

    pub(super) async fn stop_agent_without_open_alerts_keeps_nothing(db: &dyn Db) {
        db.stop_agent("web1", &[open_alert("//web1/a", None)], 100)
            .await
            .unwrap();
        db.set_faults("web1", &[fault("disk")], 200).await.unwrap();

        db.stop_agent("web1", &[], 300).await.unwrap();

        assert_eq!(db.open_alerts("web1").await.unwrap(), vec![]);
        assert_eq!(db.stopped_agents().await.unwrap(), vec![]);
        assert_eq!(db.agents().await.unwrap(), vec![]);
        assert_eq!(db.list_faults(None).await.unwrap(), vec![]);
    }

    pub(super) async fn an_agent_that_started_again_is_not_stopped_until_it_stops_again(
        db: &dyn Db,
    ) {
        db.stop_agent("web1", &[open_alert("//web1/a", None)], 100)
            .await
            .unwrap();
        db.stop_agent("web2", &[open_alert("//web2/a", None)], 100)
            .await
            .unwrap();

        db.heartbeat("web1", 200).await.unwrap();

        assert_eq!(
            db.stopped_agents().await.unwrap(),
            vec![stopped("web2", 100, 1)],
            "web1 runs again"
        );
        assert_eq!(
            db.open_alerts("web1").await.unwrap(),
            vec![open_alert("//web1/a", None)],
            "its start still reads what it kept"
        );
        db.stop_agent("web1", &[open_alert("//web1/b", None)], 300)
            .await
            .unwrap();
        assert_eq!(
            db.stopped_agents().await.unwrap(),
            vec![stopped("web1", 300, 1), stopped("web2", 100, 1)]
        );
    }

    pub(super) async fn clear_open_alerts_removes_only_that_agents_kept_alerts(db: &dyn Db) {
        // `web10` starts with `web1`: no prefix of a name stands for it.
        for agent in ["web1", "web10"] {
            db.stop_agent(agent, &[open_alert(&format!("//{agent}/a"), None)], 100)
                .await
                .unwrap();
        }
        db.set_faults("web1", &[fault("//web1/a")], 200)
            .await
            .unwrap();

        db.clear_open_alerts("web1").await.unwrap();

        assert_eq!(db.open_alerts("web1").await.unwrap(), vec![]);
        assert_eq!(
            db.open_alerts("web10").await.unwrap(),
            vec![open_alert("//web10/a", None)]
        );
        assert_eq!(
            db.stopped_agents().await.unwrap(),
            vec![stopped("web10", 100, 1)]
        );
        assert_eq!(
            db.get_faults("web1").await.unwrap(),
            vec![fault("//web1/a")],
            "the faults and heartbeat stay"
        );
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web1", 200)]);
    }

    pub(super) async fn open_alerts_of_an_unknown_agent_is_empty(db: &dyn Db) {
        assert_eq!(db.open_alerts("nobody").await.unwrap(), vec![]);
        db.clear_open_alerts("nobody").await.unwrap();
        assert_eq!(db.stopped_agents().await.unwrap(), vec![]);
    }

    // See: #11
    pub(super) async fn a_notice_round_trips_every_field_and_its_version_counts_writes(
        db: &dyn Db,
    ) {
        let mut first = claimed(
            notice("//meta#web3", &["web2", "web1"]),
            "web1",
            "web3 is down",
            160,
        );
        first.delivered = vec![
            "web3 is slow".into(),
            String::new(),
            "web3 is très lent".into(),
        ];
        first.sent = Some(cimaa::db::LastSent {
            at: 1_700_000_000,
            reported: cimaa::severity::Severity::ERROR,
        });

        assert!(db.put_notice(&first, 0).await.unwrap());
        assert_eq!(stored(db, "//meta#web3").await, Some(at(first.clone(), 1)));

        let resolving = Notice {
            claim: Some(Claim {
                agent: "web2".into(),
                action: Pending::Resolve,
                until: -5,
            }),
            holders: std::collections::BTreeSet::new(),
            ..first.clone()
        };
        assert!(db.put_notice(&resolving, 1).await.unwrap());
        assert_eq!(stored(db, "//meta#web3").await, Some(at(resolving, 2)));

        // The version given with the notice is not what is stored: the
        // stored one is always the expected one plus one.
        assert!(db.put_notice(&at(first.clone(), 77), 2).await.unwrap());
        assert_eq!(stored(db, "//meta#web3").await, Some(at(first, 3)));
    }

    // See: #11. A holder waiting on a claim whose `until` passed takes it
    // over with a put over the version it read (whether the claim expired
    // is the caller's rule); the new claim replaces the old one.
    pub(super) async fn a_put_over_the_current_version_takes_an_expired_claim_over(db: &dyn Db) {
        let dead = claimed(notice("//meta", &["web1", "web2"]), "web1", "down", 100);
        assert!(db.put_notice(&dead, 0).await.unwrap());
        let read = stored(db, "//meta").await.unwrap();

        let takeover = claimed(notice("//meta", &["web1", "web2"]), "web2", "down", 300);
        assert!(db.put_notice(&takeover, read.version).await.unwrap());

        assert_eq!(stored(db, "//meta").await, Some(at(takeover, 2)));
    }

    // See: #11. web2 read the claim of web1 and decides to take it over
    // while web1 records its delivery: the delivery lands first, so web2's
    // write over the version it read fails and the incident stays
    // delivered once.
    pub(super) async fn the_winners_delivery_record_ends_the_race(db: &dyn Db) {
        let claim = claimed(notice("//meta", &["web1", "web2"]), "web1", "down", 100);
        assert!(db.put_notice(&claim, 0).await.unwrap());
        let read_by_web2 = stored(db, "//meta").await.unwrap();
        let mut delivered = notice("//meta", &["web1", "web2"]);
        delivered.delivered = vec!["down".into()];

        assert!(db.put_notice(&delivered, 1).await.unwrap());
        let takeover = claimed(notice("//meta", &["web1", "web2"]), "web2", "down", 300);
        assert!(
            !db.put_notice(&takeover, read_by_web2.version)
                .await
                .unwrap()
        );

        assert_eq!(stored(db, "//meta").await, Some(at(delivered, 2)));
    }

    // See: #11
    pub(super) async fn a_put_expecting_a_version_that_is_not_stored_writes_nothing(db: &dyn Db) {
        let joined = notice("//meta", &["web1"]);
        assert!(
            !db.put_notice(&joined, 3).await.unwrap(),
            "nothing stored yet"
        );
        assert_eq!(stored(db, "//meta").await, None);

        assert!(db.put_notice(&joined, 0).await.unwrap());
        let other = notice("//meta", &["web2"]);
        assert!(!db.put_notice(&other, 0).await.unwrap(), "stored now");
        assert!(!db.put_notice(&other, 2).await.unwrap(), "not written yet");
        assert_eq!(stored(db, "//meta").await, Some(at(joined, 1)));
    }

    // See: #11. The last holder left and the resolve was delivered: the
    // record goes, and the next incident starts from "absent".
    pub(super) async fn an_empty_notice_deletes_the_record(db: &dyn Db) {
        let mut open = notice("//meta", &["web1"]);
        open.delivered = vec!["down".into()];
        assert!(db.put_notice(&open, 0).await.unwrap());

        assert!(db.put_notice(&Notice::new("//meta"), 1).await.unwrap());
        assert_eq!(stored(db, "//meta").await, None);

        assert!(db.put_notice(&open, 0).await.unwrap());
        assert_eq!(stored(db, "//meta").await, Some(at(open, 1)));
        // Deleting what is not there is a write over "absent" that lands.
        assert!(db.put_notice(&Notice::new("//other"), 0).await.unwrap());
        assert_eq!(stored(db, "//other").await, None);
    }

    // See: #11
    pub(super) async fn an_empty_notice_over_a_stale_version_deletes_nothing(db: &dyn Db) {
        let open = notice("//meta", &["web1"]);
        assert!(db.put_notice(&open, 0).await.unwrap());
        let joined = notice("//meta", &["web1", "web2"]);
        assert!(db.put_notice(&joined, 1).await.unwrap());

        assert!(!db.put_notice(&Notice::new("//meta"), 1).await.unwrap());
        assert!(!db.put_notice(&Notice::new("//meta"), 0).await.unwrap());

        assert_eq!(stored(db, "//meta").await, Some(at(joined, 2)));
    }

    // See: #11
    pub(super) async fn notices_leaves_out_absent_names_and_orders_by_name(db: &dyn Db) {
        for name in ["//b", "//a", "//c"] {
            assert!(db.put_notice(&notice(name, &["web1"]), 0).await.unwrap());
        }
        let names: Vec<String> = ["//c", "//x", "//a", "//c", "//y"]
            .map(str::to_owned)
            .to_vec();

        let found = db.notices(&names).await.unwrap();

        assert_eq!(
            found,
            [
                at(notice("//a", &["web1"]), 1),
                at(notice("//c", &["web1"]), 1)
            ]
        );
        assert_eq!(db.notices(&[]).await.unwrap(), []);
    }

    /// More names than one DynamoDB BatchGetItem (100) takes.
    pub(super) async fn many_notices_come_back_whole(db: &dyn Db) {
        let names: Vec<String> = (0..130).map(|i| format!("//web{i:03}/ping")).collect();
        for name in names.iter().step_by(2) {
            assert!(db.put_notice(&notice(name, &["web1"]), 0).await.unwrap());
        }

        let found = db.notices(&names).await.unwrap();

        let want: Vec<Notice> = names
            .iter()
            .step_by(2)
            .map(|name| at(notice(name, &["web1"]), 1))
            .collect();
        assert_eq!(found, want);
    }

    // See: #11. In DynamoDB notices share the faults table, under a
    // reserved agent key.
    pub(super) async fn notices_are_in_no_listing_of_faults_or_agents(db: &dyn Db) {
        db.set_faults("web2", &[fault("load")], 100).await.unwrap();
        let mut open = claimed(notice("//meta", &["web2"]), "web2", "down", 200);
        open.delivered = vec!["down".into()];
        assert!(db.put_notice(&open, 0).await.unwrap());

        assert_eq!(
            db.list_faults(None).await.unwrap(),
            vec![agent_fault("web2", fault("load"))]
        );
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web2", 100)]);
        assert_eq!(
            db.old_agents(10, 1000).await.unwrap(),
            vec![heartbeat("web2", 100)]
        );
        assert_eq!(db.alert_failures().await.unwrap(), vec![]);
        assert_eq!(db.stopped_agents().await.unwrap(), vec![]);
        assert_eq!(db.skipped_rows(), vec![]);
    }

    // See: #11
    pub(super) async fn heartbeats_of_returns_only_the_existing_ones(db: &dyn Db) {
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.heartbeat("web2", 200).await.unwrap();
        db.heartbeat("web3", 300).await.unwrap();
        db.remove_agent("web3").await.unwrap();
        db.stop_agent("web4", &[open_alert("//web4/down", None)], 300)
            .await
            .unwrap();
        let asked: Vec<String> = ["web4", "web3", "web2", "ghost", "web1", "web2"]
            .map(str::to_owned)
            .to_vec();

        assert_eq!(
            db.heartbeats_of(&asked).await.unwrap(),
            [heartbeat("web1", 100), heartbeat("web2", 200)]
        );
        assert_eq!(db.heartbeats_of(&[]).await.unwrap(), []);
        let many: Vec<String> = (0..130).map(|i| format!("web{i}")).collect();
        assert_eq!(
            db.heartbeats_of(&many).await.unwrap(),
            [heartbeat("web1", 100), heartbeat("web2", 200)]
        );
    }

    // See: #11
    pub(super) async fn storm_round_trips_through_set_faults_and_get_faults(db: &dyn Db) {
        let folded = Fault {
            severity: Severity::CRITICAL,
            storm: true,
            ..fault("disk")
        };
        db.set_faults("web1", &[folded.clone(), fault("load")], 100)
            .await
            .unwrap();

        assert_eq!(
            by_name(db.get_faults("web1").await.unwrap()),
            [folded.clone(), fault("load")]
        );
        assert_eq!(
            db.list_faults(None).await.unwrap(),
            [
                agent_fault("web1", folded.clone()),
                agent_fault("web1", fault("load"))
            ]
        );

        // Leaving the storm is a change that is written.
        let alone = Fault {
            storm: false,
            ..folded
        };
        db.set_faults("web1", &[alone.clone(), fault("load")], 160)
            .await
            .unwrap();
        assert_eq!(
            by_name(db.get_faults("web1").await.unwrap()),
            [alone, fault("load")]
        );
    }

    // See: #11
    pub(super) async fn storm_round_trips_through_stop_agent_and_open_alerts(db: &dyn Db) {
        let mut folded = open_alert("//web1/app/a", Some("ops"));
        folded.fault.storm = true;
        folded.fault.triggered = false;
        let alone = open_alert("//web1/app/b", None);

        db.stop_agent("web1", &[folded.clone(), alone.clone()], 100)
            .await
            .unwrap();

        assert_eq!(db.open_alerts("web1").await.unwrap(), [folded, alone]);
    }

    // See: #17, #21. What `faults --json` shows of SPEC §11 comes back as
    // stored, and a change of one flag alone is written.
    pub(super) async fn held_suppressed_by_and_flapping_round_trip_and_a_change_is_written(
        db: &dyn Db,
    ) {
        let held = Fault {
            severity: Severity::CRITICAL,
            held: true,
            ..fault("//web1/app/held")
        };
        let suppressed = Fault {
            suppressed_by: Some("//web1/net/gw".into()),
            ..fault("//web1/app/suppressed")
        };
        let flapping = Fault {
            severity: Severity::CRITICAL,
            flapping: true,
            ..fault("//web1/app/flapping")
        };
        let all = [flapping.clone(), held.clone(), suppressed.clone()];
        db.set_faults("web1", &all, 100).await.unwrap();
        assert_eq!(by_name(db.get_faults("web1").await.unwrap()), all);
        assert_eq!(
            db.list_faults(Some("web1")).await.unwrap(),
            all.iter()
                .map(|f| agent_fault("web1", f.clone()))
                .collect::<Vec<_>>()
        );

        // Each flag turned off on its own, at a later write: every change
        // reaches the store, `updated` included.
        for name in [
            "//web1/app/flapping",
            "//web1/app/held",
            "//web1/app/suppressed",
        ] {
            let now_stored = by_name(db.get_faults("web1").await.unwrap());
            let next: Vec<Fault> = now_stored
                .iter()
                .map(|f| {
                    if f.name == name {
                        Fault {
                            held: false,
                            flapping: false,
                            suppressed_by: None,
                            updated: 160,
                            ..f.clone()
                        }
                    } else {
                        f.clone()
                    }
                })
                .collect();
            db.set_faults("web1", &next, 160).await.unwrap();
            assert_eq!(
                by_name(db.get_faults("web1").await.unwrap()),
                next,
                "{name}"
            );
        }
        // And back on: the flag alone changed.
        let again = Fault {
            updated: 220,
            ..flapping.clone()
        };
        let mut next = by_name(db.get_faults("web1").await.unwrap());
        next[0] = again.clone();
        db.set_faults("web1", &next, 220).await.unwrap();
        assert_eq!(by_name(db.get_faults("web1").await.unwrap())[0], again);
    }

    // See: #17, #21
    pub(super) async fn held_suppressed_by_and_flapping_round_trip_through_stop_agent(db: &dyn Db) {
        let mut flapping = open_alert("//web1/app/a", Some("ops"));
        flapping.fault.flapping = true;
        let mut held = open_alert("//web1/app/b", None);
        held.fault.held = true;
        held.fault.triggered = false;
        let mut suppressed = open_alert("//web1/app/c", None);
        suppressed.fault.suppressed_by = Some("//web1/net/gw".into());

        let kept = [flapping, held, suppressed];
        db.stop_agent("web1", &kept, 100).await.unwrap();

        assert_eq!(db.open_alerts("web1").await.unwrap(), kept);
    }

    /// The history's "now" in these scenarios (late 2026).
    const NOW: i64 = 1_796_212_800;

    fn record(time: i64, agent: &str, name: &str, event: Event) -> Record {
        Record::new(time, agent, name, event)
    }

    fn query(since: i64, limit: usize) -> HistoryQuery {
        HistoryQuery::recent(since, NOW, limit)
    }

    fn events(records: &[Record]) -> Vec<(i64, String, String, Event)> {
        records
            .iter()
            .map(|r| (r.time, r.agent.clone(), r.name.clone(), r.event))
            .collect()
    }

    pub(super) async fn history_round_trips_every_field_newest_first(db: &dyn Db) {
        let mut failed = record(NOW - 50, "web1", "//web1/app/disk", Event::Failed);
        failed.severity = Some(Severity::CRITICAL);
        failed.message = Some("disk full".into());
        failed.alerter = Some("default".into());
        failed.detail = Some("trigger: HTTP 500".into());
        let mut added = record(NOW - 40, "web2", "web1", Event::SquelchAdded);
        added.message = Some("maintenance".into());
        added.user = Some("alice".into());
        let started = record(NOW - 60, "web1", "web1", Event::Started);

        db.append_history(&[started.clone(), failed.clone()])
            .await
            .unwrap();
        db.append_history(&[added.clone()]).await.unwrap();

        assert_eq!(
            db.history(&query(0, 100)).await.unwrap(),
            [added, failed, started]
        );
    }

    // See: #13. `write_tick`: the faults as `set_faults`, the records as
    // `append_history` (one transaction where the backend has them).
    pub(super) async fn a_ticks_write_stores_its_faults_and_its_history_records(db: &dyn Db) {
        let disk = crate::db_contract::fault("//web1/app/disk");
        let triggered = record(NOW - 5, "web1", "//web1/app/disk", Event::Triggered);

        db.write_tick(
            "web1",
            std::slice::from_ref(&disk),
            NOW - 5,
            std::slice::from_ref(&triggered),
        )
        .await
        .unwrap();
        db.write_tick("web1", std::slice::from_ref(&disk), NOW, &[])
            .await
            .unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), [disk]);
        assert_eq!(db.agents().await.unwrap()[0].updated, NOW);
        assert_eq!(db.history(&query(0, 100)).await.unwrap(), [triggered]);
    }

    // See: #12. An agent's write retried after a failure (or repeated at
    // its stop) sends records that may be stored already: each is stored
    // once, by its agent and identity; another agent's same identity is
    // another record.
    pub(super) async fn history_appended_again_with_its_identity_is_stored_once(db: &dyn Db) {
        let with_id = |time, agent: &str, event, id| Record {
            id: Some(id),
            ..record(time, agent, "//web1/app/disk", event)
        };
        let triggered = with_id(
            NOW - 20,
            "web1",
            Event::Triggered,
            1_796_212_000_000_000_001,
        );
        let delivered = with_id(
            NOW - 20,
            "web1",
            Event::Delivered,
            1_796_212_000_000_000_002,
        );
        let other = with_id(
            NOW - 10,
            "web2",
            Event::Triggered,
            1_796_212_000_000_000_001,
        );

        db.append_history(std::slice::from_ref(&triggered))
            .await
            .unwrap();
        db.append_history(&[triggered.clone(), delivered.clone(), other.clone()])
            .await
            .unwrap();
        db.append_history(std::slice::from_ref(&delivered))
            .await
            .unwrap();

        assert_eq!(
            events(&db.history(&query(0, 100)).await.unwrap()),
            events(&[other, delivered, triggered])
        );
    }

    pub(super) async fn history_of_one_second_lists_the_later_appended_first(db: &dyn Db) {
        let triggered = record(NOW - 10, "web1", "//web1/app/disk", Event::Triggered);
        let delivered = record(NOW - 10, "web1", "//web1/app/disk", Event::Delivered);

        db.append_history(&[triggered.clone(), delivered.clone()])
            .await
            .unwrap();

        assert_eq!(
            db.history(&query(0, 100)).await.unwrap(),
            [delivered, triggered]
        );
    }

    pub(super) async fn history_by_agent_leaves_out_the_other_agents(db: &dyn Db) {
        let mine = record(NOW - 30, "web1", "//web1/app/disk", Event::Triggered);
        let other = record(NOW - 20, "web2", "//web2/app/disk", Event::Triggered);
        db.append_history(&[mine.clone(), other]).await.unwrap();

        let mut by_agent = query(0, 100);
        by_agent.agent = Some("web1".into());

        assert_eq!(db.history(&by_agent).await.unwrap(), [mine]);
    }

    pub(super) async fn history_by_name_searches_the_regex_anywhere(db: &dyn Db) {
        let disk = record(NOW - 30, "web1", "//web1/app/disk#root", Event::Triggered);
        let load = record(NOW - 20, "web1", "//web1/app/load", Event::Triggered);
        let disk2 = record(NOW - 10, "web2", "//web2/db/disk#data", Event::Resolved);
        db.append_history(&[disk.clone(), load, disk2.clone()])
            .await
            .unwrap();

        let mut by_name = query(0, 100);
        by_name.name = Some(regex::Regex::new("disk").unwrap());

        assert_eq!(db.history(&by_name).await.unwrap(), [disk2, disk]);
    }

    pub(super) async fn history_by_exact_name_finds_only_that_name(db: &dyn Db) {
        let disk = record(NOW - 30, "web1", "//web1/app/disk", Event::Triggered);
        let longer = record(NOW - 20, "web1", "//web1/app/disk#root", Event::Triggered);
        db.append_history(&[disk.clone(), longer]).await.unwrap();

        let mut exact = query(0, 100);
        exact.name = Some(regex::Regex::new("^//web1/app/disk$").unwrap());

        assert_eq!(db.history(&exact).await.unwrap(), [disk]);
    }

    pub(super) async fn history_limit_keeps_the_newest(db: &dyn Db) {
        let records: Vec<Record> = (0..30)
            .map(|i| {
                record(
                    NOW - 100 + i,
                    "web1",
                    &format!("check{i:02}"),
                    Event::Triggered,
                )
            })
            .collect();
        db.append_history(&records).await.unwrap();

        let found = db.history(&query(0, 5)).await.unwrap();

        let want: Vec<Record> = records.iter().rev().take(5).cloned().collect();
        assert_eq!(found, want);
        let mut by_agent = query(0, 3);
        by_agent.agent = Some("web1".into());
        assert_eq!(db.history(&by_agent).await.unwrap(), want[..3]);
    }

    pub(super) async fn history_since_leaves_out_older_records(db: &dyn Db) {
        let old = record(NOW - 3 * 86_400, "web1", "disk", Event::Triggered);
        let day_ago = record(NOW - 86_400, "web1", "disk", Event::Resolved);
        let recent = record(NOW - 60, "web1", "disk", Event::Triggered);
        db.append_history(&[old, day_ago.clone(), recent.clone()])
            .await
            .unwrap();

        assert_eq!(
            db.history(&query(NOW - 86_400, 100)).await.unwrap(),
            [recent.clone(), day_ago]
        );
        assert_eq!(db.history(&query(NOW - 3600, 100)).await.unwrap(), [recent]);
    }

    /// The default retention is 30 days (SPEC §12).
    pub(super) async fn history_past_the_retention_is_left_out(db: &dyn Db) {
        let expired = record(NOW - 31 * 86_400, "web1", "disk", Event::Triggered);
        let kept = record(NOW - 29 * 86_400, "web1", "disk", Event::Resolved);
        db.append_history(&[expired, kept.clone()]).await.unwrap();

        assert_eq!(
            db.history(&query(0, 100)).await.unwrap(),
            std::slice::from_ref(&kept)
        );
        let mut by_agent = query(0, 100);
        by_agent.agent = Some("web1".into());
        assert_eq!(db.history(&by_agent).await.unwrap(), [kept]);
    }

    /// More records than one batch (25) or page, over several days and
    /// agents (DynamoDB: several buckets and shards).
    pub(super) async fn history_of_many_days_and_agents_comes_back_whole(db: &dyn Db) {
        let records: Vec<Record> = (0..120)
            .map(|i| {
                record(
                    NOW - 5 * 86_400 + i * 3600,
                    &format!("web{}", i % 7),
                    &format!("check{i:03}"),
                    Event::Triggered,
                )
            })
            .collect();
        db.append_history(&records).await.unwrap();

        let found = db.history(&query(0, 1000)).await.unwrap();

        let mut want = records;
        want.reverse();
        assert_eq!(events(&found), events(&want));
    }

    /// More kept alerts than one DynamoDB batch (25) or item would hold.
    pub(super) async fn many_kept_alerts_come_back_whole(db: &dyn Db) {
        let long = "x".repeat(4000);
        let kept: Vec<OpenAlert> = (0..120)
            .map(|i| {
                let mut alert = open_alert(&format!("//web1/app/check{i:03}"), None);
                alert.fault.message.clone_from(&long);
                alert
            })
            .collect();

        db.stop_agent("web1", &kept, 100).await.unwrap();

        assert_eq!(db.open_alerts("web1").await.unwrap(), kept);
        assert_eq!(
            db.stopped_agents().await.unwrap(),
            vec![stopped("web1", 100, 120)]
        );
        db.stop_agent("web1", &[], 200).await.unwrap();
        assert_eq!(db.open_alerts("web1").await.unwrap(), vec![]);
    }
}

/// Scenarios of two clients of one database, as two agents (SPEC §10).
mod pair_scenarios {
    use super::*;

    // See: #11. Both read "absent" and claim the trigger: one claim lands,
    // the other writes nothing, and the record is the winner's.
    pub(super) async fn two_clients_racing_for_the_same_claim_exactly_one_wins(
        one: &dyn Db,
        two: &dyn Db,
    ) {
        for round in 0..10 {
            let name = format!("//meta#web{round}");
            let web1 = claimed(notice(&name, &["web1"]), "web1", "down", 200);
            let web2 = claimed(notice(&name, &["web2"]), "web2", "down", 200);

            let (won1, won2) = tokio::join!(one.put_notice(&web1, 0), two.put_notice(&web2, 0));

            let (won1, won2) = (won1.unwrap(), won2.unwrap());
            assert!(
                won1 != won2,
                "round {round}: exactly one wins ({won1}, {won2})"
            );
            let winner = if won1 { web1 } else { web2 };
            assert_eq!(stored(one, &name).await, Some(at(winner.clone(), 1)));
            assert_eq!(stored(two, &name).await, Some(at(winner, 1)));
        }
    }

    // See: #11. The same race over a stored record (a takeover of an
    // expired claim by two holders at once).
    pub(super) async fn two_clients_racing_over_a_stored_version_exactly_one_wins(
        one: &dyn Db,
        two: &dyn Db,
    ) {
        let name = "//meta#web9";
        let first = claimed(notice(name, &["web1", "web2", "web3"]), "web3", "down", 100);
        assert!(one.put_notice(&first, 0).await.unwrap());
        for round in 1..=10 {
            let stored_version = stored(one, name).await.unwrap().version;
            assert_eq!(stored_version, round);
            let until = 100 + i64::try_from(round).unwrap();
            let web1 = claimed(
                notice(name, &["web1", "web2", "web3"]),
                "web1",
                "down",
                until,
            );
            let web2 = claimed(
                notice(name, &["web1", "web2", "web3"]),
                "web2",
                "down",
                until,
            );

            let (won1, won2) = tokio::join!(
                one.put_notice(&web1, stored_version),
                two.put_notice(&web2, stored_version)
            );

            let (won1, won2) = (won1.unwrap(), won2.unwrap());
            assert!(
                won1 != won2,
                "round {round}: exactly one wins ({won1}, {won2})"
            );
            let winner = if won1 { web1 } else { web2 };
            assert_eq!(stored(two, name).await, Some(at(winner, round + 1)));
        }
    }
}

/// Behaviour of `sqlite` files themselves: sharing, creation, persistence.
mod sqlite_file {
    use super::*;

    use cimaa::db::Error;
    use tokio::task::JoinSet;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_handles_on_one_file_writing_concurrently_both_land() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("cimaa.db");
        let handles = [
            ("one", Arc::new(SqliteDb::open(&path).await.unwrap())),
            ("two", Arc::new(SqliteDb::open(&path).await.unwrap())),
        ];

        let mut writes = JoinSet::new();
        for i in 0..10 {
            for (prefix, db) in &handles {
                let db = Arc::clone(db);
                let agent = format!("{prefix}-{i:02}");
                writes.spawn(async move {
                    for now in 100..105 {
                        db.set_faults(&agent, &[fault("disk"), fault("load")], now)
                            .await?;
                    }
                    Ok::<_, Error>(())
                });
            }
        }
        while let Some(write) = writes.join_next().await {
            write.unwrap().unwrap();
        }

        let reader = SqliteDb::open(&path).await.unwrap();
        let agents = reader.agents().await.unwrap();
        assert_eq!(agents.len(), 20);
        assert!(agents.iter().all(|agent| agent.updated == 104));
        assert_eq!(reader.list_faults(None).await.unwrap().len(), 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_agents_opening_a_new_file_at_once_both_succeed() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("cimaa.db");

        let mut opens = JoinSet::new();
        for _ in 0..4 {
            let path = path.clone();
            opens.spawn(async move { SqliteDb::open(&path).await });
        }

        while let Some(open) = opens.join_next().await {
            let db = open.unwrap().unwrap();
            assert_eq!(db.agents().await.unwrap(), vec![]);
        }
    }

    // See: #11. A claim waits for another process's lock no longer than
    // the agent allows, writes nothing meanwhile, and lands once it is free.
    #[tokio::test]
    async fn a_put_notice_behind_a_held_lock_fails_within_the_wait_limit_and_writes_nothing() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("cimaa.db");
        let db = SqliteDb::open(&path).await.unwrap();
        db.limit_waits(std::time::Duration::from_millis(200));
        let lock = rusqlite::Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE;").unwrap();
        let claim = claimed(notice("//meta", &["web1"]), "web1", "down", 200);

        let started = std::time::Instant::now();
        let result = db.put_notice(&claim, 0).await;

        assert!(result.is_err(), "{result:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        lock.execute_batch("ROLLBACK;").unwrap();
        assert_eq!(stored(&db, "//meta").await, None);
        assert!(db.put_notice(&claim, 0).await.unwrap());
        assert_eq!(stored(&db, "//meta").await, Some(at(claim, 1)));
    }

    #[tokio::test]
    async fn open_creates_the_folder_and_schema_of_a_new_path() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("var/lib/cimaa/cimaa.db");

        let db = SqliteDb::open(&path).await.unwrap();

        assert!(path.is_file());
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.squelch(&squelch("web1")).await.unwrap();
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web1", 100)]);
    }

    #[tokio::test]
    async fn reopening_a_file_keeps_the_data() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("cimaa.db");
        let db = SqliteDb::open(&path).await.unwrap();
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.squelch(&squelch("web1")).await.unwrap();
        drop(db);

        let db = SqliteDb::open(&path).await.unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), vec![fault("disk")]);
        assert_eq!(db.agents().await.unwrap(), vec![heartbeat("web1", 100)]);
        assert_eq!(
            db.get_squelch_details().await.unwrap(),
            vec![squelch("web1")]
        );
    }

    #[tokio::test]
    async fn open_of_a_folder_reports_its_path() {
        let dir = TempDir::new().unwrap();

        let Err(err) = SqliteDb::open(dir.path()).await else {
            panic!("opening a folder as a database succeeded");
        };

        match err {
            Error::Open { path, .. } => assert_eq!(path, dir.path()),
            other => panic!("unexpected error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn open_below_a_file_reports_the_folder_it_cannot_create() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "not a folder").unwrap();

        let Err(err) = SqliteDb::open(&file.join("cimaa.db")).await else {
            panic!("opening below a file succeeded");
        };

        match err {
            Error::CreateFolder { path, .. } => assert_eq!(path, file),
            other => panic!("unexpected error: {other:?}"),
        }
    }
}

/// Rows other agents (or people) wrote malformed (SPEC §17), where the
/// backend lets a test write them: plain SQL into the `sqlite` file. The
/// `dynamodb` cases are in `tests/dynamodb.rs`, which writes raw items.
mod malformed_rows {
    use super::*;

    use cimaa::db::SkippedRow;
    use rusqlite::Connection;

    async fn open(dir: &TempDir) -> (SqliteDb, Connection) {
        let path = dir.path().join("cimaa.db");
        let db = SqliteDb::open(&path).await.unwrap();
        (db, Connection::open(&path).unwrap())
    }

    // See: #12, #13. The pruning a write finds due runs after it, in a task
    // of its own (never within the write's time).
    #[tokio::test]
    async fn history_past_the_retention_is_pruned_after_a_write_at_most_once_an_hour() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        let db = db.with_history(cimaa::history::HistoryConfig { retention: 3600 });
        let rows = || -> i64 {
            sql.query_row("SELECT COUNT(*) FROM history", [], |row| row.get(0))
                .unwrap()
        };
        db.append_history(&[
            Record::new(1000, "web1", "disk", Event::Triggered),
            Record::new(9000, "web1", "disk", Event::Resolved),
        ])
        .await
        .unwrap();

        let settled = |want: i64| async move {
            for _ in 0..500 {
                if rows() == want {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            // A pruning that should not run has had its chance too.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            rows()
        };

        db.set_faults("web1", &[], 10_000).await.unwrap();
        assert_eq!(settled(1).await, 1, "the record older than an hour goes");

        db.append_history(&[Record::new(5000, "web1", "disk", Event::Triggered)])
            .await
            .unwrap();
        db.set_faults("web1", &[], 10_100).await.unwrap();
        assert_eq!(settled(2).await, 2, "no second pruning within the hour");

        db.set_faults("web1", &[], 13_600).await.unwrap();
        assert_eq!(settled(0).await, 0);
    }

    fn skipped(table: &str, key: &str, problem: &str) -> SkippedRow {
        SkippedRow {
            table: table.to_owned(),
            key: key.to_owned(),
            problem: problem.to_owned(),
        }
    }

    // See: #16. Facts are informational: one of the wrong type reads as not
    // recorded, and the heartbeat still counts (for `agents` and the
    // meta-check) without a skipped-row warning.
    #[tokio::test]
    async fn heartbeat_facts_of_the_wrong_type_read_as_not_recorded() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        // The column's text affinity stores a number as text; a blob stays.
        sql.execute_batch(
            "INSERT INTO heartbeats VALUES ('web1', 100, x'312e32', 'twelve');
             INSERT INTO heartbeats VALUES ('web2', 100, x'ff', -3);
             INSERT INTO heartbeats VALUES ('web3', 100, '1.2.3', 4.5);",
        )
        .unwrap();

        let agents = db.agents().await.unwrap();

        assert_eq!(
            agents,
            [
                heartbeat("web1", 100),
                heartbeat("web2", 100),
                Heartbeat {
                    version: Some("1.2.3".to_owned()),
                    ..heartbeat("web3", 100)
                },
            ]
        );
        assert_eq!(db.skipped_rows(), []);
    }

    // See: #18
    #[tokio::test]
    async fn a_malformed_fault_row_is_skipped_and_named_and_the_others_still_count() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        sql.execute_batch(
            "INSERT INTO faults VALUES ('web2', 'load', 'high', 'm', 1, 1, 0, 1, 0, 0, 0, NULL, 0, 0);
             INSERT INTO faults VALUES ('web2', 'mem', 40.5, 'm', 1, 1, 0, 1, 0, 0, 0, NULL, 0, 0);
             INSERT INTO faults VALUES ('web2', 'net', 40, 'm', 1, 1, 0, 1, 9223372036854775807, 0, 0, NULL, 0, 0);",
        )
        .unwrap();

        let faults = db.list_faults(None).await.unwrap();

        assert_eq!(faults, [agent_fault("web1", fault("disk"))]);
        assert_eq!(
            db.skipped_rows(),
            [
                skipped("faults", "web2/load", "column `severity` holds text"),
                skipped(
                    "faults",
                    "web2/mem",
                    "column `severity` holds a real number"
                ),
                skipped(
                    "faults",
                    "web2/net",
                    "column `attempts` holds an integer out of range"
                ),
            ]
        );
    }

    // See: #18
    #[tokio::test]
    async fn set_faults_replaces_the_agents_malformed_rows_and_the_report_clears() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        sql.execute_batch(
            "INSERT INTO faults VALUES ('web1', x'00', 40, 'm', 1, 1, 0, 1, 0, 0, 0, NULL, 0, 0);",
        )
        .unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), []);
        assert_eq!(
            db.skipped_rows(),
            [skipped(
                "faults",
                "web1/x'00'",
                "column `name` holds a blob"
            )]
        );
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.set_faults("web1", &[fault("disk")], 160).await.unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), [fault("disk")]);
        assert_eq!(db.skipped_rows(), []);
    }

    /// Notice rows as a broken or newer agent could leave them: each reads
    /// as an empty notice at the version stored (0 when that is unreadable
    /// too), is named in `skipped_rows`, and the next put over that version
    /// replaces it.
    const MALFORMED_NOTICES: &str = r#"
        INSERT INTO notices VALUES ('//missing', 3, '{"holders": ["web1"]}');
        INSERT INTO notices VALUES ('//types', 4, '{"holders": "web1", "delivered": [], "claim": null}');
        INSERT INTO notices VALUES ('//action', 5,
            '{"holders": [], "delivered": [], "claim": {"agent": "web9", "action": "page", "until": 1}}');
        INSERT INTO notices VALUES ('//nojson', 6, 'holders=web1');
        INSERT INTO notices VALUES ('//version', 'seven', '{"holders": ["web1"], "delivered": [], "claim": null}');
        INSERT INTO notices VALUES ('//both', -2, x'00');
    "#;

    // See: #11
    #[tokio::test]
    async fn malformed_notices_read_as_empty_at_their_version_and_are_named() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        sql.execute_batch(MALFORMED_NOTICES).unwrap();
        let names: Vec<String> = [
            "//missing",
            "//types",
            "//action",
            "//nojson",
            "//version",
            "//both",
        ]
        .map(str::to_owned)
        .to_vec();

        let found = db.notices(&names).await.unwrap();

        let empty = |name: &str, version: u64| Notice {
            version,
            ..Notice::new(name)
        };
        assert_eq!(
            found,
            [
                empty("//action", 5),
                empty("//both", 0),
                empty("//missing", 3),
                empty("//nojson", 6),
                empty("//types", 4),
                empty("//version", 0),
            ]
        );
        let rows = db.skipped_rows();
        let keys: Vec<&str> = rows.iter().map(|row| row.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "//action",
                "//both",
                "//missing",
                "//nojson",
                "//types",
                "//version"
            ]
        );
        assert!(rows.iter().all(|row| row.table == "notices"), "{rows:?}");
        assert_eq!(
            rows[0].problem,
            "column `record` is not a notice: its claim's action `page` is unknown"
        );
        assert!(
            rows[1].problem.starts_with(
                "column `version` holds a negative number; column `record` holds a blob"
            ),
            "{}",
            rows[1].problem
        );
        assert!(
            rows[2].problem.contains("missing field `delivered`"),
            "{}",
            rows[2].problem
        );
        assert_eq!(rows[5].problem, "column `version` holds text");
    }

    // See: #11
    #[tokio::test]
    async fn a_put_over_a_malformed_notices_version_replaces_it_and_the_report_clears() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        sql.execute_batch(MALFORMED_NOTICES).unwrap();
        let names = ["//missing".to_owned(), "//version".to_owned()];
        let read = db.notices(&names).await.unwrap();
        assert_eq!(db.skipped_rows().len(), 2);
        let joined = |name: &str| notice(name, &["web2"]);

        // A put over another version still fails: the compare-and-swap
        // holds for malformed records too.
        assert!(!db.put_notice(&joined("//missing"), 0).await.unwrap());
        assert!(!db.put_notice(&joined("//version"), 1).await.unwrap());
        for notice in &read {
            assert!(
                db.put_notice(&joined(&notice.name), notice.version)
                    .await
                    .unwrap()
            );
        }

        assert_eq!(
            db.notices(&names).await.unwrap(),
            [at(joined("//missing"), 4), at(joined("//version"), 1)]
        );
        assert_eq!(db.skipped_rows(), []);
    }

    // See: #11. A storm flag that is not a boolean is a malformed fault row.
    #[tokio::test]
    async fn a_fault_row_with_a_text_storm_is_skipped() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        sql.execute_batch(
            "INSERT INTO faults VALUES ('web1', 'disk', 40, 'm', 1, 1, 0, 1, 0, 0, 'yes', NULL, 0, 0);",
        )
        .unwrap();

        assert_eq!(db.get_faults("web1").await.unwrap(), []);
        assert_eq!(
            db.skipped_rows(),
            [skipped("faults", "web1/disk", "column `storm` holds text")]
        );
    }

    // See: #18
    #[tokio::test]
    async fn a_malformed_squelch_row_leaves_the_others_in_force() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        db.squelch(&squelch("web1")).await.unwrap();
        sql.execute_batch(
            "INSERT INTO squelches VALUES ('web2', 'r', 'ops', 'noon', 1, NULL);
             INSERT INTO squelches VALUES (x'2e', 'r', 'ops', 1, 1, NULL);",
        )
        .unwrap();

        assert_eq!(db.get_squelches(200).await.unwrap(), ["web1"]);
        assert_eq!(
            db.skipped_rows(),
            [
                skipped("squelches", "web2", "column `time` holds text"),
                skipped("squelches", "x'2e'", "column `regex` holds a blob"),
            ]
        );
    }

    // See: #18
    #[tokio::test]
    async fn a_dropped_table_is_created_again() {
        let dir = TempDir::new().unwrap();
        let (db, sql) = open(&dir).await;
        sql.execute_batch("DROP TABLE squelches; DROP TABLE heartbeats;")
            .unwrap();

        assert_eq!(db.get_squelch_details().await.unwrap(), []);
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        db.squelch(&squelch("web1")).await.unwrap();
        assert_eq!(db.agents().await.unwrap(), [heartbeat("web1", 100)]);
    }

    // See: #18
    #[tokio::test]
    async fn a_deleted_file_is_opened_again_and_gets_the_full_state() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("cimaa.db");
        let db = SqliteDb::open(&path).await.unwrap();
        db.set_faults("web1", &[fault("disk")], 100).await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }

        // The same state again: unchanged rows are written too.
        db.set_faults("web1", &[fault("disk")], 160).await.unwrap();

        let peer = SqliteDb::open(&path).await.unwrap();
        assert_eq!(peer.get_faults("web1").await.unwrap(), [fault("disk")]);
        assert_eq!(peer.agents().await.unwrap(), [heartbeat("web1", 160)]);
    }
}
