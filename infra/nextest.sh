#!/usr/bin/env bash
# Makes sure cargo-nextest (the test runner `make test` uses) is there, at the pinned version
# when it has to be installed. Exits non-zero when it cannot be had: the caller then falls
# back to `cargo test`.
set -uo pipefail
NEXTEST_VERSION="${NEXTEST_VERSION:-0.9.143}"
cargo nextest --version >/dev/null 2>&1 && exit 0
echo "installing cargo-nextest $NEXTEST_VERSION (once)" >&2
cargo install --locked --quiet "cargo-nextest@$NEXTEST_VERSION" >&2 && cargo nextest --version >/dev/null 2>&1
