# Summarises an Autobahn|Testsuite fuzzingclient report (index.json).
#
#   python summarize.py reports/index.json [reports/SUMMARY.md "command line" "binary"]
#
# Prints counts by outcome and every failing case; writes a Markdown summary when a path is
# given. Exit status 1 when any case failed, 2 when the report is missing or empty.
#
# A case fails when its behaviour is FAILED, or its closing behaviour is FAILED or UNCLEAN
# (both show as red "Fail" in Autobahn's HTML report). WRONG CODE and FAILED BY CLIENT closing
# behaviours are listed but do not fail the run (Autobahn shows them amber).
from __future__ import print_function

import datetime
import io
import json
import os
import sys

OUTCOMES = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
CLOSE_FAILING = ("FAILED", "UNCLEAN")


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def main(argv):
    if len(argv) < 2:
        print("usage: summarize.py INDEX_JSON [SUMMARY_MD COMMAND BINARY]", file=sys.stderr)
        return 2
    try:
        with io.open(argv[1], encoding="utf-8") as f:
            index = json.load(f)
    except (IOError, OSError, ValueError) as e:
        print("autobahn: cannot read %s: %s" % (argv[1], e), file=sys.stderr)
        return 2

    cases = {}
    for agent in index.values():
        cases.update(agent)
    if not cases:
        print("autobahn: the report holds no cases", file=sys.stderr)
        return 2

    counts = dict((o, 0) for o in OUTCOMES)
    close_counts = {}
    failed = []
    amber = []
    by_behavior = {}
    for cid in sorted(cases, key=case_key):
        c = cases[cid]
        beh = c.get("behavior", "FAILED")
        close = c.get("behaviorClose", "FAILED")
        counts[beh] = counts.get(beh, 0) + 1
        by_behavior.setdefault(beh, []).append(cid)
        close_counts[close] = close_counts.get(close, 0) + 1
        line = "%-8s behavior=%s close=%s remoteCloseCode=%s" % (
            cid, beh, close, c.get("remoteCloseCode"))
        if beh == "FAILED" or close in CLOSE_FAILING:
            failed.append((cid, beh, close, line + detail(argv[1], c)))
        elif close not in ("OK", "INFORMATIONAL"):
            amber.append(line + detail(argv[1], c))

    total = len(cases)
    print("autobahn: %d cases" % total)
    print("  by outcome:       " + ", ".join("%s %d" % (o, counts.get(o, 0)) for o in
                                             OUTCOMES + sorted(set(counts) - set(OUTCOMES))))
    print("  closing behavior: " + ", ".join("%s %d" % kv for kv in sorted(close_counts.items())))
    for line in amber:
        print("  note:   " + line)
    for _, _, _, line in failed:
        print("  FAILED: " + line)

    if len(argv) >= 5:
        write_summary(argv[2], argv[3], argv[4], total, counts, close_counts, failed, amber,
                      by_behavior)

    print("autobahn: %d passed, %d failed" % (total - len(failed), len(failed)))
    return 1 if failed else 0


def detail(index_path, case):
    """The case report's own words: what it expected and why the close was judged so."""
    report = case.get("reportfile")
    if not report:
        return ""
    try:
        with io.open(os.path.join(os.path.dirname(index_path), report), encoding="utf-8") as f:
            r = json.load(f)
    except (IOError, OSError, ValueError):
        return " (%s)" % report
    why = r.get("resultClose", "") if case.get("behavior") != "FAILED" else r.get("result", "")
    extra = r.get("wasNotCleanReason") or ""
    return " -- %s%s (%s)" % (why, "; " + extra if extra else "", report)


def write_summary(path, command, binary, total, counts, close_counts, failed, amber, by_behavior):
    out = []
    out.append("# Autobahn|Testsuite summary")
    out.append("")
    out.append("RFC 6455 conformance of the `websocket.echo_path` endpoint, measured with")
    out.append("Autobahn|Testsuite (`wstest -m fuzzingclient`), cases 1.* to 7.*, 9.* and 10.*;")
    out.append("compression (12.*, 13.*) is not run. See `README.md` in this folder.")
    out.append("")
    out.append("- Date: %s" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"))
    out.append("- Command: `%s`" % command)
    out.append("- Server binary: %s" % binary)
    out.append("")
    out.append("| Outcome | Behaviour | Closing behaviour |")
    out.append("|---|---:|---:|")
    rows = OUTCOMES + sorted((set(counts) | set(close_counts)) - set(OUTCOMES))
    for o in rows:
        out.append("| %s | %d | %d |" % (o, counts.get(o, 0), close_counts.get(o, 0)))
    out.append("| **Total** | **%d** | **%d** |" % (total, total))
    out.append("")
    out.append("A case fails when its behaviour is FAILED or its closing behaviour is FAILED or")
    out.append("UNCLEAN (Autobahn's HTML report shows both in red).")
    out.append("")
    for o in ("NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"):
        if by_behavior.get(o):
            out.append("- %s: %s" % (o, ", ".join(by_behavior[o])))
    out.append("")
    out.append("Result: %d passed, %d failed." % (total - len(failed), len(failed)))
    groups = {}
    for cid, beh, close, _ in failed:
        groups.setdefault((beh, close), []).append(cid)
    for (beh, close), ids in sorted(groups.items()):
        out.append("")
        out.append("Failed with behaviour %s, closing behaviour %s (%d): %s." %
                   (beh, close, len(ids), ", ".join(ids)))
    if amber:
        out.append("")
        out.append("Notes:")
        out.append("")
        out.extend("- " + line for line in amber)
    out.append("")
    with io.open(path, "w", encoding="utf-8") as f:
        f.write(u"\n".join(out))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
