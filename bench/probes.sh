#!/usr/bin/env bash
# Issue 8 benchmark: in-process network probes.
#
#   CIMAA_BIN=target/release/cimaa bench/probes.sh
#   REPS=3 AGENT_LEVELS="32 256" TCP_N=5000 SECTIONS="http tcp load" bench/probes.sh
#
# http: the shared harness http_peers.sh (nginx on 127.0.0.1, 50,000 URLs = 50 paths prefixes x
#       1,000 pages) with workloads A3 (wrk keep-alive and Connection: close, the machine's ceiling),
#       A2 (blackbox_exporter /probe), A1 (check_http forked per URL, -P 8, on the first A1_N URLs)
#       and AGENT = bench/probes_tick.sh (one `cimaa agent --once` tick over the URLs as http checks,
#       CIMAA_MAX_CONCURRENCY = each of AGENT_LEVELS), in the same repetitions.
# tcp:  TCP_N `tcp:` checks against the same nginx, one `cimaa agent --once` tick per repetition.
# load: `cimaa validate` over the 50,000-check directory (the wall time of loading it).
# Each cell waits for the shared load gate at most GATE_MAX_WAIT s (default 60, flagged in the CSV).
# Private ports and RUN_DIR, so it can run beside other users of the shared harness.
# Output: $RESULTS_DIR/http_peers_*.csv, probes_tcp_*.csv, probes_load_*.csv, probes_ticks.log.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
export RUN_DIR=${RUN_DIR:-/tmp/cimaa-bench-probes}
export NGINX_PORT=${NGINX_PORT:-28180} NGINX_STATUS_PORT=${NGINX_STATUS_PORT:-28181}
export BLACKBOX_PORT=${BLACKBOX_PORT:-29115}
export GATE_MAX_WAIT=${GATE_MAX_WAIT:-60} GATE_POLL=${GATE_POLL:-10}
export REPS=${REPS:-3}
export CIMAA_BIN=${CIMAA_BIN:?set CIMAA_BIN to a release cimaa binary}
SECTIONS=${SECTIONS:-http tcp load}
TCP_N=${TCP_N:-5000}
source "$SHARED_BENCH/lib.sh"

[ -f "$DATA_DIR/urls.txt" ] && grep -q ":$NGINX_PORT/" "$DATA_DIR/urls.txt" || "$SHARED_BENCH/setup.sh"

for section in $SECTIONS; do
  case $section in
  http)
    WORKLOADS=${WORKLOADS:-"A3 A2 A1 AGENT"} A3_LEVELS=${A3_LEVELS:-32} A3_DURATION=${A3_DURATION:-10} \
    A2_LEVELS=${A2_LEVELS:-32} A1_LEVELS=${A1_LEVELS:-8} A1_N=${A1_N:-10000} \
    AGENT_NAME=cimaa AGENT_LEVELS=${AGENT_LEVELS:-"32 256"} \
    AGENT_CMD="$HERE/probes_tick.sh {urls} {c}" \
      "$SHARED_BENCH/http_peers.sh"
    ;;
  tcp)
    (
      trap 'bg_kill_all' EXIT INT TERM
      work="$RUN_DIR/probes_tcp"; mkdir -p "$work/checks.d"
      python3 - "$work/checks.d/ports.yaml" "$TCP_N" "$NGINX_PORT" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"port{i:05d}:\n  tcp: 127.0.0.1:{sys.argv[3]}\n")
PY
      touch -d '1 minute ago' "$work/checks.d/ports.yaml"
      cat > "$work/agent.yaml" <<YAML
agent:
  name: bench.example.com
  directory: $work/checks.d
  base_interval: 60
  timeout: 50
database:
  type: sqlite
  path: $work/cimaa.db
alerter:
  type: file
  path: $work/alerts.jsonl
YAML
      csv_init probes_tcp
      nginx_start
      for rep in $(seq 1 "$REPS"); do
        wait_quiet; log "TCP cimaa n=$TCP_N rep=$rep (load1=$GATE_LOAD waited ${GATE_WAIT}s)"
        rm -f "$work"/cimaa.db*
        /usr/bin/time -o "$work/time.out" -f '%e %U %S %M' "$CIMAA_BIN" agent --once -c "$work/agent.yaml" \
          > "$work/agent.log" 2>&1
        read -r wall u s m < "$work/time.out"
        took=$(grep -o 'took_secs=[0-9.]*' "$work/agent.log" | tail -1 | cut -d= -f2)
        fails=$(grep -c 'check fault' "$work/agent.log")
        rate=$(awk -v n="$TCP_N" -v t="$took" 'BEGIN{printf "%.0f", n/t}')
        csv_row TCP cimaa 256 "$rep" "$TCP_N" "$took" "$rate" "$(( TCP_N - fails ))" "$fails" \
          "process_wall_s=$wall;client_user_s=$u;client_sys_s=$s;client_maxrss_kb=$m"
        log "  -> $rate checks/s (tick $took s, process $wall s, CPU $u+$s s, RSS $m kB), faults=$fails"
      done
      nginx_stop
    )
    ;;
  load)
    work="$RUN_DIR/cimaa_tick"
    [ -f "$work/agent.yaml" ] || die "run the http section first (it generates the check directory)"
    csv_init probes_load
    for rep in $(seq 1 "$REPS"); do
      wait_quiet; log "LOAD cimaa validate, 50,000 checks, rep=$rep (load1=$GATE_LOAD waited ${GATE_WAIT}s)"
      /usr/bin/time -o "$RUN_DIR/load_time.out" -f '%e %U %S %M' "$CIMAA_BIN" -c "$work/agent.yaml" validate \
        > "$RUN_DIR/load.out" 2>&1
      read -r wall u s m < "$RUN_DIR/load_time.out"
      n=$(grep -oE '[0-9]+ check' "$RUN_DIR/load.out" | cut -d' ' -f1)
      csv_row LOAD validate 1 "$rep" "${n:-0}" "$wall" "$(awk -v n="${n:-0}" -v t="$wall" 'BEGIN{printf "%.0f", n/t}')" \
        "${n:-0}" 0 "client_user_s=$u;client_sys_s=$s;client_maxrss_kb=$m"
      log "  -> $n checks loaded in $wall s (CPU $u+$s s, RSS $m kB)"
    done
    ;;
  *) die "unknown section $section" ;;
  esac
done
log "results in $RESULTS_DIR"
