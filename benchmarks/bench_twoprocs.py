"""Two processes of one account pulling at once: do they share the allowance?

Jetti meters the account (2 GET/s, bucket of 2), not the process.  Each run starts N separate
Python processes (each with its own client, the same token and the same cache directory) that
pull distinct pages of purchases through ``Transport.map`` at once, against one sandbox at its
real limit and 300 ms latency.  Reported: the account's combined use of 2 requests/s (requests
the sandbox served, over the time from the first start to the last answer) and the 429s the
sandbox sent, beside the target (0 x 429, >= 0.95 with two processes).  For comparison, two
processes with the cache off (so the schedule is shared in each process only, as before) and
one process while another integration of the account drains 0.5 GET/s.

Run alone::

    python -m benchmarks --only twoprocs [--quick]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ALLOWANCE, Barrier, Scale, child_ready, fmt, markdown_table

LATENCY_MS = 300.0
#: ``(label, processes, shared cache directory, other integration's GET/s)``
RUNS = (("1 process", 1, True, 0.0), ("2 processes", 2, True, 0.0),
        ("2 processes, cache off (schedule per process)", 2, False, 0.0),
        ("1 process, another integration at 0.5 GET/s", 1, True, 0.5))
TARGET = 0.95


def run(scale: Scale) -> dict[str, Any]:
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    pages = max(4, scale.pages // 2 * 2)
    out: dict[str, Any] = {"latency_ms": LATENCY_MS, "pages": pages, "runs": []}
    with Sandbox(purchases=pages * 10, latency_ms=LATENCY_MS, max_limit=10) as sb:
        for label, procs, cached, drain in RUNS:
            sb.configure(drain=drain)  # fresh buckets too
            sb.reset_counters()
            with tempfile.TemporaryDirectory() as tmp:
                barrier = Barrier()
                share = pages // procs
                for i in range(procs):
                    cache = str(Path(tmp) / "http-cache.sqlite") if cached else ""
                    barrier.spawn(f"p{i}", ["-m", "benchmarks.bench_twoprocs", "--child",
                                            sb.base_url, cache, str(i * share), str(share)],
                                  env={"JETTI_API_TOKEN": SANDBOX_TOKEN})
                try:
                    barrier.go()
                    children = barrier.results()
                finally:
                    barrier.kill()
            counts, other = sb.counters(SANDBOX_TOKEN), sb.other_counters(SANDBOX_TOKEN)
            began = min(c["began"] for c in children.values())
            ended = max(c["ended"] for c in children.values())
            seconds = ended - began
            served = counts["ok"] + other["requests"]
            out["runs"].append({
                "label": label, "processes": procs, "shared": cached, "drain": drain,
                "requests": counts["requests"], "status_429": counts["status_429"],
                "other_requests": other["requests"], "other_429": other["status_429"],
                "seconds": round(seconds, 3),
                "utilisation": round(served / seconds / ALLOWANCE, 3)})
    return out


def table(result: dict[str, Any]) -> str:
    rows = []
    for r in result["runs"]:
        target = ("0 x 429, >= 0.95" if r["processes"] == 2 and r["shared"] else
                  "0 x 429" if r["shared"] else "-")
        other = f"{r['other_requests']} ({r['other_429']} x 429)" if r["drain"] else "-"
        rows.append([r["label"], r["requests"], other, r["status_429"],
                     f"{r['utilisation']:.3f}", fmt(r["seconds"], 1), target])
    text = markdown_table(["run", "our requests", "other integration", "429s",
                           "used of 2 req/s", "wall s", "target"], rows, align="-rrrrr-")
    return (text + f"\n\n{result['pages']} pages in all per run, split between the processes; "
            f"server latency {result['latency_ms']:.0f} ms; the other integration's requests "
            "count towards the account's use.")


def child(base_url: str, cache: str, first: int, pages: int) -> None:
    """One process: pull ``pages`` distinct pages from ``first`` on; print one JSON line."""
    from jetti_frames.settings import Settings
    from jetti_frames.transport import Transport

    settings = Settings.from_env(base_url=base_url, cache=bool(cache),
                                 cache_path=cache or None)
    with Transport(settings) as t:
        items = [("purchases.json", f"limit=10&from={i}")
                 for i in range(first, first + pages)]
        child_ready()
        began = time.time()
        got = sum(1 for _ in t.map(items))
        ended = time.time()
    print(json.dumps({"pages": got, "began": began, "ended": ended,
                      "throttled": t.stats.throttled, "network": t.stats.network}))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        from benchmarks.run import main

        raise SystemExit(main(["--only", "twoprocs", *sys.argv[1:]]))
