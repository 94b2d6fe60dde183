#!/usr/bin/env bash
# Issue 7 benchmark for the `kinesis` metric sink; results go to BENCHMARKS.md (section "Issue 7") by hand.
#
#   cargo build --release --bin cimaa --example kinesis_sink_bench
#   bench/kinesis.sh                       # REPS=5 METRICS=100000 SHARDS=4 RSS_REPS=3
#
# 1. Throughput: REPS runs of `bench/kinesis_sink_bench.rs throughput` against one in-memory
#    kinesalite (tests/services/kinesalite.js, 127.0.0.1 only): METRICS records pushed at once
#    into the agent's MetricBuffer, timed until the buffer is empty (the real KinesisSink:
#    PutRecords of 500, one call in flight, as in the agent), then read back and counted. Also
#    the CPU seconds the driver (the agent's side) and kinesalite used while sending.
# 2. Agents: RSS_REPS times each, a `cimaa agent` (release, base_interval 1) with 20 command
#    checks of 500 perfdata metrics each (10,000 metrics per tick), for 12 s or until:
#      nosink:   no `metrics:` section;
#      draining: `kinesis` sink into kinesalite (a fresh 4-shard stream); after SIGTERM the
#                stream is counted against 10,000 x the ticks the agent finished;
#      full:     `kinesis` sink at a closed port (a stream that is down), buffer_size 100000,
#                measured once `AGENT#metrics` is stored (the buffer is full and dropping).
#    VmRSS is sampled 5 times, 1 s apart (median taken), VmHWM at the end.
# Prints one line per run and a summary (median, min, max). Every process is started here,
# listens on or talks to 127.0.0.1 only, and is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
METRICS=${METRICS:-100000}
SHARDS=${SHARDS:-4}
RSS_REPS=${RSS_REPS:-3}
TARGET=${CARGO_TARGET_DIR:-target}/release
BIN=${CIMAA_BIN:-$TARGET/cimaa}
DRIVER=${DRIVER:-$TARGET/examples/kinesis_sink_bench}
[ -x "$BIN" ] && [ -x "$DRIVER" ] || {
    echo "build first: cargo build --release --bin cimaa --example kinesis_sink_bench" >&2
    exit 1
}

export AWS_ACCESS_KEY_ID=cimaa-bench AWS_SECRET_ACCESS_KEY=cimaa-bench
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset RUST_LOG

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cpu_seconds() { # PID -> user+sys seconds so far
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

status_kb() { # FIELD PID
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"
}

summary() { # LABEL FILE-of-numbers
    python3 - "$1" "$2" <<'EOF'
import statistics, sys
values = [float(line) for line in open(sys.argv[2]) if line.strip()]
print(f"{sys.argv[1]}: median {statistics.median(values):.1f}, min {min(values):.1f}, "
      f"max {max(values):.1f} (n={len(values)})")
EOF
}

[ -d tests/services/node_modules ] || (cd tests/services && npm ci --no-audit --no-fund --loglevel=error)
node tests/services/kinesalite.js --port 0 >"$work/kinesalite.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
endpoint=""
for _ in $(seq 100); do
    endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/kinesalite.log" || true)
    [ -n "$endpoint" ] && break
    sleep 0.1
done
[ -n "$endpoint" ] || { cat "$work/kinesalite.log" >&2; exit 1; }
echo "kinesalite at $endpoint; load $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"

echo "== throughput: $METRICS metrics, $SHARDS shards, $REPS runs"
: >"$work/rate"; : >"$work/client_us"; : >"$work/server_cpu"
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" "$work/out"; }
for rep in $(seq "$REPS"); do
    "$DRIVER" throughput "$endpoint" "$METRICS" "$SHARDS" "$node_pid" >"$work/out"
    field rate >>"$work/rate"
    awk -v c="$(field client_cpu_s)" -v n="$METRICS" 'BEGIN { print c * 1e6 / n }' >>"$work/client_us"
    field server_cpu_s >>"$work/server_cpu"
    echo "run $rep: $(cat "$work/out")"
done
summary "metrics/s" "$work/rate"
summary "agent-side CPU us per metric while sending" "$work/client_us"
summary "kinesalite CPU s while sending $METRICS" "$work/server_cpu"

echo "== agent RSS: 20 checks x 500 metrics per tick, base_interval 1"
printf 'OK |' >"$work/perfdata.txt"
for i in $(seq 0 499); do printf ' metric_%03d=%d' "$i" "$i" >>"$work/perfdata.txt"; done
echo >>"$work/perfdata.txt"
mkdir -p "$work/checks.d"
for c in $(seq -w 0 19); do
    printf 'c%s:\n  command: cat %s\n' "$c" "$work/perfdata.txt"
done >"$work/checks.d/bench.yaml"
touch -d '1 minute ago' "$work/checks.d/bench.yaml"
closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

: >"$work/delivered"
for variant in nosink draining full; do
    : >"$work/rss_$variant"; : >"$work/hwm_$variant"
    for rep in $(seq "$RSS_REPS"); do
        name="bench-$variant-$rep"
        dir="$work/$name"
        mkdir -p "$dir"
        {
            printf 'agent:\n  name: %s\n  directory: %s\n  base_interval: 1\n  timeout: 5\n  logging: info\n' "$name" "$work/checks.d"
            printf 'database:\n  type: sqlite\n  path: %s/cimaa.db\nalerter:\n  type: file\n  path: %s/alerts.jsonl\n' "$dir" "$dir"
            case $variant in
            draining)
                "$DRIVER" create "$endpoint" "$name" 4 >/dev/null
                printf 'metrics:\n  type: kinesis\n  stream: %s\n  region: us-east-1\n  endpoint_url: %s\n  buffer_size: 100000\n' "$name" "$endpoint" ;;
            full)
                printf 'metrics:\n  type: kinesis\n  stream: down\n  region: us-east-1\n  endpoint_url: http://127.0.0.1:%s\n  buffer_size: 100000\n' "$closed_port" ;;
            esac
        } >"$dir/agent.yaml"
        started=$(date +%s.%N)
        "$BIN" -c "$dir/agent.yaml" agent 2>"$dir/agent.log" &
        agent_pid=$!
        pids+=("$agent_pid")
        if [ "$variant" = full ]; then
            for _ in $(seq 120); do
                "$BIN" -c "$dir/agent.yaml" faults --json 2>/dev/null | grep -q "\"$name#metrics\"" && break
                sleep 1
            done
            "$BIN" -c "$dir/agent.yaml" faults --json | grep -q "\"$name#metrics\"" || { echo "AGENT#metrics never appeared" >&2; tail "$dir/agent.log" >&2; exit 1; }
        else
            sleep 12
        fi
        : >"$dir/samples"
        for _ in 1 2 3 4 5; do status_kb VmRSS "$agent_pid" >>"$dir/samples"; sleep 1; done
        rss=$(sort -n "$dir/samples" | sed -n 3p)
        hwm=$(status_kb VmHWM "$agent_pid")
        dropping=$("$BIN" -c "$dir/agent.yaml" faults --json | grep -c "\"$name#metrics\"" || true)
        kill -TERM "$agent_pid"
        wait "$agent_pid" 2>/dev/null || true
        stopped=$(date +%s.%N)
        awk -v k="$rss" 'BEGIN { print k / 1024 }' >>"$work/rss_$variant"
        awk -v k="$hwm" 'BEGIN { print k / 1024 }' >>"$work/hwm_$variant"
        extra="AGENT#metrics present: $dropping"
        if [ "$variant" = draining ]; then
            ticks=$(grep -c "tick done" "$dir/agent.log" || true)
            records=$("$DRIVER" count "$endpoint" "$name" | sed 's/records=//')
            rate=$(awk -v r="$records" -v a="$started" -v b="$stopped" 'BEGIN { printf "%.0f", r / (b - a) }')
            echo "$rate" >>"$work/delivered"
            extra="$extra; ticks $ticks, produced $((ticks * 10000)), in the stream $records, delivered $rate/s over the agent's life"
        fi
        echo "$variant run $rep: VmRSS ${rss} kB (median of 5), VmHWM ${hwm} kB; $extra"
    done
    summary "$variant VmRSS MiB" "$work/rss_$variant"
    summary "$variant VmHWM MiB" "$work/hwm_$variant"
done
summary "draining: metrics/s delivered from one agent offered 10,000/s" "$work/delivered"
