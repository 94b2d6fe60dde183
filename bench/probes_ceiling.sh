#!/usr/bin/env bash
# Issue 15 item 2: one `cimaa agent --once` tick of N http checks against the bare reqwest loop
# (../shared/bench/rust-ceiling's prober: --client reqwest --driver task --pool keepalive), same
# URLs, same number in flight, measured back to back in the same repetition after one load gate.
#
#   CIMAA_BIN=$CARGO_TARGET_DIR/release/cimaa REPS=3 bash bench/probes_ceiling.sh
#   C=32 PER_HOST_RAISED=32 CASES="one-host-raised one-host-default many-hosts" ...
#
# Cases (each: prober, then the cimaa tick; ratio = cimaa probes/s / prober probes/s):
#   one-host-raised   every URL on 127.0.0.1, agent.connections_per_host = PER_HOST_RAISED (>= C)
#   one-host-default  every URL on 127.0.0.1, agent.connections_per_host left at its default (16)
#   many-hosts        URLs spread over 127.0.0.1 .. 127.0.0.$HOSTS (nginx answers on all), default
# cimaa's rate is N / `took_secs` of its "tick done" line (the tick, not start-up and loading);
# its peak RSS is the whole process's (GNU time). Prints one line per cell and a summary
# (median (min-max) per case, load1 at each gate); the CSV goes to $RESULTS_DIR.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
export RUN_DIR=${RUN_DIR:-/tmp/cimaa-bench-ceiling}
export NGINX_PORT=${NGINX_PORT:-28280} NGINX_STATUS_PORT=${NGINX_STATUS_PORT:-28281}
export GATE_MAX_WAIT=${GATE_MAX_WAIT:-60} GATE_POLL=${GATE_POLL:-10}
HOSTS=${HOSTS:-200}
export NGINX_LOOPBACKS=$HOSTS
REPS=${REPS:-3}
C=${C:-32}
PER_HOST_RAISED=${PER_HOST_RAISED:-$C}
CASES=${CASES:-"one-host-raised one-host-default many-hosts"}
CIMAA_BIN=${CIMAA_BIN:?set CIMAA_BIN to a release cimaa binary}
PROBER=${PROBER:-/tmp/rust-ceiling/target/release/prober}
source "$SHARED_BENCH/lib.sh"
trap 'bg_kill_all' EXIT; trap 'exit 130' INT TERM

if [ ! -x "$PROBER" ]; then
  (cd "$SHARED_BENCH/rust-ceiling" && CARGO_TARGET_DIR=/tmp/rust-ceiling/target cargo build --release -q -p prober) \
    || die "cannot build the prober"
fi
[ -f "$DATA_DIR/urls.txt" ] && grep -q ":$NGINX_PORT/" "$DATA_DIR/urls.txt" || "$SHARED_BENCH/setup.sh" >&2
work="$RUN_DIR/ceiling"; mkdir -p "$work"
one="$DATA_DIR/urls.txt"; many="$work/urls-many.txt"
awk -v h="$HOSTS" '{ sub(/127\.0\.0\.1/, "127.0.0." ((NR - 1) % h + 1)); print }' "$one" > "$many"
N=$(grep -c . "$one")

# A check directory per URL list (50 files), generated once.
checks_for() { # urls dir
  [ -d "$2" ] && return
  mkdir -p "$2"
  python3 - "$1" "$2" <<'PY'
import collections, sys
by_file = collections.defaultdict(list)
for i, line in enumerate(open(sys.argv[1])):
    if line.strip():
        by_file[i % 50].append((i, line.strip()))
for k, items in by_file.items():
    with open(f"{sys.argv[2]}/f{k:02d}.yaml", "w") as f:
        for i, u in items:
            f.write(f'p{i:06d}:\n  http: {{url: "{u}"}}\n')
PY
}
checks_for "$one" "$work/checks-one"
checks_for "$many" "$work/checks-many"

tick() { # checks-dir per-host(or empty) -> "rate took wall user sys rss_kb fails"
  local extra=""
  [ -n "$2" ] && extra="  connections_per_host: $2"
  cat > "$work/agent.yaml" <<YAML
agent:
  name: bench.example.com
  directory: $1
  base_interval: 60
  timeout: 50
  max_concurrency: $C
$extra
database:
  type: sqlite
  path: $work/cimaa.db
alerter:
  type: file
  path: $work/alerts.jsonl
YAML
  rm -f "$work"/cimaa.db* "$work/alerts.jsonl"
  /usr/bin/time -o "$work/time.out" -f '%e %U %S %M' "$CIMAA_BIN" agent --once -c "$work/agent.yaml" \
    > "$work/agent.log" 2>&1
  local took fails wall u s m
  took=$(grep -o 'took_secs=[0-9.]*' "$work/agent.log" | tail -1 | cut -d= -f2)
  fails=$(grep -c 'check fault' "$work/agent.log")
  read -r wall u s m < "$work/time.out"
  echo "$(awk -v n="$N" -v t="${took:-0}" 'BEGIN{ if (t > 0) printf "%.0f", n / t; else print 0 }') ${took:-nan} $wall $u $s $m $fails"
}

csv_init probes_ceiling
nginx_start
summary="$work/summary.txt"; : > "$summary"
for rep in $(seq 1 "$REPS"); do
  for case in $CASES; do
    case $case in
      one-host-raised) urls=$one; dir=$work/checks-one; per=$PER_HOST_RAISED ;;
      one-host-default) urls=$one; dir=$work/checks-one; per="" ;;
      many-hosts) urls=$many; dir=$work/checks-many; per="" ;;
      *) die "unknown case $case" ;;
    esac
    wait_quiet
    load=$GATE_LOAD
    p=$("$PROBER" --urls "$urls" --concurrency "$C" --client reqwest --driver task --pool keepalive 2>&1 | tail -1)
    prate=$(echo "$p" | tr ' ' '\n' | awk -F= '$1=="rate"{printf "%.0f", $2}')
    prss=$(echo "$p" | tr ' ' '\n' | awk -F= '$1=="maxrss_kb"{print $2}')
    pfail=$(echo "$p" | tr ' ' '\n' | awk -F= '$1=="fail"{print $2}')
    read -r crate took wall u s m fails < <(tick "$dir" "$per")
    ratio=$(fdiv "$crate" "$prate")
    csv_row PROBES "$case" "$C" "$rep" "$N" "$took" "$crate" "$(( N - fails ))" "$fails" \
      "prober_rate=$prate;prober_fail=$pfail;prober_maxrss_kb=$prss;ratio=$ratio;process_wall_s=$wall;client_user_s=$u;client_sys_s=$s;client_maxrss_kb=$m"
    log "$case rep=$rep load1=$load: prober $prate/s, cimaa $crate/s (tick $took s, RSS $m kB, faults $fails), ratio $ratio"
    echo "$case $rep $load $prate $crate $ratio $m $fails" >> "$summary"
  done
done
nginx_stop
python3 - "$summary" "$N" "$C" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    case, rep, load, prate, crate, ratio, rss, fails = line.split()
    rows[case].append((float(load), float(prate), float(crate), float(ratio), int(rss), int(fails)))
def m(v, f="{:.0f}"):
    return f"{f.format(statistics.median(v))} ({f.format(min(v))}-{f.format(max(v))})"
print(f"\n{sys.argv[2]} URLs, {sys.argv[3]} in flight, median (min-max)")
print("| case | bare reqwest probes/s | cimaa probes/s | cimaa / bare | cimaa peak RSS MB | faults | load1 at gate |")
print("|---|---|---|---|---|---|---|")
for case, r in rows.items():
    print(f"| {case} | {m([x[1] for x in r])} | {m([x[2] for x in r])} | {m([x[3] for x in r], '{:.2f}')} "
          f"| {m([x[4] / 1024 for x in r], '{:.1f}')} | {max(x[5] for x in r)} | {m([x[0] for x in r], '{:.1f}')} |")
PY
