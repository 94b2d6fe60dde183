#!/usr/bin/env python3
"""Soak driver for issue #18: the real `cimaa agent` under hostile conditions.

Runs the binary with CHECKS command checks at `base_interval: 1` for MINUTES
while, all the time:
  - each plugin picks its outcome at random (OK, WARNING, exit 2, exit 3, or
    a timeout: it sleeps past the check timeout and is killed), and keeps it
    for about ten runs, so failures escalate and page, then resolve;
  - SIGHUP every HUP_S seconds (a rescan of the check directory);
  - the SQLite database is locked for 1..LOCK_MAX_S seconds at random
    (another process holding `BEGIN EXCLUSIVE`);
  - the alerter is a `command` alerter that fails at random (exit 1, or
    runs past `alert_timeout`).
Every SAMPLE_S seconds it reads from /proc the agent's RSS, open file
descriptors, threads, child processes, zombie children and plugin processes
older than LEAK_AGE_S (leaked). At the end it freezes the plugins (each
repeats its last outcome), waits for the database to settle and compares
the agent's faults with each plugin's last outcome; then SIGTERM, and the
agent must exit and remove its rows.

Verdicts (all must hold for `ok`):
  flat      RSS (median), fds and threads (floor: the minimum) of the last
            minute within 10% (or a small absolute slack) of the same for
            the first minute after warm-up;
  zombies   no zombie child of the agent seen in two samples in a row;
  leaks     no plugin process older than LEAK_AGE_S;
  faults    the database's faults match the plugins' last outcomes;
  shutdown  the agent exits on SIGTERM within SHUTDOWN_MAX_S.

Prints a human summary, and JSON with --json FILE. Used by bench/soak.sh
(full length) and tests/soak.rs (two minutes, fewer checks).
"""

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

PLUGIN = r"""#!/bin/sh
# Soak plugin: keeps its last outcome (9 runs in 10) or picks one from its
# pid, records it, then acts it out.
# dash builtins only (no fork) except the timeout's sleep.
n=$1
state=%(state)s
if [ -e "$state/freeze" ]; then
  outcome=ok
  [ -e "$state/$n" ] && read outcome < "$state/$n"
else
  h=$(( ($$ * 2654435761 + n * 40503) %% 1000000 ))
  r=$(( h %% 1000 ))
  outcome=
  # Mostly repeat the last outcome, so failures last long enough to
  # escalate to CRITICAL and page (and later resolve).
  if [ $(( h / 1000 )) -lt %(repeat)d ] && [ -e "$state/$n" ]; then read outcome < "$state/$n"
  elif [ $r -lt %(ok)d ]; then outcome=ok
  elif [ $r -lt %(warning)d ]; then outcome=warning
  elif [ $r -lt %(error)d ]; then outcome=error
  elif [ $r -lt %(unknown)d ]; then outcome=unknown
  else outcome=timeout
  fi
  [ -n "$outcome" ] || outcome=ok
  printf '%%s\n' "$outcome" > "$state/$n"
fi
case $outcome in
  ok) echo "OK - check $n | value=$n;;;0" ; exit 0 ;;
  warning) echo "WARNING - check $n" ; exit 1 ;;
  error) echo "CRITICAL - check $n" ; exit 2 ;;
  unknown) echo "UNKNOWN - check $n" ; exit 3 ;;
  timeout) exec sleep %(sleep)d ;;
esac
"""

ALERTER = r"""#!/bin/sh
# Soak alerter: fails at random (exit 1, or runs past alert_timeout).
r=$(( ($$ * 2654435761) %% 100 ))
echo "$r $CIMAA_ACTION $CIMAA_NAME" >> %(log)s
if [ $r -lt %(fail)d ]; then exit 1; fi
if [ $r -lt %(slow)d ]; then exec sleep 3; fi
exit 0
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="the cimaa binary")
    p.add_argument("--dir", required=True, help="a fresh working directory")
    p.add_argument("--checks", type=int, default=2000)
    p.add_argument("--files", type=int, default=20, help="check files the checks are spread over")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--warmup-s", type=float, default=None, help="default: 20%% of the run, at most 120 s")
    p.add_argument("--sample-s", type=float, default=5)
    p.add_argument("--hup-s", type=float, default=10)
    p.add_argument("--lock-every-s", type=float, default=15, help="mean time between database locks")
    p.add_argument("--lock-max-s", type=float, default=5)
    p.add_argument("--settle-s", type=float, default=60, help="at most this long for the faults to match")
    p.add_argument("--shutdown-max-s", type=float, default=10)
    p.add_argument("--leak-age-s", type=float, default=15)
    p.add_argument("--tolerance", type=float, default=0.10)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", help="write the result as JSON here")
    return p.parse_args()


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def setup(args):
    d = args.dir
    state = os.path.join(d, "state")
    checks = os.path.join(d, "checks")
    for sub in (state, checks):
        os.makedirs(sub, exist_ok=True)
    # Per mille: 85% OK, 5% WARNING, 5% exit 2, 3% exit 3, 2% timeout.
    write(os.path.join(d, "plugin.sh"),
          PLUGIN % {"state": state, "ok": 850, "warning": 900, "error": 950, "unknown": 980, "sleep": 5, "repeat": 900},
          0o755)
    write(os.path.join(d, "alert.sh"),
          ALERTER % {"log": os.path.join(d, "alerts.log"), "fail": 30, "slow": 35}, 0o755)
    per_file = -(-args.checks // args.files)
    for f in range(args.files):
        lines = []
        for n in range(f * per_file, min(args.checks, (f + 1) * per_file)):
            lines.append("c%d:\n  command: %s/plugin.sh %d\n" % (n, d, n))
        write(os.path.join(checks, "f%02d.yaml" % f), "".join(lines))
    db = os.path.join(d, "soak.db")
    write(os.path.join(d, "agent.yaml"),
          "agent:\n  name: soak\n  directory: checks\n  base_interval: 1\n  logging: warn\n"
          "database:\n  type: sqlite\n  path: soak.db\n"
          "alerter:\n  type: command\n  command: %s/alert.sh\n" % d)
    return db, state


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def all_procs():
    """pid -> (ppid, state, starttime in clock ticks, cmdline)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        procs[pid] = (int(rest[1]), rest[0], int(rest[19]), cmdline)
    return procs


def sample(pid, plugin_path, leak_age_s):
    status = proc_status(pid)
    fds = len(os.listdir("/proc/%d/fd" % pid))
    procs = all_procs()
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    children = [p for p, (ppid, _, _, _) in procs.items() if ppid == pid]
    zombies = sorted(p for p in children if procs[p][1] == "Z")
    leaked = sorted(p for p, (_, state, start, cmd) in procs.items()
                    if plugin_path in cmd and state != "Z" and uptime - start / hz > leak_age_s)
    return {
        "t": time.time(),
        "rss_kb": int(status["VmRSS"].split()[0]),
        "fds": fds,
        "threads": int(status["Threads"]),
        "children": len(children),
        "zombies": zombies,
        "leaked": leaked,
    }


class Locker(threading.Thread):
    """Holds `BEGIN EXCLUSIVE` on the database for 1..max seconds at random."""

    def __init__(self, db, every_s, max_s, rng):
        super().__init__(daemon=True)
        self.db, self.every_s, self.max_s, self.rng = db, every_s, max_s, rng
        self.stop = threading.Event()
        self.locks = 0
        self.locked_s = 0.0
        self.failed = 0

    def run(self):
        while not self.stop.wait(self.rng.expovariate(1 / self.every_s)):
            hold = self.rng.uniform(1, self.max_s)
            # The lock itself is taken by a separate `python3 -c`, as an
            # operator's sqlite3 shell would hold it: another process.
            code = ("import sqlite3,time,sys; c=sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None); "
                    "c.execute('BEGIN EXCLUSIVE'); time.sleep(float(sys.argv[2])); c.execute('COMMIT')")
            try:
                r = subprocess.run([sys.executable, "-c", code, self.db, str(hold)], timeout=60,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    self.locks += 1
                    self.locked_s += hold
                else:
                    self.failed += 1
            except subprocess.TimeoutExpired:
                self.failed += 1


def last_outcomes(state_dir, checks):
    """Check number -> the outcome its plugin last recorded (`ok` if it never ran)."""
    outcomes = {}
    for n in range(checks):
        try:
            with open(os.path.join(state_dir, str(n))) as f:
                outcomes[n] = f.read().strip() or "ok"
        except FileNotFoundError:
            outcomes[n] = "ok"
    return outcomes


def compare(db, state_dir, checks, per_file):
    """Mismatches between the database's faults and the plugins' last outcomes."""
    outcomes = last_outcomes(state_dir, checks)
    expect = {}
    for n, outcome in outcomes.items():
        name = "//soak/f%02d/c%d" % (n // per_file, n)
        if outcome == "warning":
            expect[name] = {30}
        elif outcome in ("error", "unknown"):
            expect[name] = {40, 50}
        elif outcome == "timeout":
            # CRITICAL once it has timed out `monitor_retry` runs in a row.
            expect[name + "#monitor-timeout"] = {40, 50}
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        rows = c.execute("SELECT name, severity FROM faults WHERE agent = 'soak'").fetchall()
        c.close()
    except sqlite3.Error as e:
        return ["cannot read the database: %s" % e], outcomes
    got = {}
    for name, severity in rows:
        got[name] = severity
    problems = []
    for name, allowed in sorted(expect.items()):
        if name not in got:
            problems.append("missing %s (want severity %s)" % (name, sorted(allowed)))
        elif got[name] not in allowed:
            problems.append("%s has severity %s, want %s" % (name, got[name], sorted(allowed)))
    for name in sorted(set(got) - set(expect)):
        # Many checks going critical in one tick fold into the agent's own
        # storm alert (SPEC §10), stored as `soak#storm` until resolved.
        if name == "soak#storm" or name.startswith("soak#storm-"):
            continue
        problems.append("unexpected %s (severity %s)" % (name, got[name]))
    return problems, outcomes


def flat(samples, key, tolerance, slack, statistic):
    """(ok, baseline, end, growth): the first minute after warm-up against the
    last minute, each summed up by `statistic`."""
    if len(samples) < 2:
        return True, None, None, 0.0
    t0, t1 = samples[0]["t"], samples[-1]["t"]
    window = min(60.0, (t1 - t0) / 3)
    first = [s[key] for s in samples if s["t"] <= t0 + window]
    last = [s[key] for s in samples if s["t"] >= t1 - window]
    base, end = statistic(first), statistic(last)
    growth = (end - base) / base if base else 0.0
    return end <= max(base * (1 + tolerance), base + slack), base, end, growth


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    db, state = setup(args)
    per_file = -(-args.checks // args.files)
    duration = args.minutes * 60
    warmup = args.warmup_s if args.warmup_s is not None else min(120.0, duration * 0.2)
    log = open(os.path.join(args.dir, "agent.log"), "w")
    agent = subprocess.Popen([args.binary, "-c", os.path.join(args.dir, "agent.yaml"), "agent"],
                             cwd=args.dir, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    locker = Locker(db, args.lock_every_s, args.lock_max_s, rng)
    samples, hups, died = [], 0, None
    start = time.time()
    next_hup = start + args.hup_s
    next_sample = start + args.sample_s
    locker_started = False
    plugin_path = os.path.join(args.dir, "plugin.sh")
    try:
        while time.time() - start < duration:
            if agent.poll() is not None:
                died = agent.returncode
                break
            now = time.time()
            if not locker_started and os.path.exists(db):
                locker.start()
                locker_started = True
            if now >= next_hup:
                agent.send_signal(signal.SIGHUP)
                hups += 1
                next_hup += args.hup_s
            if now >= next_sample:
                try:
                    s = sample(agent.pid, plugin_path, args.leak_age_s)
                    s["elapsed"] = round(now - start, 1)
                    samples.append(s)
                except (OSError, KeyError, ValueError):
                    pass
                next_sample += args.sample_s
            time.sleep(0.2)
        locker.stop.set()
        if locker_started:
            locker.join(timeout=args.lock_max_s + 35)
        # Freeze: every plugin repeats its last outcome from now on.
        write(os.path.join(state, "freeze"), "")
        problems, outcomes = ["agent died"], {}
        if died is None:
            deadline = time.time() + args.settle_s
            while True:
                time.sleep(3)
                problems, outcomes = compare(db, state, args.checks, per_file)
                if not problems or time.time() > deadline or agent.poll() is not None:
                    break
        shutdown_s = None
        if agent.poll() is None:
            t = time.time()
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=args.shutdown_max_s * 3)
                shutdown_s = round(time.time() - t, 2)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        log.close()

    after = [s for s in samples if s["elapsed"] >= warmup]
    result = {
        "checks": args.checks, "minutes": args.minutes, "warmup_s": warmup,
        "samples": len(samples), "hups": hups, "locks": locker.locks,
        "locked_s": round(locker.locked_s, 1), "lock_failures": locker.failed,
        "died": died, "shutdown_s": shutdown_s,
    }
    verdicts = {}
    # RSS by its median; fds and threads by their floor (the window's
    # minimum): plugins in flight each hold pipes and the blocking pool's
    # threads come and go, while a leak raises the floor.
    slack = {"rss_kb": (2048, statistics.median), "fds": (4, min), "threads": (2, min)}
    for key in ("rss_kb", "fds", "threads", "children"):
        values = [s[key] for s in after]
        if key in slack:
            ok, base, end, growth = flat(after, key, args.tolerance, *slack[key])
            verdicts["flat_" + key] = ok
            result[key] = {"baseline": base, "end": end, "growth_pct": round(growth * 100, 1),
                           "min": min(values) if values else None, "max": max(values) if values else None}
        else:
            result[key] = {"median": statistics.median(values) if values else None,
                           "max": max(values) if values else None}
    persistent = set()
    for a, b in zip(samples, samples[1:]):
        persistent |= set(a["zombies"]) & set(b["zombies"])
    result["zombies_seen"] = sum(len(s["zombies"]) for s in samples)
    result["zombies_persistent"] = sorted(persistent)
    verdicts["no_zombie"] = not persistent
    leaked = sorted({p for s in samples for p in s["leaked"]})
    result["leaked_plugins"] = leaked
    verdicts["no_leak"] = not leaked
    result["fault_mismatches"] = len(problems)
    result["fault_mismatch_examples"] = problems[:10]
    counts = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    result["last_outcomes"] = counts
    verdicts["faults_match"] = not problems
    verdicts["alive"] = died is None
    verdicts["shutdown"] = shutdown_s is not None and shutdown_s <= args.shutdown_max_s
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        left = c.execute("SELECT COUNT(*) FROM faults WHERE agent = 'soak'").fetchone()[0]
        left += c.execute("SELECT COUNT(*) FROM heartbeats WHERE agent = 'soak'").fetchone()[0]
        c.close()
    except sqlite3.Error:
        left = None
    result["rows_left_after_sigterm"] = left
    verdicts["removed_on_sigterm"] = left == 0
    try:
        with open(os.path.join(args.dir, "alerts.log")) as f:
            result["alerter_calls"] = sum(1 for _ in f)
    except FileNotFoundError:
        result["alerter_calls"] = 0
    result["verdicts"] = verdicts
    result["ok"] = all(verdicts.values())
    result["series"] = [{k: s[k] for k in ("elapsed", "rss_kb", "fds", "threads", "children")}
                        for s in samples]

    print("soak: %d checks, %.1f min, warm-up %.0f s, %d samples, %d SIGHUPs, %d locks (%.0f s locked, %d failed)"
          % (args.checks, args.minutes, warmup, len(samples), hups, locker.locks, locker.locked_s, locker.failed))
    for key in ("rss_kb", "fds", "threads"):
        r = result[key]
        print("  %-8s baseline %s end %s growth %s%% (min %s max %s) %s"
              % (key, r["baseline"], r["end"], r["growth_pct"], r["min"], r["max"],
                 "flat" if verdicts["flat_" + key] else "NOT FLAT"))
    print("  children median %s max %s" % (result["children"]["median"], result["children"]["max"]))
    print("  zombies seen %d, persistent %s; leaked plugins %s"
          % (result["zombies_seen"], result["zombies_persistent"], leaked))
    print("  last outcomes %s; fault mismatches %d %s"
          % (counts, len(problems), problems[:5]))
    print("  alerter calls %s; shutdown %s s; rows left after SIGTERM %s; died %s"
          % (result["alerter_calls"], shutdown_s, left, died))
    print("  verdicts %s -> %s" % (verdicts, "ok" if result["ok"] else "FAILED"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
