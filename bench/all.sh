#!/usr/bin/env bash
# Issue 15 item 4: every benchmark of BENCHMARKS.md's issue 15 with its peers, in one go, one table.
#
#   cargo build --release && CIMAA_BIN=$CARGO_TARGET_DIR/release/cimaa REPS=3 bash bench/all.sh
#   SECTIONS="idle probes peers checks nagios" (default: all), REPS=3
#
# idle    bench/idle_rss.sh, default configuration and PROFILE=aws (VmRSS 25 s after start)
# probes  bench/probes_ceiling.sh: cimaa's 50,000-URL tick against the bare reqwest loop (same run)
# peers   ../shared/bench/http_peers.sh A3 A2 A1: wrk keep-alive/close, blackbox_exporter, check_http
# checks  bench/checks.sh: `check_dummy 0 OK` x 5,000, cimaa against the spawnbench ceiling
# nagios  ../shared/bench/nagios_bench.sh: Nagios Core 4, 5,000 check_dummy services every minute
# Every cell waits for the load gate (load1 < 0.8, at most GATE_MAX_WAIT s, flagged in the CSV).
# The CSVs go to $RESULTS_DIR (default /tmp/cimaa-bench-all/results/<timestamp>), then
# bench/summarize_all.py prints the table.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
export CIMAA_BIN=${CIMAA_BIN:?set CIMAA_BIN to a release cimaa binary}
export REPS=${REPS:-3}
export GATE_MAX_WAIT=${GATE_MAX_WAIT:-60} GATE_POLL=${GATE_POLL:-10}
export RESULTS_DIR=${RESULTS_DIR:-/tmp/cimaa-bench-all/results/$(date -u +%Y%m%dT%H%M%S)}
SECTIONS=${SECTIONS:-"idle probes peers checks nagios"}
mkdir -p "$RESULTS_DIR"
for section in $SECTIONS; do
  echo "== $section (load1 $(cut -d' ' -f1 /proc/loadavg))" >&2
  case $section in
    idle)
      for profile in default aws; do
        CIMAA=$CIMAA_BIN PROFILE=$profile bash "$HERE/idle_rss.sh" | tee -a "$RESULTS_DIR/idle.log" >&2
        tail -1 "$RESULTS_DIR/idle.log" | sed "s/\$/, load1 $(cut -d' ' -f1 /proc/loadavg)/" >> "$RESULTS_DIR/idle.txt"
      done ;;
    probes) bash "$HERE/probes_ceiling.sh" >&2 ;;
    peers)
      export RUN_DIR=/tmp/cimaa-bench-all NGINX_PORT=28380 NGINX_STATUS_PORT=28381 BLACKBOX_PORT=29315
      grep -qs ":$NGINX_PORT/" "$RUN_DIR/data/urls.txt" || "$SHARED_BENCH/setup.sh" >&2
      WORKLOADS="A3 A2 A1" A3_LEVELS=32 A2_LEVELS=32 A1_LEVELS=8 A1_N=${A1_N:-10000} \
        "$SHARED_BENCH/http_peers.sh" >&2 ;;
    checks)
      NS=5000 KINDS=dummy CONCS=256 SWEEP_N=0 IDLE_REPS=0 CIMAA_BINS="cimaa=$CIMAA_BIN" \
        bash "$HERE/checks.sh" >&2 ;;
    nagios)
      SERVICES=5000 RUN_S=150 WARMUP_S=60 SAMPLE_S=15 "$SHARED_BENCH/nagios_bench.sh" >&2 ;;
    *) echo "unknown section $section" >&2; exit 2 ;;
  esac
done
python3 "$HERE/summarize_all.py" "$RESULTS_DIR"
