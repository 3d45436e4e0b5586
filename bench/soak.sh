#!/usr/bin/env bash
# Soak test: one release Switchboard under mixed load for a long time, to show that memory,
# file descriptors and latency stay flat (leaks and slow growth only show over hours).
#
#   bench/soak.sh                 30 minutes
#   bench/soak.sh --minutes 2     a short check
#   bench/soak.sh --minutes 30 -- --connections 1000 --churn 3     extra options for `loadgen soak`
#
# The load (`loadgen soak --help`): 2,000 connections held steady while 2 % of them leave and are
# replaced every second (a quarter of them dropping the socket without a close handshake); each
# connection echoes, joins, quits, publishes and pings with a seqno and checks every reply; an API
# client sends toUser/toTag/toAll and moves connections in and out of server-side tags; a kicker
# kicks one connection every 2 s (it must see `kick`, then close 4001); four slow clients in turn
# flood requests and stop reading until the server cuts them off (4008 or a dropped socket).
# The server's RSS is sampled every 10 s. At the end every client leaves, and the server must show
# no connection, user or tag left in any index and still answer /healthz.
#
# Verdict (exit status 0 only if all hold):
#   - RSS flat after warm-up: the samples are split in thirds (the first is warm-up); the largest of
#     the last third must not exceed 1.10 × the largest of the middle third + 5 MiB;
#   - zero errors counted by the load generator (unexpected close codes, missing replies, wrong
#     seqno or data, HTTP answers other than 200, …), and the server's close counts by code agree
#     with what the clients saw (4001 = kicks, 4008 = slow clients cut off);
#   - every index empty: /api/websocket/stats shows connections, users and tags 0, /tags is [],
#     the online list is empty; /healthz answers 200.
# Writes bench/SOAK.md (+ charts/soak-rss.svg), replaces the Soak section of bench/RESULTS.md with
# it (report.py includes SOAK.md when it regenerates RESULTS.md), raw JSON in bench/out/soak/.
#
# Environment: SWITCHBOARD_BIN=path  use this server binary (else `cargo build --release -p switchboard`)
#              BENCH_TARGET_DIR=dir  cargo target dir for the load generator (default bench/target)
#              SOAK_PORT=18110       where the server listens
#              SOAK_NOTE=text        a line added to the report (e.g. what else ran on the machine)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=switchboard.sh
. "$BENCH_DIR/switchboard.sh"
COMMAND="bench/soak.sh $*"
MINUTES=30
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,/^set/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
PORT=${SOAK_PORT:-18110}
ADDR="127.0.0.1:$PORT"
OUT="$BENCH_DIR/out/soak"
mkdir -p "$OUT"
NICE="nice -n 19"
log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- build ----------------------------------------------------------------------------------------
TARGET_DIR=${BENCH_TARGET_DIR:-$BENCH_DIR/target}
log "building the load generator (release, $TARGET_DIR)"
CARGO_TARGET_DIR="$TARGET_DIR" $NICE cargo build --release --locked \
  --manifest-path "$BENCH_DIR/Cargo.toml" -p bench-loadgen >&2
LOADGEN="$TARGET_DIR/release/loadgen"
if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  SB_BIN=$SWITCHBOARD_BIN
else
  log "building switchboard (release)"
  (cd "$ROOT" && $NICE cargo build --release --locked -p switchboard >&2)
  SB_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchboard"
fi

# ---- server ---------------------------------------------------------------------------------------
PASSWORD="soak-admin-pw-$RANDOM$RANDOM"
export BENCH_ADMIN_PASSWORD=$PASSWORD
DATA_DIR=$(mktemp -d)
SERVER_LOG="$OUT/server.log"
PID=""
stop_server() {
  if [ -n "$PID" ]; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
  fi
  rm -rf "$DATA_DIR"
}
trap stop_server EXIT

# The bench's usual configuration (switchboard.sh).
start_switchboard "$SB_BIN" "$ADDR" "$DATA_DIR" "$PASSWORD" "$SERVER_LOG"
PID=$!
ready=0
for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "http://$ADDR/healthz" 2>/dev/null; then ready=1; break; fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ $ready = 0 ]; then log "switchboard did not become ready:"; tail -20 "$SERVER_LOG" >&2; exit 1; fi

# Busy share of both cores over a second while the server idles: other work on the machine.
busy_pct() {
  local a b busy=0 total=0 i d
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  for i in 1 2 3 4 5 6 7 8; do
    d=$(( b[i] - a[i] )); total=$(( total + d ))
    if [ "$i" != 4 ] && [ "$i" != 5 ]; then busy=$(( busy + d )); fi
  done
  echo $(( total > 0 ? busy * 100 / total : 0 ))
}
BUSY=$(busy_pct)
VERSION="$("$SB_BIN" --version 2>/dev/null | head -1 || true)"
GIT="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'no commit')"

# ---- load -----------------------------------------------------------------------------------------
log "soaking for $MINUTES min (server pid $PID, background CPU ${BUSY}%)"
STARTED=$(date -u +%Y-%m-%dT%H:%MZ)
LOADGEN_OK=1
"$LOADGEN" --target switchboard --addr "$ADDR" --pid "$PID" \
  soak --minutes "$MINUTES" "${EXTRA[@]}" >"$OUT/loadgen.json" 2>"$OUT/loadgen.err" || LOADGEN_OK=0
[ $LOADGEN_OK = 1 ] || { log "loadgen failed:"; tail -5 "$OUT/loadgen.err" >&2; }

# ---- after everyone left --------------------------------------------------------------------------
TOKEN=$(curl -fsS -X POST "http://$ADDR/api/auth/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' || true)
api() { curl -sS -H "Authorization: Bearer $TOKEN" "http://$ADDR$1" || echo null; }
# Connections cut off mid-write may take the server's write timeout to leave: wait up to 30 s.
DRAIN_S=0
for i in $(seq 0 60); do
  DRAIN_S=$(( i / 2 ))
  if api /api/websocket/stats | grep -q '"connections":0,'; then break; fi
  sleep 0.5
done
api /api/websocket/stats >"$OUT/stats.json"
api /api/websocket/tags >"$OUT/tags.json"
api '/api/websocket/online?page=1&pageSize=20' >"$OUT/online.json"
curl -sS "http://$ADDR/metrics" >"$OUT/metrics.txt" || true
HEALTH=$(curl -sS -o /dev/null -w '%{http_code}' "http://$ADDR/healthz" || echo 000)
RSS_END_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
SERVER_ALIVE=0; kill -0 "$PID" 2>/dev/null && SERVER_ALIVE=1

# ---- verdict and report ---------------------------------------------------------------------------
export S_COMMAND="$COMMAND" S_MINUTES="$MINUTES" S_BUSY="$BUSY" S_STARTED="$STARTED" \
  S_DRAIN_S="$DRAIN_S" S_HEALTH="$HEALTH" S_RSS_END_KB="$RSS_END_KB" S_ALIVE="$SERVER_ALIVE" \
  S_LOADGEN_OK="$LOADGEN_OK" S_NICE="$(nice)" S_NPROC="$(nproc)" \
  S_CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //' || true)" \
  S_MEM="$(free -h | awk '/^Mem:/ {print $2}')" S_KERNEL="$(uname -r)" \
  S_VERSION="$VERSION" S_GIT="$GIT" S_NOTE="${SOAK_NOTE:-}"
set +e
python3 - "$OUT" "$BENCH_DIR" <<'PY'
import html, json, os, re, sys

out, bench = sys.argv[1], sys.argv[2]
e = os.environ
MIB = 1024 * 1024


def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None


doc = load("loadgen.json") or {}
r = doc.get("result") or {}
stats, tags, online = load("stats.json"), load("tags.json"), load("online.json")
metrics = open(os.path.join(out, "metrics.txt")).read() if os.path.exists(os.path.join(out, "metrics.txt")) else ""
closes = {int(c): int(n) for c, n in re.findall(r'switchboard_closes_total\{code="(\d+)"\} (\d+)', metrics)}
counts = r.get("counts", {})
samples = r.get("samples", [])
rss = [s["rss_bytes"] for s in samples]

# RSS: flat after warm-up.
checks = []
third = len(rss) // 3
if third >= 1:
    mid, last = rss[third:2 * third], rss[2 * third:]
    limit = max(mid) * 1.10 + 5 * MIB
    checks.append(("RSS flat after warm-up",
                   max(last) <= limit,
                   f"max of the last third {max(last) / MIB:.1f} MiB, limit 1.10 × {max(mid) / MIB:.1f} + 5 = {limit / MIB:.1f} MiB"))
else:
    limit = None
    checks.append(("RSS flat after warm-up", False, f"only {len(rss)} samples (need ≥ 3)"))

# Errors the clients saw, and the server's own close counts against them.
errs = r.get("errors", {})
total = r.get("error_total", 0) if r else None
ok = e["S_LOADGEN_OK"] == "1" and doc.get("error") is None and total == 0
detail = "none" if ok else (doc.get("error") or ", ".join(f"{k} {v}" for k, v in errs.items()) or "loadgen failed")
checks.append(("zero client errors", ok, detail))
slow_cut = counts.get("slow_cut_4008", 0) + counts.get("slow_cut_dropped", 0)
agree = closes.get(4001, 0) == counts.get("kicked", 0) and closes.get(4008, 0) == slow_cut
checks.append(("server close counts agree", agree,
               f"4001: server {closes.get(4001, 0)}, clients kicked {counts.get('kicked', 0)}; "
               f"4008: server {closes.get(4008, 0)}, slow clients cut off {slow_cut}"))

# Indexes empty, server alive.
s = stats or {}
empty = (s.get("connections"), s.get("users"), s.get("tags")) == (0, 0, 0) and tags == [] \
    and (online or {}).get("total") == 0
checks.append(("every index empty", empty,
               f"stats connections {s.get('connections')}, users {s.get('users')}, tags {s.get('tags')}; "
               f"tags {json.dumps(tags)}; online total {(online or {}).get('total')} "
               f"(empty {e['S_DRAIN_S']} s after the last client left)"))
checks.append(("server healthy", e["S_HEALTH"] == "200" and e["S_ALIVE"] == "1",
               f"/healthz {e['S_HEALTH']}, process {'alive' if e['S_ALIVE'] == '1' else 'gone'}"))
passed = all(c[1] for c in checks)

# ---- chart ----------------------------------------------------------------------------------------
made_chart = False
if rss:
    W, H, L, R, T, B = 720, 300, 60, 20, 30, 40
    ts = [smp["t_s"] / 60 for smp in samples]
    lo = min(rss) / MIB
    hi = max(max(rss), limit or 0) / MIB
    lo, hi = max(0.0, lo - (hi - lo) * 0.2 - 1), hi + (hi - lo) * 0.1 + 1
    tmax = max(ts[-1], 1e-9)
    X = lambda t: L + (W - L - R) * t / tmax
    Y = lambda v: T + (H - T - B) * (1 - (v - lo) / (hi - lo))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">Switchboard RSS during the soak ({len(rss)} samples)</text>']
    if third >= 1:
        for k, shade in ((0, "#f2f2f2"), (2, "#fdf0e6")):
            a = ts[k * third]
            b = ts[min(len(ts) - 1, (k + 1) * third - 1)] if k == 0 else ts[-1]
            parts.append(f'<rect x="{X(a):.1f}" y="{T}" width="{max(X(b) - X(a), 1):.1f}" height="{H - T - B}" fill="{shade}"/>')
        parts.append(f'<text x="{X(ts[0]) + 4:.1f}" y="{T + 12}" fill="#777">warm-up</text>')
        parts.append(f'<text x="{X(ts[2 * third]) + 4:.1f}" y="{T + 12}" fill="#777">last third</text>')
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(limit / MIB):.1f}" y2="{Y(limit / MIB):.1f}" stroke="#d62728" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{W - R - 4}" y="{Y(limit / MIB) - 4:.1f}" text-anchor="end" fill="#d62728">limit {limit / MIB:.1f} MiB</text>')
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    for i in range(6):
        t = tmax * i / 5
        parts.append(f'<text x="{X(t):.1f}" y="{H - B + 16}" text-anchor="middle">{t:.0f}</text>')
    parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 6}" text-anchor="middle">minutes</text>')
    parts.append(f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">RSS (MiB)</text>')
    pts = " ".join(f"{X(t):.1f},{Y(v / MIB):.1f}" for t, v in zip(ts, rss))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    parts.append("</svg>")
    os.makedirs(os.path.join(bench, "charts"), exist_ok=True)
    open(os.path.join(bench, "charts", "soak-rss.svg"), "w").write("\n".join(parts) + "\n")
    made_chart = True

# ---- SOAK.md --------------------------------------------------------------------------------------
def mib(b):
    return f"{b / MIB:.1f}"


def us(v):
    return "—" if v is None else f"{v / 1000:.1f} ms"


lines = ["## Soak", ""]
lines += [f"**Verdict: {'PASS' if passed else 'FAIL'}** — `{e['S_COMMAND'].strip()}`"
          + (f" (run at niceness {e['S_NICE']})" if e["S_NICE"] != "0" else "")
          + f", started {e['S_STARTED']}: {float(e['S_MINUTES']):g} minutes of load "
          f"({r.get('duration_s', 0) / 60:.1f} with set-up and everyone leaving).", ""]
lines += [f"Machine: {e['S_NPROC']} cores ({e['S_CPU']}), {e['S_MEM']} RAM, Linux {e['S_KERNEL']}; "
          f"{e['S_VERSION']} (release) at `{e['S_GIT']}`; the load generator shares the cores with the server; "
          f"other work used {e['S_BUSY']}% of the machine just before the run.", ""]
if e.get("S_NOTE"):
    lines += [f"Note: {e['S_NOTE']}", ""]
P = dict(re.findall(r"(\w+): ([^,}]+)", doc.get("params", "")))
g = lambda k, d="?": P.get(k, d).strip('"')
lines += ["Load (`loadgen soak`, see `bench/soak.sh`): "
          f"{g('connections')} connections of {g('users')} users held steady with {g('churn')} % churn per second "
          f"({g('abrupt')} % of leaves drop the socket without a close handshake); every connection sends a request "
          f"every {g('action_interval')} s on average (echo, join, quit, publish, ping; each with a seqno, each reply checked); "
          f"the API sends toUser/toTag/toAll at {g('api_rate')}/s and moves connections in and out of `sys:` tags; "
          f"a kick every {g('kick_interval')} s; {g('slow')} slow clients in turn flood {g('slow_payload')}-byte requests and "
          "stop reading until the server cuts them off. Default server configuration except the per-user connection "
          "limit and the per-connection rate limit (lifted, as in the benchmark).", ""]
lines += ["| check | result | detail |", "|---|---|---|"]
lines += [f"| {name} | {'pass' if good else '**FAIL**'} | {d} |" for name, good, d in checks]
lines += [""]

if made_chart:
    lines += ["![Soak RSS](charts/soak-rss.svg)", ""]
if rss:
    step = max(1, -(-len(samples) // 30))
    shown = samples[::step]
    if shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    lines += [f"RSS before the load {mib(r.get('server_rss_before_bytes', 0))} MiB, "
              f"min/max under load {mib(min(rss))}/{mib(max(rss))} MiB, "
              f"after every client left {mib(r.get('server_rss_after_leave_bytes', 0))} MiB "
              f"({int(e['S_RSS_END_KB']) / 1024:.1f} MiB at the final checks).", ""]
    lines += ["<details><summary>RSS series" + (f" (every {step}th sample)" if step > 1 else "") + "</summary>", "",
              "| t (s) | RSS (MiB) | online | replies in window | reply p99 | server CPU (s, total) | errors so far |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {smp['t_s']:.0f} | {mib(smp['rss_bytes'])} | {smp['online']:,} | {smp['replies']:,} | "
              f"{us(smp['rtt_p99_us'])} | {smp['server_cpu_s']:.1f} | {smp['errors']} |" for smp in shown]
    lines += ["", "</details>", ""]

c = counts
rtt, push = r.get("request_rtt", {}), r.get("api_push_latency", {})
lines += ["| activity | count |", "|---|---|"]
rows = [
    ("connections opened", c.get("connects", 0)),
    ("left with a close handshake / dropped the socket", f"{c.get('left_with_close', 0):,} / {c.get('left_abruptly', 0):,}"),
    ("requests answered (echo, join, quit, publish, ping)", c.get("replies", 0)),
    ("request round trip p50 / p99 / max", f"{us(rtt.get('p50_us'))} / {us(rtt.get('p99_us'))} / {us(rtt.get('max_us'))}"),
    ("publish pushes received", c.get("publish_pushes_received", 0)),
    ("API sends toUser / toTag / toAll", f"{c.get('api_to_user', 0):,} / {c.get('api_to_tag', 0):,} / {c.get('api_to_all', 0):,}"),
    ("API pushes: delivered (reported) / received", f"{c.get('api_delivered_reported', 0):,} / {c.get('api_pushes_received', 0):,}"),
    ("API push latency p50 / p99", f"{us(push.get('p50_us'))} / {us(push.get('p99_us'))}"),
    ("server-side tag changes (tags/join, tags/quit)", c.get("api_tag_changes", 0)),
    ("kicks sent / seen as `kick` + 4001", f"{c.get('kicks_sent', 0):,} / {c.get('kicked', 0):,}"),
    ("slow clients: cycles / cut off with 4008 seen / socket dropped", f"{c.get('slow_cycles', 0):,} / {c.get('slow_cut_4008', 0):,} / {c.get('slow_cut_dropped', 0):,}"),
    ("server CPU / load generator CPU (s)", f"{r.get('server_cpu_s', 0):.0f} / {r.get('loadgen_cpu_s', 0):.0f}"),
]
lines += [f"| {k} | {v:,} |" if isinstance(v, int) else f"| {k} | {v} |" for k, v in rows]
lines += ["", "Server closes by code: " + (", ".join(f"{k}: {v:,}" for k, v in sorted(closes.items())) or "—")
          + " (1002: what the server counts for a socket dropped without a close handshake; 1005: the client "
          "closed without a code; 4001: kicked; 4008: slow client).", ""]
lines += ["Client errors by kind: " + (", ".join(f"{k} {v}" for k, v in errs.items()) or "none") + ".", ""]
if r.get("error_examples"):
    lines += ["<details><summary>First errors</summary>", ""]
    lines += [f"- `{x}`" for x in r["error_examples"]]
    lines += ["", "</details>", ""]
text = "\n".join(lines).rstrip() + "\n"
open(os.path.join(bench, "SOAK.md"), "w").write(text)

# RESULTS.md: its Soak section (always the last, as report.py writes it) becomes SOAK.md.
results = os.path.join(bench, "RESULTS.md")
if os.path.exists(results):
    body = open(results).read()
    at = body.find("\n## Soak\n")
    if at >= 0:
        body = body[: at + 1]
    # Same bytes as report.py would write (it ends with a blank line).
    open(results, "w").write(body.rstrip() + "\n\n" + text + "\n")

for name, good, d in checks:
    print(f"[soak] {'pass' if good else 'FAIL'}: {name}: {d}", file=sys.stderr)
print(f"[soak] verdict: {'PASS' if passed else 'FAIL'} (bench/SOAK.md)", file=sys.stderr)
sys.exit(0 if passed else 1)
PY
STATUS=$?
set -e
exit $STATUS
