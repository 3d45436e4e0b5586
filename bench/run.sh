#!/usr/bin/env bash
# Runs Switchboard's benchmark: every system (Switchboard and its peers) through every scenario,
# one after the other on this machine, then writes the report.
#
#   bench/run.sh            full run (≈ 25 min): bench/RESULTS.md, bench/results/*.json, bench/charts/*.svg
#   bench/run.sh --quick    smoke run (< 3 min after the builds): small N, short durations, written to
#                           bench/out/quick/ so it never overwrites the committed results
#
# Options: --systems "switchboard node-ws"  --scenarios "echo-small storm"  --out DIR
#          (lists separated by spaces or commas)
#          sockudo (a Pusher server from crates.io) is part of full runs only: the script installs
#          the pinned version into $BENCH_TARGET_DIR/sockudo once, a long release build on two
#          cores, so --quick leaves it out and says so. It has no request/reply and no addressing
#          by user, so echo-small, echo-4k and api are recorded as not applicable for it.
#          The `cluster` scenario runs once after the systems: bench/cluster.sh (one node, then
#          three nodes on a private Redis; Switchboard, then sockudo with its Redis adapter when
#          sockudo is among the systems), with --quick in a quick run. `durable` is Switchboard's
#          alone: bench/durable.sh (fan-out with history.durable off, then on).
# Environment: SWITCHBOARD_BIN=path  use this server binary instead of building one
#              SWITCHBOARD_BIN_PROFILE=release  how that binary was built, for the report
#              BENCH_TARGET_DIR=dir  cargo target dir for the bench workspace (default bench/target)
#              BENCH_NOTE=text       a line added to the report (e.g. what else ran on the machine)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$BENCH_DIR"
# shellcheck source=switchboard.sh
. "$BENCH_DIR/switchboard.sh"

QUICK=0
SYSTEMS="switchboard bare-tungstenite fastwebsockets node-ws socketio-node socketioxide sockudo"
SCENARIOS="idle echo-small echo-4k fanout-all fanout-tag storm api cluster durable"
OUT=""
COMMAND="bench/run.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --systems) SYSTEMS=${2//,/ }; shift ;;
    --scenarios) SCENARIOS=${2//,/ }; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,/^set/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$OUT" ]; then
  if [ $QUICK = 1 ]; then OUT="$BENCH_DIR/out/quick"; else OUT="$BENCH_DIR"; fi
fi
if [ $QUICK = 1 ] && [[ " $SYSTEMS " == *" sockudo "* ]]; then
  SYSTEMS=$(echo " $SYSTEMS " | sed 's/ sockudo / /; s/^ *//; s/ *$//')
  printf '[bench] skipping sockudo in a quick run: building it from crates.io takes far longer than the smoke run on two cores (full runs install it)\n' >&2
fi
RESULTS="$OUT/results"
mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.json
LOGS=$(mktemp -d)
NICE="nice -n 19"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Every system gets the machine's whole open-files allowance (10,000 sockets need it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- build ------------------------------------------------------------------------------------
TARGET_DIR=${BENCH_TARGET_DIR:-$BENCH_DIR/target}
log "building the load generator and Rust peers (release, $TARGET_DIR)"
CARGO_TARGET_DIR="$TARGET_DIR" $NICE cargo build --release --locked --manifest-path "$BENCH_DIR/Cargo.toml" >&2
BIN="$TARGET_DIR/release"

if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  SB_BIN=$SWITCHBOARD_BIN
  SB_PROFILE=${SWITCHBOARD_BIN_PROFILE:-given by SWITCHBOARD_BIN}
elif [[ " $SYSTEMS " == *" switchboard "* ]]; then
  # Quick runs are smoke checks: a debug build is enough (and usually already built by the tests).
  if [ $QUICK = 1 ]; then PROFILE_FLAG=""; PROFILE=debug; else PROFILE_FLAG="--release"; PROFILE=release; fi
  log "building switchboard ($PROFILE)"
  (cd "$ROOT" && $NICE cargo build $PROFILE_FLAG --locked -p switchboard >&2)
  SB_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/switchboard"
  SB_PROFILE=$PROFILE
fi

SOCKUDO_VERSION=5.2.0
SOCKUDO_BIN="$TARGET_DIR/sockudo/bin/sockudo"
SOCKUDO_UNAVAILABLE="" # why sockudo cannot run, recorded for each of its scenarios
if [[ " $SYSTEMS " == *" sockudo "* ]]; then
  if "$SOCKUDO_BIN" --version 2>/dev/null | grep -qw "$SOCKUDO_VERSION"; then
    log "sockudo $SOCKUDO_VERSION already installed ($SOCKUDO_BIN)"
  else
    # A build script among its dependencies (metrics-exporter-tcp) compiles a .proto file.
    if [ -z "${PROTOC:-}" ] && ! command -v protoc >/dev/null && command -v apt-get >/dev/null; then
      log "installing protoc (protobuf-compiler), which the sockudo build needs"
      SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
      $SUDO apt-get install -y -qq protobuf-compiler >&2 || true
    fi
  fi
  if [ -n "$SOCKUDO_UNAVAILABLE" ] || "$SOCKUDO_BIN" --version 2>/dev/null | grep -qw "$SOCKUDO_VERSION"; then
    :
  elif [ -z "${PROTOC:-}" ] && ! command -v protoc >/dev/null; then
    SOCKUDO_UNAVAILABLE="not installed: building sockudo needs protoc (apt-get install protobuf-compiler)"
    log "sockudo: $SOCKUDO_UNAVAILABLE"
  else
    # Pinned and --locked: the same server on every run. Only the in-memory (local) and Redis
    # adapters: the others pull in clients for brokers the benchmark never starts.
    log "installing sockudo $SOCKUDO_VERSION (release build from crates.io; long on two cores)"
    if ! $NICE cargo install sockudo --version "$SOCKUDO_VERSION" --locked --no-default-features \
        --features local,redis --root "$TARGET_DIR/sockudo" >&2; then
      SOCKUDO_UNAVAILABLE="not installed: cargo install sockudo $SOCKUDO_VERSION failed (its output is above in the run's log)"
      log "sockudo: $SOCKUDO_UNAVAILABLE"
    fi
  fi
fi

if [[ " $SYSTEMS " == *" node-ws "* || " $SYSTEMS " == *" socketio-node "* ]]; then
  log "installing the Node peers' dependencies (npm ci)"
  (cd peers/node && $NICE npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# ---- systems ----------------------------------------------------------------------------------
PASSWORD="bench-admin-pw-$RANDOM$RANDOM"
export BENCH_ADMIN_PASSWORD=$PASSWORD
PID=""
DATA_DIR=""

port_of() {
  case "$1" in
    switchboard) echo 18100 ;; bare-tungstenite) echo 18101 ;; node-ws) echo 18102 ;;
    socketio-node) echo 18103 ;; socketioxide) echo 18104 ;; fastwebsockets) echo 18105 ;;
    sockudo) echo 18106 ;;
  esac
}

# Where each system says it is ready.
health_path_of() {
  case "$1" in
    sockudo) echo /up/bench ;; # also checks that the app of peers/sockudo/config.json is loaded
    *) echo /healthz ;;
  esac
}

# The scenarios a system has nothing to measure in, with the reason the report gives.
not_applicable() { # system scenario
  case "$1:$2" in
    sockudo:echo-small|sockudo:echo-4k) echo "Pusher has no request/reply: a client event goes to the other subscribers, never back to its sender" ;;
    sockudo:api) echo "Pusher addresses channels, not users: there is no send to a user's connections" ;;
  esac
}

start_system() {
  local system=$1 addr="127.0.0.1:$(port_of "$1")"
  case "$system" in
    switchboard)
      DATA_DIR=$(mktemp -d)
      start_switchboard "$SB_BIN" "$addr" "$DATA_DIR" "$PASSWORD" "$LOGS/$system.log"
      ;;
    bare-tungstenite) "$BIN/peer-bare-tungstenite" "$addr" >"$LOGS/$system.log" 2>&1 & ;;
    fastwebsockets) "$BIN/peer-fastwebsockets" "$addr" >"$LOGS/$system.log" 2>&1 & ;;
    socketioxide) "$BIN/peer-socketioxide" "$addr" >"$LOGS/$system.log" 2>&1 & ;;
    node-ws) node peers/node/ws-server.js "$addr" >"$LOGS/$system.log" 2>&1 & ;;
    socketio-node) node peers/node/socketio-server.js "$addr" >"$LOGS/$system.log" 2>&1 & ;;
    # The port comes from the environment, which overrides the file (so the file needs none).
    sockudo) HOST=127.0.0.1 PORT=$(port_of sockudo) "$SOCKUDO_BIN" --config "$BENCH_DIR/peers/sockudo/config.json" \
               >"$LOGS/$system.log" 2>&1 & ;;
    *) echo "unknown system $system" >&2; return 1 ;;
  esac
  PID=$!
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "http://$addr$(health_path_of "$system")" 2>/dev/null; then return 0; fi
    if ! kill -0 "$PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "$system did not become ready; its log:"
  tail -20 "$LOGS/$system.log" >&2
  return 1
}

stop_system() {
  [ -n "$PID" ] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
  if [ -n "$DATA_DIR" ]; then rm -rf "$DATA_DIR"; DATA_DIR=""; fi
}
trap 'stop_system; rm -rf "$LOGS"' EXIT

# Busy share of both cores over one second while our server sits idle: other work on the
# machine. The report labels results taken under contention.
background_busy() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local busy=0 total=0 i
  for i in 1 2 3 4 5 6 7 8; do
    local d=$(( b[i] - a[i] )); total=$(( total + d ))
    if [ "$i" != 4 ] && [ "$i" != 5 ]; then busy=$(( busy + d )); fi
  done
  echo $(( total > 0 ? busy * 100 / total : 0 ))
}

# ---- scenarios --------------------------------------------------------------------------------
scenario_args() {
  if [ $QUICK = 1 ]; then
    case "$1" in
      idle) echo "idle --connections 300 --duration 2" ;;
      echo-small) echo "echo --connections 20 --inflight 8 --payload 16 --duration 2 --warmup 0.5" ;;
      echo-4k) echo "echo --connections 20 --inflight 8 --payload 4096 --duration 2 --warmup 0.5" ;;
      fanout-all) echo "fanout --mode all --connections 300 --rates 5,20 --step 1" ;;
      fanout-tag) echo "fanout --mode tag --connections 300 --tag-members 100 --rates 20,100 --step 1" ;;
      storm) echo "storm --connections 500 --concurrency 128" ;;
      api) echo "api --connections 100 --users 10 --concurrency 8 --duration 2" ;;
    esac
  else
    case "$1" in
      idle) echo "idle --connections 10000 --duration 60" ;;
      echo-small) echo "echo --connections 100 --inflight 16 --payload 16 --duration 10" ;;
      echo-4k) echo "echo --connections 100 --inflight 16 --payload 4096 --duration 10" ;;
      fanout-all) echo "fanout --mode all --connections 10000 --rates 1,2,5,10,20,50 --step 5" ;;
      fanout-tag) echo "fanout --mode tag --connections 10000 --tag-members 1000 --rates 10,20,50,100,200,500 --step 5" ;;
      storm) echo "storm --connections 10000 --concurrency 256" ;;
      api) echo "api --connections 1000 --users 100 --concurrency 16 --duration 10" ;;
    esac
  fi
}

record_not_applicable() { # system scenario reason
  python3 -c 'import json,sys; json.dump({"target": sys.argv[1], "scenario_id": sys.argv[2], "result": None, "not_applicable": sys.argv[3]}, open(sys.argv[4], "w"))' \
    "$1" "$2" "$3" "$RESULTS/$1.$2.json"
}

record_failure() { # system scenario message
  python3 -c 'import json,sys; json.dump({"target": sys.argv[1], "scenario_id": sys.argv[2], "result": None, "error": sys.argv[3]}, open(sys.argv[4], "w"))' \
    "$1" "$2" "$3" "$RESULTS/$1.$2.json"
}

run_scenario() { # system scenario
  local system=$1 scenario=$2 busy
  busy=$(background_busy)
  log "$system / $scenario (background CPU ${busy}%)"
  # shellcheck disable=SC2046
  if ! "$BIN/loadgen" --target "$system" --addr "127.0.0.1:$(port_of "$system")" --pid "$PID" \
      $(scenario_args "$scenario") >"$RESULTS/$system.$scenario.json.tmp" 2>"$LOGS/loadgen.err"; then
    log "loadgen failed for $system / $scenario:"; tail -5 "$LOGS/loadgen.err" >&2
  fi
  python3 - "$RESULTS/$system.$scenario.json.tmp" "$scenario" "$busy" "$(scenario_args "$scenario")" <<'PY'
import json, sys
path, scenario, busy, args = sys.argv[1:]
try:
    doc = json.load(open(path))
except Exception as e:  # a crashed loadgen still leaves a record
    doc = {"result": None, "error": f"no output: {e}"}
doc.update({"scenario_id": scenario, "background_busy_pct": int(busy), "args": args})
json.dump(doc, open(path[:-4], "w"), indent=1)
PY
  rm -f "$RESULTS/$system.$scenario.json.tmp"
}

# The scenarios every system runs; `cluster` is not one of them.
CLUSTER=0
DURABLE=0
PER_SYSTEM=""
for scenario in $SCENARIOS; do
  case "$scenario" in
    cluster) CLUSTER=1 ;;
    durable) DURABLE=1 ;;
    *) PER_SYSTEM="$PER_SYSTEM $scenario" ;;
  esac
done
SCENARIOS=$PER_SYSTEM

STARTED=$(date +%s)
for system in $SYSTEMS; do
  [ -n "$SCENARIOS" ] || break
  # The scenarios this system runs; the others are recorded with the reason they do not apply.
  RUN=""
  for scenario in $SCENARIOS; do
    reason=$(not_applicable "$system" "$scenario")
    if [ -n "$reason" ]; then
      log "$system / $scenario: not applicable ($reason)"
      record_not_applicable "$system" "$scenario" "$reason"
    else
      RUN="$RUN $scenario"
    fi
  done
  [ -n "$RUN" ] || continue
  if [ "$system" = sockudo ] && [ -n "$SOCKUDO_UNAVAILABLE" ]; then
    for scenario in $RUN; do record_failure "$system" "$scenario" "$SOCKUDO_UNAVAILABLE"; done
    continue
  fi
  if [ $QUICK = 1 ]; then
    # One server per system, idle first on the fresh process.
    if ! start_system "$system"; then
      for scenario in $RUN; do record_failure "$system" "$scenario" "server did not start"; done
      stop_system; continue
    fi
    for scenario in $RUN; do run_scenario "$system" "$scenario"; done
    stop_system
  else
    # A fresh server per scenario, so none inherits another's memory, sockets or tags.
    for scenario in $RUN; do
      if start_system "$system"; then
        sleep 1
        run_scenario "$system" "$scenario"
      else
        record_failure "$system" "$scenario" "server did not start"
      fi
      stop_system
    done
  fi
done
if [ $CLUSTER = 1 ] && [[ " $SYSTEMS " == *" switchboard "* ]]; then
  CLUSTER_FLAGS=(--out "$OUT" --no-report)
  [ $QUICK = 1 ] && CLUSTER_FLAGS+=(--quick)
  [[ " $SYSTEMS " == *" sockudo "* ]] || CLUSTER_FLAGS+=(--no-sockudo)
  # Already built above: hand over the same binary and its profile.
  if ! SWITCHBOARD_BIN="$SB_BIN" SWITCHBOARD_BIN_PROFILE="$SB_PROFILE" BENCH_TARGET_DIR="$TARGET_DIR" \
      SOCKUDO_BIN="$SOCKUDO_BIN" "$BENCH_DIR/cluster.sh" "${CLUSTER_FLAGS[@]}"; then
    log "the cluster benchmark failed"
  fi
fi
if [ $DURABLE = 1 ] && [[ " $SYSTEMS " == *" switchboard "* ]]; then
  DURABLE_FLAGS=(--out "$OUT" --no-report)
  [ $QUICK = 1 ] && DURABLE_FLAGS+=(--quick)
  if ! SWITCHBOARD_BIN="$SB_BIN" SWITCHBOARD_BIN_PROFILE="$SB_PROFILE" BENCH_TARGET_DIR="$TARGET_DIR" \
      "$BENCH_DIR/durable.sh" "${DURABLE_FLAGS[@]}"; then
    log "the durable-history benchmark failed"
  fi
fi
ELAPSED=$(( $(date +%s) - STARTED ))

# ---- report -----------------------------------------------------------------------------------
export M_COMMAND="$COMMAND" M_QUICK=$QUICK M_ELAPSED=$ELAPSED M_NOTE="${BENCH_NOTE:-}"
M_SWITCHBOARD="$("${SB_BIN:-true}" --version 2>/dev/null | head -1 || true) (${SB_PROFILE:-not run})"
M_CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //' || true)
M_GIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "no commit yet")
M_SOCKUDO=""
if [[ " $SYSTEMS " == *" sockudo "* ]]; then M_SOCKUDO=$("$SOCKUDO_BIN" --version 2>/dev/null | head -1 || true); fi
export M_SWITCHBOARD M_CPU M_GIT M_SOCKUDO
python3 - "$OUT/meta.json" <<'PY'
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
e = os.environ
json.dump({
    "command": e["M_COMMAND"].strip(),
    "quick": e["M_QUICK"] == "1",
    "elapsed_s": int(e["M_ELAPSED"]),
    "nproc": sh("nproc"),
    "memory": sh("free -h | awk '/^Mem:/ {print $2}'"),
    "kernel": platform.release(),
    "cpu": e["M_CPU"],
    "rustc": sh("rustc --version"),
    "node": sh("node --version") or "none",
    "switchboard": e["M_SWITCHBOARD"].strip(),
    "sockudo": e.get("M_SOCKUDO", "").strip(),
    "git": e["M_GIT"],
    "date": sh("date -u +%Y-%m-%dT%H:%MZ"),
    "note": e.get("M_NOTE", ""),
}, open(sys.argv[1], "w"), indent=1)
PY
python3 "$BENCH_DIR/report.py" --results "$RESULTS" --meta "$OUT/meta.json" --out "$OUT"
log "done in ${ELAPSED}s: $OUT/RESULTS.md"
