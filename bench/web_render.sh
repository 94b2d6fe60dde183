#!/bin/sh
# `cimaa web` under load (issue #17 item 3, BENCHMARKS.md): a SQLite fleet of
# 1,000 agents with 10 faults each (10,000), then the time of GET /faults
# (the whole table rendered) and of /api/faults, and the process's RSS idle
# before the first request. Usage: bench/web_render.sh [CIMAA_BINARY]
set -eu
bin=${1:-target/release/cimaa}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/agent.yaml" <<YAML
agent: {name: bench, directory: $dir}
database: {type: sqlite, path: $dir/cimaa.db}
alerter: {type: file, path: $dir/alerts.jsonl}
YAML
"$bin" -c "$dir/agent.yaml" setup-db >/dev/null
python3 - "$dir/cimaa.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); now = int(time.time())
db.executemany("INSERT INTO heartbeats (agent, updated, version, checks) VALUES (?, ?, '0.1.0', 10)",
               [(f"host{a:04}.example.com", now - (a % 300)) for a in range(1000)])
db.executemany("INSERT INTO faults (agent, name, severity, message, since, updated, triggered, escalates, attempts) VALUES (?,?,?,?,?,?,1,1,1)",
               [(f"host{a:04}.example.com", f"//host{a:04}.example.com/app{c}/check", (20, 30, 40, 50)[c % 4],
                 f"CRITICAL - something <b>{c}</b> is wrong on host {a}", now - c * 60, now) for a in range(1000) for c in range(10)])
db.commit()
PY
"$bin" -c "$dir/agent.yaml" web --listen 127.0.0.1:0 2>"$dir/web.log" &
pid=$!
while ! grep -q listening "$dir/web.log"; do sleep 0.1; done
base=$(sed -n 's/.*\(http:[^ ]*\) .*/\1/p' "$dir/web.log" | head -1)
sleep 2
echo "idle RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
for path in faults api/faults faults faults faults "" agents; do
  curl -s -o /dev/null -w "GET /$path: %{time_total}s %{size_download} bytes\n" "${base}$path"
done
echo "RSS after: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
