#!/usr/bin/env bash
# Tests of the web admin panel: unit tests of js/socket.js, then browser tests that drive Debian's
# Chromium (headless, through playwright-core) against a real server.
#
#   SWITCHBOARD_BIN=target/release/switchboard bash web/tests/run.sh
#
# Installs what it needs: chromium (apt) when /usr/bin/chromium is missing, node modules (npm ci).
# Env: SWITCHBOARD_BIN (required for the browser tests), CHROMIUM_BIN (default /usr/bin/chromium),
# KEEP_TEST_DATA=1 keeps the servers' temp dirs and logs.
set -euo pipefail

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v node >/dev/null 2>&1; then
  echo "web/tests: node is missing; installing nodejs and npm" >&2
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi

if [ ! -x "$CHROMIUM_BIN" ]; then
  echo "web/tests: $CHROMIUM_BIN is missing; installing Debian's chromium" >&2
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

# A relative SWITCHBOARD_BIN is relative to where this script was called from.
if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  case "$SWITCHBOARD_BIN" in
    /*) ;;
    *) SWITCHBOARD_BIN="$PWD/$SWITCHBOARD_BIN" ;;
  esac
fi

cd "$TESTS_DIR"
npm ci --no-audit --no-fund --loglevel=error

echo "== web: unit tests (js/socket.js)"
node --test --test-timeout=60000 unit/*.test.mjs

echo "== web: browser tests"
if [ -z "${SWITCHBOARD_BIN:-}" ]; then
  echo "web/tests/run.sh: SWITCHBOARD_BIN is not set; the browser tests need a built server binary, e.g." >&2
  echo "  cargo build --release && SWITCHBOARD_BIN=\$PWD/target/release/switchboard bash web/tests/run.sh" >&2
  exit 2
fi
if [ ! -x "$SWITCHBOARD_BIN" ]; then
  echo "web/tests/run.sh: SWITCHBOARD_BIN=$SWITCHBOARD_BIN is not an executable file" >&2
  exit 2
fi
export SWITCHBOARD_BIN CHROMIUM_BIN
# One file at a time: each starts its own server and browser, and the machine may be small.
node --test --test-concurrency=1 --test-timeout=180000 browser/*.test.mjs
