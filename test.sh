#!/usr/bin/env bash
# The whole test suite. Database and browser suites run when their prerequisites are present:
#   SWITCHBOARD_TEST_POSTGRES_URL / SWITCHBOARD_TEST_MYSQL_URL  → PostgreSQL / MariaDB tests
#   SWITCHBOARD_TEST_REDIS_URL                                   → cluster tests (also start private
#                                                                  redis-server instances)
#   SWITCHBOARD_BROWSER_TESTS=1                                  → web panel tests in Chromium
#   SWITCHBOARD_CONFORMANCE=1                                    → Autobahn|Testsuite (RFC 6455)
# Unset, those tests report themselves skipped and the rest still runs.
set -euo pipefail
cd "$(dirname "$0")"

cargo test --workspace

if [ "${SWITCHBOARD_CONFORMANCE:-0}" = "1" ]; then
  cargo build -p switchboard
  SWITCHBOARD_BIN="$PWD/target/debug/switchboard" bash conformance/autobahn.sh
fi

if [ -f web/tests/run.sh ] && command -v node >/dev/null 2>&1; then
  if [ "${SWITCHBOARD_BROWSER_TESTS:-0}" = "1" ]; then
    cargo build -p switchboard
    SWITCHBOARD_BIN="$PWD/target/debug/switchboard" bash web/tests/run.sh
  elif [ -d web/tests/unit ]; then
    node --test web/tests/unit/
  fi
else
  echo "web tests skipped: node not found"
fi
