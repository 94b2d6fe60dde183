#!/usr/bin/env bash
# Idle RSS of `cimaa agent` (issue #15 item 3): the shipped example
# configuration (examples/agent.yaml: SQLite, file alerter, log sink) with
# 100 `echo OK` checks, VmRSS read 25 s after start; REPS repetitions.
# With PROFILE=aws the same agent with a PagerDuty alerter and DynamoDB
# (dynalite on 127.0.0.1, started here) instead of the file alerter and
# SQLite. With METRICS_LISTEN=127.0.0.1:PORT the agent also serves its
# Prometheus /metrics there (agent.metrics_listen), scraped once.
#
#   CIMAA=target/release/cimaa REPS=3 bash bench/idle_rss.sh
#   CIMAA=target/release/cimaa REPS=3 PROFILE=aws bash bench/idle_rss.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
CIMAA=${CIMAA:-$here/target/release/cimaa}
REPS=${REPS:-3}
CHECKS=${CHECKS:-100}
AFTER_S=${AFTER_S:-25}
PROFILE=${PROFILE:-default}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/checks.d"
for i in $(seq 1 "$CHECKS"); do
    printf 'c%d:\n  command: echo OK\n' "$i"
done > "$work/checks.d/idle.yaml"

database='database:
  type: sqlite
  path: cimaa-idle.db'
alerter='alerter:
  type: file
  path: alerts.jsonl'
if [ "$PROFILE" = aws ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$here/tests/services/node_modules/.bin/dynalite" --host 127.0.0.1 --port "$port" \
        --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 > "$work/dynalite.log" 2>&1 &
    pids+=($!)
    export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    database="database:
  type: dynamodb
  endpoint_url: http://127.0.0.1:$port
  prefix: idle"
    alerter='alerter:
  type: pagerduty
  routing_key: abcdefabcdefabcdefabcdefabcdefab
  url: http://127.0.0.1:9/v2/enqueue'
fi
cat > "$work/agent.yaml" <<YAML
agent:
  name: idle.local
  directory: checks.d
  base_interval: 10
  logging: info
${METRICS_LISTEN:+  metrics_listen: $METRICS_LISTEN
}$database
$alerter
metrics:
  type: log
YAML
if [ "$PROFILE" = aws ]; then
    for _ in $(seq 1 50); do
        "$CIMAA" -c "$work/agent.yaml" setup-db > /dev/null 2>&1 && break
        sleep 0.2
    done
fi
rss=()
for rep in $(seq 1 "$REPS"); do
    rm -f "$work"/cimaa-idle.db*
    "$CIMAA" -c "$work/agent.yaml" agent > /dev/null 2> "$work/agent-$rep.log" &
    pid=$!
    sleep "$AFTER_S"
    if [ -n "${METRICS_LISTEN:-}" ]; then
        curl -fsS "http://$METRICS_LISTEN/metrics" > "$work/metrics-$rep.txt"
    fi
    kb=$(awk '$1=="VmRSS:"{print $2}' "/proc/$pid/status")
    threads=$(awk '$1=="Threads:"{print $2}' "/proc/$pid/status")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "rep $rep: VmRSS $kb kB, $threads threads (load1 $load)"
    rss+=("$kb")
done
printf '%s\n' "${rss[@]}" | sort -n | awk '{v[NR]=$1} END {printf "profile %s: median %.1f MB (min %.1f, max %.1f) over %d runs\n", "'"$PROFILE"'", v[int((NR+1)/2)]/1024, v[1]/1024, v[NR]/1024, NR}'
