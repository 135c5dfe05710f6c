"""Partitioned refresh: one changed record, a month-partitioned snapshot vs an unpartitioned one.

Two snapshots of every purchase with two includes are taken, one unpartitioned and one
partitioned by ``(createdAt, month)`` (78 months of data: 78 partition folders).  Each round
``Sandbox.touch`` changes one purchase, then both snapshots are refreshed incrementally.
Reported per snapshot: the median refresh seconds over the rounds, and the data files the last
refresh wrote anew against those it carried over from the previous version (counted on disk: a
carried file keeps its inode).  Both snapshots are then compared with fresh ones (frames and
row counts).  Target: the partitioned refresh costs at most 2x the unpartitioned one.

Run alone::

    python -m benchmarks --only partrefresh [--quick]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PAGE_SIZE, Scale, fmt, markdown_table, ratio

INCLUDE = ["PurchaseStatus", "DropshipProvider"]
PARTITION = ("createdAt", "month")
#: The partitioned refresh may cost at most this many times the unpartitioned one.
TARGET = 2.0


def _inodes(path: Path) -> dict[str, int]:
    """``relative path -> inode`` of every data file the snapshot's manifest lists."""
    manifest = json.loads((path / "_jetti_snapshot.json").read_text())
    return {f["path"]: (path / f["path"]).stat().st_ino for f in manifest["files"]}


def run(scale: Scale) -> dict[str, Any]:
    import pandas as pd

    from jetti_frames import JettiClient, read_snapshot, refresh_snapshot, snapshot
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    rounds = 1 if scale.name == "quick" else 3
    out: dict[str, Any] = {"purchases": scale.purchases, "latency_ms": scale.refresh_latency_ms,
                           "rounds": rounds, "target": TARGET}
    with tempfile.TemporaryDirectory() as tmp, Sandbox(
            purchases=scale.purchases, latency_ms=scale.refresh_latency_ms,
            max_limit=PAGE_SIZE) as sb:
        client = JettiClient(SANDBOX_TOKEN, base_url=sb.base_url, cache=False, progress=False,
                             page_size=PAGE_SIZE)
        paths = {"unpartitioned": Path(tmp) / "flat", "partitioned": Path(tmp) / "months"}
        options: dict[str, dict[str, Any]] = {"unpartitioned": {},
                                              "partitioned": {"partition_by": PARTITION}}
        for label, path in paths.items():
            snapshot("purchases", path, include=INCLUDE, client=client, **options[label])
        seconds: dict[str, list[float]] = {label: [] for label in paths}
        for n in range(rounds):
            sb.touch("purchases", n + 1)  # a seeded-random purchase per round
            for label, path in paths.items():
                before = _inodes(path)
                began = time.perf_counter()
                info = refresh_snapshot(path, client=client)
                seconds[label].append(time.perf_counter() - began)
                after = _inodes(path)
                carried = sum(1 for ino in after.values() if ino in set(before.values()))
                out[label] = {"files": len(after), "files_written": len(after) - carried,
                              "files_carried": carried, "rows": info.rows,
                              "changed_records": info.changed_records}
        for label, path in paths.items():
            out[label]["seconds"] = round(statistics.median(seconds[label]), 3)
            out[label]["all_seconds"] = [round(s, 3) for s in seconds[label]]
            fresh = Path(tmp) / f"fresh-{label}"
            info = snapshot("purchases", fresh, include=INCLUDE, client=client,
                            **options[label])
            try:
                pd.testing.assert_frame_equal(read_snapshot(path), read_snapshot(fresh))
                same = info.rows == out[label]["rows"]
            except AssertionError as exc:
                same = False
                out[label]["difference"] = str(exc)[:500]
            out[label]["same_as_fresh"] = same
        client.close()
    out["ratio"] = ratio(out["partitioned"]["seconds"], out["unpartitioned"]["seconds"])
    out["met"] = out["ratio"] <= TARGET and all(out[k]["same_as_fresh"] for k in paths)
    return out


def table(result: dict[str, Any]) -> str:
    rows = [[label, f"{r['rows']:,}", r["files"], r["files_written"], r["files_carried"],
             fmt(r["seconds"], 3), "yes" if r["same_as_fresh"] else "**no**"]
            for label, r in (("unpartitioned", result["unpartitioned"]),
                             ("partitioned by createdAt month", result["partitioned"]))]
    text = markdown_table(["snapshot", "rows", "files", "files written", "files carried over",
                           "refresh s (median)", "same as a fresh snapshot"], rows,
                          align="-rrrrr-")
    met = "met" if result["met"] else "**not met**"
    return (text + f"\n\nAfter one changed purchase ({result['purchases']:,} purchases, two "
            f"includes, latency {result['latency_ms']:.0f} ms, {result['rounds']} round(s)): "
            f"the partitioned refresh costs {result['ratio']:.2f}x the unpartitioned one "
            f"(target <= {result['target']:.0f}x: {met}).")
