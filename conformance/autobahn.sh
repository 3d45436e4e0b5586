#!/usr/bin/env bash
# RFC 6455 conformance: runs Autobahn|Testsuite (`wstest -m fuzzingclient`) against the server's
# raw echo endpoint (`websocket.echo_path`) and fails when any case FAILED.
#
#   conformance/autobahn.sh
#
# Environment (all optional):
#   SWITCHBOARD_BIN    server binary [target/debug/switchboard, built when missing]
#   AUTOBAHN_CASES     comma-separated case patterns [1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*]
#   AUTOBAHN_PYTHON    a CPython 2.7 interpreter [pyenv's 2.7.18, else python2.7 on PATH]
#   AUTOBAHN_SITE_DIR  where autobahntestsuite is pip-installed [conformance/.venv-py27]
#   AUTOBAHN_TIMEOUT   seconds the whole wstest run may take [900]
#
# Output: conformance/reports/ (index.html, index.json, one report per case, server.log,
# SUMMARY.md). Copy reports/SUMMARY.md over conformance/SUMMARY.md to update the committed one.
set -euo pipefail

AUTOBAHN_VERSION=25.10.1
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"

SITE_DIR="${AUTOBAHN_SITE_DIR:-$HERE/.venv-py27}"
REPORTS="$HERE/reports"
CASES="${AUTOBAHN_CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*}"
TIMEOUT="${AUTOBAHN_TIMEOUT:-900}"

log() { echo "autobahn: $*" >&2; }
die() { log "$*"; exit 2; }

# --- Python 2.7 and autobahntestsuite -------------------------------------------------------
find_python() {
  if [ -n "${AUTOBAHN_PYTHON:-}" ]; then
    echo "$AUTOBAHN_PYTHON"
    return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    local prefix
    prefix="$(pyenv prefix 2.7.18 2>/dev/null || true)"
    if [ -n "$prefix" ] && [ -x "$prefix/bin/python2.7" ]; then
      echo "$prefix/bin/python2.7"
      return
    fi
  fi
  if command -v python2.7 >/dev/null 2>&1; then
    command -v python2.7
    return
  fi
  die "no CPython 2.7 found: install one (pyenv install 2.7.18) or set AUTOBAHN_PYTHON"
}
PY="$(find_python)"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' \
  || die "$PY is not CPython 2.7 (autobahntestsuite is Python 2 code)"

MARKER="$SITE_DIR/.autobahntestsuite-$AUTOBAHN_VERSION"
if [ ! -f "$MARKER" ]; then
  log "installing autobahntestsuite==$AUTOBAHN_VERSION into $SITE_DIR"
  rm -rf "$SITE_DIR"
  "$PY" -m pip install --disable-pip-version-check --no-warn-script-location -q \
    --target "$SITE_DIR" "autobahntestsuite==$AUTOBAHN_VERSION"
  touch "$MARKER"
fi

# --- the server ------------------------------------------------------------------------------
BIN="${SWITCHBOARD_BIN:-}"
if [ -z "$BIN" ]; then
  BIN="$ROOT/target/debug/switchboard"
  if [ ! -x "$BIN" ]; then
    log "building the server (cargo build -p switchboard)"
    cargo build -p switchboard
  fi
fi
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
[ -x "$BIN" ] || die "server binary not found: $BIN"

rm -rf "$REPORTS"
mkdir -p "$REPORTS"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PASSWORD="ab-$("$PY" -c 'import binascii, os; print(binascii.hexlify(os.urandom(12)).decode())')"
BASE="http://127.0.0.1:$PORT"

SWITCHBOARD_SERVER__ADDRESS="127.0.0.1:$PORT" \
SWITCHBOARD_SERVER__DATA_DIR="$WORK/data" \
SWITCHBOARD_AUTH__ADMIN_PASSWORD="$PASSWORD" \
SWITCHBOARD_WEBSOCKET__ECHO_PATH=/echo \
SWITCHBOARD_WEBSOCKET__MAX_MESSAGE_SIZE=64MiB \
SWITCHBOARD_WEBSOCKET__SEND_QUEUE_BYTES=128MiB \
  "$BIN" >"$REPORTS/server.log" 2>&1 &
SERVER_PID=$!

for i in $(seq 1 300); do
  if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$REPORTS/server.log" >&2; die "the server exited"; }
  [ "$i" -lt 300 ] || die "the server did not answer /healthz within 30 s"
  sleep 0.1
done

TOKEN="$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" "$BASE/api/auth/login" \
  | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["token"])')" \
  || die "login failed"

# --- the spec (it holds the token, so it stays out of the reports) ----------------------------
"$PY" - "$WORK/spec.json" "ws://127.0.0.1:$PORT/echo?authorization=$TOKEN" "$REPORTS" "$CASES" <<'EOF'
import json, sys
path, url, outdir, cases = sys.argv[1:5]
spec = {
    "outdir": outdir,
    "servers": [{"agent": "switchboard", "url": url}],
    "cases": [c.strip() for c in cases.split(",") if c.strip()],
    "exclude-cases": ["12.*", "13.*"],
    "exclude-agent-cases": {},
}
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF

log "server $BIN on port $PORT; cases $CASES"
SUMMARY_COMMAND="conformance/autobahn.sh"
[ -z "${SWITCHBOARD_BIN:-}" ] || SUMMARY_COMMAND="SWITCHBOARD_BIN=${SWITCHBOARD_BIN#"$ROOT/"} $SUMMARY_COMMAND"
[ -z "${AUTOBAHN_CASES:-}" ] || SUMMARY_COMMAND="AUTOBAHN_CASES='$CASES' $SUMMARY_COMMAND"
START=$(date +%s)
set +e
(cd "$WORK" && timeout "$TIMEOUT" "$PY" "$HERE/wstest_launcher.py" "$SITE_DIR" \
  -m fuzzingclient -s "$WORK/spec.json") >"$REPORTS/wstest.log" 2>&1
WSTEST_RC=$?
set -e
# The reports quote the request URL; blank the (already short-lived) token out of them.
{ grep -rlZ 'authorization=' "$REPORTS" 2>/dev/null || true; } \
  | xargs -0 -r sed -i 's/authorization=[A-Za-z0-9._-]*/authorization=REDACTED/g'
log "wstest finished in $(( $(date +%s) - START )) s (exit $WSTEST_RC; log in reports/wstest.log)"
if [ "$WSTEST_RC" -ne 0 ]; then
  tail -n 20 "$REPORTS/wstest.log" >&2
  [ "$WSTEST_RC" -ne 124 ] || log "wstest timed out after $TIMEOUT s"
fi
kill -0 "$SERVER_PID" 2>/dev/null || log "the server died during the run (see reports/server.log)"

"$PY" "$HERE/summarize.py" "$REPORTS/index.json" "$REPORTS/SUMMARY.md" \
  "$SUMMARY_COMMAND" "$("$BIN" --version 2>/dev/null || echo switchboard), $(basename "$(dirname "$BIN")") build"
