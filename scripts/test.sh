#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
# Needs a Rust toolchain and Node.js (npm) for the local AWS stand-ins in
# tests/services/ (dynalite for DynamoDB, kinesalite for Kinesis, pinned in
# package-lock.json); no network beyond crates.io and the npm registry, and
# every service listens on 127.0.0.1 only. CI (.ci/run) calls exactly this
# script. A service that cannot start fails the run; it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Nothing may reach AWS: static dummy credentials, a fixed region, no
# instance metadata lookups.
export AWS_ACCESS_KEY_ID=cimaa-test
export AWS_SECRET_ACCESS_KEY=cimaa-test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

services_dir=$(mktemp -d)
service_pids=()
postgres_stop=()
cleanup() {
    if [ "${#postgres_stop[@]}" -gt 0 ]; then
        "${postgres_stop[@]}" >/dev/null 2>&1 || true
    fi
    for pid in "${service_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${service_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$services_dir"
}
trap cleanup EXIT

# start_service VAR SCRIPT [ARGS...]: runs `node tests/services/SCRIPT --port 0
# ARGS` and exports VAR as the `http://127.0.0.1:PORT` it reports. Fails (and
# so does CI) when the service does not come up within 20 s.
start_service() {
    local var=$1 script=$2 log="$services_dir/$2.log"
    shift 2
    node "tests/services/$script" --port 0 "$@" >"$log" 2>&1 &
    service_pids+=("$!")
    local pid=$! endpoint=""
    for _ in $(seq 200); do
        endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n 1 || true)
        if [ -n "$endpoint" ]; then
            export "$var=$endpoint"
            echo "$script: $endpoint"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "error: $script did not start; its output:" >&2
    cat "$log" >&2
    return 1
}

# start_dynalite: dynalite's own CLI binds the address it is given.
start_dynalite() {
    local log="$services_dir/dynalite.log" port
    port=$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
    tests/services/node_modules/.bin/dynalite --host 127.0.0.1 --port "$port" \
        --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$log" 2>&1 &
    service_pids+=("$!")
    local pid=$!
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            export CIMAA_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
            echo "dynalite: $CIMAA_TEST_DYNAMODB_ENDPOINT"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "error: dynalite did not start on 127.0.0.1:$port; its output:" >&2
    cat "$log" >&2
    return 1
}

# apt_install PACKAGE...: installs Debian packages with apt-get (as root, or
# through `sudo -n`: never a password prompt; apt-get never asks, its stdin
# is /dev/null), updating the package lists once if the first try fails.
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y)
    echo "== installing $* (apt-get)"
    command -v apt-get >/dev/null 2>&1 &&
        { "${apt[@]}" install --no-install-recommends "$@" </dev/null ||
            { "${apt[@]}" update </dev/null && "${apt[@]}" install --no-install-recommends "$@" </dev/null; }; }
}

# ensure_tool "COMMAND..." "WHO NEEDS IT" PACKAGE...: installs the Debian
# packages when one of the commands is missing. Under CI=true a failed
# install fails the run; elsewhere it warns, and the tests that need the
# tool fail naming it (they are never skipped).
ensure_tool() {
    local commands=$1 needed_by=$2 command missing=""
    shift 2
    for command in $commands; do
        command -v "$command" >/dev/null 2>&1 || missing=1
    done
    [ -z "$missing" ] && return 0
    if apt_install "$@"; then
        missing=""
        for command in $commands; do
            command -v "$command" >/dev/null 2>&1 || missing=1
        done
        [ -z "$missing" ] && return 0
    fi
    if [ "${CI:-}" = "true" ]; then
        echo "error: cannot install Debian's $* (needed by $needed_by)" >&2
        return 1
    fi
    echo "warning: cannot install Debian's $*: $needed_by will fail" >&2
}

# faketime: tests/peers.rs runs agents under libfaketime to give them a
# clock ahead or behind. promtool (Debian's prometheus package):
# tests/metrics.rs checks the agent's /metrics with `promtool check
# metrics`. chromium and chromedriver: tests/browser.rs drives `cimaa web`
# in headless chromium through chromedriver.
ensure_faketime() { ensure_tool faketime "tests/peers.rs" faketime; }
ensure_promtool() { ensure_tool promtool "tests/metrics.rs" prometheus; }
ensure_chromium() { ensure_tool "chromium chromedriver" "tests/browser.rs" chromium chromium-driver; }

# ensure_postgres: the PostgreSQL tests (tests/postgres.rs and the contract
# suite) need a real server. Installs Debian's `postgresql` package when no
# server binaries are found (apt_install).
postgres_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
        fi
    done | sort -V | tail -n 1
}

ensure_postgres() {
    if [ -n "$(postgres_bin)" ]; then
        return 0
    fi
    if apt_install postgresql && [ -n "$(postgres_bin)" ]; then
        return 0
    fi
    echo "error: cannot install Debian's postgresql package" >&2
    return 1
}

# start_postgres: a private server for this run: a data directory under
# $services_dir, listening on 127.0.0.1 and a free port only, its socket in
# that directory (never a shared one), trust authentication for the local
# superuser `cimaa_test`. initdb refuses to run as root, so as root the
# server runs as the `postgres` user the package creates. Exports
# CIMAA_TEST_POSTGRES_URL (the tests create a database each; the outage
# test cuts a proxy in front of the server, never the server). Under CI=true a server that does not start fails
# the run; elsewhere the tests that need it fail naming the variable.
start_postgres() {
    local bin dir="$services_dir/postgres" port run=()
    if ! ensure_postgres; then
        [ "${CI:-}" = "true" ] && return 1
        echo "warning: no PostgreSQL server: the postgres tests will fail" >&2
        return 0
    fi
    bin=$(postgres_bin)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        chmod 755 "$services_dir"
        run=(runuser -u postgres --)
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if "${run[@]}" "$bin/initdb" -D "$dir/data" -U cimaa_test --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 &&
        "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >"$dir/pg_ctl.log" 2>&1; then
        postgres_stop=("${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop)
        export CIMAA_TEST_POSTGRES_URL="postgres://cimaa_test@127.0.0.1:$port/postgres"
        echo "postgres: $CIMAA_TEST_POSTGRES_URL"
        return 0
    fi
    echo "error: the PostgreSQL server did not start; its output:" >&2
    cat "$dir"/*.log >&2
    [ "${CI:-}" = "true" ] && return 1
    return 0
}

# ensure_cargo_deb: the Debian package test (tests/operations.rs) builds the
# package with cargo-deb. Installs it into $CARGO_HOME/bin (kept between
# runs where the CI caches ~/.cargo) when missing; from source that takes
# about 2 minutes on 2 cores, once.
ensure_cargo_deb() {
    if cargo deb --version >/dev/null 2>&1; then
        return 0
    fi
    echo "== installing cargo-deb (cargo install --locked cargo-deb, about 2 minutes)"
    cargo install --locked cargo-deb
}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "== test services (npm ci in tests/services)"
(cd tests/services && npm ci --no-audit --no-fund --loglevel=error)
start_dynalite
start_service CIMAA_TEST_KINESIS_ENDPOINT kinesalite.js
start_postgres
ensure_faketime
ensure_promtool
ensure_chromium
ensure_cargo_deb

echo "== cargo test"
log="$services_dir/cargo-test.log"
cargo test --locked --all-targets 2>&1 | tee "$log"

# The Debian package: built from the dev binary above (about 15 s with the
# install, upgrade and purge), installed with dpkg, so as root and alone,
# after the rest (it owns /usr/bin/cimaa and /var/lib/cimaa meanwhile).
# As a user other than root it skips with a note (under CI=true it fails).
echo "== Debian package (dpkg -i, upgrade, -r, --purge)"
cargo test --locked --test tests operations::the_debian_package -- --ignored 2>&1 | tee -a "$log"

# One closing line for the whole run (cargo prints one per test binary, the
# last of which may be an example with no tests).

awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
