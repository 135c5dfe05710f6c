"""Scenario ``inlist``: a long list of ids (``where={"id": [...]}``) at Jetti's allowance.

For 1500 and 3000 purchase ids (a random half of the 3000 purchases, and all of them), against
the sandbox at 2 GET/s (bucket of 2) and 300 ms latency, no cache:

* **before**: chunks of 20 ids, one request stream each (what qs's array limit forces without
  ``$or``);
* **now**: ids packed into ``$or`` branches of 20, about one page of ids per request;
* **no $or**: a server that ignores ``$or`` (the client has already found out): plain chunks,
  or the listed id range read whole when that is cheaper.

Reported: requests the sandbox saw, seconds, rows and whether they are exactly the ids asked
for that exist; the target is <= 20 requests for 1500 ids.

Run alone::

    python -m benchmarks --only inlist [--quick]
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.common import PAGE_SIZE, Scale, fmt, markdown_table

#: Requests the issue allows for 1500 ids.
TARGET_1500 = 20
LATENCY_MS = 300


@contextmanager
def _chunks_of_20() -> Iterator[None]:
    """Plan reads as before packing: every long list split into chunks of 20."""
    from jetti_frames import client as module
    from jetti_frames._split import split_where

    packed = module.pack_where
    module.pack_where = lambda query, **_: (query, split_where(query))  # type: ignore[assignment]
    try:
        yield
    finally:
        module.pack_where = packed


def _read(sb: Any, ids: list[int], *, learn: list[int] | None = None) -> dict[str, Any]:
    from jetti_frames import JettiClient
    from jetti_frames.settings import SANDBOX_TOKEN

    with JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                     page_size=PAGE_SIZE) as client:
        if learn:
            client.read("purchases", where={"id": learn}, attributes=["id"])
        sb.reset_counters()
        began = time.perf_counter()
        frame = client.read("purchases", where={"id": ids}, attributes=["id", "total"])
        seconds = time.perf_counter() - began
    counters = sb.counters()
    return {"requests": counters["requests"], "status_429": counters["status_429"],
            "seconds": round(seconds, 2), "rows": len(frame),
            "exact": frame["id"].tolist() == sorted(ids),
            "longest_request": max((len(e["target"]) for e in sb.log), default=0)}


def run(scale: Scale) -> dict[str, Any]:
    from jetti_frames.sandbox import Sandbox

    quick = scale.name == "quick"
    purchases = 600 if quick else 3000
    out: dict[str, Any] = {"latency_ms": LATENCY_MS, "purchases": purchases, "sizes": []}
    with Sandbox(purchases=purchases, latency_ms=LATENCY_MS, max_limit=PAGE_SIZE) as sb:
        every = [r["id"] for r in sb.query("SELECT id FROM purchases ORDER BY id")]
        for ids in (random.Random(0).sample(every, purchases // 2), every):
            row: dict[str, Any] = {"ids": len(ids)}
            with _chunks_of_20():
                row["before"] = _read(sb, ids)
            row["now"] = _read(sb, ids)
            sb.configure(logic="ignore")
            row["no_or"] = _read(sb, ids, learn=every[-25:])
            sb.configure(logic="honor")
            out["sizes"].append(row)
    return out


def table(result: dict[str, Any]) -> str:
    rows = []
    for size in result["sizes"]:
        target = f"<= {TARGET_1500}" if size["ids"] == 1500 else ""
        for label, key in (("chunks of 20 (before)", "before"), ("packed $or (now)", "now"),
                           ("server ignores $or (now)", "no_or")):
            r = size[key]
            rows.append([f"{size['ids']:,}", label, r["requests"], fmt(r["seconds"], 1),
                         f"{r['rows']:,}", "yes" if r["exact"] else "**no**",
                         f"{r['longest_request']:,}", r["status_429"],
                         target if key == "now" else ""])
    note = (f"\n\n{result['purchases']:,} purchases, 2 GET/s (bucket of 2), "
            f"{result['latency_ms']} ms latency, no cache; longest request line in characters "
            f"(Node refuses over 16,384).")
    return markdown_table(["ids", "plan", "requests", "seconds", "rows", "exact",
                           "longest line", "429s", "target"], rows,
                          align="r-rrr-rr-") + note
