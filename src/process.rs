//! Child processes in their own process group, killed as a group, with no
//! leftovers.
//!
//! Owns spawning a command line (directly when it is plain words, else
//! `/bin/sh -c COMMAND`; SPEC §4) with stdin from /dev/null, capturing
//! stdout/stderr up to a cap (the excess is read and dropped, so a chatty
//! plugin never blocks on a full pipe and never grows our memory), and the
//! timeout: on expiry the whole group gets SIGTERM, then SIGKILL after a short
//! grace. Used by command checks and the command alerter.
//!
//! No process a run starts outlives it. When the shell exits (or is killed),
//! the rest of its process group gets SIGKILL. A process that left the group
//! (`setsid`, `setpgid`) is caught through the child subreaper: `main` makes
//! the agent one (`PR_SET_CHILD_SUBREAPER`), so an orphan is re-parented to
//! the agent instead of init, and the sweep at the end of each run walks
//! /proc for the agent's children that no run spawned itself. Each is
//! attributed to a run by its process group, else by `CIMAA_RUN_ID` in its
//! environment (inherited from the shell), else as "started before run N"
//! when first seen; it is killed, with its descendants, as soon as its run
//! (or every run it may belong to) has ended, and reaped. A subreaper owns
//! all its children: `main` spawns nothing but through this module, so any
//! child the registry does not list as a live shell is such a leftover.
//! Kernels without `CONFIG_PROC_CHILDREN` (this one) have no
//! `/proc/PID/task/TID/children`, hence the walk of every /proc/PID/stat.
//!
//! tokio's process driver reaps its own children by pid (a pidfd here), never
//! with `waitpid(-1)`; the sweep likewise reaps only the zombies it judged,
//! by pid, while no spawn is in progress (`SPAWNING`), so it never takes the
//! status of a shell between its fork and its registration. Runs that end
//! together share one sweep (`SWEEPER`): a walk of /proc costs milliseconds.
//!
//! A process that is not a subreaper (the test binaries) gets the group kill
//! only: its orphans go to init, out of reach.
//!
//! If the future is dropped half-way (agent shutdown, an outer timeout such
//! as `alert_timeout`'s, even during the grace after SIGTERM) a guard kills
//! the group and makes one pass of the sweep, because tokio's `kill_on_drop`
//! would only reach `sh`; the next sweep finds whatever that pass missed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use nix::sys::prctl;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::{env, program};

/// How long a timed-out group gets between SIGTERM and SIGKILL, and how long
/// the output of an exited command may still take once its group is killed.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// How long a sweep keeps killing a run's leftovers before it gives up (a
/// process in uninterruptible sleep, or one we may not signal).
const SWEEP_LIMIT: Duration = Duration::from_secs(2);

/// Longest pause between two passes of a sweep.
const SWEEP_PAUSE: Duration = Duration::from_millis(20);

/// How long a sweep waits for other runs to end, so that one walk of /proc
/// serves them all (a walk costs about 4 ms with 110 processes here).
const SWEEP_GATHER: Duration = Duration::from_millis(10);

/// The absolute path of the running binary, for `CIMAA` in plugins'
/// environment (SPEC §14): a plugin runs `"$CIMAA" meta-check` whether or
/// not `cimaa` is on PATH. `None` when the kernel cannot say.
///
/// Resolved once, at first use: a binary replaced by an upgrade reads as
/// `PATH (deleted)` from /proc afterwards, and the path is what a plugin
/// wants (it then runs the new binary), so that suffix is dropped too.
#[must_use]
pub(crate) fn own_binary() -> Option<&'static str> {
    static PATH: std::sync::LazyLock<Option<String>> = std::sync::LazyLock::new(|| {
        let path = std::env::current_exe().ok()?;
        let path = std::path::absolute(path).ok()?;
        let text = path.to_str()?;
        Some(text.strip_suffix(" (deleted)").unwrap_or(text).to_owned())
    });
    PATH.as_deref()
}

/// What a finished (or killed) command left behind.
#[derive(Debug)]
pub(crate) struct Output {
    /// `None` when the command was killed for running past its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `command` in a new process group: directly when it is plain words
/// (SPEC §4: one exec instead of the shell's two), else with `/bin/sh -c`.
///
/// A direct run is what the shell would do: argv[0] the word as written,
/// the program found as the shell finds it (`program::locate`), the `PWD`
/// the shell exports. When the program cannot be found or started (missing,
/// not executable, a script without `#!`), the shell runs the line instead,
/// so every failure looks exactly as the shell makes it look.
///
/// # Errors
/// When the shell cannot be started at all, or waiting for it fails.
pub(crate) async fn run(
    command: &str,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
    cap: usize,
) -> std::io::Result<Output> {
    run_as(Launch::Auto, command, env, cwd, timeout, cap).await
}

/// How a command line is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Launch {
    /// Directly when it is plain words, else with `/bin/sh -c` (`run`).
    Auto,
    /// Always with `/bin/sh -c`: what `Auto` must be indistinguishable from.
    #[cfg_attr(not(test), expect(dead_code, reason = "tests compare the two ways"))]
    Shell,
}

/// `run`, started as `launch` says.
///
/// # Errors
/// As `run`.
pub(crate) async fn run_as(
    launch: Launch,
    command: &str,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
    cap: usize,
) -> std::io::Result<Output> {
    let plain = match launch {
        Launch::Auto => direct(command, cwd),
        Launch::Shell => None,
    };
    let spawned = match plain {
        Some(mut cmd) => {
            prepare(&mut cmd, env, cwd);
            Run::spawn(&mut cmd).ok()
        }
        None => None,
    };
    if let Some((child, run)) = spawned {
        let mut output = wait_capped(child, run, timeout, cap).await?;
        as_the_shell_reports(&mut output, cap);
        return Ok(output);
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command);
    prepare(&mut cmd, env, cwd);
    let (child, run) = Run::spawn(&mut cmd)?;
    wait_capped(child, run, timeout, cap).await
}

/// Makes a directly run program's death by a signal look as `/bin/sh -c`
/// reports it (dash waits for its child rather than becoming it): exit
/// status 128 + the signal, and the signal's description on stderr (none
/// for SIGINT and SIGPIPE), with ` (core dumped)` when it dumped core.
fn as_the_shell_reports(output: &mut Output, cap: usize) {
    let Some(status) = output.status else {
        return;
    };
    let Some(signal) = status.signal() else {
        return;
    };
    output.status = Some(ExitStatus::from_raw((128 + signal) << 8));
    if signal == Signal::SIGINT as i32 || signal == Signal::SIGPIPE as i32 {
        return;
    }
    let core = if status.core_dumped() {
        " (core dumped)"
    } else {
        ""
    };
    let line = format!("{}{core}\n", signal_description(signal));
    let room = cap.saturating_sub(output.stderr.len());
    output
        .stderr
        .extend_from_slice(&line.as_bytes()[..line.len().min(room)]);
}

/// A signal's description as the C library gives it (`strsignal`), which
/// is what dash prints for a command killed by it.
fn signal_description(signal: i32) -> String {
    let text = match signal {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        4 => "Illegal instruction",
        5 => "Trace/breakpoint trap",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        16 => "Stack fault",
        17 => "Child exited",
        18 => "Continued",
        19 => "Stopped (signal)",
        20 => "Stopped",
        21 => "Stopped (tty input)",
        22 => "Stopped (tty output)",
        23 => "Urgent I/O condition",
        24 => "CPU time limit exceeded",
        25 => "File size limit exceeded",
        26 => "Virtual timer expired",
        27 => "Profiling timer expired",
        28 => "Window changed",
        29 => "I/O possible",
        30 => "Power failure",
        31 => "Bad system call",
        n if n >= 34 => return format!("Real-time signal {}", n - 34),
        n => return format!("Unknown signal {n}"),
    };
    text.to_owned()
}

/// The command that runs `command` without the shell, when it is plain
/// words whose program the shell would find in a way we can repeat: a
/// word with a `/` is executed as written (relative to `cwd`, so a script
/// sees the same `$0`); any other word is looked up in `PATH`, as long as
/// every folder searched before it is absolute (a relative one is the
/// shell's business).
fn direct(command: &str, cwd: Option<&Path>) -> Option<Command> {
    let words = program::plain_words(command)?;
    let (word, args) = words.split_first()?;
    let mut cmd = if word.contains('/') {
        Command::new(word)
    } else {
        Command::new(program::search(word, std::env::var_os("PATH").as_deref())?)
    };
    cmd.arg0(word).args(args);
    if let Some(pwd) = shell_pwd(cwd) {
        cmd.env("PWD", pwd);
    }
    Some(cmd)
}

/// The `PWD` dash exports to what it runs in `cwd` (`None`: ours): the
/// inherited `PWD` when it is an absolute name of that folder, else the
/// folder's real path.
fn shell_pwd(cwd: Option<&Path>) -> Option<std::ffi::OsString> {
    let folder = match cwd {
        Some(folder) => folder.to_path_buf(),
        None => std::env::current_dir().ok()?,
    };
    let target = std::fs::metadata(&folder).ok()?;
    if let Some(inherited) = std::env::var_os("PWD") {
        let path = Path::new(&inherited);
        let normal = path.is_absolute()
            && path
                .components()
                .all(|c| !matches!(c, Component::CurDir | Component::ParentDir));
        if normal
            && std::fs::metadata(path)
                .is_ok_and(|meta| meta.dev() == target.dev() && meta.ino() == target.ino())
        {
            return Some(inherited);
        }
    }
    std::fs::canonicalize(&folder)
        .ok()
        .map(PathBuf::into_os_string)
}

/// What every run gets: stdin from /dev/null, piped output, a process
/// group of its own, the folder, the extra variables, and none of systemd's
/// notification variables (SPEC §4: a plugin must not talk to systemd in
/// the agent's name).
fn prepare(cmd: &mut Command, env: &[(&str, &str)], cwd: Option<&Path>) {
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in ["NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC"] {
        cmd.env_remove(name);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
}

/// Waits for a spawned run within `timeout`, reading its output capped.
async fn wait_capped(
    mut child: tokio::process::Child,
    mut run: Run,
    timeout: Duration,
    cap: usize,
) -> std::io::Result<Output> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let status = {
        // Read while waiting, so a full pipe never blocks the command; the
        // reading may end later than the shell (a leftover holds the pipe).
        let reading = async {
            tokio::join!(
                read_capped(stdout, cap, &mut out),
                read_capped(stderr, cap, &mut err)
            );
        };
        tokio::pin!(reading);
        let mut read_all = false;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                tokio::select! {
                    () = &mut reading, if !read_all => read_all = true,
                    status = child.wait() => break status,
                }
            }
        })
        .await;
        let status = if let Ok(status) = waited {
            run.shell_reaped();
            Some(status?)
        } else {
            run.terminate(&mut child).await;
            None
        };
        run.finish().await;
        if status.is_some() && !read_all {
            // Every writer is dead now, unless one escaped (a setuid
            // program we may not signal): then keep what was read.
            let _ = tokio::time::timeout(KILL_GRACE, &mut reading).await;
        }
        status
    };
    Ok(match status {
        Some(status) => Output {
            status: Some(status),
            stdout: out,
            stderr: err,
        },
        None => Output {
            status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        },
    })
}

/// Reads a stream to EOF into `kept`, keeping at most `cap` bytes.
async fn read_capped<R: AsyncRead + Unpin>(stream: Option<R>, cap: usize, kept: &mut Vec<u8>) {
    let Some(mut stream) = stream else {
        return;
    };
    // On the heap: an 8 KiB array would make every check's future that large.
    let mut chunk = vec![0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// Runs in progress and the shells tokio still has to reap, shared by every
/// run of this process.
struct Registry {
    /// The id the next run gets; ids only grow.
    next_run: u64,
    /// Shells spawned here and not reaped yet (pid → run): tokio's to reap.
    shells: BTreeMap<i32, u64>,
    /// Runs in progress (run → process group), until their sweep is done.
    live: BTreeMap<u64, i32>,
    /// Ended runs waiting for a sweep.
    pending: BTreeSet<u64>,
    /// Adopted processes with no readable run id (pid → `next_run` when
    /// first seen): only a run older than that can own them.
    first_seen: BTreeMap<i32, u64>,
    /// Leftovers that outlived a whole sweep's SIGKILLs (a process in
    /// uninterruptible sleep on a dead mount, a setuid helper we may not
    /// signal). Later sweeps signal them once more but no longer wait for
    /// them, or every run would wait `SWEEP_LIMIT`; they were warned about
    /// once. A pid leaves the set when it is gone.
    unkillable: BTreeSet<i32>,
}

/// Taken by the one sweep in progress; a run waiting for it finds, once it
/// has it, that the previous sweep took care of it, or sweeps for every run
/// then waiting.
static SWEEPER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held shared by every spawn until its shell is registered, and exclusive
/// by a sweep deciding which zombies to reap: a shell between its fork and
/// its registration is never taken for a leftover. Always taken before
/// `REGISTRY`.
static SPAWNING: RwLock<()> = RwLock::new(());

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_run: 1,
    shells: BTreeMap::new(),
    live: BTreeMap::new(),
    pending: BTreeSet::new(),
    first_seen: BTreeMap::new(),
    unkillable: BTreeSet::new(),
});

/// The registry; a panic while holding it leaves plain maps, still usable.
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether orphans come to us (`main` made the process a child subreaper).
fn adopts_orphans() -> bool {
    prctl::get_child_subreaper().unwrap_or(false)
}

/// One run: its id, its process group, and the cleanup owed when dropped.
struct Run {
    id: u64,
    /// The shell's pid, which is also its group's id.
    pgid: Option<i32>,
    /// The shell while it is registered (not reaped yet).
    shell: Option<i32>,
    /// The group was killed and the run's leftovers swept.
    finished: bool,
}

impl Run {
    /// Spawns `cmd` as a new run, registered before anything can reap it.
    fn spawn(cmd: &mut Command) -> std::io::Result<(tokio::process::Child, Run)> {
        let _spawning = SPAWNING.read().unwrap_or_else(PoisonError::into_inner);
        let id = {
            let mut registry = registry();
            registry.next_run += 1;
            registry.next_run - 1
        };
        cmd.env(env::RUN_ID, format!("{}.{id}", std::process::id()));
        let child = cmd.spawn()?;
        let pgid = child.id().and_then(|pid| i32::try_from(pid).ok());
        if let Some(pid) = pgid {
            let mut registry = registry();
            registry.shells.insert(pid, id);
            registry.live.insert(id, pid);
        }
        Ok((
            child,
            Run {
                id,
                pgid,
                shell: pgid,
                finished: false,
            },
        ))
    }

    /// tokio has reaped the shell: its pid is no longer ours to protect.
    fn shell_reaped(&mut self) {
        if let Some(shell) = self.shell.take() {
            let mut registry = registry();
            if registry.shells.get(&shell) == Some(&self.id) {
                registry.shells.remove(&shell);
            }
        }
    }

    /// SIGTERM to the group, SIGKILL after the grace, then reaps the shell.
    /// The group stays armed for `Drop` until the SIGKILL is sent.
    async fn terminate(&mut self, child: &mut tokio::process::Child) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, Signal::SIGTERM);
            tokio::time::sleep(KILL_GRACE).await;
            signal_group(pgid, Signal::SIGKILL);
        }
        if let Ok(Ok(_)) = tokio::time::timeout(KILL_GRACE, child.wait()).await {
            self.shell_reaped();
        }
    }

    /// Kills what is left of the group and sweeps the run's other leftovers.
    async fn finish(&mut self) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, Signal::SIGKILL);
        }
        if adopts_orphans() {
            registry().pending.insert(self.id);
            let _turn = SWEEPER.lock().await;
            if registry().pending.contains(&self.id) {
                tokio::time::sleep(SWEEP_GATHER).await;
                let batch = registry().take_pending();
                sweep(&batch).await;
                let mut registry = registry();
                for id in batch.keys() {
                    registry.live.remove(id);
                }
            }
        }
        self.end();
    }

    /// Leaves the registry; the run's leftovers, if any, become stale.
    fn end(&mut self) {
        self.finished = true;
        let mut registry = registry();
        if let Some(shell) = self.shell.take()
            && registry.shells.get(&shell) == Some(&self.id)
        {
            registry.shells.remove(&shell);
        }
        registry.live.remove(&self.id);
        registry.pending.remove(&self.id);
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(pgid) = self.pgid {
                signal_group(pgid, Signal::SIGKILL);
            }
            // One pass, since `drop` cannot wait: what survives it, or is
            // adopted later, carries a run id no longer live, which the next
            // sweep kills; the zombies it leaves, the next sweep reaps.
            if adopts_orphans() {
                let table = scan();
                let batch = self.pgid.map(|pgid| (self.id, pgid)).into_iter().collect();
                let doomed = judge(&table, &batch);
                for pid in doomed {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            self.end();
        }
    }
}

/// Signals a whole process group. A group that is already gone only yields
/// ESRCH, which is what we want then, so the result is ignored.
fn signal_group(pgid: i32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// Kills the leftovers of the ended runs in `batch` (run → group), and
/// stale ones of runs already gone, until none is alive, reaping adopted
/// zombies on the way.
async fn sweep(batch: &BTreeMap<u64, i32>) {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let table = scan();
        let doomed = judge(&table, batch);
        for pid in &doomed {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let waiting: Vec<i32> = {
            let mut registry = registry();
            registry
                .unkillable
                .retain(|pid| table.iter().any(|p| p.pid == *pid && !p.zombie));
            doomed
                .into_iter()
                .filter(|pid| !registry.unkillable.contains(pid))
                .collect()
        };
        if waiting.is_empty() {
            return;
        }
        if started.elapsed() > SWEEP_LIMIT {
            tracing::warn!(
                pids = ?waiting,
                "leftover processes of a plugin or alerter command survive SIGKILL; no longer waiting for them"
            );
            registry().unkillable.extend(waiting);
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(SWEEP_PAUSE);
    }
}

/// `Registry::judge` with no spawn in progress.
fn judge(table: &[Proc], batch: &BTreeMap<u64, i32>) -> Vec<i32> {
    let _no_spawn = SPAWNING.write().unwrap_or_else(PoisonError::into_inner);
    registry().judge(table, batch)
}

/// Whose an adopted process is, as far as a sweep is concerned.
#[derive(Debug, PartialEq)]
enum Owner {
    /// A run's of the sweep's batch, or a run's that has ended: kill it.
    Doomed,
    /// Maybe another live run's: leave it to that run's sweep.
    Other,
}

impl Registry {
    /// The ended runs waiting for a sweep (run → group), no longer waiting.
    fn take_pending(&mut self) -> BTreeMap<u64, i32> {
        let pending = std::mem::take(&mut self.pending);
        pending
            .into_iter()
            .filter_map(|id| self.live.get(&id).map(|pgid| (id, *pgid)))
            .collect()
    }

    /// Reaps this process's adopted zombies and returns the live processes
    /// to kill for the ended runs of `batch` (run → group): their groups,
    /// their adopted leftovers, stale ones, and all their descendants.
    fn judge(&mut self, table: &[Proc], batch: &BTreeMap<u64, i32>) -> Vec<i32> {
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        // A batch's group id, unless a live run's shell has reused the pid.
        let groups: BTreeSet<i32> = batch
            .values()
            .copied()
            .filter(|pgid| !self.in_live_group(*pgid, batch))
            .collect();
        let mut doomed = Vec::new();
        let mut adopted = BTreeSet::new();
        for p in table {
            if p.ppid == me && !self.shells.contains_key(&p.pid) {
                adopted.insert(p.pid);
                if p.zombie {
                    // No spawn is in progress (see `SPAWNING`), so this is
                    // no shell before its registration but a leftover.
                    if let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                        waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG))
                    {
                        self.first_seen.remove(&p.pid);
                    }
                    continue;
                }
                if self.owner(p, me, batch) == Owner::Doomed {
                    doomed.push(p.pid);
                }
            } else if !p.zombie && groups.contains(&p.pgrp) {
                doomed.push(p.pid);
            }
        }
        self.first_seen.retain(|pid, _| adopted.contains(pid));
        with_descendants(table, doomed)
    }

    /// Whether `pgid` is the group of a live run outside `batch`.
    fn in_live_group(&self, pgid: i32, batch: &BTreeMap<u64, i32>) -> bool {
        self.live
            .iter()
            .any(|(id, group)| *group == pgid && !batch.contains_key(id))
    }

    fn owner(&mut self, p: &Proc, me: i32, batch: &BTreeMap<u64, i32>) -> Owner {
        if self.in_live_group(p.pgrp, batch) {
            return Owner::Other;
        }
        if batch.values().any(|pgid| *pgid == p.pgrp) {
            return Owner::Doomed;
        }
        match run_id_of(p.pid, me) {
            Some(id) if !batch.contains_key(&id) && self.live.contains_key(&id) => Owner::Other,
            Some(_) => Owner::Doomed,
            None => {
                let horizon = *self.first_seen.entry(p.pid).or_insert(self.next_run);
                if self
                    .live
                    .range(..horizon)
                    .any(|(id, _)| !batch.contains_key(id))
                {
                    Owner::Other
                } else {
                    Owner::Doomed
                }
            }
        }
    }
}

/// `roots` and every live descendant of them in `table`.
fn with_descendants(table: &[Proc], roots: Vec<i32>) -> Vec<i32> {
    if roots.is_empty() {
        return roots;
    }
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in table.iter().filter(|p| !p.zombie) {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut all: BTreeSet<i32> = roots.iter().copied().collect();
    let mut todo = roots;
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if all.insert(child) {
                todo.push(child);
            }
        }
    }
    all.into_iter().collect()
}

/// One line of the process table.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    zombie: bool,
}

/// Every process on the host, from /proc/PID/stat (those that vanish while
/// it is read are left out).
fn scan() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut table = Vec::new();
    let mut path = String::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        path.clear();
        path.push_str("/proc/");
        path.push_str(name.to_str().unwrap_or_default());
        path.push_str("/stat");
        if let Some(p) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|stat| parse_stat(pid, &stat))
        {
            table.push(p);
        }
    }
    table
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid pgrp ...`; `comm` may
/// hold spaces and parentheses, so the fields start after the last `)`.
fn parse_stat(pid: i32, stat: &str) -> Option<Proc> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let parent = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    if state == "X" {
        return None;
    }
    Some(Proc {
        pid,
        ppid: parent,
        pgrp,
        zombie: state == "Z",
    })
}

/// The run that started `pid`, from `CIMAA_RUN_ID=ME.RUN` in its environment;
/// `None` when unreadable, absent, or set by another agent.
fn run_id_of(pid: i32, me: i32) -> Option<u64> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{}=", env::RUN_ID);
    let value = environ
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))?;
    let (agent, run) = std::str::from_utf8(value).ok()?.split_once('.')?;
    (agent.parse::<i32>().ok()? == me)
        .then(|| run.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes this test binary a subreaper, as `main` does: no test in `src/`
    /// spawns a child other than through `run`.
    fn subreaper() {
        prctl::set_child_subreaper(true).unwrap();
    }

    /// Neither running nor a zombie.
    fn gone(pid: i32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    fn pid_in(text: &[u8]) -> i32 {
        String::from_utf8_lossy(text).trim().parse().unwrap()
    }

    async fn sh(command: &str, timeout: Duration) -> Output {
        run(command, &[], None, timeout, 1000).await.unwrap()
    }

    // See: #18
    #[tokio::test]
    async fn a_background_child_is_killed_and_reaped_when_the_shell_exits() {
        subreaper();
        let out = sh(
            "sleep 207.1801 >/dev/null 2>&1 & echo $!; exit 0",
            Duration::from_secs(5),
        )
        .await;
        assert!(out.status.unwrap().success());
        assert!(gone(pid_in(&out.stdout)));
    }

    // See: #18
    #[tokio::test]
    async fn a_grandchild_in_a_new_session_is_killed_and_reaped_when_the_shell_exits() {
        subreaper();
        let out = sh(
            "(setsid sleep 207.1802 >/dev/null 2>&1 & echo $!); echo OK",
            Duration::from_secs(5),
        )
        .await;
        let pid = pid_in(out.stdout.split(|b| *b == b'\n').next().unwrap());
        assert!(gone(pid));
    }

    // See: #18
    #[tokio::test]
    async fn a_grandchild_in_a_new_session_is_killed_on_timeout() {
        subreaper();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pid");
        let out = sh(
            &format!(
                "setsid sleep 207.1803 >/dev/null 2>&1 & echo $! > {}; sleep 30",
                file.display()
            ),
            Duration::from_millis(300),
        )
        .await;
        assert!(out.status.is_none());
        assert!(gone(pid_in(&std::fs::read(file).unwrap())));
    }

    // See: #18
    #[tokio::test]
    async fn a_group_ignoring_term_is_killed_when_dropped_during_the_grace() {
        subreaper();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pid");
        let command = format!(
            "trap '' TERM; sleep 207.1804 & echo $! > {}; wait",
            file.display()
        );
        // The outer timeout drops the run half-way through its grace.
        let dropped = tokio::time::timeout(
            Duration::from_millis(400),
            sh(&command, Duration::from_millis(200)),
        )
        .await;
        assert!(dropped.is_err());
        let pid = pid_in(&std::fs::read(file).unwrap());
        // Dead; the next run's sweep reaps it.
        let _ = sh("true", Duration::from_secs(5)).await;
        assert!(gone(pid));
    }

    // See: #18
    #[tokio::test]
    async fn a_leftover_of_a_live_run_outlives_another_run_but_not_its_own() {
        subreaper();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pid");
        // The helper is adopted at once (its subshell exits) and must live
        // while its run does, whatever other runs end meanwhile.
        let long = format!(
            "(setsid sleep 207.1805 >/dev/null 2>&1 & echo $! > {0}); sleep 1; kill -0 $(cat {0}) && echo alive",
            file.display()
        );
        let (long, ()) = tokio::join!(sh(&long, Duration::from_secs(5)), async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = sh("(setsid sleep 1 >/dev/null 2>&1 &)", Duration::from_secs(5)).await;
            }
        });
        assert_eq!(String::from_utf8_lossy(&long.stdout).trim(), "alive");
        assert!(gone(pid_in(&std::fs::read(file).unwrap())));
    }

    // See: #18
    #[tokio::test]
    async fn a_leftover_with_no_run_id_is_killed_once_every_run_it_may_belong_to_ended() {
        subreaper();
        let out = sh(
            "(env -i setsid sleep 207.1806 >/dev/null 2>&1 & echo $!)",
            Duration::from_secs(5),
        )
        .await;
        let pid = pid_in(&out.stdout);
        // Other tests' runs may be live meanwhile; later runs sweep it.
        for _ in 0..50 {
            if gone(pid) {
                break;
            }
            let _ = sh("true", Duration::from_secs(5)).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone(pid));
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let stat = "42 (a) b (c) Z 7 42 42 0 -1 4194560";
        assert_eq!(
            parse_stat(42, stat),
            Some(Proc {
                pid: 42,
                ppid: 7,
                pgrp: 42,
                zombie: true
            })
        );
        assert_eq!(parse_stat(1, "1 (x) X 0 0"), None);
        assert_eq!(parse_stat(1, "garbage"), None);
    }

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

    #[test]
    fn own_binary_is_an_absolute_path_to_an_existing_file() {
        let path = Path::new(own_binary().unwrap());
        assert!(path.is_absolute(), "{}", path.display());
        assert!(path.is_file(), "{}", path.display());
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
