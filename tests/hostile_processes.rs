//! Plugins and alerter commands that leave processes behind (issue #18): the
//! real binary kills and reaps every process a run started, in the run's
//! group or in a new session, when the run ends. Each test's processes carry
//! a unique `sleep` duration and are counted through /proc.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Env, assert_success};

/// Neither running nor a zombie.
fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// The pids a script appended to `path`, one a line.
fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Zombie children of `parent`.
fn zombies_of(parent: u32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&parent.to_string().as_str()) {
            found.push(pid);
        }
    }
    found
}

/// Kills what a failed test may have left, so that no test leaks.
fn clean_up(pids: &[i32]) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// `cimaa agent` in the background.
fn start_agent(env: &Env) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(env.config())
        .arg("agent")
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop_agent(mut agent: Child) {
    let _ = kill(
        Pid::from_raw(i32::try_from(agent.id()).unwrap()),
        Signal::SIGTERM,
    );
    let _ = agent.wait();
}

// See: #18
#[test]
fn a_plugins_background_children_die_with_each_run_of_the_daemon() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: a.jsonl\n",
        "  base_interval: 1\n",
    );
    let list = env.path("pids");
    let script = env.script(
        "leak.sh",
        &format!(
            "sleep 307.1801 >/dev/null 2>&1 & echo $! >> {0}\n(setsid sleep 307.1802 >/dev/null 2>&1 & echo $! >> {0})\necho OK",
            list.display()
        ),
    );
    env.write_check(
        "app.yaml",
        &format!("x:\n  command: {}\n", script.display()),
    );
    let agent = start_agent(&env);
    let agent_pid = agent.id();
    let started = Instant::now();
    while pids(&list).len() < 6 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = pids(&list);
    let zombies = zombies_of(agent_pid);
    // Each run ends within milliseconds of writing its pids.
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<i32> = seen.iter().copied().filter(|p| !gone(*p)).collect();
    let stuck: Vec<i32> = zombies_of(agent_pid)
        .into_iter()
        .filter(|z| zombies.contains(z))
        .collect();
    stop_agent(agent);
    clean_up(&left);
    assert!(seen.len() >= 6, "three runs expected: {seen:?}");
    assert_eq!(left, Vec::<i32>::new(), "leftovers of finished runs");
    assert_eq!(stuck, Vec::<i32>::new(), "zombies not reaped");
}

// See: #18
#[test]
fn a_timed_out_plugins_grandchild_in_a_new_session_is_killed() {
    let env = Env::new();
    let list = env.path("pids");
    env.write_check(
        "app.yaml",
        &format!(
            "x:\n  command: setsid sleep 307.1803 >/dev/null 2>&1 & echo $! >> {}; sleep 30\n  timeout: 1\n",
            list.display()
        ),
    );
    let output = env.cimaa(&["agent", "--once"]);
    let left: Vec<i32> = pids(&list).into_iter().filter(|p| !gone(*p)).collect();
    clean_up(&left);
    assert_success(&output);
    assert_eq!(pids(&list).len(), 1);
    assert_eq!(left, Vec::<i32>::new());
    assert!(
        env.fault(&crate::util::check_name("app", "x#monitor-timeout"))
            .is_some()
    );
}
