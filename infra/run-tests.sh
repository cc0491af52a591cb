#!/usr/bin/env bash
# Runs every test. Unit tests need nothing; integration tests share one local stack started
# here (tests that need special settings start private stacks of their own). The stack is
# stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

# The template first: what AWS tooling would refuse fails here, before anything starts.
bash infra/lint.sh
# Then the Rust code: one format, and no lint (warnings are errors).
echo "--- cargo fmt --check; cargo clippy --all-targets -D warnings ---"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# The local stack's own tests (the proxy's AWS strictness, the pollers), on an emulator of
# their own: the integration tests below rely on both.
echo "--- Python tests: local stack strictness and pollers, make receiver, the bench's pricing (pytest) ---"
(cd infra && ../.venv/bin/python -m pytest local_stack test_receiver.py bench -q -p no:cacheprovider)

state=.dev/test-stack
rm -rf "$state"
mkdir -p "$state"

# Test-friendly settings: short retries, plain-http receivers on loopback.
export WEBHOOKS_HTTP_PORT=0 WEBHOOKS_EMULATOR_PORT=0
export WEBHOOKS_RETRY_SCHEDULE="${WEBHOOKS_RETRY_SCHEDULE:-1s}"
export WEBHOOKS_DELIVERY_TIMEOUT="${WEBHOOKS_DELIVERY_TIMEOUT:-2s}"

PYTHONPATH=infra .venv/bin/python -m local_stack --state-dir "$state" >"$state/runner.log" 2>&1 &
runner=$!
stop() {
  kill -TERM "$runner" 2>/dev/null || true
  wait "$runner" 2>/dev/null || true
}
trap stop EXIT

for _ in $(seq 1 1200); do
  [ -f "$state/stack.json" ] && break
  if ! kill -0 "$runner" 2>/dev/null; then
    echo "the local stack failed to start:" >&2
    cat "$state/runner.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -f "$state/stack.json" ] || { echo "the local stack did not start in 120 s" >&2; cat "$state/runner.log" >&2; exit 1; }
export WEBHOOKS_STACK_FILE="$PWD/$state/stack.json"

status=0
if bash infra/nextest.sh; then
  cargo nextest run --workspace --exclude webhooks-bench --no-fail-fast || status=$?
else
  echo "cargo-nextest is not available: running the tests with cargo test" >&2
  cargo test --workspace --exclude webhooks-bench --no-fail-fast || status=$?
fi
bash infra/browser-test.sh || status=1
# Last: its admin pass may delete any key or webhook on the stack.
echo "--- schemathesis: the API against its own OpenAPI document ---"
.venv/bin/python infra/api_fuzz.py "$WEBHOOKS_STACK_FILE" || status=1
if [ "$status" -ne 0 ]; then
  echo "--- local stack log (tail) ---" >&2
  tail -n 50 "$state/runner.log" >&2 || true
fi
exit "$status"
