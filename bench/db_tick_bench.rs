//! The database time of one agent's tick with 1,000 checks, on SQLite and
//! PostgreSQL side by side in the same run (issue #13). Drives the `Db`
//! trait as the agent's writer does each tick: read the squelches, write
//! the fault set with the heartbeat (`set_faults`).
//!
//! Phases per backend and run: steady (no fault, 50 ticks), onset (1,000
//! faults new at once, 1 tick), incident (the same 1,000 faults, unchanged,
//! 20 ticks), recovery (back to none, 1 tick). Prints the median tick of
//! each phase per run, as TSV lines `run backend phase ms`.
//!
//!   cargo build --example db_tick_bench
//!   target/debug/examples/db_tick_bench postgres://USER@127.0.0.1:PORT/postgres 3
//!
//! The URL is an admin database of a throwaway server: each run creates
//! a database of its own there.

#![expect(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::time::{Duration, Instant};

use cimaa::db::{Db, Fault, PostgresConfig, PostgresDb, SqliteDb};
use cimaa::severity::Severity;

const CHECKS: usize = 1000;
const AGENT: &str = "bench-agent";

fn fault(index: usize, now: i64) -> Fault {
    Fault {
        name: format!("//{AGENT}/app/check-{index:04}"),
        severity: Severity::CRITICAL,
        message: format!("CRITICAL - check {index} is failing"),
        since: now,
        updated: now,
        triggered: true,
        escalates: true,
        attempts: 1,
        monitor_runs: 0,
        storm: false,
        suppressed_by: None,
        held: false,
        flapping: false,
    }
}

/// One tick's database work; its wall time.
async fn tick(db: &dyn Db, faults: &[Fault], now: i64) -> Duration {
    let started = Instant::now();
    db.get_squelches(now).await.expect("read squelches");
    db.set_faults(AGENT, faults, now)
        .await
        .expect("write faults");
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

/// The phases on `db`, printed under `run` and `backend`.
async fn phases(db: &dyn Db, run: usize, backend: &str) {
    let mut now = 1_800_000_000;
    let none: Vec<Fault> = Vec::new();
    let all: Vec<Fault> = (0..CHECKS).map(|i| fault(i, now)).collect();
    let mut steady = Vec::new();
    for _ in 0..50 {
        now += 60;
        steady.push(tick(db, &none, now).await);
    }
    now += 60;
    let onset = tick(db, &all, now).await;
    let mut incident = Vec::new();
    for _ in 0..20 {
        now += 60;
        incident.push(tick(db, &all, now).await);
    }
    now += 60;
    let recovery = tick(db, &none, now).await;
    println!("{run}\t{backend}\tsteady\t{:.3}", median(steady));
    println!("{run}\t{backend}\tonset\t{:.3}", median(vec![onset]));
    println!("{run}\t{backend}\tincident\t{:.3}", median(incident));
    println!("{run}\t{backend}\trecovery\t{:.3}", median(vec![recovery]));
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let admin = args.next().expect("usage: db_tick_bench ADMIN_URL [RUNS]");
    let runs: usize = args.next().map_or(3, |runs| runs.parse().expect("RUNS"));
    for run in 1..=runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = SqliteDb::open(&dir.path().join("cimaa.db"))
            .await
            .expect("open sqlite");
        phases(&sqlite, run, "sqlite").await;

        let name = format!("bench_{}_{run}", std::process::id());
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = driver.await;
        let base = admin.rsplit_once('/').expect("URL with a database").0;
        let postgres = PostgresDb::open(&PostgresConfig {
            url: format!("{base}/{name}"),
            pool: 4,
            history: cimaa::history::HistoryConfig::default(),
        })
        .expect("open postgres");
        postgres.setup(None).await.expect("create tables");
        phases(&postgres, run, "postgres").await;
    }
}
