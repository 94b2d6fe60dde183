#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
# Runs on a fresh machine with a Rust toolchain; needs no service and no
# network beyond crates.io. CI (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "== cargo test"
cargo test --locked --all-targets
