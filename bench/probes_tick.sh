#!/usr/bin/env bash
# AGENT hook for the shared http_peers.sh (issue #8): one `cimaa agent --once` tick over the URL
# list as http checks, through the shared agents/cimaa_tick.sh, plus the agent's own numbers.
#   CIMAA_BIN=... bench/probes_tick.sh URLS C
# Prints cimaa_tick.sh's "ok=N fail=M" and appends "c=C took_secs=T scan_secs=S" (the agent's
# "tick done" and the time from "agent started" to the tick's first line, i.e. loading the check
# directory) to $RESULTS_DIR/probes_ticks.log, so the tick itself can be told from the process
# around it (start-up, SQLite, `cimaa faults --json` in cimaa_tick.sh).
set -uo pipefail
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
export RUST_LOG=${RUST_LOG:-cimaa=debug}
"$SHARED_BENCH/agents/cimaa_tick.sh" "$@"
log=${CIMAA_TICK_DIR:-${RUN_DIR:-/tmp/cimaa-bench}/cimaa_tick}/agent.log
python3 - "$log" "${2:-}" >> "${RESULTS_DIR:-${RUN_DIR:-/tmp/cimaa-bench}/results}/probes_ticks.log" <<'PY'
import re, sys, datetime
def at(line):
    return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
lines = [l for l in open(sys.argv[1]) if "cimaa::agent" in l]
started = next((at(l) for l in lines if "agent started" in l), None)
tick = next((at(l) for l in lines if re.search(r"DEBUG cimaa::agent: tick tick=", l)), None)
done = next((l for l in lines if "tick done" in l), "")
took = re.search(r"took_secs=([0-9.]+)", done)
scan = f"{tick - started:.3f}" if started and tick else "nan"
print(f"c={sys.argv[2]} took_secs={took.group(1) if took else 'nan'} scan_secs={scan}")
PY
