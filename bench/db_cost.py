#!/usr/bin/env python3
"""DynamoDB cost of a fleet, per agent per tick (issue #11, item 6).

Starts dynalite (tests/services) behind a small counting HTTP proxy on
127.0.0.1, then runs N real `cimaa agent` processes against it, each in its
own folder with its own file alerter and the same absolute-named check
`//bench/web`, driven by one shared flag file (present: CRITICAL).
Each agent signs with its own access key id (dynalite checks that requests
are signed, not by whom), so the proxy counts per agent: requests by
X-Amz-Target, items written (PutItem/DeleteItem: 1, BatchWriteItem: its
requests), keys read by BatchGetItem and conditional writes refused.

Phases of one run, after a warm-up:
  steady    nothing changes, STEADY ticks;
  trigger   the flag is created: the fault goes CRITICAL on every agent
            (`retry: 0`), the fleet delivers one trigger; INCIDENT ticks;
  resolve   the flag is removed: the fleet delivers one resolve; INCIDENT
            ticks.
Then the agents get SIGTERM. The alert logs are read at the end: the run
says how many triggers and resolves the fleet delivered in all.

Prints a table per fleet size (the spread over the repetitions as
min-max) and, with --json FILE, every number. Usage:

  cargo build            # or --release, and pass --binary
  python3 bench/db_cost.py --agents 3 9 --repeat 3

The numbers are in BENCHMARKS.md, "Issue 11".
"""

import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DYNALITE = os.path.join(ROOT, "tests/services/node_modules/.bin/dynalite")
CHECK = "//bench/web"
CREDENTIAL = re.compile(r"Credential=([^/]+)/")


class Counts:
    """Counters per agent (access key id), under one lock."""

    def __init__(self, trace=None):
        self.lock = threading.Lock()
        self.by_agent = {}
        # Every request as a JSON line, with --trace.
        self.trace = trace

    def add(self, agent, key, amount=1):
        with self.lock:
            counts = self.by_agent.setdefault(agent, {})
            counts[key] = counts.get(key, 0) + amount

    def snapshot(self):
        with self.lock:
            return {agent: dict(c) for agent, c in self.by_agent.items()}


def diff(after, before):
    """after - before, per agent and key."""
    out = {}
    for agent, counts in after.items():
        old = before.get(agent, {})
        out[agent] = {k: v - old.get(k, 0) for k, v in counts.items() if v - old.get(k, 0)}
    return out


def make_proxy(upstream_port, counts):
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            target = self.headers.get("X-Amz-Target", "?").split(".")[-1]
            match = CREDENTIAL.search(self.headers.get("Authorization", ""))
            agent = match.group(1) if match else "?"
            counts.add(agent, "req:" + target)
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                request = {}
            if target in ("PutItem", "DeleteItem"):
                counts.add(agent, "items_written")
            elif target == "BatchWriteItem":
                n = sum(len(v) for v in request.get("RequestItems", {}).values())
                counts.add(agent, "items_written", n)
            elif target == "BatchGetItem":
                n = sum(len(v.get("Keys", [])) for v in request.get("RequestItems", {}).values())
                counts.add(agent, "keys_read", n)
            # A connection per request: dynalite closes idle connections
            # after 5 s, and a request sent on one it closed would fail here
            # and be retried by the agent, counted twice.
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
            try:
                conn.request("POST", self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                counts.add(agent, "proxy_failures")
                self.send_error(502)
                return
            finally:
                conn.close()
            if response.status >= 400 and b"ConditionalCheckFailed" in data:
                counts.add(agent, "conditions_refused")
            if counts.trace:
                with counts.lock:
                    counts.trace.write(json.dumps({
                        "time": round(time.time(), 3), "agent": agent, "target": target,
                        "status": response.status, "request": request,
                        "answer": data[:300].decode("utf-8", "replace") if response.status >= 400 else "",
                    }) + "\n")
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Proxy


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=20.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def aws_env(key_id):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "RUST_LOG"}
    env.update(
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def write_agent(home, name, endpoint, prefix, base, flag):
    os.makedirs(os.path.join(home, "checks.d"))
    check = os.path.join(home, "checks.d/web.yaml")
    with open(check, "w") as f:
        f.write(
            f"{CHECK}:\n"
            f"  command: test -f {flag} && echo web down && exit 2; echo OK\n"
            "  retry: 0\n"
        )
    # The agent leaves alone a check file changed in the last seconds.
    past = time.time() - 120
    os.utime(check, (past, past))
    with open(os.path.join(home, "agent.yaml"), "w") as f:
        f.write(
            f"agent:\n  name: {name}\n  directory: checks.d\n  base_interval: {base}\n"
            "  splay: 0\n  state_dir: state\n"
            f"database:\n  type: dynamodb\n  region: us-east-1\n  prefix: {prefix}\n"
            f"  endpoint_url: {endpoint}\n"
            "alerter:\n  type: file\n  path: alerts.jsonl\n"
        )


def alerts(homes):
    events = []
    for home in homes:
        try:
            with open(os.path.join(home, "alerts.jsonl")) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        event = json.loads(line)
                        events.append((event.get("action"), event.get("name")))
        except FileNotFoundError:
            pass
    return events


def per_tick(window, agents, ticks):
    """Mean per agent per tick of each counter over the agents."""
    keys = sorted({k for c in window.values() for k in c})
    return {k: sum(window.get(a, {}).get(k, 0) for a in agents) / (len(agents) * ticks) for k in keys}


def per_agent(window, agents):
    keys = sorted({k for c in window.values() for k in c})
    return {k: sum(window.get(a, {}).get(k, 0) for a in agents) / len(agents) for k in keys}


def run_once(args, n, counts, proxy_port, work):
    prefix = f"b{os.getpid()}n{n}t{int(time.time() * 1000) % 10**9}"
    endpoint = f"http://127.0.0.1:{proxy_port}"
    flag = os.path.join(work, "flag")
    if os.path.exists(flag):
        os.remove(flag)
    names = [f"bench{i}" for i in range(n)]
    homes = [os.path.join(work, name) for name in names]
    for home, name in zip(homes, names):
        write_agent(home, name, endpoint, prefix, args.base, flag)
    setup = subprocess.run(
        [args.binary, "-c", os.path.join(homes[0], "agent.yaml"), "setup-db"],
        env=aws_env("setup"), capture_output=True, text=True,
    )
    if setup.returncode != 0:
        sys.exit(f"setup-db failed: {setup.stderr}")
    procs = []
    for home, name in zip(homes, names):
        log = open(os.path.join(home, "agent.log"), "w")
        procs.append(subprocess.Popen(
            [args.binary, "-c", "agent.yaml", "agent"], cwd=home,
            env=dict(aws_env(name), **({"RUST_LOG": args.log} if args.log else {})),
            stdout=log, stderr=subprocess.STDOUT,
        ))
    result = {"agents": n}
    try:
        time.sleep(args.warmup * args.base)
        phases = [("steady", args.steady, None), ("trigger", args.incident, "on"),
                  ("resolve", args.incident, "off")]
        for phase, ticks, change in phases:
            if change == "on":
                open(flag, "w").close()
            elif change == "off":
                os.remove(flag)
            before = counts.snapshot()
            time.sleep(ticks * args.base)
            window = diff(counts.snapshot(), before)
            result[phase] = {"ticks": ticks, "per_tick": per_tick(window, names, ticks),
                             "per_agent": per_agent(window, names)}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    events = alerts(homes)
    result["triggers"] = sum(1 for a, name in events if a == "trigger" and name == CHECK)
    result["resolves"] = sum(1 for a, name in events if a == "resolve" and name == CHECK)
    result["other_alerts"] = [e for e in events if e[1] != CHECK]
    if args.log:
        for home, name in zip(homes, names):
            shutil.copy(os.path.join(home, "agent.log"), os.path.join(args.log_dir, f"{name}.log"))
    for home in homes:
        shutil.rmtree(home)
    return result


def spread(values, fmt="{:.2f}"):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if abs(hi - lo) < 0.005 else f"{fmt.format(lo)}-{fmt.format(hi)}"


def report(n, runs):
    print(f"\n{n} agents, {len(runs)} runs (min-max over the runs)")
    keys = sorted({k for r in runs for p in ("steady", "trigger", "resolve") for k in r[p]["per_tick"]})
    print("| counter | steady, per agent per tick | trigger phase, per agent per tick |"
          " resolve phase, per agent per tick | trigger + resolve phases less steady, per agent per incident |")
    print("|---|---|---|---|---|")
    for key in keys:
        cells = [spread([r[p]["per_tick"].get(key, 0) for r in runs]) for p in ("steady", "trigger", "resolve")]
        extra = [r["trigger"]["per_agent"].get(key, 0) + r["resolve"]["per_agent"].get(key, 0)
                 - r["steady"]["per_tick"].get(key, 0) * (r["trigger"]["ticks"] + r["resolve"]["ticks"])
                 for r in runs]
        print(f"| {key} | {cells[0]} | {cells[1]} | {cells[2]} | {spread(extra)} |")
    print("triggers delivered per run:", [r["triggers"] for r in runs],
          "resolves:", [r["resolves"] for r in runs])
    others = [e for r in runs for e in r["other_alerts"]]
    if others:
        print("other alerts:", others)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[3, 9])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", type=float, default=1.0, help="base_interval, seconds")
    parser.add_argument("--warmup", type=int, default=5, help="ticks before measuring")
    parser.add_argument("--steady", type=int, default=20, help="ticks of the steady phase")
    parser.add_argument("--incident", type=int, default=10, help="ticks of each incident phase")
    parser.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug/cimaa"))
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--trace", help="write every request here, as JSON lines")
    parser.add_argument("--log", help="the agents' RUST_LOG; their logs go to --log-dir")
    parser.add_argument("--log-dir", default=".", help="where --log puts the agents' logs")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"no cimaa binary at {args.binary} (cargo build, or --binary)")
    dynalite_port = free_port()
    dynalite = subprocess.Popen(
        [DYNALITE, "--host", "127.0.0.1", "--port", str(dynalite_port), "--createTableMs", "0",
         "--deleteTableMs", "0", "--updateTableMs", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    counts = Counts(open(args.trace, "w") if args.trace else None)
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_proxy(dynalite_port, counts))
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="cimaa-db-cost-")
    results = {}
    try:
        wait_port(dynalite_port)
        for n in args.agents:
            runs = []
            for i in range(args.repeat):
                print(f"run {i + 1}/{args.repeat} with {n} agents...", file=sys.stderr, flush=True)
                runs.append(run_once(args, n, counts, proxy.server_address[1], work))
            results[n] = runs
            report(n, runs)
    finally:
        proxy.shutdown()
        dynalite.terminate()
        dynalite.wait()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
