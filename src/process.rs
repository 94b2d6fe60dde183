//! Child processes in their own process group, killed as a group.
//!
//! Owns spawning `/bin/sh -c COMMAND` with stdin from /dev/null, capturing
//! stdout/stderr up to a cap (the excess is read and dropped, so a chatty
//! plugin never blocks on a full pipe and never grows our memory), and the
//! timeout: on expiry the whole group gets SIGTERM, then SIGKILL after a short
//! grace. A guard kills the group if the future is dropped half-way (agent
//! shutdown, an outer timeout), because tokio's `kill_on_drop` would only
//! reach `sh` and leave grandchildren running.
//! Used by command checks and the command alerter.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How long a timed-out group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// What a finished (or killed) command left behind.
#[derive(Debug)]
pub(crate) struct Output {
    /// `None` when the command was killed for running past its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `command` with `/bin/sh -c` in a new process group.
///
/// # Errors
/// When the shell cannot be started at all.
pub(crate) async fn run(
    command: &str,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
    cap: usize,
) -> std::io::Result<Output> {
    let mut cmd = Command::new("/bin/sh");
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn()?;
    // The group id is the child's pid because of `process_group(0)`.
    let guard = GroupGuard {
        pgid: child.id().and_then(|id| i32::try_from(id).ok()),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let (out, err, status) = tokio::join!(
            read_capped(stdout, cap),
            read_capped(stderr, cap),
            child.wait()
        );
        (out, err, status)
    };
    if let Ok((stdout, stderr, status)) = tokio::time::timeout(timeout, work).await {
        guard.disarm();
        Ok(Output {
            status: Some(status?),
            stdout,
            stderr,
        })
    } else {
        guard.terminate().await;
        // Reap the shell so no zombie is left; the group is dead by now.
        let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
        Ok(Output {
            status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }
}

/// Reads a stream to EOF, keeping at most `cap` bytes.
async fn read_capped<R: AsyncRead + Unpin>(stream: Option<R>, cap: usize) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    // On the heap: an 8 KiB array would make every check's future that large.
    let mut chunk = vec![0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// Kills a process group when dropped while armed.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn disarm(mut self) {
        self.pgid = None;
    }

    async fn terminate(mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, Signal::SIGTERM);
            tokio::time::sleep(KILL_GRACE).await;
            signal_group(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, Signal::SIGKILL);
        }
    }
}

/// Signals a whole process group. A group that is already gone only yields
/// ESRCH, which is what we want then, so the result is ignored.
fn signal_group(pgid: i32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid), signal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_beyond_the_cap_is_dropped() {
        let out = run(
            "head -c 100000 /dev/zero",
            &[],
            None,
            Duration::from_secs(5),
            1000,
        )
        .await
        .unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.status.unwrap().success());
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        let out = run("sleep 5", &[], None, Duration::from_millis(100), 1000)
            .await
            .unwrap();
        assert!(out.status.is_none());
    }

    #[tokio::test]
    async fn environment_reaches_the_command() {
        let out = run(
            "printf %s \"$X\"",
            &[("X", "hello")],
            None,
            Duration::from_secs(5),
            100,
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, b"hello");
    }
}
