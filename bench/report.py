#!/usr/bin/env python3
"""Turns the load generator's JSON results into bench/RESULTS.md and SVG charts.

Standard library only. Every table compares each system with Switchboard (ratio = system ÷
Switchboard, so read it with the metric's direction: higher msgs/s is better, lower CPU is better),
and beside each of Switchboard's ratios the best peer: the best value any other system reached in
that column, with its name.

    python3 bench/report.py --results bench/results --meta bench/meta.json --out bench
"""

import argparse
import glob
import json
import math
import os

SYSTEMS = ["switchboard", "bare-tungstenite", "fastwebsockets", "node-ws", "socketio-node", "socketioxide", "sockudo"]
COLORS = {
    "switchboard": "#d62728",
    "bare-tungstenite": "#7f7f7f",
    "fastwebsockets": "#ff7f0e",
    "node-ws": "#1f77b4",
    "socketio-node": "#2ca02c",
    "socketioxide": "#9467bd",
    "sockudo": "#8c564b",
}
CONTENDED_PCT = 10  # background CPU above this (of both cores) marks a result as contended


def load(results_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        doc = json.load(open(path))
        name = os.path.basename(path)[: -len(".json")]
        if "." not in name:  # not <system>.<scenario>: cluster.json has its own section
            continue
        system, scenario = name.split(".", 1)
        runs[(system, scenario)] = doc
    return runs


def res(runs, system, scenario):
    doc = runs.get((system, scenario))
    return doc.get("result") if doc else None


# ---- formatting ---------------------------------------------------------------------------------

def num(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ms(us):
    return "—" if us is None else f"{us / 1000:.2f}"


def ratio(v, base):
    if v is None or not base:
        return "—"
    return f"{v / base:.2f}×"


def dig(d, *path):
    for p in path:
        if d is None:
            return None
        d = d.get(p) if isinstance(d, dict) else None
    return d


class Table:
    def __init__(self, headers):
        self.headers = headers
        self.rows = []

    def add(self, row):
        self.rows.append(row)

    def md(self):
        out = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in self.rows]
        return "\n".join(out)


def label(runs, system, scenario):
    doc = runs.get((system, scenario)) or {}
    busy = doc.get("background_busy_pct", 0) or 0
    mark = " †" if busy > CONTENDED_PCT else ""
    return f"{system}{mark}"


def error_row(runs, system, scenario, width):
    doc = runs.get((system, scenario))
    if not doc:
        return None
    if doc.get("not_applicable"):
        why = doc["not_applicable"].replace("|", "/").replace("\n", " ")
        return [system, f"not applicable: {why}"] + [""] * (width - 2)
    err = (doc.get("error") or "no result").replace("|", "/").replace("\n", " ")[:160]
    return [system, f"failed: {err}"] + [""] * (width - 2)


def best_peer(runs, scenario, get, higher, fmt):
    """The best value of `get(result)` among the systems other than Switchboard, with its name."""
    best = None
    for s in systems_in(runs):
        r = res(runs, s, scenario) if s != "switchboard" else None
        try:
            v = get(r) if r else None
        except (KeyError, TypeError):
            v = None
        if v is not None and (best is None or (v > best[0] if higher else v < best[0])):
            best = (v, s)
    return "—" if best is None else f"{fmt(best[0])} ({best[1]})"


def peer_cell(system, cell):
    """A best-peer figure stands beside Switchboard's own; the other rows leave the column empty."""
    return cell if system == "switchboard" else ""


# ---- tables -------------------------------------------------------------------------------------

def systems_in(runs):
    present = {s for s, _ in runs}
    return [s for s in SYSTEMS if s in present] + sorted(present - set(SYSTEMS))


def idle_table(runs):
    t = Table(["system", "connections", "RSS / connection (KiB)", "vs Switchboard", "best peer", "CPU µs / connection-second", "vs Switchboard",
               "best peer", "open at end"])
    base = res(runs, "switchboard", "idle") or {}
    best_rss = best_peer(runs, "idle", lambda r: r["rss_per_connection_bytes"] / 1024, False, lambda v: num(v, 1))
    best_cpu = best_peer(runs, "idle", lambda r: r["cpu_us_per_connection_second"], False, lambda v: num(v, 3))
    for s in systems_in(runs):
        r = res(runs, s, "idle")
        if not r:
            row = error_row(runs, s, "idle", len(t.headers))
            row and t.add(row)
            continue
        rss = r["rss_per_connection_bytes"] / 1024
        t.add([label(runs, s, "idle"), num(r["connections"]), num(rss, 1), ratio(rss, (base.get("rss_per_connection_bytes") or 0) / 1024),
               peer_cell(s, best_rss),
               num(r["cpu_us_per_connection_second"], 3), ratio(r["cpu_us_per_connection_second"], base.get("cpu_us_per_connection_second")),
               peer_cell(s, best_cpu), num(r["still_open_at_end"])])
    return t


def echo_table(runs, scenario):
    t = Table(["system", "msgs/s", "vs Switchboard", "best peer", "p50 ms", "p99 ms", "p99.9 ms", "server CPU µs / msg", "vs Switchboard",
               "best peer", "bad replies"])
    base = res(runs, "switchboard", scenario) or {}
    best_rate = best_peer(runs, scenario, lambda r: r["msgs_per_s"], True, num)
    best_cpu = best_peer(runs, scenario, lambda r: r["server_cpu_us_per_msg"], False, lambda v: num(v, 2))
    for s in systems_in(runs):
        r = res(runs, s, scenario)
        if not r:
            row = error_row(runs, s, scenario, len(t.headers))
            row and t.add(row)
            continue
        lat = r["latency"]
        t.add([label(runs, s, scenario), num(r["msgs_per_s"]), ratio(r["msgs_per_s"], base.get("msgs_per_s")), peer_cell(s, best_rate),
               ms(lat.get("p50_us")), ms(lat.get("p99_us")), ms(lat.get("p999_us")),
               num(r["server_cpu_us_per_msg"], 2), ratio(r["server_cpu_us_per_msg"], base.get("server_cpu_us_per_msg")),
               peer_cell(s, best_cpu), num(r["mismatched_replies"])])
    return t


def fanout_best(r):
    """The highest rate whose p99 stayed under the limit with nothing lost, else the first step."""
    if not r or not r.get("steps"):
        return None, False
    return (r["best"], True) if r.get("best") else (r["steps"][0], False)


def fanout_table(runs, scenario):
    t = Table(["system", "recipients", "best rate /s", "deliveries/s", "vs Switchboard", "best peer", "p50 ms", "p99 ms", "p99.9 ms",
               "server CPU µs / delivery", "vs Switchboard", "best peer", "stopped at"])
    base, _ = fanout_best(res(runs, "switchboard", scenario))
    base = base or {}
    # Only a sustained rate counts: a step that lost deliveries or passed the latency limit is no best.
    sustained = lambda key: (lambda r: fanout_best(r)[0][key] if fanout_best(r)[1] else None)
    best_rate = best_peer(runs, scenario, sustained("deliveries_per_s"), True, num)
    best_cpu = best_peer(runs, scenario, sustained("server_cpu_us_per_delivery"), False, lambda v: num(v, 2))
    for s in systems_in(runs):
        r = res(runs, s, scenario)
        step, ok = fanout_best(r)
        if not step:
            row = error_row(runs, s, scenario, len(t.headers))
            row and t.add(row)
            continue
        lat = step["delivery_latency"]
        last = r["steps"][-1]
        stop = "—" if last.get("ok") else f"{last['rate_per_s']:g}/s: p99 {ms(dig(last, 'delivery_latency', 'p99_us'))} ms, lost {num(last['lost'])}"
        t.add([label(runs, s, scenario), num(r["recipients_per_broadcast"]), f"{step['rate_per_s']:g}" + ("" if ok else " (failed)"),
               num(step["deliveries_per_s"]), ratio(step["deliveries_per_s"], base.get("deliveries_per_s")), peer_cell(s, best_rate),
               ms(lat.get("p50_us")), ms(lat.get("p99_us")), ms(lat.get("p999_us")),
               num(step["server_cpu_us_per_delivery"], 2), ratio(step["server_cpu_us_per_delivery"], base.get("server_cpu_us_per_delivery")),
               peer_cell(s, best_cpu), stop])
    return t


def fanout_steps(runs, scenario):
    t = Table(["system", "rate /s", "received / expected", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU µs / delivery", "HTTP p99 ms"])
    for s in systems_in(runs):
        for step in (res(runs, s, scenario) or {}).get("steps", []):
            lat = step["delivery_latency"]
            t.add([s, f"{step['rate_per_s']:g}", f"{num(step['received'])} / {num(step['expected_deliveries'])}", num(step["deliveries_per_s"]),
                   ms(lat.get("p50_us")), ms(lat.get("p99_us")), ms(lat.get("p999_us")), num(step["server_cpu_us_per_delivery"], 2),
                   ms(dig(step, "http_latency", "p99_us"))])
    return t


def storm_table(runs):
    t = Table(["system", "opened", "failures", "connects/s", "vs Switchboard", "best peer", "p50 ms", "p99 ms", "server CPU µs / connect",
               "first error"])
    base = dig(res(runs, "switchboard", "storm"), "connect", "connects_per_s")
    best_rate = best_peer(runs, "storm", lambda r: r["connect"]["connects_per_s"], True, num)
    for s in systems_in(runs):
        r = res(runs, s, "storm")
        if not r:
            row = error_row(runs, s, "storm", len(t.headers))
            row and t.add(row)
            continue
        c = r["connect"]
        err = (c["first_errors"] or [""])[0].replace("|", "/")[:80]
        t.add([label(runs, s, "storm"), num(c["opened"]), num(c["failures"]), num(c["connects_per_s"]), ratio(c["connects_per_s"], base), peer_cell(s, best_rate),
               ms(dig(c, "connect_latency", "p50_us")), ms(dig(c, "connect_latency", "p99_us")), num(r["server_cpu_us_per_connect"], 1), err])
    return t


def api_table(runs):
    t = Table(["system", "requests/s", "vs Switchboard", "best peer", "HTTP p50 ms", "HTTP p99 ms", "delivery p50 ms", "delivery p99 ms",
               "received / reported", "errors", "server CPU µs / request"])
    base = (res(runs, "switchboard", "api") or {}).get("requests_per_s")
    best_rate = best_peer(runs, "api", lambda r: r["requests_per_s"], True, num)
    for s in systems_in(runs):
        r = res(runs, s, "api")
        if not r:
            row = error_row(runs, s, "api", len(t.headers))
            row and t.add(row)
            continue
        t.add([label(runs, s, "api"), num(r["requests_per_s"]), ratio(r["requests_per_s"], base), peer_cell(s, best_rate),
               ms(dig(r, "http_latency", "p50_us")), ms(dig(r, "http_latency", "p99_us")),
               ms(dig(r, "delivery_latency", "p50_us")), ms(dig(r, "delivery_latency", "p99_us")),
               f"{num(r['received'])} / {num(r['delivered_reported'])}", num(r["errors"]), num(r["server_cpu_us_per_request"], 1)])
    return t


def step_at(r, rate):
    for step in (r or {}).get("steps", []):
        if step["rate_per_s"] == rate:
            return step
    return None


def sustained_steps(r):
    """{rate: step} of the steps a run sustained: every delivery received, p99 under the limit."""
    return {st["rate_per_s"]: st for st in (r or {}).get("steps", []) if st.get("ok")}


def targets_table(runs):
    """The benchmark's targets (bench/README.md), checked against this run."""
    t = Table(["target", "measured", "met"])
    sb = lambda sc: res(runs, "switchboard", sc)
    peers = [s for s in SYSTEMS if s != "switchboard"]

    def add(name, value, ok):
        t.add([name, value, "—" if ok is None else ("yes" if ok else "**no**")])

    idle = sb("idle")
    if idle:
        kib = idle["rss_per_connection_bytes"] / 1024
        add("idle: ≤ 4 KiB RSS per connection at 10,000", f"{kib:.1f} KiB at {num(idle['connections'])}", kib <= 4)
        node = res(runs, "node-ws", "idle")
        if node:
            theirs = node["rss_per_connection_bytes"] / 1024
            add("idle: RSS per connection below node-ws's", f"{kib:.1f} vs {theirs:.1f} KiB", kib < theirs)
        cpu = idle["cpu_us_per_connection_second"]
        add("idle: ≤ 1 µs CPU per connection-second", f"{cpu:.3f} µs", cpu <= 1)
    for sc in ("echo-small", "echo-4k"):
        mine = (sb(sc) or {}).get("msgs_per_s")
        for peer, factor, text in (("fastwebsockets", 0.8, "≥ 0.8× fastwebsockets"), ("bare-tungstenite", 0.9, "≥ 0.9× bare-tungstenite"),
                                   ("socketioxide", 1.0, "≥ socketioxide"), ("node-ws", 2.5, "≥ 2.5× node-ws")):
            theirs = (res(runs, peer, sc) or {}).get("msgs_per_s")
            if mine and theirs:
                add(f"{sc}: msgs/s {text}", f"{mine / theirs:.2f}×", mine >= factor * theirs)
    for sc in ("fanout-all", "fanout-tag"):
        mine_ok = sustained_steps(sb(sc))
        # CPU per delivery at every rate both systems sustained: the worst ratio decides.
        for peer, factor, text in (("bare-tungstenite", 0.85, "≤ 0.85× bare-tungstenite's"), ("fastwebsockets", 1.0, "≤ fastwebsockets'")):
            theirs_ok = sustained_steps(res(runs, peer, sc))
            ratios = [(mine_ok[r]["server_cpu_us_per_delivery"] / theirs_ok[r]["server_cpu_us_per_delivery"], r)
                      for r in sorted(set(mine_ok) & set(theirs_ok)) if theirs_ok[r]["server_cpu_us_per_delivery"]]
            if ratios:
                worst, at = max(ratios)
                each = ", ".join(f"{x:.2f}× at {r:g}/s" for x, r in ratios)
                add(f"{sc}: CPU per delivery {text} at every rate both sustain", f"worst {worst:.2f}× at {at:g}/s ({each})", worst <= factor)
        # The best sustained rate against every peer's.
        best = lambda r: max(sustained_steps(r), default=None)
        mine = best(sb(sc))
        if sb(sc):
            rivals = [(best(res(runs, p, sc)), p) for p in peers if res(runs, p, sc)]
            top = max(((r, p) for r, p in rivals if r is not None), default=(None, None))
            if top[0] is not None:
                add(f"{sc}: best sustained rate ≥ every peer's", f"{num(mine) if mine else 'none'}/s vs {top[0]:g}/s ({top[1]})",
                    mine is not None and mine >= top[0])
        # p99 at each rate Switchboard sustained against the lowest p99 any peer reached there.
        worse = []
        for rate, st in sorted(mine_ok.items()):
            peer_p99 = [(dig(step_at(res(runs, p, sc), rate), "delivery_latency", "p99_us"), p) for p in peers]
            peer_p99 = [(v, p) for v, p in peer_p99 if v]
            if not peer_p99:
                continue
            low, who = min(peer_p99)
            worse.append((st["delivery_latency"]["p99_us"] / low, rate, who))
        if worse:
            worst, at, who = max(worse)
            add(f"{sc}: p99 at each sustained rate ≤ the best peer's", f"worst {worst:.2f}× at {at:g}/s (vs {who})", worst <= 1.0)
    mine, _ = fanout_best(sb("fanout-all"))
    theirs, _ = fanout_best(res(runs, "socketio-node", "fanout-all"))
    if mine and theirs and theirs["deliveries_per_s"]:
        r = mine["deliveries_per_s"] / theirs["deliveries_per_s"]
        add("fanout-all: deliveries/s ≥ 3× socketio-node (best rates)", f"{r:.2f}×", r >= 3)
    storm = dig(sb("storm"), "connect")
    if storm:
        rivals = [(dig(res(runs, p, "storm"), "connect", "connects_per_s"), p) for p in peers]
        top, who = max(((v, p) for v, p in rivals if v), default=(None, None))
        text = f"{num(storm['connects_per_s'])}/s, {num(storm['failures'])} failures"
        if top:
            text += f"; best peer {num(top)}/s ({who})"
        add("storm: connects/s ≥ every peer's, zero failures", text,
            storm["failures"] == 0 and (top is None or storm["connects_per_s"] >= top))
    return t


# ---- cluster (bench/cluster.sh) -----------------------------------------------------------------

CLUSTER_CPU_FACTOR = 1.5  # cluster server CPU per delivery ≤ this × single node's
API_P99_MS = 20  # API p99 at API_RATE sends/s
API_RATE = 100


def cluster_steps(doc, mode):
    r = (doc or {}).get(mode, {}).get("result") or {}
    return {(st["kind"], st["rate_per_s"]): st for st in r.get("steps", [])}


def cluster_checks(doc):
    """(target, measured, met) rows; met is None when the run gave nothing to judge."""
    single, cluster = cluster_steps(doc, "single"), cluster_steps(doc, "cluster")
    rows = []
    complete = lambda st: st and st["expected_deliveries"] and st["lost"] == 0 and st["http_errors"] == 0

    def cpu_row(kind, rate):
        a, b = single.get((kind, rate)), cluster.get((kind, rate))
        if not (a and b and a["server_cpu_us_per_delivery"]):
            return
        r = b["server_cpu_us_per_delivery"] / a["server_cpu_us_per_delivery"]
        with_redis = b["server_and_redis_cpu_us_per_delivery"] / a["server_cpu_us_per_delivery"]
        rows.append((f"{kind} at {rate:g}/s: cluster CPU per delivery (summed over nodes) ≤ {CLUSTER_CPU_FACTOR}× single node",
                     f"{r:.2f}× ({b['server_cpu_us_per_delivery']:.2f} vs {a['server_cpu_us_per_delivery']:.2f} µs; "
                     f"with Redis {with_redis:.2f}×)", r <= CLUSTER_CPU_FACTOR))

    # CPU per delivery falls as the rate rises (fixed costs spread thinner): compare at the
    # highest toAll rate both runs completed, and at every toUser rate.
    both = [rate for (kind, rate), st in cluster.items() if kind == "toAll" and complete(st) and complete(single.get((kind, rate)))]
    if both:
        cpu_row("toAll", max(both))
    for rate in sorted(rate for kind, rate in cluster if kind == "toUser"):
        cpu_row("toUser", rate)
    st = cluster.get(("toUser", float(API_RATE)))
    if st and dig(st, "api_latency", "p99_us") is not None:
        p99 = st["api_latency"]["p99_us"] / 1000
        late = f", {st['late_sends']} sends started late" if st.get("late_sends") else ""
        rows.append((f"toUser at {API_RATE}/s through one node: API p99 ≤ {API_P99_MS} ms", f"{p99:.2f} ms{late}",
                     p99 <= API_P99_MS and st["http_errors"] == 0))
    if cluster:
        lost = sum(st["lost"] for st in cluster.values())
        inexact = sum(1 for st in cluster.values() if not st["counts_exact"])
        rows.append(("cluster: nothing lost, every `delivered` count exact", f"{lost:,} lost, {inexact} steps with inexact counts",
                     lost == 0 and inexact == 0))
    else:
        rows.append(("cluster run", (doc or {}).get("cluster", {}).get("error") or "no result", None))
    return rows


def cluster_steps_table(runs):
    """Every step of the given runs, (label, run) pairs, in one table."""
    steps = Table(["run", "send", "rate/s", "deliveries/s", "delivery p50 ms", "delivery p99 ms", "API p50 ms", "API p99 ms",
                   "lost", "received / expected per node", "counts exact", "server CPU µs / delivery",
                   "Redis CPU µs / delivery", "CPU s per node", "Redis CPU s", "late sends"])
    for label, sub in runs:
        sub = sub or {}
        r = sub.get("result")
        if not r:
            steps.add([label, f"failed: {(sub.get('error') or 'no result')[:160]}"] + [""] * (len(steps.headers) - 2))
            continue
        for st in r["steps"]:
            # Runs from before the per-node expectation was recorded show only what arrived.
            per_node = " · ".join(f"{num(got)} / {num(want)}" for got, want in
                                  zip(st.get("received_per_node", []), st.get("expected_per_node", []))) or "—"
            steps.add([label, st["kind"], f"{st['rate_per_s']:g}", num(st["deliveries_per_s"]),
                       ms(dig(st, "delivery_latency", "p50_us")), ms(dig(st, "delivery_latency", "p99_us")),
                       ms(dig(st, "api_latency", "p50_us")), ms(dig(st, "api_latency", "p99_us")),
                       num(st["lost"]), per_node, {True: "yes", False: "**no**"}.get(st.get("counts_exact"), "—"),
                       num(st["server_cpu_us_per_delivery"], 2),
                       num(st["redis_cpu_us_per_delivery"], 2) if r.get("redis") else "—",
                       " + ".join(f"{x:.2f}" for x in st["server_cpu_s_per_node"]),
                       f"{st['redis_cpu_s']:.2f}" if r.get("redis") else "—", num(st["late_sends"])])
    return steps


def step_order(key):
    kind, rate = key
    return (kind != "toAll", rate)


def sockudo_checks(doc):
    """Whether each sockudo run delivered everything to every node: (check, measured, met). A
    cluster that did not relay a trigger from the API node to the others loses their share."""
    s = (doc or {}).get("sockudo")
    if not s:
        return []
    if s.get("skipped"):
        return [("sockudo", f"not run: {s['skipped']}", None)]
    rows = []
    for mode in ("single", "cluster"):
        steps = cluster_steps(s, mode)
        if not steps:
            rows.append((f"sockudo {mode} run", (s.get(mode) or {}).get("error") or "no result", False))
            continue
        lost = sum(st["lost"] for st in steps.values())
        errors = sum(st["http_errors"] for st in steps.values())
        short = sorted({k + 1 for st in steps.values()
                        for k, (got, want) in enumerate(zip(st.get("received_per_node", []), st.get("expected_per_node", [])))
                        if got < want})
        where = f" (short on node {', '.join(map(str, short))})" if short else ""
        rows.append((f"sockudo {mode}: every node received every trigger", f"{lost:,} lost{where}, {errors} failed triggers",
                     lost == 0 and errors == 0))
    return rows


def sockudo_tables(doc):
    """Switchboard and sockudo at every send kind and rate both ran, then what going from one
    process to three on Redis costs each."""
    s = doc.get("sockudo") or {}
    same = Table(["run", "send", "rate/s", "CPU µs / delivery: Switchboard", "sockudo", "Switchboard ÷ sockudo",
                  "delivery p99 ms: Switchboard", "sockudo", "API p99 ms: Switchboard", "sockudo", "lost: Switchboard", "sockudo"])
    for mode in ("single", "cluster"):
        mine, theirs = cluster_steps(doc, mode), cluster_steps(s, mode)
        for key in sorted(set(mine) & set(theirs), key=step_order):
            a, b = mine[key], theirs[key]
            same.add([mode, key[0], f"{key[1]:g}", num(a["server_cpu_us_per_delivery"], 2), num(b["server_cpu_us_per_delivery"], 2),
                      ratio(a["server_cpu_us_per_delivery"], b["server_cpu_us_per_delivery"]),
                      ms(dig(a, "delivery_latency", "p99_us")), ms(dig(b, "delivery_latency", "p99_us")),
                      ms(dig(a, "api_latency", "p99_us")), ms(dig(b, "api_latency", "p99_us")), num(a["lost"]), num(b["lost"])])
    cost = Table(["send", "rate/s", "Switchboard: cluster ÷ single CPU per delivery", "with Redis",
                  "sockudo: cluster ÷ single CPU per delivery", "with Redis"])
    keys = set(cluster_steps(doc, "single")) | set(cluster_steps(s, "single"))
    for key in sorted(keys, key=step_order):
        cells = []
        for d in (doc, s):
            one, three = cluster_steps(d, "single").get(key), cluster_steps(d, "cluster").get(key)
            base = (one or {}).get("server_cpu_us_per_delivery")
            cells += [ratio((three or {}).get("server_cpu_us_per_delivery"), base),
                      ratio((three or {}).get("server_and_redis_cpu_us_per_delivery"), base)]
        if any(c != "—" for c in cells):
            cost.add([key[0], f"{key[1]:g}"] + cells)
    return same, cost


def sockudo_section(doc):
    s = doc.get("sockudo")
    if not s:
        return []
    lines = ["### sockudo beside Switchboard", ""]
    if s.get("skipped"):
        return lines + [f"sockudo did not run: {s['skipped']}.", ""]
    busy = {m: (s.get(m) or {}).get("background_busy_pct") for m in ("single", "cluster")}
    c = (s.get("cluster") or {}).get("result") or {}
    lines += [f"{s.get('version') or 'sockudo'}, the same load right after Switchboard's: one process with its local adapter, "
              f"then {len(c.get('nodes', [])) or 3} processes with its Redis adapter (no fallback to the local one) on a fresh "
              "private `redis-server` started the same way, each on its own port, connections round-robin over them, every "
              "trigger through the first one's HTTP API. `toAll` triggers the public channel `all`, which every connection "
              "subscribes; `toUser` triggers `user-<id>`, which each of that user's devices subscribes (Pusher addresses "
              "channels, not users). A trigger answers `{\"ok\":true}`, with no `delivered` count to check: what each node's "
              f"connections received is counted against what they should have. Other work used {busy['single']}% / "
              f"{busy['cluster']}% of the machine just before the single / cluster run.", ""]
    t = Table(["check", "measured", "met"])
    for name, value, ok in sockudo_checks(doc):
        t.add([name, value, "—" if ok is None else ("yes" if ok else "**no**")])
    lines += [t.md(), ""]
    same, cost = sockudo_tables(doc)
    if same.rows:
        lines += ["At the same steps (ratio = Switchboard ÷ sockudo; lower CPU is better):", "", same.md(), ""]
    if cost.rows:
        lines += ["What three nodes on Redis cost each, per delivery, against its own single process:", "", cost.md(), ""]
    lines += [cluster_steps_table([("sockudo " + m, s.get(m)) for m in ("single", "cluster")]).md(), ""]
    return lines


def cluster_section(doc):
    lines = ["## Cluster: three nodes on one Redis", ""]
    if doc.get("quick"):
        lines += ["> **Quick run (smoke check)**: tiny sizes — not comparable with a full run.", ""]
    busy = {m: (doc.get(m) or {}).get("background_busy_pct") for m in ("single", "cluster")}
    lines += [f"`{doc.get('command', '')}` ({doc.get('elapsed_s', '?')} s), {doc.get('date', '')}: "
              f"`loadgen {doc.get('args', '')}`. {doc.get('machine', '')}; {doc.get('switchboard', '')} at "
              f"`{doc.get('git', '')}`; {doc.get('redis', '')}. Other work used {busy['single']}% / {busy['cluster']}% "
              "of the machine just before the single-node / cluster run; the load generator, the nodes and Redis "
              "all share the same cores.", ""]
    if doc.get("note"):
        lines += [f"> {doc['note']}", ""]
    c = (doc.get("cluster") or {}).get("result") or {}
    lines += [f"Single node: one Switchboard, no Redis, holding every connection. Cluster: {len(c.get('nodes', [])) or 3} "
              "Switchboard processes on one private `redis-server` (no persistence), sharing one database and JWT "
              "secret, connections spread round-robin over them. Every send goes through the first node's HTTP API. "
              f"Users: {num(c.get('users'))} users with {num(c.get('devices_per_user'))} devices each, spread evenly over the "
              "nodes, so every `toUser` send reaches every node (the routing worst case). Server CPU is the nodes' "
              "utime + stime summed (10 ms ticks), Redis's apart; per delivery = CPU ÷ deliveries received.", ""]
    t = Table(["target", "measured", "met"])
    for name, value, ok in cluster_checks(doc):
        t.add([name, value, "—" if ok is None else ("yes" if ok else "**no**")])
    lines += [t.md(), ""]
    lines += [cluster_steps_table([(m, doc.get(m)) for m in ("single", "cluster")]).md(), ""]
    lines += sockudo_section(doc)
    return lines


def cluster_doc(results_dir):
    path = os.path.join(results_dir, "cluster.json")
    return json.load(open(path)) if os.path.exists(path) else None


# ---- durable history (bench/durable.sh) ---------------------------------------------------------

DURABLE_RATE_LOSS = 0.10  # durable on: best delivery rate at most this much lower than off
DURABLE_CPU_GAIN = 0.10  # durable on: server CPU per delivery at most this much higher than off


def durable_rounds(doc, scenario):
    """The scenario's rounds, each {"off": run, "on": run}; a one-round file of older runs is one round."""
    pair = (doc or {}).get(scenario) or {}
    return pair.get("rounds") or ([pair] if pair else [])


def median(values):
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def durable_checks(doc):
    """(target, measured, met) rows for durable on vs off; met is None when nothing to judge.

    Each figure is the median over the rounds: one run per mode differs from another run of the
    same mode by more than the database costs (see durable.sh)."""
    rows = []
    for scenario in ("fanout-all", "fanout-tag"):
        rounds = durable_rounds(doc, scenario)
        results = {m: [dig(r.get(m) or {}, "result") for r in rounds] for m in ("off", "on")}
        if not rounds or not all(results["off"]) or not all(results["on"]):
            err = next((str((r.get(m) or {}).get("error")) for r in rounds for m in ("on", "off")
                        if (r.get(m) or {}).get("error")), "no result")
            rows.append((f"{scenario}: every run", "failed: " + err[:160], None))
            continue
        n = len(rounds)
        best = {m: median([(res.get("best") or {}).get("deliveries_per_s") or 0 for res in results[m]])
                for m in ("off", "on")}
        if best["off"]:
            loss = 1 - best["on"] / best["off"]
            rows.append((f"{scenario}: best rate with durable on ≥ {1 - DURABLE_RATE_LOSS:.0%} of off (median of {n})",
                         f"{best['on']:,.0f} vs {best['off']:,.0f} deliveries/s ({-loss:+.1%})",
                         loss <= DURABLE_RATE_LOSS))
        else:
            p99 = {m: median([dig((res.get("steps") or [{}])[0], "delivery_latency", "p99_us") or 0 for res in results[m]])
                   for m in ("off", "on")}
            rows.append((f"{scenario}: best rate with durable on ≥ {1 - DURABLE_RATE_LOSS:.0%} of off (median of {n})",
                         "not comparable: durable off sustained no rate in most rounds (delivery p99 at the lowest "
                         f"rate {p99['on'] / 1000:.0f} ms on vs {p99['off'] / 1000:.0f} ms off)", None))
        # CPU per delivery at every rate where both modes delivered everything in every round
        # (a step over the latency limit still measures what each delivery cost), medians compared.
        ok_steps = lambda res: {st["rate_per_s"]: st for st in res.get("steps", [])
                                if not st.get("lost") and st.get("received") == st.get("expected_deliveries")}
        per = {m: [ok_steps(res) for res in results[m]] for m in ("off", "on")}
        common = set.intersection(*[set(x) for m in ("off", "on") for x in per[m]])
        for rate in sorted(common):
            c = {m: median([x[rate]["server_cpu_us_per_delivery"] for x in per[m]]) for m in ("off", "on")}
            if c["off"]:
                gain = c["on"] / c["off"] - 1
                rows.append((f"{scenario} at {rate:g} sends/s: CPU per delivery with durable on ≤ "
                             f"{1 + DURABLE_CPU_GAIN:.2f}× off (median of {n})",
                             f"{c['on']:.2f} vs {c['off']:.2f} µs ({gain:+.1%})", gain <= DURABLE_CPU_GAIN))
    return rows


def durable_section(doc):
    lines = ["## Durable history: on vs off", ""]
    if doc.get("quick"):
        lines += ["> **Quick run (smoke check)**: tiny sizes — not comparable with a full run.", ""]
    runs = [(sc, i + 1, m, r.get(m) or {}) for sc in ("fanout-all", "fanout-tag")
            for i, r in enumerate(durable_rounds(doc, sc)) for m in ("off", "on")]
    busy = sorted({sub.get("background_busy_pct") or 0 for _, _, _, sub in runs})
    if busy and busy[-1] > CONTENDED_PCT:
        lines += [f"> **Taken under contention**: other work used up to {busy[-1]}% of the machine just before these "
                  "runs, so rates and CPU figures are noisy and the verdicts below are not reliable.", ""]
    if doc.get("note"):
        lines += [f"> {doc['note']}", ""]
    n = max([i for _, i, _, _ in runs] or [1])
    lines += [f"`{doc.get('command', '')}`, {doc.get('date', '')}; {doc.get('switchboard', '')} at `{doc.get('git', '')}`. "
              f"{n} round(s); in each, every scenario runs on fresh servers with `history.durable=false` and `true`, "
              "the first mode alternating between rounds (SQLite in the data dir, `history.flush_interval` 100 ms): every "
              "broadcast is a push to a stream (`all`, `tag:<name>`), so with durable on each one is also written to the "
              "database by the background writer. Verdicts compare medians over the rounds, because two runs of the same "
              "mode differ by more than the database costs: CPU per delivery at a rate depends on how many pushes a "
              "socket's task finds waiting when it wakes. A perf profile of the durable-on server during fan-out-tag at "
              "100 sends/s puts SQLite and the history writer together below 1% of its samples.", ""]
    t = Table(["target", "measured", "met"])
    for name, value, ok in durable_checks(doc):
        t.add([name, value, "—" if ok is None else ("yes" if ok else "**no**")])
    lines += [t.md(), ""]
    steps = Table(["scenario", "round", "durable", "rate/s", "deliveries/s", "delivery p99 ms", "sustained", "lost",
                   "server CPU µs / delivery", "RSS MiB", "background CPU %"])
    for scenario, i, mode, sub in runs:
        r = sub.get("result")
        if not r:
            continue
        for st in r.get("steps", []):
            steps.add([scenario, str(i), mode, f"{st['rate_per_s']:g}", num(st["deliveries_per_s"]),
                       ms(dig(st, "delivery_latency", "p99_us")), "yes" if st.get("ok") else "no", num(st["lost"]),
                       num(st["server_cpu_us_per_delivery"], 2),
                       num((dig(st, "usage", "server_rss_bytes") or 0) / 1048576, 1),
                       str(sub.get("background_busy_pct", ""))])
    lines += [steps.md(), ""]
    return lines


def durable_doc(results_dir):
    path = os.path.join(results_dir, "durable.json")
    return json.load(open(path)) if os.path.exists(path) else None


# ---- charts -------------------------------------------------------------------------------------

def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_doc(width, height, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


def latency_chart(title, series):
    """series: {system: [[percentile, micros], …]} → percentile (x, 'nines' scale) vs latency (y, log)."""
    W, H, L, R, T, B = 720, 400, 70, 150, 40, 50
    pw, ph = W - L - R, H - T - B

    def xpos(p):
        nines = -math.log10(max(1e-5, 1 - p / 100.0))  # 0 → 0, 90 → 1, 99 → 2, 100 → 5
        return L + pw * nines / 5.0

    values = [v for pts in series.values() for _, v in pts if v > 0]
    if not values:
        return None
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    if hi <= lo:
        hi = lo * 10

    def ypos(v):
        return T + ph - ph * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    parts = [f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{esc(title)}</text>']
    for p, name in [(0, "0"), (90, "90"), (99, "99"), (99.9, "99.9"), (99.99, "99.99"), (100, "max")]:
        x = xpos(p)
        parts.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{name}</text>')
    parts.append(f'<text x="{L + pw / 2}" y="{H - 10}" text-anchor="middle">percentile</text>')
    decade = lo
    while decade <= hi * 1.0001:
        y = ypos(decade)
        text = f"{decade / 1000:g} ms" if decade >= 1000 else f"{decade:g} µs"
        parts.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>')
        decade *= 10
    parts.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    for i, (system, pts) in enumerate(series.items()):
        color = COLORS.get(system, "#000")
        path = " ".join(f"{'M' if j == 0 else 'L'}{xpos(p):.1f},{ypos(v):.1f}" for j, (p, v) in enumerate(pts))
        width = 3 if system == "switchboard" else 1.8
        parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="{width}"/>')
        ly = T + 14 + i * 18
        parts.append(f'<line x1="{L + pw + 12}" y1="{ly - 4}" x2="{L + pw + 32}" y2="{ly - 4}" stroke="{color}" stroke-width="3"/>')
        parts.append(f'<text x="{L + pw + 38}" y="{ly}">{esc(system)}</text>')
    return svg_doc(W, H, "\n".join(parts))


def bar_panels(title, panels):
    """panels: [(panel title, unit, {system: value})] → horizontal bars, one panel under another."""
    W, L, R, row, gap = 720, 130, 110, 20, 34
    panels = [p for p in panels if any(v for v in p[2].values())]
    if not panels:
        return None
    parts = [f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{esc(title)}</text>']
    y = 40
    for name, unit, values in panels:
        parts.append(f'<text x="10" y="{y + 12}" font-weight="bold">{esc(name)}</text>')
        y += 20
        top = max(v for v in values.values() if v) or 1
        for system in [s for s in SYSTEMS if s in values] + sorted(set(values) - set(SYSTEMS)):
            v = values[system] or 0
            w = (W - L - R) * v / top
            parts.append(f'<text x="{L - 6}" y="{y + 14}" text-anchor="end">{esc(system)}</text>')
            parts.append(f'<rect x="{L}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="{COLORS.get(system, "#000")}"/>')
            parts.append(f'<text x="{L + w + 6:.1f}" y="{y + 14}">{num(v, 2 if v < 100 else 0)} {esc(unit)}</text>')
            y += row
        y += gap - 20
    return svg_doc(W, y + 10, "\n".join(parts))


def charts(runs, out_dir):
    os.makedirs(os.path.join(out_dir, "charts"), exist_ok=True)
    made = []

    def write(name, svg):
        if svg:
            open(os.path.join(out_dir, "charts", name), "w").write(svg)
            made.append(name)

    def curve(d):
        return d.get("percentiles") if d else None

    lat_specs = [
        ("latency-echo-small.svg", "Echo round trip, 16-byte payload", "echo-small", lambda r: r.get("latency")),
        ("latency-echo-4k.svg", "Echo round trip, 4 KiB payload", "echo-4k", lambda r: r.get("latency")),
        ("latency-fanout-all.svg", "Broadcast to all: send call → receipt (best rate)", "fanout-all", lambda r: (fanout_best(r)[0] or {}).get("delivery_latency")),
        ("latency-fanout-tag.svg", "Broadcast to a tag: send call → receipt (best rate)", "fanout-tag", lambda r: (fanout_best(r)[0] or {}).get("delivery_latency")),
        ("latency-storm.svg", "Connect storm: connect → registered", "storm", lambda r: dig(r, "connect", "connect_latency")),
        ("latency-api.svg", "toUser API: send call → receipt", "api", lambda r: r.get("delivery_latency")),
    ]
    for name, title, scenario, pick in lat_specs:
        series = {}
        for s in systems_in(runs):
            r = res(runs, s, scenario)
            pts = curve(pick(r)) if r else None
            if pts:
                series[s] = pts
        write(name, latency_chart(title, series) if series else None)

    def collect(scenario, f):
        out = {}
        for s in systems_in(runs):
            r = res(runs, s, scenario)
            if r:
                try:
                    out[s] = f(r)
                except (KeyError, TypeError):
                    pass
        return out

    best = lambda key: (lambda r: (fanout_best(r)[0] or {}).get(key))
    write("throughput.svg", bar_panels("Throughput per system (higher is better)", [
        ("Echo, 16-byte payload", "msgs/s", collect("echo-small", lambda r: r["msgs_per_s"])),
        ("Echo, 4 KiB payload", "msgs/s", collect("echo-4k", lambda r: r["msgs_per_s"])),
        ("Broadcast to all, best rate", "deliveries/s", collect("fanout-all", best("deliveries_per_s"))),
        ("Broadcast to a tag, best rate", "deliveries/s", collect("fanout-tag", best("deliveries_per_s"))),
        ("Connect storm", "connects/s", collect("storm", lambda r: r["connect"]["connects_per_s"])),
        ("toUser API", "requests/s", collect("api", lambda r: r["requests_per_s"])),
    ]))
    write("cost.svg", bar_panels("Server cost per unit of work (lower is better)", [
        ("Idle: RSS per connection", "KiB", collect("idle", lambda r: r["rss_per_connection_bytes"] / 1024)),
        ("Idle: CPU per connection-second", "µs", collect("idle", lambda r: r["cpu_us_per_connection_second"])),
        ("Echo 16 B: CPU per message", "µs", collect("echo-small", lambda r: r["server_cpu_us_per_msg"])),
        ("Broadcast to all: CPU per delivery (each system at its best rate)", "µs", collect("fanout-all", best("server_cpu_us_per_delivery"))),
        ("Broadcast to a tag: CPU per delivery (each system at its best rate)", "µs", collect("fanout-tag", best("server_cpu_us_per_delivery"))),
    ]))
    return made


# ---- the report ---------------------------------------------------------------------------------

def report(runs, meta, made, cluster=None, durable=None):
    contended = sorted({f"{s} / {sc} ({d.get('background_busy_pct')}%)" for (s, sc), d in runs.items()
                        if (d.get("background_busy_pct") or 0) > CONTENDED_PCT})
    args = {}
    for (_, sc), d in runs.items():
        args.setdefault(sc, d.get("args", ""))
    lines = [
        "# Benchmark results",
        "",
        "Generated by `bench/report.py` from the JSON in `results/`; do not edit by hand. "
        "How the benchmark works and how to read it: [README.md](README.md).",
        "",
    ]
    if meta.get("quick"):
        lines += ["> **Quick run (smoke check)**: small N and short durations — these numbers are not comparable "
                  "with a full run.", ""]
    if contended:
        lines += [f"> **Taken under contention** (†): other work used more than {CONTENDED_PCT}% of the machine's CPU "
                  "just before these runs, so their numbers are pessimistic: " + "; ".join(contended) + ".", ""]
    if meta.get("note"):
        lines += [f"> {meta['note']}", ""]
    lines += [
        "## Machine and versions",
        "",
        f"- Command: `{meta.get('command', '')}` ({meta.get('elapsed_s', '?')} s of measuring), {meta.get('date', '')}",
        f"- Machine: {meta.get('nproc')} cores ({meta.get('cpu')}), {meta.get('memory')} memory, Linux {meta.get('kernel')}; "
        "the load generator runs on the same two cores as the server under test",
        f"- Switchboard: {meta.get('switchboard')} at `{meta.get('git')}`",
        f"- Toolchains: {meta.get('rustc')}, Node {meta.get('node')}",
        f"- sockudo: {meta.get('sockudo') or 'not run'}",
        f"- Libraries: {versions()}",
        "",
        "Scenario arguments (`loadgen <scenario> …`):",
        "",
    ]
    lines += [f"- {sc}: `{a}`" for sc, a in sorted(args.items())]
    lines += [""]
    sections = [
        ("Idle connections", "idle", idle_table(runs), "Server RSS growth over the idle fleet ÷ connections; CPU over the idle window ÷ (connections × seconds). Lower is better.", []),
        ("Echo, 16-byte payload", "echo-small", echo_table(runs, "echo-small"), "Pipelined requests through each system's event path; a reply ends a round trip.", ["latency-echo-small.svg"]),
        ("Echo, 4 KiB payload", "echo-4k", echo_table(runs, "echo-4k"), "", ["latency-echo-4k.svg"]),
        ("Fan-out to all", "fanout-all", fanout_table(runs, "fanout-all"), "Broadcasts through `POST /api/websocket/send/toAll` at rising rates; latency from the send call to each receipt. "
         "The best rate is the highest whose p99 stayed under the limit with nothing lost. "
         "At 10,000 recipients the latency includes the load generator reading 10,000 sockets on the same two cores, "
         "and CPU time is counted in 10 ms ticks: compare systems at the same rate (\"Every rate\").", ["latency-fanout-all.svg"]),
        ("Fan-out to a tag", "fanout-tag", fanout_table(runs, "fanout-tag"), "Broadcasts through `POST /api/websocket/send/toTag` to the tag's members while every connection is online.", ["latency-fanout-tag.svg"]),
        ("Connect storm", "storm", storm_table(runs), "Authenticated connects (Switchboard: bearer token, counted at its `connected` frame) as fast as accepted.", ["latency-storm.svg"]),
        ("toUser API under load", "api", api_table(runs), "Concurrent keep-alive clients calling `POST /api/websocket/send/toUser` back to back; each user has several devices online.", ["latency-api.svg"]),
    ]
    for title, scenario, table, blurb, pics in sections:
        lines += [f"## {title}", ""]
        if blurb:
            lines += [blurb, ""]
        lines += [table.md() if table.rows else "_not run_", ""]
        for pic in pics:
            if pic in made:
                lines += [f"![{title}](charts/{pic})", ""]
        if scenario.startswith("fanout"):
            steps = fanout_steps(runs, scenario)
            if steps.rows:
                lines += ["<details><summary>Every rate</summary>", "", steps.md(), "", "</details>", ""]
    targets = targets_table(runs)
    if targets.rows:
        lines += ["## Targets", "", "Ratios are Switchboard ÷ the peer, from this run.", "", targets.md(), ""]
    if cluster:
        lines += cluster_section(cluster)
    if durable:
        lines += durable_section(durable)
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "OPTIMISATIONS.md")
    if os.path.exists(notes):
        lines += [open(notes).read().strip(), ""]
    lines += ["## Charts", ""]
    for pic in ("throughput.svg", "cost.svg"):
        if pic in made:
            lines += [f"![{pic[:-4]}](charts/{pic})", ""]
    # The soak's last result (bench/soak.sh writes it), always the last section.
    soak = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SOAK.md")
    if os.path.exists(soak):
        lines += [open(soak).read().strip(), ""]
    return "\n".join(lines)


def versions():
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    try:
        lock = open(os.path.join(here, "Cargo.lock")).read()
        for name in ("tokio", "tokio-tungstenite", "fastwebsockets", "socketioxide", "axum"):
            marker = f'name = "{name}"\nversion = "'
            at = lock.find(marker)
            if at >= 0:
                found.append(f"{name} {lock[at + len(marker):].split(chr(34))[0]}")
    except OSError:
        pass
    try:
        pkgs = json.load(open(os.path.join(here, "peers", "node", "package-lock.json"))).get("packages", {})
        for name in ("ws", "socket.io"):
            v = pkgs.get(f"node_modules/{name}", {}).get("version")
            if v:
                found.append(f"{name} {v}")
    except (OSError, ValueError):
        pass
    return ", ".join(found) or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results")
    ap.add_argument("--meta")
    ap.add_argument("--out")
    ap.add_argument("--cluster-summary", metavar="CLUSTER_JSON", help="print the cluster targets' verdicts and exit")
    ap.add_argument("--durable-summary", metavar="DURABLE_JSON", help="print the durable-history targets' verdicts and exit")
    a = ap.parse_args()
    if a.durable_summary:
        for name, value, ok in durable_checks(json.load(open(a.durable_summary))):
            print(f"[durable] {'—' if ok is None else ('met' if ok else 'MISSED')}: {name}: {value}")
        return
    if a.cluster_summary:
        doc = json.load(open(a.cluster_summary))
        for name, value, ok in cluster_checks(doc) + sockudo_checks(doc):
            print(f"[cluster] {'—' if ok is None else ('met' if ok else 'MISSED')}: {name}: {value}")
        return
    if not (a.results and a.meta and a.out):
        ap.error("--results, --meta and --out are required")
    runs = load(a.results)
    meta = json.load(open(a.meta)) if os.path.exists(a.meta) else {}
    made = charts(runs, a.out)
    open(os.path.join(a.out, "RESULTS.md"), "w").write(report(runs, meta, made, cluster_doc(a.results), durable_doc(a.results)) + "\n")


if __name__ == "__main__":
    main()
