"""The standalone benchmarks :mod:`bench_transport` and :mod:`bench_snapshot_memory` as suite
scenarios: the same measurements, run at the suite's sizes, returning JSON-ready results.

* ``transport``: ``Transport.map`` alone (no paging, no frames), 60 distinct GETs per latency at
  the real allowance, every latency in its own sandbox at the same time.  It isolates what the
  rate limiter and thread pool reach from what paging adds in scenario 1.
* ``memory`` (scenario 6): peak RSS of ``snapshot("purchases", include=[...])`` in a fresh
  process per size, sandbox rate limit off, client ``get_rate`` high.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from benchmarks import bench_snapshot_memory, bench_transport
from benchmarks.common import Scale, fmt, markdown_table, ratio

# -- transport ----------------------------------------------------------------------------------


def run_transport(scale: Scale) -> dict[str, Any]:
    from jetti_frames.sandbox import Sandbox

    results: dict[float, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def one(latency: float) -> None:
        token = f"bench-transport-{latency:.0f}"
        try:
            with Sandbox(purchases=200, latency_ms=latency, tokens=[token]) as sb:
                used, throttled, served = bench_transport.run(
                    sb, token, scale.transport_requests, sequential=False)
            results[latency] = {"latency_ms": latency, "requests": served,
                                "utilisation": round(used, 3), "status_429": throttled}
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(lat,)) for lat in scale.latencies_ms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {"requests_per_latency": scale.transport_requests,
            "runs": [results[lat] for lat in scale.latencies_ms]}


def transport_table(result: dict[str, Any]) -> str:
    rows = [[f"{r['latency_ms']:.0f}", r["requests"], r["status_429"], fmt(r["utilisation"], 3)]
            for r in result["runs"]]
    return markdown_table(["latency ms", "requests", "429s", "utilisation"], rows, align="rrrr")


# -- memory -------------------------------------------------------------------------------------


def run_memory(scale: Scale) -> dict[str, Any]:
    from jetti_frames.sandbox import Sandbox

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in scale.memory_sizes:
            with Sandbox(purchases=size, rate="off", max_limit=bench_snapshot_memory.PAGE) as sb:
                r = bench_snapshot_memory.measure("snapshot", sb.base_url, Path(tmp) / f"s{size}")
            runs.append({"purchases": size, "rows": int(r["rows"]),
                         "seconds": round(r["seconds"], 2), "peak_mib": round(r["peak_mib"], 1)})
    base = runs[0]["peak_mib"]
    for r in runs:
        r["ratio"] = ratio(r["peak_mib"], base)
    return {"include": bench_snapshot_memory.INCLUDE, "page_size": bench_snapshot_memory.PAGE,
            "runs": runs, "memory_ratio": runs[-1]["ratio"]}


def memory_table(result: dict[str, Any]) -> str:
    rows = [[f"{r['purchases']:,}", f"{r['rows']:,}", fmt(r["seconds"]), fmt(r["peak_mib"], 0),
             fmt(r["ratio"], 2)] for r in result["runs"]]
    return markdown_table(["purchases", "rows written", "wall s", "peak RSS MiB",
                           "ratio to smallest"], rows, align="rrrrr")
