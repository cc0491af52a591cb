#!/usr/bin/env bash
# The browser test of the web app (tests/browser): Debian's Chromium driven by playwright-core
# (which downloads no browser), against the running local stack whose stack.json is named by
# WEBHOOKS_STACK_FILE. Installs what is missing: Chromium through apt (CI runs as root on a fresh
# Debian machine), the pinned npm packages with `npm ci`. Screenshots land in target/browser/.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${WEBHOOKS_STACK_FILE:?WEBHOOKS_STACK_FILE must name stack.json of a running local stack}"
WEBHOOKS_STACK_FILE="$(realpath "$WEBHOOKS_STACK_FILE")"
export WEBHOOKS_STACK_FILE

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium" >&2
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "$tool is required for the browser test" >&2; exit 1; }
done

# `npm ci` again only when the lock file changed since the last install.
browser=tests/browser
stamp="$browser/node_modules/.installed-from-lock"
if ! cmp -s "$browser/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$browser" && npm ci --no-audit --no-fund --ignore-scripts)
  cp "$browser/package-lock.json" "$stamp"
fi

rm -rf target/browser
mkdir -p target/browser
cd "$browser"
exec node --test webapp.test.js
