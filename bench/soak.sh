#!/usr/bin/env bash
# Soak benchmark (#18): the release binary with 2,000 command checks at
# base_interval 1 for MINUTES (default 30) under random plugin failures and
# timeouts, SIGHUP every 10 s, the SQLite database locked for seconds at
# random and a command alerter failing at random. Samples RSS, fds, threads
# and children from /proc; says whether they stay flat after warm-up, whether
# any zombie or leaked plugin stays, and whether the database's final faults
# match the plugins' last outcomes. Not in CI at this length: tests/soak.rs
# runs the same driver (bench/soak.py) for two minutes with 200 checks.
#
#   bench/soak.sh                 # 30 minutes, 2,000 checks
#   bench/soak.sh 10              # 10 minutes
#   CHECKS=500 SOAK_DIR=/tmp/s CIMAA_BIN=path bench/soak.sh 5 --seed 1
#
# Extra arguments go to bench/soak.py (--help lists them). Exit 0 when every
# verdict holds; the JSON result (with the sampled series) is
# $SOAK_DIR/result.json.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
MINUTES=${1:-30}
shift || true
CHECKS=${CHECKS:-2000}
BIN=${CIMAA_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/cimaa}
if [ -z "${CIMAA_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin cimaa)
fi
[ -x "$BIN" ] || { echo "soak: no cimaa binary at $BIN" >&2; exit 2; }
DIR=${SOAK_DIR:-$(mktemp -d /tmp/cimaa-soak.XXXXXX)}
mkdir -p "$DIR"
# A private copy: a rebuild during the run cannot change the binary under test.
cp -f "$BIN" "$DIR/cimaa"
echo "soak: $CHECKS checks for $MINUTES min in $DIR ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
exec python3 "$HERE/soak.py" --binary "$DIR/cimaa" --dir "$DIR" --checks "$CHECKS" \
  --minutes "$MINUTES" --json "$DIR/result.json" "$@"
