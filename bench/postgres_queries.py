#!/usr/bin/env python3
"""PostgreSQL statements and transactions per agent per tick (issue #13).

Runs one real `cimaa agent` (base_interval 1, splay 0, CHECKS command
checks driven by one flag file) on a fresh database of a throwaway
PostgreSQL server whose log this script reads: it turns on
`log_statement = all` for that database and a `log_line_prefix` naming the
process and database, then counts, per phase, the statements the agent's
connections ran and its transactions (an explicit BEGIN ... COMMIT is one;
a statement outside one is one more). Ticks are counted by the heartbeat
writes. Needs a superuser URL (the server scripts/test.sh starts has one).

Phases, after 5 s of warm-up: steady (STEADY s, every check OK), incident
(the flag created: every check CRITICAL; INCIDENT s), recovery (the flag
removed; INCIDENT s). Usage:

  cargo build
  python3 bench/postgres_queries.py --url postgres://cimaa_test@127.0.0.1:PORT/postgres \\
      --log /path/to/server.log --repeat 3
"""

import argparse
import collections
import os
import re
import subprocess
import tempfile
import time

PREFIX = "%p|%d|"


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", url, "-c", sql], check=True, stdout=subprocess.DEVNULL)


def entries(lines):
    """(pid, database, sql) of each statement logged, continuation lines
    (the rest of a multi-line statement) joined."""
    pattern = re.compile(r"^(\d+)\|([^|]*)\|.*?LOG:\s+(?:statement|execute [^:]*): ?(.*)$")
    current = None
    for line in lines:
        if line.startswith("\t") and current is not None:
            current[2] += " " + line.strip()
            continue
        if current is not None:
            yield current
            current = None
        match = pattern.match(line)
        if match:
            current = [match.group(1), match.group(2), match.group(3).strip()]
    if current is not None:
        yield current


def count(lines, database):
    """Statements, transactions and ticks of `database` in log `lines`."""
    statements = 0
    transactions = 0
    ticks = 0
    open_tx = collections.defaultdict(bool)
    for pid, db, sql in entries(lines):
        if db != database:
            continue
        sql = sql.strip()
        word = sql.split()[0].upper() if sql else ""
        if word in ("BEGIN", "START"):
            open_tx[pid] = True
            transactions += 1
            continue
        if word in ("COMMIT", "ROLLBACK"):
            open_tx[pid] = False
            continue
        statements += 1
        if not open_tx[pid]:
            transactions += 1
        if sql.startswith("INSERT INTO heartbeats"):
            ticks += 1
    return statements, transactions, ticks


def run_once(args, number):
    database = f"qcount_{os.getpid()}_{number}"
    psql(args.url, f"CREATE DATABASE {database}")
    psql(args.url, f"ALTER DATABASE {database} SET log_statement = 'all'")
    base = args.url.rsplit("/", 1)[0]
    url = f"{base}/{database}"
    with tempfile.TemporaryDirectory() as folder:
        flag = os.path.join(folder, "down")
        os.mkdir(os.path.join(folder, "checks.d"))
        with open(os.path.join(folder, "checks.d", "app.yaml"), "w") as checks:
            for index in range(args.checks):
                checks.write(
                    f"c{index}:\n  command: \"if [ -e {flag} ]; then echo 'CRITICAL - down'; exit 2; fi; echo OK\"\n  retry: 0\n"
                )
        os.utime(os.path.join(folder, "checks.d", "app.yaml"), (time.time() - 120, time.time() - 120))
        with open(os.path.join(folder, "agent.yaml"), "w") as config:
            config.write(
                "agent:\n  name: bench\n  directory: checks.d\n  state_dir: state\n  base_interval: 1\n  splay: 0\n"
                f"database:\n  type: postgres\n  url: \"{url}\"\n"
                "alerter:\n  type: file\n  path: alerts.jsonl\n"
            )
        agent = subprocess.Popen(
            [args.binary, "-c", os.path.join(folder, "agent.yaml"), "agent"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(5)
            marks = [os.path.getsize(args.log)]
            time.sleep(args.steady)
            marks.append(os.path.getsize(args.log))
            open(flag, "w").close()
            time.sleep(args.incident)
            marks.append(os.path.getsize(args.log))
            os.remove(flag)
            time.sleep(args.incident)
            marks.append(os.path.getsize(args.log))
        finally:
            agent.terminate()
            agent.wait()
    with open(args.log, "rb") as log:
        data = log.read()
    results = {}
    for phase, (start, end) in zip(("steady", "incident", "recovery"), zip(marks, marks[1:])):
        lines = data[start:end].decode("utf-8", "replace").splitlines()
        results[phase] = count(lines, database)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--binary", default="target/debug/cimaa")
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--steady", type=int, default=20)
    parser.add_argument("--incident", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    psql(args.url, f"ALTER SYSTEM SET log_line_prefix = '{PREFIX}'")
    psql(args.url, "SELECT pg_reload_conf()")
    time.sleep(1)
    print("run\tphase\tticks\tstatements/tick\ttransactions/tick")
    for number in range(1, args.repeat + 1):
        for phase, (statements, transactions, ticks) in run_once(args, number).items():
            ticks = max(ticks, 1)
            print(f"{number}\t{phase}\t{ticks}\t{statements / ticks:.2f}\t{transactions / ticks:.2f}")


if __name__ == "__main__":
    main()
