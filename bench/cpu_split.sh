#!/usr/bin/env bash
# Where the CPU of a tick goes: the agent's own threads vs. the plugin processes it reaped.
# Starts `cimaa agent` (forever mode, base_interval BASE s) with N checks of KIND, waits for the first
# "tick done" line, reads /proc/PID/stat (utime+stime = agent threads, cutime+cstime = reaped children)
# and VmHWM, then SIGTERMs it (by PID). With PERF=1 also records the agent threads only
# (`perf record -g --no-inherit`, started before the tick) to $OUT/perf.data and prints the top symbols.
#   CIMAA_BIN=... bench/cpu_split.sh [N] [KIND: echo|dummy] [C]
#   REPS=3 BASE=10 PERF=0 OUT=/tmp/cimaa-bench/cpu_split
set -uo pipefail
N=${1:-5000}; KIND=${2:-echo}; C=${3:-256}
REPS=${REPS:-3}; BASE=${BASE:-10}; PERF=${PERF:-0}
OUT=${OUT:-/tmp/cimaa-bench/cpu_split}
BIN=${CIMAA_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/cimaa-target-bench}/release/cimaa}
PLUGINS=${PLUGINS:-/usr/lib/nagios/plugins}
case $KIND in echo) CMD="echo OK" ;; dummy) CMD="$PLUGINS/check_dummy 0 OK" ;; *) echo "kind: echo|dummy" >&2; exit 2 ;; esac
mkdir -p "$OUT"
D="$OUT/checks-$KIND-$N"
if [ ! -d "$D" ]; then
  mkdir -p "$D"
  awk -v n="$N" -v cmd="$CMD" -v D="$D" 'BEGIN{
    for (i = 0; i < n; i++) { f = sprintf("%s/c%03d.yaml", D, int(i / 100)); printf "c%05d: {command: \"%s\"}\n", i, cmd >> f }
  }'
  touch -d '-1 hour' "$D"/*.yaml
fi
cat > "$OUT/agent.yaml" <<YAML
agent: {name: bench, directory: $D, base_interval: $BASE}
database: {type: sqlite, path: $OUT/cimaa.db}
alerter: {type: file, path: $OUT/alerts.jsonl}
YAML
hz=$(getconf CLK_TCK)
pid=""; perf_pid=""
trap '[ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null; [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null' EXIT INT TERM
echo "N=$N kind=$KIND C=$C bin=$BIN"
for rep in $(seq 1 "$REPS"); do
  rm -f "$OUT"/cimaa.db* "$OUT/alerts.jsonl"
  CIMAA_MAX_CONCURRENCY=$C "$BIN" -c "$OUT/agent.yaml" agent 2> "$OUT/agent.log" > /dev/null &
  pid=$!
  sleep 0.5
  if [ "$PERF" = 1 ]; then
    perf record -q -g --no-inherit -F 2000 -p "$pid" -o "$OUT/perf.data" 2> "$OUT/perf.log" &
    perf_pid=$!
  fi
  for _ in $(seq 1 $(( (BASE + 120) * 10 ))); do grep -q 'tick done' "$OUT/agent.log" && break; sleep 0.1; done
  read -r ut st cut cst < <(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13, $14, $15}')
  hwm=$(awk '$1=="VmHWM:"{print $2}' "/proc/$pid/status")
  took=$(sed -n 's/.*took_secs=\([0-9.]*\).*/\1/p' "$OUT/agent.log" | head -1)
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null; perf_pid=""; fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=""
  awk -v n="$N" -v ut="$ut" -v st="$st" -v cut="$cut" -v cst="$cst" -v hz="$hz" -v took="$took" -v hwm="$hwm" -v rep="$rep" 'BEGIN{
    a = (ut + st) / hz; c = (cut + cst) / hz
    printf "rep=%d took_s=%s checks_per_s=%.0f agent_cpu_s=%.2f (user %.2f sys %.2f) children_cpu_s=%.2f (user %.2f sys %.2f) agent_ms_per_check=%.3f children_ms_per_check=%.3f vmhwm_kb=%s\n",
      rep, took, n / took, a, ut / hz, st / hz, c, cut / hz, cst / hz, 1000 * a / n, 1000 * c / n, hwm }'
done
if [ "$PERF" = 1 ] && [ -s "$OUT/perf.data" ]; then
  perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | grep '%' | head -40
fi
