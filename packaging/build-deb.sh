#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (`cargo install --locked cargo-deb`):
#   packaging/build-deb.sh [CARGO-DEB OPTIONS...]
# The profile is $CIMAA_DEB_PROFILE (default `release`; the tests package the
# `dev` build they already have). Generates the man page and the shell
# completions from the built binary into the profile's target directory,
# where the assets of [package.metadata.deb] in Cargo.toml name them, then
# packages without building again. Prints the path of the .deb, written to
# $CIMAA_DEB_OUTPUT (default: TARGET_DIR/debian). CIMAA_DEB_NO_BUILD=1
# packages the binary already built (the tests, from inside `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${CIMAA_DEB_PROFILE:-release}
case "$profile" in
    dev) dir=debug ;;
    *) dir=$profile ;;
esac
target=${CARGO_TARGET_DIR:-target}
out=$target/$dir

if [ "${CIMAA_DEB_NO_BUILD:-}" != 1 ]; then
    cargo build --locked --profile "$profile" --bin cimaa >&2
fi
generated=$out/packaging
mkdir -p "$generated"
"$out/cimaa" man | gzip -9n >"$generated/cimaa.1.gz"
"$out/cimaa" completions bash >"$generated/cimaa.bash"
"$out/cimaa" completions zsh >"$generated/_cimaa"
"$out/cimaa" completions fish >"$generated/cimaa.fish"
cargo deb --locked --no-build --profile "$profile" --output "${CIMAA_DEB_OUTPUT:-$target/debian}" "$@"
