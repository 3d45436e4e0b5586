#!/usr/bin/env bash
# Durable history benchmark: fan-out to all and to a tag with `history.durable` on and off, in one
# run on this machine, so what writing history to the database costs is read as a ratio.
#
#   bench/durable.sh            10,000 connections, the fan-out rates of bench/run.sh, 3 rounds
#                               (≈ 5 min): bench/results/durable.json, RESULTS.md regenerated
#   bench/durable.sh --quick    300 connections, short steps, 1 round (< 1 min): bench/out/quick/
#
# Each mode and scenario gets a fresh server and data dir (SQLite, the default database). Every
# push goes to a stream (`all`, `tag:<name>`), so with durable on each one is also stored.
# Targets: durable on has a best delivery rate at most 10% lower and server CPU per delivery at
# most 10% higher than durable off, each taken as the median over the rounds.
#
# Why rounds: CPU per delivery at a given rate depends on how many pushes a socket's task finds
# waiting when it wakes (one writev for several frames, or one each), and that varies between two
# runs of the *same* server by up to 2× on this kind of machine. One run per mode can therefore
# show a difference the database does not cause; the median of alternating rounds (off, on, then
# on, off, …) does not drift with the machine.
#
# Options: --quick  --rounds N  --out DIR  --no-report (leave RESULTS.md to the caller: run.sh)
# Environment: SWITCHBOARD_BIN=path  use this server binary (else cargo build, debug for --quick)
#              SWITCHBOARD_BIN_PROFILE=release  how that binary was built, for the report
#              BENCH_TARGET_DIR=dir  cargo target dir for the load generator (default bench/target)
#              BENCH_NOTE=text       a line added to the report (e.g. what else ran on the machine)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=switchboard.sh
. "$BENCH_DIR/switchboard.sh"
COMMAND="bench/durable.sh $*"
QUICK=0
REPORT=1
OUT=""
ROUNDS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --no-report) REPORT=0 ;;
    -h|--help) sed -n '2,/^set/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$OUT" ]; then
  if [ $QUICK = 1 ]; then OUT="$BENCH_DIR/out/quick"; else OUT="$BENCH_DIR"; fi
fi
mkdir -p "$OUT/results"
if [ -z "$ROUNDS" ]; then
  if [ $QUICK = 1 ]; then ROUNDS=1; else ROUNDS=3; fi
fi
case "$ROUNDS" in ''|*[!0-9]*|0) echo "--rounds takes a positive number" >&2; exit 2 ;; esac
if [ $QUICK = 1 ]; then
  ALL_ARGS="fanout --mode all --connections 300 --rates 5,20 --step 1"
  TAG_ARGS="fanout --mode tag --connections 300 --tag-members 100 --rates 20,100 --step 1"
else
  ALL_ARGS="fanout --mode all --connections 10000 --rates 1,2,5,10,20,50 --step 5"
  TAG_ARGS="fanout --mode tag --connections 10000 --tag-members 1000 --rates 10,20,50,100,200,500 --step 5"
fi
NICE="nice -n 19"
log() { printf '[durable %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TARGET_DIR=${BENCH_TARGET_DIR:-$BENCH_DIR/target}
log "building the load generator (release, $TARGET_DIR)"
CARGO_TARGET_DIR="$TARGET_DIR" $NICE cargo build --release --locked \
  --manifest-path "$BENCH_DIR/Cargo.toml" -p bench-loadgen >&2
LOADGEN="$TARGET_DIR/release/loadgen"
if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  SB_BIN=$SWITCHBOARD_BIN
  SB_PROFILE=${SWITCHBOARD_BIN_PROFILE:-given by SWITCHBOARD_BIN}
else
  if [ $QUICK = 1 ]; then PROFILE_FLAG=""; SB_PROFILE=debug; else PROFILE_FLAG="--release"; SB_PROFILE=release; fi
  log "building switchboard ($SB_PROFILE)"
  (cd "$ROOT" && $NICE cargo build $PROFILE_FLAG --locked -p switchboard >&2)
  SB_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$SB_PROFILE/switchboard"
fi

PASSWORD="bench-admin-pw-$RANDOM$RANDOM"
export BENCH_ADMIN_PASSWORD=$PASSWORD
WORK=$(mktemp -d)
PID=""
ADDR=127.0.0.1:18105
stop_server() {
  [ -n "$PID" ] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT

busy_pct() {
  local a b busy=0 total=0 i
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  for i in 1 2 3 4 5 6 7 8; do
    local d=$(( b[i] - a[i] )); total=$(( total + d ))
    if [ "$i" != 4 ] && [ "$i" != 5 ]; then busy=$(( busy + d )); fi
  done
  echo $(( total > 0 ? busy * 100 / total : 0 ))
}

# Alternating which mode goes first each round keeps slow drift on the machine from favouring one.
for round in $(seq 1 "$ROUNDS"); do
for scenario in fanout-all fanout-tag; do
  if [ $scenario = fanout-all ]; then ARGS=$ALL_ARGS; else ARGS=$TAG_ARGS; fi
  if [ $((round % 2)) = 1 ]; then MODES="false true"; else MODES="true false"; fi
  for durable in $MODES; do
    run="$scenario-$durable-$round"
    dir="$WORK/data-$run"
    mkdir -p "$dir"
    start_switchboard "$SB_BIN" "$ADDR" "$dir" "$PASSWORD" "$WORK/server-$run.log" \
      SWITCHBOARD_HISTORY__DURABLE=$durable
    PID=$!
    for _ in $(seq 1 300); do
      curl -fsS -o /dev/null "http://$ADDR/healthz" 2>/dev/null && break
      kill -0 "$PID" 2>/dev/null || { log "the server exited:"; tail -20 "$WORK/server-$run.log" >&2; exit 1; }
      sleep 0.1
    done
    sleep 1
    busy=$(busy_pct)
    log "round $round/$ROUNDS: $scenario, durable=$durable (background CPU ${busy}%)"
    # shellcheck disable=SC2086
    if ! "$LOADGEN" --target switchboard --addr "$ADDR" --pid "$PID" $ARGS \
        >"$WORK/$run.json" 2>"$WORK/loadgen.err"; then
      log "loadgen failed:"; tail -5 "$WORK/loadgen.err" >&2
    fi
    stop_server
    python3 - "$WORK/$run.json" "$busy" "$ARGS" <<'PY'
import json, sys
path, busy, args = sys.argv[1:]
try:
    doc = json.load(open(path))
except Exception as e:
    doc = {"result": None, "error": f"no output: {e}"}
doc.update({"background_busy_pct": int(busy), "args": args})
json.dump(doc, open(path, "w"))
PY
  done
done
done

export D_WORK=$WORK D_COMMAND="$COMMAND" D_QUICK=$QUICK D_PROFILE="$SB_PROFILE" D_ROUNDS=$ROUNDS
D_VERSION="$("$SB_BIN" --version 2>/dev/null | head -1 || true)"
D_GIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "no commit yet")
export D_VERSION D_GIT
python3 - "$OUT/results/durable.json" <<'PY'
import json, os, subprocess, sys
e = os.environ
doc = {
    "command": e["D_COMMAND"].strip(), "quick": e["D_QUICK"] == "1",
    "switchboard": f'{e["D_VERSION"]} ({e["D_PROFILE"]})', "git": e["D_GIT"],
    "note": e.get("BENCH_NOTE", ""),
    "date": subprocess.run("date -u +%Y-%m-%dT%H:%MZ", shell=True, capture_output=True, text=True).stdout.strip(),
}
for scenario in ("fanout-all", "fanout-tag"):
    doc[scenario] = {"rounds": [
        {mode: json.load(open(os.path.join(e["D_WORK"], f"{scenario}-{flag}-{r}.json")))
         for mode, flag in (("off", "false"), ("on", "true"))}
        for r in range(1, int(e["D_ROUNDS"]) + 1)]}
json.dump(doc, open(sys.argv[1], "w"), indent=1)
PY
python3 "$BENCH_DIR/report.py" --durable-summary "$OUT/results/durable.json" || true
if [ $REPORT = 1 ] && [ -f "$OUT/meta.json" ]; then
  python3 "$BENCH_DIR/report.py" --results "$OUT/results" --meta "$OUT/meta.json" --out "$OUT"
fi
log "done: $OUT/results/durable.json"
