"""Scenario 4: incremental snapshot refresh against a full re-pull, after 1% of rows changed.

A snapshot of every purchase is taken at the real allowance; then ``Sandbox.touch`` moves the
``updatedAt`` of 1% of the purchases to now.  The snapshot is copied, one copy is refreshed
incrementally (``refresh_snapshot(path)``), the other in full (``refresh_snapshot(path,
full=True)``).  Reported: requests the sandbox saw, wall time, and whether both copies end up
holding the same data.

Run alone::

    python -m benchmarks --only refresh [--quick]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PAGE_SIZE, Scale, fmt, markdown_table, ratio


def run(scale: Scale) -> dict[str, Any]:
    import pandas as pd

    from jetti_frames import JettiClient, read_snapshot, refresh_snapshot, snapshot
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    changed = max(1, round(scale.purchases * scale.changed_share))
    out: dict[str, Any] = {"purchases": scale.purchases, "changed": changed,
                           "latency_ms": scale.refresh_latency_ms}
    with tempfile.TemporaryDirectory() as tmp, Sandbox(
            purchases=scale.purchases, latency_ms=scale.refresh_latency_ms,
            max_limit=PAGE_SIZE) as sb:
        client = JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                             page_size=PAGE_SIZE)
        inc, full = Path(tmp) / "incremental", Path(tmp) / "full"

        def measured(label: str, action: Any) -> dict[str, Any]:
            sb.reset_counters()
            began = time.perf_counter()
            info = action()
            seconds = time.perf_counter() - began
            counts = sb.counters()
            out[label] = {"seconds": round(seconds, 3), "requests": counts["requests"],
                          "status_429": counts["status_429"], "rows_sent": counts["rows"],
                          "rows": info.get("rows")}
            return info

        measured("initial", lambda: snapshot("purchases", inc, client=client))
        shutil.copytree(inc, full)
        touched = sb.touch("purchases", changed)
        measured("incremental", lambda: refresh_snapshot(inc, client=client))
        measured("full", lambda: refresh_snapshot(full, full=True, client=client))
        a = read_snapshot(inc).sort_values("id", ignore_index=True)
        b = read_snapshot(full).sort_values("id", ignore_index=True)
        try:
            pd.testing.assert_frame_equal(a, b)
            out["same_data"] = True
        except AssertionError as exc:
            out["same_data"] = False
            out["difference"] = str(exc)[:500]
        stamps = a.set_index("id").loc[touched, "updatedAt"]
        out["touched_seen"] = int((stamps >= stamps.max() - pd.Timedelta(minutes=5)).sum())
        client.close()
    out["request_ratio"] = ratio(out["full"]["requests"], out["incremental"]["requests"])
    out["speedup"] = ratio(out["full"]["seconds"], out["incremental"]["seconds"])
    return out


def table(result: dict[str, Any]) -> str:
    rows = [[label, f"{r['rows']:,}", r["requests"], f"{r['rows_sent']:,}", r["status_429"],
             fmt(r["seconds"], 2)]
            for label, r in (("initial snapshot", result["initial"]),
                             ("incremental refresh", result["incremental"]),
                             ("full re-pull", result["full"]))]
    text = markdown_table(["operation", "rows in snapshot", "requests", "records sent",
                           "429s", "wall s"], rows, align="-rrrrr")
    same = "hold the same data" if result["same_data"] else "DIFFER"
    return (text + f"\n\nAfter {result['changed']:,} of {result['purchases']:,} purchases "
            f"changed (latency {result['latency_ms']:.0f} ms): the incremental refresh needs "
            f"{result['request_ratio']:.0f}x fewer requests and is {result['speedup']:.0f}x "
            f"faster; both refreshed snapshots {same} ({result['touched_seen']:,} of "
            f"{result['changed']:,} changed records carry their new `updatedAt`).")
