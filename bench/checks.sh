#!/usr/bin/env bash
# Issue 3 benchmark: command checks per second, tick wall time, CPU time and peak RSS of one
# `cimaa agent --once` tick, beside the raw process-spawn ceiling of this machine measured in the
# same repetition, plus the idle RSS of `cimaa agent` with 100 checks.
#
#   bench/checks.sh                                   # REPS=3, everything below at its default
#   REPS=3 NS="100 1000 5000" KINDS="echo dummy" CONCS="256" SWEEP_N=5000 SWEEP_CONCS="16 64" \
#   IDLE_REPS=3 CIMAA_BIN=... bench/checks.sh
#
# Per repetition, for N in NS, for kind in KINDS, for concurrency C in CONCS (plus SWEEP_CONCS when
# N = SWEEP_N), after one load gate (lib.sh wait_quiet), back to back:
#   1. spawn ceiling: spawnbench -k C -n N -- /bin/sh -c 'PLUGIN'  (posix_spawn + pipe + waitpid,
#      the same command line the agent runs, the same count, the same number in flight);
#      for kind=dummy also spawnbench -k C -n N -- check_dummy 0 OK (no shell) for reference;
#   2. cimaa: fresh SQLite file, `CIMAA_MAX_CONCURRENCY=C /usr/bin/time -v cimaa agent --once`;
#      tick wall time = `took_secs` of the agent's "tick done" log line, checks/s = N / took_secs,
#      CPU = user + sys of the agent and its reaped children (time -v), peak RSS = time -v max RSS
#      (the largest of the agent and its descendants: the agent).
# Then IDLE_REPS times: `cimaa agent` (forever mode, base_interval 60, 100 echo checks; one per binary
# label, side by side); after the first "tick done" line (the next minute boundary), wait IDLE_SETTLE_S,
# read VmRSS / VmHWM / PSS and the CPU used over IDLE_WINDOW_S, then SIGTERM (by PID).
# Plugins: echo = `echo OK` (dash builtin, so the child is just /bin/sh), dummy = the real
# monitoring-plugins `check_dummy 0 OK` (sh -c execs it).
# Output: $RESULTS_DIR/checks_<ts>.csv (lib.sh long format) and a markdown summary by
# bench/summarize_checks.py next to it (<csv>.md).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
# The shared gate defaults wait up to 20 min per cell; here a cell waits at most 60 s and is flagged.
GATE_MAX_WAIT=${GATE_MAX_WAIT:-60}; GATE_POLL=${GATE_POLL:-10}
source "$SHARED_BENCH/lib.sh"

REPS=${REPS:-3}
NS=${NS:-"100 1000 5000"}
KINDS=${KINDS:-"echo dummy"}
CONCS=${CONCS:-256}
SWEEP_N=${SWEEP_N:-5000}
SWEEP_CONCS=${SWEEP_CONCS:-"16 64"}
IDLE_REPS=${IDLE_REPS:-3}
IDLE_CHECKS=${IDLE_CHECKS:-100}
IDLE_SETTLE_S=${IDLE_SETTLE_S:-10}
IDLE_WINDOW_S=${IDLE_WINDOW_S:-10}
TIMEOUT_S=${TIMEOUT_S:-120}
SB="$BUILD_DIR/spawnbench"
[ -x "$SB" ] || die "run $SHARED_BENCH/setup.sh first (missing $SB)"
[ -x /usr/bin/time ] || die "GNU time missing: apt-get install time"
[ -x "$PLUGINS/check_dummy" ] || die "monitoring-plugins missing: run $SHARED_BENCH/setup.sh"

# CIMAA_BINS="label=path label=path" measures several builds in the same cells (A/B); default: one
# binary, CIMAA_BIN or $CARGO_TARGET_DIR/release/cimaa, labelled "cimaa".
# Private copies of the binaries, so a rebuild by someone else during the run cannot change them.
W="$RUN_DIR/checks"
mkdir -p "$W"
CIMAA_BINS=${CIMAA_BINS:-"cimaa=${CIMAA_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/cimaa-target-bench}/release/cimaa}"}
LABELS=()
declare -A BINS=()
for lb in $CIMAA_BINS; do
  label=${lb%%=*}; src=${lb#*=}
  [ -x "$src" ] || die "no cimaa binary at $src (cargo build --release, or set CIMAA_BIN / CIMAA_BINS)"
  cp -f "$src" "$W/cimaa-$label"; BINS[$label]="$W/cimaa-$label"; LABELS+=("$label")
done

declare -A PLUGIN=([echo]="echo OK" [dummy]="$PLUGINS/check_dummy 0 OK")

# check directory with N checks of KIND: 100 checks per file (files are what a real deployment has)
make_checks() { # kind n -> prints the directory
  local kind=$1 n=$2 d="$W/checks-$1-$2"
  if [ ! -f "$d/.done" ]; then
    rm -rf "$d"; mkdir -p "$d"
    awk -v n="$n" -v cmd="${PLUGIN[$kind]}" -v D="$d" 'BEGIN{
      for (i = 0; i < n; i++) { f = sprintf("%s/c%03d.yaml", D, int(i / 100)); printf "c%05d: {command: \"%s\"}\n", i, cmd >> f }
    }'
    touch -d '-1 hour' "$d"/*.yaml; touch "$d/.done"
  fi
  echo "$d"
}
make_config() { # dir checks-dir -> path
  cat > "$1/agent.yaml" <<YAML
agent: {name: bench, directory: $2, base_interval: 60}
database: {type: sqlite, path: $1/cimaa.db}
alerter: {type: file, path: $1/alerts.jsonl}
YAML
  echo "$1/agent.yaml"
}
tv() { awk -F': ' -v k="$1" 'index($0, k) {gsub(/^[ \t]+/, "", $2); print $2; exit}' "$2"; }
kv() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k{print $2; exit}'; }

run_spawn() { # variant n k cmd...
  local variant=$1 n=$2 k=$3; shift 3
  local out; out=$(timeout "$TIMEOUT_S" "$SB" -k "$k" -n "$n" -- "$@")
  local cpu; cpu=$(awk -v a="$(kv "$out" self_user)" -v b="$(kv "$out" self_sys)" -v c="$(kv "$out" child_user)" -v d="$(kv "$out" child_sys)" 'BEGIN{printf "%.3f", a+b+c+d}')
  csv_row S "$variant" "$k" "$rep" "$(kv "$out" n)" "$(kv "$out" elapsed)" "$(kv "$out" rate)" "$(kv "$out" ok)" "$(kv "$out" fail)" \
    "cpu_s=$cpu;self_cpu_s=$(awk -v a="$(kv "$out" self_user)" -v b="$(kv "$out" self_sys)" 'BEGIN{print a+b}');child_cpu_s=$(awk -v a="$(kv "$out" child_user)" -v b="$(kv "$out" child_sys)" 'BEGIN{print a+b}')"
  log "  ceiling $variant N=$n K=$k: $(kv "$out" rate)/s elapsed $(kv "$out" elapsed)s cpu ${cpu}s ok=$(kv "$out" ok)"
}

run_agent() { # label kind n conc
  local label=$1 kind=$2 n=$3 c=$4 BIN=${BINS[$1]}
  local d="$W/run"; rm -rf "$d"; mkdir -p "$d"
  local cfg; cfg=$(make_config "$d" "$(make_checks "$kind" "$n")")
  local tf="$d/time.txt" lf="$d/agent.log"
  CIMAA_MAX_CONCURRENCY=$c timeout "$TIMEOUT_S" /usr/bin/time -v -o "$tf" "$BIN" -c "$cfg" agent --once 2> "$lf" > /dev/null
  local rc=$?
  local line; line=$(grep 'tick done' "$lf" | tail -1)
  local took; took=$(echo "$line" | sed -n 's/.*took_secs=\([0-9.e-]*\).*/\1/p')
  local ran; ran=$(echo "$line" | sed -n 's/.* ran=\([0-9]*\).*/\1/p')
  local faults; faults=$(echo "$line" | sed -n 's/.* faults=\([0-9]*\).*/\1/p')
  local user sys wall rss
  user=$(tv "User time (seconds)" "$tf"); sys=$(tv "System time (seconds)" "$tf")
  wall=$(tv "Elapsed (wall clock)" "$tf" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
  rss=$(tv "Maximum resident set size" "$tf")
  [ "$rc" = 0 ] && [ -n "$took" ] || { log "WARN: agent rc=$rc, log tail:"; tail -5 "$lf" >&2; }
  csv_row T "$label:$kind" "$c" "$rep" "$n" "${took:-nan}" "$(fdiv "$n" "${took:-0}")" "${ran:-0}" "${faults:-nan}" \
    "process_wall_s=$wall;user_s=$user;sys_s=$sys;cpu_s=$(awk -v a="$user" -v b="$sys" 'BEGIN{print a+b}');max_rss_kb=$rss;rc=$rc"
  log "  $label $kind N=$n C=$c: took ${took}s -> $(fdiv "$n" "${took:-0}")/s, process ${wall}s, cpu $(awk -v a="$user" -v b="$sys" 'BEGIN{print a+b}')s, max RSS ${rss} kB, ran=$ran faults=$faults"
}

csv_init checks
{
  echo "date: $(date -u '+%F %T UTC')"; echo "kernel: $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc)"; echo "debian: $(cat /etc/debian_version)"
  echo "sh: $(readlink -f /bin/sh) $(dpkg-query -W -f='${Version}' dash 2>/dev/null)"
  for label in "${LABELS[@]}"; do echo "binary $label: sha256 $(sha256sum "${BINS[$label]}" | cut -c1-16) ($(echo " $CIMAA_BINS" | tr ' ' '\n' | grep "^$label=" | cut -d= -f2-))"; done
  echo "checkout: $(cd "$HERE/.." && git rev-parse --short HEAD 2>/dev/null)$(cd "$HERE/.." && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes in src/')"
  dpkg-query -W -f='${Package} ${Version}\n' monitoring-plugins-basic nagios4-core 2>/dev/null
} > "${CSV%.csv}.versions.txt"

for rep in $(seq 1 "$REPS"); do
  for n in $NS; do
    for kind in $KINDS; do
      concs=$CONCS; [ "$n" = "$SWEEP_N" ] && concs="$SWEEP_CONCS $CONCS"
      for c in $concs; do
        make_checks "$kind" "$n" > /dev/null
        wait_quiet; log "rep=$rep N=$n kind=$kind C=$c (load1=$GATE_LOAD waited ${GATE_WAIT}s)"
        run_spawn "sh-c:$kind" "$n" "$c" /bin/sh -c "${PLUGIN[$kind]}"
        [ "$kind" = dummy ] && run_spawn "direct:dummy" "$n" "$c" "$PLUGINS/check_dummy" 0 OK
        for label in "${LABELS[@]}"; do run_agent "$label" "$kind" "$n" "$c"; done
      done
    done
  done
done

# Idle: one agent per binary label, side by side (they are idle; each has its own directory and database).
declare -A IDLE_PID=()
trap 'for p in "${IDLE_PID[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done' EXIT INT TERM
for rep in $(seq 1 "$IDLE_REPS"); do
  wait_quiet; log "idle rep=$rep: cimaa agent with $IDLE_CHECKS checks, labels ${LABELS[*]} (load1=$GATE_LOAD waited ${GATE_WAIT}s)"
  for label in "${LABELS[@]}"; do
    d="$W/idle-$label"; rm -rf "$d"; mkdir -p "$d"
    cfg=$(make_config "$d" "$(make_checks echo "$IDLE_CHECKS")")
    "${BINS[$label]}" -c "$cfg" agent 2> "$d/agent.log" > /dev/null &
    IDLE_PID[$label]=$!
  done
  for label in "${LABELS[@]}"; do
    for _ in $(seq 1 $(( 65 * 10 ))); do grep -q 'tick done' "$W/idle-$label/agent.log" && break; sleep 0.1; done
    grep -q 'tick done' "$W/idle-$label/agent.log" || log "WARN: $label: no tick within 65 s"
  done
  sleep "$IDLE_SETTLE_S"
  declare -A K0=(); t0=$(now_s)
  for label in "${LABELS[@]}"; do K0[$label]=$(proc_cpu_ticks "${IDLE_PID[$label]}"); done
  sleep "$IDLE_WINDOW_S"
  t1=$(now_s)
  for label in "${LABELS[@]}"; do
    p=${IDLE_PID[$label]}
    k1=$(proc_cpu_ticks "$p")
    rss=$(proc_status_kb VmRSS "$p"); hwm=$(proc_status_kb VmHWM "$p"); pss=$(proc_pss_kb "$p")
    threads=$(awk '$1=="Threads:"{print $2}' "/proc/$p/status")
    cpu=$(awk -v a="$k1" -v b="${K0[$label]}" -v h="$(clk_tck)" -v x="$t1" -v y="$t0" 'BEGIN{printf "%.3f", 100*(a-b)/h/(x-y)}')
    kill -TERM "$p"; wait "$p" 2>/dev/null; IDLE_PID[$label]=""
    csv_row I "$label:idle" "$IDLE_CHECKS" "$rep" "$IDLE_CHECKS" "$IDLE_WINDOW_S" "$cpu" 0 0 \
      "rss_kb=$rss;hwm_kb=$hwm;pss_kb=$pss;threads=$threads;cpu_pct_of_one_core=$cpu"
    log "  idle $label: VmRSS ${rss} kB, VmHWM ${hwm} kB, PSS ${pss} kB, ${threads} threads, CPU ${cpu}% of a core"
  done
  unset K0
done

python3 "$HERE/summarize_checks.py" "$CSV" > "${CSV%.csv}.md" && log "summary: ${CSV%.csv}.md"
log "done: $CSV"
