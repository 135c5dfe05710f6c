"""Bounded reads and a short full pull at Jetti's allowance on a slow server.

Every read runs against its own sandbox (bucket of 2, draining 2 GET/s, pages of 100), all at
once in threads (the waiting is the server's).  Reported per read: the requests the sandbox
answered beside the pages the rows fill, 429s, wall time, ``utilisation = (requests / wall) /
2`` beside the target, and the ceiling: the best any client reaches with that many requests
when requests start at least 0.5 s apart and the last one takes a full latency.

Run alone::

    python -m benchmarks --only bounded [--quick]
    python benchmarks/bench_bounded.py [--only purchaseStatusId]   # the reads whose label has it
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import ALLOWANCE, PAGE_SIZE, Scale, fmt, markdown_table

TARGET = 0.95

#: (label, resource, latency ms, read options, sandbox purchases)
READS: list[tuple[str, str, float, dict[str, Any], int]] = [
    ("limit=4000", "purchase-items", 800, {"attributes": ["id"], "limit": 4000}, 3000),
    ("limit=4000", "purchase-items", 1500, {"attributes": ["id"], "limit": 4000}, 3000),
    ("order=purchaseStatusId limit=1000", "purchases", 800,
     {"attributes": ["id", "purchaseStatusId"], "order": "purchaseStatusId", "limit": 1000}, 3000),
    ("order=purchaseStatusId limit=1000", "purchases", 1500,
     {"attributes": ["id", "purchaseStatusId"], "order": "purchaseStatusId", "limit": 1000}, 3000),
    ("order=purchaseStatusId limit=4000", "purchases", 800,
     {"attributes": ["id", "purchaseStatusId"], "order": "purchaseStatusId", "limit": 4000}, 6000),
    ("order=purchaseStatusId limit=4000", "purchases", 1500,
     {"attributes": ["id", "purchaseStatusId"], "order": "purchaseStatusId", "limit": 4000}, 6000),
    ("order=-total limit=4000", "purchases", 800,
     {"attributes": ["id", "total"], "order": "-total", "limit": 4000}, 6000),
    ("order=-total limit=4000", "purchases", 1500,
     {"attributes": ["id", "total"], "order": "-total", "limit": 4000}, 6000),
    ("order=-id limit=4000", "purchase-items", 800,
     {"attributes": ["id"], "order": "-id", "limit": 4000}, 3000),
    ("full pull, 30 pages (id, total)", "purchases", 1500, {"attributes": ["id", "total"]}, 3000),
]
QUICK: list[tuple[str, str, float, dict[str, Any], int]] = [
    ("limit=1000", "purchase-items", 800, {"attributes": ["id"], "limit": 1000}, 600),
    ("full pull, 8 pages (id, total)", "purchases", 1500, {"attributes": ["id", "total"]}, 800),
]


def ceiling(requests: int, latency_ms: float) -> float:
    """The best utilisation of ``requests`` started 0.5 s apart, the last one taking a latency.

    >>> ceiling(40, 800)
    0.985
    """
    wall = (requests - 1) / ALLOWANCE + latency_ms / 1000
    return round(requests / wall / ALLOWANCE, 3)


def one(label: str, resource: str, latency: float, options: dict[str, Any],
        purchases: int) -> dict[str, Any]:
    from jetti_frames import JettiClient
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    with Sandbox(purchases=purchases, latency_ms=latency, max_limit=PAGE_SIZE) as sb:
        client = JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                             page_size=PAGE_SIZE)
        began = time.monotonic()
        frame = client.read(resource, **options)
        seconds = time.monotonic() - began
        client.close()
        counts = sb.counters()
    ok = counts["ok"]
    return {"read": label, "resource": resource, "latency_ms": latency, "rows": len(frame),
            "pages": math.ceil(len(frame) / PAGE_SIZE), "requests": ok,
            "status_429": counts["status_429"], "seconds": round(seconds, 3),
            "utilisation": round(ok / seconds / ALLOWANCE, 3),
            "ceiling": ceiling(ok, latency), "target": TARGET}


def run(scale: Scale) -> dict[str, Any]:
    reads = QUICK if scale.name == "quick" else READS
    with ThreadPoolExecutor(len(reads)) as pool:
        runs = list(pool.map(lambda r: one(*r), reads))
    return {"runs": runs}


def table(result: dict[str, Any]) -> str:
    rows = [[r["read"], f"{r['latency_ms']:.0f}", f"{r['rows']:,}", r["pages"], r["requests"],
             r["status_429"], fmt(r["seconds"], 2), fmt(r["utilisation"], 3),
             fmt(r["ceiling"], 3), f">= {r['target']}"] for r in result["runs"]]
    return markdown_table(["read", "latency ms", "rows", "pages", "requests", "429s", "wall s",
                           "utilisation", "ceiling", "target"], rows, align="-rrrrrrrrr")


if __name__ == "__main__":
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(prog="bench_bounded.py")
    parser.add_argument("--only", default="", help="only the reads whose label holds this")
    args = parser.parse_args()
    chosen = [r for r in READS if args.only in r[0]]
    with ThreadPoolExecutor(max(1, len(chosen))) as pool:
        print(table({"runs": list(pool.map(lambda r: one(*r), chosen))}))
