"""Scenario 3: the same query again, answered by the on-disk HTTP cache.

A client with a cache file pulls every purchase at the real allowance (cold); a new client (as a
new notebook session would make) reads the same query from the same cache file (warm), three
times: a warm read takes about half a second, which a busy moment of the machine can double, so
the median of three is reported (each read's time is in the JSON).  Reported: wall time,
requests the sandbox saw, cache hits, the speed-up and whether the frames are equal.

Run alone::

    python -m benchmarks --only cache [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PAGE_SIZE, Scale, fmt, markdown_table, ratio


def run(scale: Scale) -> dict[str, Any]:
    import pandas as pd

    from jetti_frames import JettiClient
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    out: dict[str, Any] = {"pages": scale.pages, "latency_ms": scale.cache_latency_ms}
    with tempfile.TemporaryDirectory() as tmp, Sandbox(
            purchases=scale.purchases, latency_ms=scale.cache_latency_ms,
            max_limit=PAGE_SIZE) as sb:
        frames = []
        warm: list[float] = []
        for label in ("cold", "warm", "warm", "warm"):
            client = JettiClient(SANDBOX_TOKEN, base_url=sb.base_url,
                                 cache=Path(tmp) / "http-cache.sqlite", progress=False,
                                 page_size=PAGE_SIZE)
            sb.reset_counters()
            began = time.perf_counter()
            frame = client.read("purchases")
            seconds = time.perf_counter() - began
            stats = client.last_stats
            if label == "warm":
                warm.append(round(seconds, 4))
                seconds = statistics.median(warm)
            out[label] = {"seconds": round(seconds, 4), "requests": sb.counters()["requests"],
                          "cache_hits": stats.cache_hits, "rows": len(frame)}
            frames.append(frame)
            client.close()
        out["warm"]["each"] = warm
        try:
            for frame in frames[1:]:
                pd.testing.assert_frame_equal(frames[0], frame)
            out["same_frame"] = True
        except AssertionError:
            out["same_frame"] = False
    out["speedup"] = ratio(out["cold"]["seconds"], out["warm"]["seconds"])
    return out


def table(result: dict[str, Any]) -> str:
    rows = [[label, f"{r['rows']:,}", r["requests"], r["cache_hits"], fmt(r["seconds"], 3)]
            for label, r in (("cold (empty cache)", result["cold"]),
                             ("warm (same query again, median of 3)", result["warm"]))]
    text = markdown_table(["read", "rows", "requests", "cache hits", "wall s"], rows,
                          align="-rrrr")
    same = "equal" if result["same_frame"] else "NOT equal"
    return (text + f"\n\nWarm read {result['speedup']:,.0f}x faster than cold "
            f"(server latency {result['latency_ms']:.0f} ms); the two frames are {same}.")
