//! Splay (SPEC §14): each agent starts its ticks a stable offset after the
//! tick boundary, from a hash of its name; `splay: 0` starts them on it.

use std::thread;

use crate::util::{Env, assert_success, stderr};

/// An agent named `name` with 2 s ticks and these extra `agent:` lines.
fn agent(name: &str, extra: &str) -> Env {
    let env = Env::bare();
    std::fs::create_dir_all(env.path("checks.d")).unwrap();
    env.write(
        "agent.yaml",
        &format!(
            "agent:\n  name: {name}\n  directory: checks.d\n  base_interval: 2\n{extra}\
             database:\n  type: sqlite\n  path: cimaa.db\n\
             alerter:\n  type: file\n  path: alerts.jsonl\n"
        ),
    );
    env.write_check("app.yaml", "ok:\n  command: echo OK\n");
    env
}

/// The number after `key=` on every log line that has it.
fn values(log: &str, key: &str) -> Vec<f64> {
    let key = format!("{key}=");
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(&key)? + key.len()..];
            let end = rest.find(' ').unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

/// Runs `agent --count 2` and returns its splay and each tick's start,
/// in seconds after the tick's boundary.
fn run(env: &Env) -> (f64, Vec<f64>) {
    let output = env.cimaa(&["agent", "--count", "2"]);
    assert_success(&output);
    let log = stderr(&output);
    let splay = values(&log, "splay_secs");
    let starts = values(&log, "start_offset_secs");
    assert_eq!((splay.len(), starts.len()), (1, 2), "{log}");
    (splay[0], starts)
}

/// Every tick started at the splay, give or take the scheduling delay of a
/// loaded machine.
fn assert_started_at(splay: f64, starts: &[f64]) {
    for start in starts {
        assert!(
            (splay..splay + 1.5).contains(start),
            "a tick started {start} s after its boundary, splay {splay} s"
        );
    }
}

// See: #16
#[test]
fn two_agents_start_their_ticks_at_different_stable_offsets() {
    let envs = [
        agent("web1.example.com", ""),
        agent("web1.example.com", "  splay: auto\n"),
        agent("db7.example.com", ""),
        agent("db7.example.com", ""),
    ];
    let runs: Vec<(f64, Vec<f64>)> = thread::scope(|scope| {
        let handles: Vec<_> = envs.iter().map(|env| scope.spawn(|| run(env))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (splay, starts) in &runs {
        assert!((0.0..1.0).contains(splay), "{splay}");
        assert_started_at(*splay, starts);
    }
    // Stable: the same name, the same offset, run after run.
    assert_eq!(runs[0].0.to_bits(), runs[1].0.to_bits());
    assert_eq!(runs[2].0.to_bits(), runs[3].0.to_bits());
    // Spread: another name, another offset.
    assert!((runs[0].0 - runs[2].0).abs() > 0.01, "{runs:?}");
}

// See: #16
#[test]
fn splay_zero_starts_ticks_on_the_boundary() {
    let env = agent("web1.example.com", "  splay: 0\n");
    let (splay, starts) = run(&env);
    assert!(splay.abs() < f64::EPSILON, "{splay}");
    assert_started_at(0.0, &starts);
}

// See: #16
#[test]
fn a_splay_of_a_whole_tick_is_a_configuration_error_naming_the_key() {
    let env = agent("web1.example.com", "  splay: 2\n");
    let output = env.cimaa(&["agent", "--once"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let error = stderr(&output);
    assert!(
        error.contains("agent.splay: `2` seconds is not shorter than agent.base_interval (`2`)"),
        "{error}"
    );
}
