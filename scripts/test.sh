#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
# Runs on a fresh machine with a Rust toolchain, Node.js and npm; needs no
# network beyond crates.io and the npm registry. CI (.ci/run) calls exactly
# this script.
#
# The DynamoDB tests run against dynalite, a local DynamoDB-compatible
# server pinned in tests/services/package-lock.json: this script installs it,
# starts it on a free port of 127.0.0.1 and stops it on exit. With static
# dummy credentials and instance metadata off, no request leaves 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

export AWS_ACCESS_KEY_ID=cimaa-test
export AWS_SECRET_ACCESS_KEY=cimaa-test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "== dynalite (local DynamoDB)"
(cd tests/services && npm ci --no-audit --no-fund --loglevel=error)
dynalite=tests/services/node_modules/.bin/dynalite
port=$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
"$dynalite" --host 127.0.0.1 --port "$port" \
    --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 &
dynalite_pid=$!
trap 'kill "$dynalite_pid" 2>/dev/null || true; wait "$dynalite_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$dynalite_pid" 2>/dev/null; then
        echo "error: dynalite exited before listening on 127.0.0.1:$port" >&2
        exit 1
    fi
    sleep 0.1
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: dynalite is not listening on 127.0.0.1:$port after 10 s" >&2
    exit 1
fi
export CIMAA_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
echo "dynalite on $CIMAA_TEST_DYNAMODB_ENDPOINT"

echo "== cargo test"
cargo test --locked --all-targets
